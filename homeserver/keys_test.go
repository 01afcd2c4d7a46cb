package homeserver

import (
	"crypto/rand"
	"testing"

	"hearth/homeserver/keydir"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

func publish(pkgs []string, last string) *wire.ClientFrame {
	var bs [][]byte
	for _, p := range pkgs {
		bs = append(bs, []byte(p))
	}
	return &wire.ClientFrame{Body: &wire.ClientFrame_PublishKeyPackages{PublishKeyPackages: &wire.PublishKeyPackages{KeyPackages: bs, LastResort: []byte(last)}}}
}

func claim(users []string, exclude ...string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_ClaimKeyPackages{ClaimKeyPackages: &wire.ClaimKeyPackages{Users: users, ExcludeDevices: exclude}}}
}

func TestKeyDirectory(t *testing.T) {
	h := newHarness(t, Config{})
	alice, acct := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	// A second alice device, pending: publishes packages but is not
	// claimable until it is active and on the signed list.
	lk, _ := identity.GenerateLinkKey(rand.Reader)
	alice2 := h.connect()
	ok := alice2.login("alice", "password-alice", lk.Public().Bytes())
	alice2.must(publish([]string{"a2-kp1"}, "a2-last"))

	bob.fails(claim([]string{"alice"}), wire.Code_CODE_NO_KEY_PACKAGES) // alice's first device has none
	alice.must(publish([]string{"a1-kp1", "a1-kp2"}, "a1-last"))
	got := func(r *wire.ServerFrame) map[string]string {
		m := map[string]string{}
		for _, p := range r.GetClaim().Packages {
			m[p.DeviceId] = string(p.KeyPackage)
			if p.LastResort != (string(p.KeyPackage) == "a1-last" || string(p.KeyPackage) == "a2-last") {
				t.Fatalf("last_resort flag wrong on %v", p)
			}
		}
		return m
	}
	if m := got(bob.must(claim([]string{"alice@" + testDomain}))); len(m) != 1 || m[alice.device] != "a1-kp1" {
		t.Fatalf("claim 1: %v", m)
	}
	alice.must(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok.DeviceId, DeviceList: acct.withDevice(t, ok.DeviceId), SealedBundle: []byte("s")}}})
	m := got(bob.must(claim([]string{"alice"})))
	if len(m) != 2 || m[alice.device] != "a1-kp2" || m[ok.DeviceId] != "a2-kp1" {
		t.Fatalf("claim 2: %v", m)
	}
	// Exhausted: the last-resort package, again and again.
	for range 2 {
		m = got(bob.must(claim([]string{"alice"})))
		if m[alice.device] != "a1-last" || m[ok.DeviceId] != "a2-last" {
			t.Fatalf("claim 3: %v", m)
		}
	}
	// Excluding a device (e.g. the claimer's own).
	m = got(bob.must(claim([]string{"alice"}, alice.addr())))
	if len(m) != 1 || m[ok.DeviceId] == "" {
		t.Fatalf("claim with exclusion: %v", m)
	}
	bob.fails(claim([]string{"nobody"}), wire.Code_CODE_NOT_FOUND)
	bob.fails(claim([]string{"x@elsewhere.example"}), wire.Code_CODE_UNAVAILABLE)
	bob.fails(claim(nil), wire.Code_CODE_BAD_REQUEST)
	// All or nothing: bob has no packages, so claiming alice+bob takes nothing from alice.
	alice.must(publish([]string{"a1-kp3"}, ""))
	bob.fails(claim([]string{"alice", "bob"}), wire.Code_CODE_NO_KEY_PACKAGES)
	if m := got(bob.must(claim([]string{"alice"}))); m[alice.device] != "a1-kp3" {
		t.Fatalf("failed claim consumed a package: %v", m)
	}
	// Limits on publishing.
	alice.fails(publish(nil, ""), wire.Code_CODE_BAD_REQUEST)
	alice.fails(publish([]string{""}, ""), wire.Code_CODE_BAD_REQUEST)
	big := make([]string, keydir.MaxPackagesPerRequest+1)
	for i := range big {
		big[i] = "k"
	}
	alice.fails(publish(big, ""), wire.Code_CODE_LIMIT)
}
