package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

func login(t *testing.T, ts *testServer, c *Client, user, pw string) LoginResult {
	t.Helper()
	res, err := c.Login(testCtx(t), LoginParams{User: user, Password: pw, Server: "pipe", DeviceName: "test"})
	if err != nil && !errors.Is(err, ErrNoE2EE) {
		t.Fatalf("login %s: %v", user, err)
	}
	return res
}

func TestLoginFirstDevicePublishesIdentity(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	c := ts.client(t)
	res, err := c.Login(testCtx(t), LoginParams{User: alice, Password: "correct horse battery", Server: "pipe", DeviceName: "laptop"})
	// Without an MLS engine the device is active but cannot publish KeyPackages.
	if !errors.Is(err, ErrNoE2EE) {
		t.Fatalf("login error = %v, want ErrNoE2EE (no MLS engine)", err)
	}
	if !res.Active || res.RecoveryKey == "" || res.LinkCode != "" || res.DeviceID == "" {
		t.Fatalf("first device result = %+v", res)
	}
	rk, err := identity.ParseRecoveryKey(res.RecoveryKey)
	if err != nil {
		t.Fatalf("recovery key text does not parse: %v", err)
	}
	// The server holds alice's list signed by the recovery key's identity, with this device on it.
	ua, _ := identity.ParseUser(alice)
	l, err := c.dir.Fetch(testCtx(t), nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	if key, _ := c.dir.IdentityKey(ua); !key.Equal(rk.Signer().Public()) {
		t.Fatal("published identity key is not the recovery key's")
	}
	self, _ := c.acct.Self()
	if d, ok := l.Lookup(res.DeviceID); !ok || l.Version != 1 || string(d.SignatureKey) != string(self.SignatureKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("list = %+v, want version 1 with this device and its signature key", l)
	}
	a, err := c.Account()
	if err != nil || !a.Active || a.User != alice {
		t.Fatalf("stored account = %+v, %v", a, err)
	}
	// The recovery key is shown once and kept nowhere on the device (not
	// even in free pages of the profile file); the identity key is.
	noRecoveryKey(t, c, res.RecoveryKey)
	var ik []byte
	c.st.View(func(tx *store.Tx) error { ik, _ = tx.Key(store.KeyIdentity); return nil })
	if seed := rk.Signer().Seed(); string(ik) != string(seed) {
		t.Fatal("the device does not hold the identity key")
	}
	if _, err := c.Login(testCtx(t), LoginParams{User: alice, Password: "x", Server: "pipe"}); err == nil ||
		!strings.Contains(err.Error(), "already logged in") {
		t.Fatalf("second login on a profile = %v", err)
	}
}

func TestLoginWrongPasswordStoresNothing(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	c := ts.client(t)
	_, err := c.Login(testCtx(t), LoginParams{User: alice, Password: "wrong password", Server: "pipe"})
	if !wire.Is(err, wire.Code_CODE_BAD_CREDENTIALS) {
		t.Fatalf("login = %v, want bad credentials", err)
	}
	if _, err := c.Account(); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("account after failed login: %v", err)
	}
}

