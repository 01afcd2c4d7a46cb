package main

import "testing"

// TestFederationAddress: what the key document publishes as the
// federation address.
func TestFederationAddress(t *testing.T) {
	dev := newServerConfig("chat.example.org", "0.0.0.0:443")
	acme := dev
	acme.ACME = &acmeConfig{}
	pinned := acme
	pinned.Federation = &federationConfig{Address: "fed.example.org:8443"}
	for _, tc := range []struct {
		cfg  serverConfig
		want string
	}{
		{dev, "127.0.0.1:443"},
		{acme, "chat.example.org:443"},
		{pinned, "fed.example.org:8443"},
	} {
		if got := federationAddress(tc.cfg, "127.0.0.1:443"); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.cfg.Federation, got, tc.want)
		}
	}
}
