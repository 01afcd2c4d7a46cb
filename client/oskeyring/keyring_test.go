package oskeyring

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestAvailable: HEARTH_KEYRING=off turns the keyring off; on Linux a
// session bus is needed to reach the Secret Service.
func TestAvailable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the session-bus rule is Linux's")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv(EnvSwitch, "")
	if Available() {
		t.Error("available without a session bus")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
	if !Available() {
		t.Error("not available with a session bus")
	}
	t.Setenv(EnvSwitch, "off")
	if Available() {
		t.Error("available with HEARTH_KEYRING=off")
	}
}

// TestCallBounded: a keyring call that does not answer (a locked keyring
// waiting for a prompt) ends with a clear error after the time limit; an
// answer's error is wrapped with what was being done.
func TestCallBounded(t *testing.T) {
	k := Keyring{Timeout: 50 * time.Millisecond}
	block := make(chan struct{})
	defer close(block)
	start := time.Now()
	err := k.call("read", func() error { <-block; return nil })
	if err == nil || !strings.Contains(err.Error(), "no answer from the OS keyring") {
		t.Fatalf("a call that never answers: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the bounded call took %v", d)
	}
	boom := errors.New("boom")
	if err := k.call("store", func() error { return boom }); !errors.Is(err, boom) || !strings.Contains(err.Error(), "store the profile key") {
		t.Fatalf("a failing call: %v", err)
	}
	if err := k.call("store", func() error { return nil }); err != nil {
		t.Fatalf("a call that succeeds: %v", err)
	}
}