func TestLinkApproveListRevoke(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	d1, d2 := ts.client(t), ts.client(t)
	r1 := login(t, ts, d1, alice, "correct horse battery")
	r2 := login(t, ts, d2, alice, "correct horse battery")
	if r2.Active || r2.LinkCode == "" || r2.RecoveryKey != "" {
		t.Fatalf("second device result = %+v, want pending with a link code", r2)
	}
	// A code with the right token but another fingerprint is refused and changes nothing.
	tok, _, _ := strings.Cut(r2.LinkCode, "-")
	if _, err := d1.Approve(testCtx(t), tok+"-AAAAAAAA"); !wire.Is(err, wire.Code_CODE_BAD_SIGNATURE) {
		t.Fatalf("approve with a wrong fingerprint = %v, want bad signature", err)
	}
	devs, err := d1.Devices(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.ID == r2.DeviceID && (d.Listed || d.Status != "pending") {
			t.Fatalf("device after refused approval: %+v", d)
		}
	}

	done := make(chan error, 1)
	go func() { done <- d2.WaitApproval(testCtx(t), 20*time.Millisecond) }()
	id, err := d1.Approve(testCtx(t), strings.ToLower(r2.LinkCode))
	if err != nil || id != r2.DeviceID {
		t.Fatalf("approve = %q, %v", id, err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrNoE2EE) {
		t.Fatalf("wait approval: %v", err)
	}
	a2, _ := d2.Account()
	if !a2.Active {
		t.Fatal("approved device not active")
	}
	var k1, k2 []byte
	d1.st.View(func(tx *store.Tx) error { k1, _ = tx.Key(store.KeyIdentity); return nil })
	d2.st.View(func(tx *store.Tx) error { k2, _ = tx.Key(store.KeyIdentity); return nil })
	if len(k1) != ed25519.SeedSize || string(k1) != string(k2) {
		t.Fatal("approved device did not receive the identity key")
	}
	noRecoveryKey(t, d1, r1.RecoveryKey)
	noRecoveryKey(t, d2, r1.RecoveryKey)
	devs, err = d2.Devices(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, d := range devs {
		if d.Listed && d.Status == "active" {
			listed++
		}
	}
	if listed != 2 {
		t.Fatalf("devices = %+v, want both active and listed", devs)
	}

	if err := d2.Revoke(testCtx(t), r2.DeviceID); err == nil {
		t.Fatal("a device revoked itself")
	}
	if err := d2.Revoke(testCtx(t), r1.DeviceID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// The revoked device's session ends for good.
	if _, err := d1.Devices(testCtx(t)); !wire.Is(err, wire.Code_CODE_DEVICE_REVOKED) {
		t.Fatalf("revoked device request = %v, want device revoked", err)
	}
	ua, _ := identity.ParseUser(alice)
	l, err := d2.dir.Fetch(testCtx(t), nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Lookup(r1.DeviceID); ok || l.Version != 3 {
		t.Fatalf("list after revoke: version %d, devices %+v", l.Version, l.Devices)
	}
}

// TestFirstLoginResumesAfterFailedPublish: the first device's run dies
// after the server created the device but before the identity was
// published; the next login on the profile publishes it and shows the
// same recovery key.
func TestFirstLoginResumesAfterFailedPublish(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	dir := t.TempDir()
	// The network goes down after the login request: the second dial (the
	// session that would publish the identity) fails, and the user gives up
	// after a few failed dials. No wall-clock limit, so a slow machine
	// cannot end the login before the account is stored.
	var dials atomic.Int32
	ctx, cancel := context.WithCancel(testCtx(t))
	onlyLogin := func(dctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
		n := dials.Add(1)
		if n > 1 {
			if n >= 4 {
				cancel()
			}
			return nil, errors.New("network down")
		}
		return ts.dial(dctx, addr, ca)
	}
	c, err := Open(Config{Profile: dir, Dial: onlyLogin, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Login(ctx, LoginParams{User: alice, Password: "correct horse battery", Server: "pipe"})
	cancel()
	c.Close()
	if err == nil {
		t.Fatal("login with the network down after Login succeeded")
	}
	var stored []byte
	c.st.View(func(tx *store.Tx) error { stored, _ = tx.Key(store.KeyRecoveryPending); return nil })
	if len(stored) == 0 {
		t.Fatal("recovery key not kept for the retry")
	}

	c2, err := Open(Config{Profile: dir, Dial: ts.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	res, err := c2.Login(testCtx(t), LoginParams{User: alice, Password: "correct horse battery", Server: "pipe"})
	if err != nil && !errors.Is(err, ErrNoE2EE) {
		t.Fatalf("resumed login: %v", err)
	}
	if !res.Active || res.RecoveryKey != string(stored) {
		t.Fatalf("resumed login = %+v, want active with the stored recovery key", res)
	}
	noRecoveryKey(t, c2, res.RecoveryKey)
	ua, _ := identity.ParseUser(alice)
	if _, err := c2.dir.Fetch(testCtx(t), nil, ua); err != nil {
		t.Fatalf("identity not published: %v", err)
	}
}

// noRecoveryKey fails unless c's profile file is free of the recovery key
// text and has no pending recovery key record.
func noRecoveryKey(t *testing.T, c *Client, text string) {
	t.Helper()
	if text == "" {
		t.Fatal("no recovery key to look for")
	}
	if err := c.st.View(func(tx *store.Tx) error { _, err := tx.Key(store.KeyRecoveryPending); return err }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("recovery key record: %v", err)
	}
	raw, err := os.ReadFile(c.st.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(text)) {
		t.Fatal("the profile file holds the recovery key")
	}
}

// TestLegacyRecoveryKeyReplaced: a profile of an older version holds the
// recovery key text as its identity record; the first use of the identity
// key replaces it with the identity key it derives, and the device keeps
// working (it approves and revokes with it).
func TestLegacyRecoveryKeyReplaced(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	c := ts.client(t)
	res := login(t, ts, c, alice, "correct horse battery")
	rk, err := identity.ParseRecoveryKey(res.RecoveryKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.st.Update(func(tx *store.Tx) error { return tx.PutKey(store.KeyIdentity, []byte(rk.Text())) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.acct.DropRevoked(testCtx(t), []string{"NOSUCHDEVICE"}); err != nil {
		t.Fatal(err)
	}
	var ik []byte
	c.st.View(func(tx *store.Tx) error { ik, _ = tx.Key(store.KeyIdentity); return nil })
	if string(ik) != string(rk.Signer().Seed()) {
		t.Fatalf("identity record after first use: %d bytes, want the identity key seed", len(ik))
	}
}
