package oskeyring

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/zalando/go-keyring"

	"hearth/client/store"
)

// EnvSwitch names the environment variable that turns the keyring off
// ("off"): new profiles are then unencrypted unless given a passphrase.
const EnvSwitch = "HEARTH_KEYRING"

// service is the keyring items' service attribute; their user attribute
// is "profile:" and the profile's key id.
const service = "hearth"

// DefaultTimeout bounds each keyring call.
const DefaultTimeout = 5 * time.Second

// Keyring is the OS keyring, a store.Keyring.
type Keyring struct {
	// Timeout bounds each call (DefaultTimeout when 0).
	Timeout time.Duration
}

// Available reports whether this process should use the OS keyring: not
// turned off with HEARTH_KEYRING=off, and, where the keyring is the
// Secret Service, a D-Bus session bus to reach it (none on a headless
// server or over plain SSH).
func Available() bool {
	if os.Getenv(EnvSwitch) == "off" {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly":
		return os.Getenv("DBUS_SESSION_BUS_ADDRESS") != ""
	}
	return false
}

// Get returns the key kept under id; store.ErrNoKey if there is none.
func (k Keyring) Get(id string) ([]byte, error) {
	var text string
	err := k.call("read", func() error {
		var err error
		text, err = keyring.Get(service, "profile:"+id)
		return err
	})
	if errors.Is(err, keyring.ErrNotFound) {
		return nil, fmt.Errorf("oskeyring: key %s: %w", id, store.ErrNoKey)
	}
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("oskeyring: key %s is not a Hearth profile key", id)
	}
	return key, nil
}

// Set keeps key under id.
func (k Keyring) Set(id string, key []byte) error {
	return k.call("store", func() error {
		return keyring.Set(service, "profile:"+id, base64.StdEncoding.EncodeToString(key))
	})
}

// Delete removes the key kept under id; no error if there is none.
func (k Keyring) Delete(id string) error {
	err := k.call("delete", func() error { return keyring.Delete(service, "profile:"+id) })
	if errors.Is(err, keyring.ErrNotFound) {
		return nil
	}
	return err
}

// call runs fn with the time limit. A call that does not end (a prompt
// waiting for an answer) is abandoned: its goroutine ends with the
// process, which is a one-shot command or gives up on the keyring.
func (k Keyring) call(what string, fn func() error) error {
	limit := k.Timeout
	if limit <= 0 {
		limit = DefaultTimeout
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return fmt.Errorf("oskeyring: %s the profile key: %w", what, err)
		}
		return err
	case <-t.C:
		return fmt.Errorf("oskeyring: %s the profile key: no answer from the OS keyring within %v (is it locked?)", what, limit)
	}
}
