package main

import (
	"slices"
	"testing"
	"time"
)

// TestRestartOnly: a reload reports exactly the settings it cannot apply.
func TestRestartOnly(t *testing.T) {
	base := newServerConfig("chat.example.org", "0.0.0.0:443")
	for _, tc := range []struct {
		name string
		edit func(*serverConfig)
		want []string
	}{
		{"nothing", func(*serverConfig) {}, nil},
		{"send limits and level", func(c *serverConfig) { c.Limits.SendBurst, c.Limits.SendPerSecond, c.LogLevel = 1, 2, "debug" }, nil},
		{"federation rate", func(c *serverConfig) { c.Federation = &federationConfig{RatePerSecond: 3, RateBurst: 4} }, nil},
		{"retention", func(c *serverConfig) { c.Limits.Retention = duration(time.Hour) }, []string{"limits"}},
		{"listen and federation backoff", func(c *serverConfig) {
			c.Listen = "0.0.0.0:8443"
			c.Federation = &federationConfig{BackoffMax: duration(time.Minute)}
		}, []string{"federation", "listen"}},
		{"acme", func(c *serverConfig) { c.ACME = &acmeConfig{} }, []string{"acme"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			if got := restartOnly(base, c); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
