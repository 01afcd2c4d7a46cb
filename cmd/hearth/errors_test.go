package main

import (
	"fmt"
	"strings"
	"testing"

	"hearth/client"
	"hearth/homeserver/wire"
)

// TestErrorText: errors a person acts on get their own sentence, others
// lose the Go operation names, and --verbose keeps the whole chain.
func TestErrorText(t *testing.T) {
	ended := func(err error) error { return fmt.Errorf("%w: %w", client.ErrSessionEnded, err) }
	disabled := ended(wire.Errorf("client.Hello", wire.Code_CODE_USER_DISABLED, "%s", "homeserver.checkAccessToken: account disabled"))
	cases := []struct {
		err  error
		want string
	}{
		{disabled, "this account is disabled on its server; an admin can enable it again"},
		{ended(wire.Errorf("homeserver.checkAccessToken", wire.Code_CODE_USER_DISABLED, "account deleted")), "this account was deleted from its server"},
		{ended(wire.Errorf("homeserver.Hello", wire.Code_CODE_DEVICE_REVOKED, "device revoked")), "this device was revoked"},
		{ended(wire.Errorf("homeserver.Refresh", wire.Code_CODE_UNAUTHENTICATED, "invalid refresh token")), "this device's login is no longer valid"},
		{fmt.Errorf("client.FetchDeviceList: %w: erin@x.example now signs with hid:A, pinned hid:B", client.ErrIdentityChanged),
			"erin@x.example's identity key changed"},
		{fmt.Errorf("not sent to bob@x.example: %w", wire.Errorf("client.Queue", wire.Code_CODE_BAD_REQUEST, "the text is empty")),
			"not sent to bob@x.example: the text is empty"},
	}
	for _, c := range cases {
		got := errorText(c.err, []string{"chat", "--profile", "p", "recv"})
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("errorText(%q) = %q, want it to start with %q", c.err, got, c.want)
		}
		if strings.Contains(got, "client.") || strings.Contains(got, "homeserver.") {
			t.Errorf("errorText(%q) = %q shows Go operation names", c.err, got)
		}
	}
	if got := errorText(disabled, []string{"chat", "--verbose", "recv"}); got != disabled.Error() {
		t.Errorf("--verbose: %q, want the chain %q", got, disabled)
	}
	if got := errorText(fmt.Errorf("client.X: %w", client.ErrIdentityChanged), nil); !strings.Contains(got, "hearth chat trust USER@DOMAIN") {
		t.Errorf("changed key without a user: %q", got)
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 sessions", 1: "1 session", 2: "2 sessions"} {
		if got := plural(n, "session"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}
