package homeserver

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

func TestLoginApprovalFlow(t *testing.T) {
	h := newHarness(t, Config{})
	a1, acct := h.firstDevice("alice")

	// Publishing the identity twice is refused.
	a1.fails(&wire.ClientFrame{Body: &wire.ClientFrame_PublishIdentity{PublishIdentity: &wire.PublishIdentity{
		IdentityKey: acct.signer.Public().Bytes(), DeviceList: acct.sign(t)}}}, wire.Code_CODE_CONFLICT)

	// A second device starts pending, with a link code.
	lk, err := identity.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a2 := h.connect()
	ok := a2.login("alice@"+testDomain, "password-alice", lk.Public().Bytes())
	if ok.FirstDevice || ok.Status != wire.DeviceStatus_DEVICE_STATUS_PENDING || ok.LinkCode == "" {
		t.Fatalf("second device: %v", ok)
	}
	// Pending: only approval, key packages, device list and ping.
	a2.fails(&wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}}, wire.Code_CODE_PENDING_APPROVAL)
	a2.fails(appMsg("c1@"+testDomain, "m", 0, "x"), wire.Code_CODE_PENDING_APPROVAL)
	a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_PublishKeyPackages{PublishKeyPackages: &wire.PublishKeyPackages{KeyPackages: [][]byte{[]byte("kp")}}}})
	a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}})
	a2.must(ping())
	fetch := &wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}}
	if r := a2.must(fetch).GetApproval(); r.Status != wire.DeviceStatus_DEVICE_STATUS_PENDING || len(r.SealedBundle) != 0 {
		t.Fatalf("approval before approving: %v", r)
	}

	// The first device looks the code up (as typed: TOKEN-FINGERPRINT).
	code, err := identity.FormatLinkCode(ok.LinkCode, lk.Public())
	if err != nil {
		t.Fatal(err)
	}
	pd := a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_PendingDevice{PendingDevice: &wire.PendingDevice{LinkCode: code}}}).GetPendingDevice()
	if pd.DeviceId != ok.DeviceId || string(pd.LinkPublicKey) != string(lk.Public().Bytes()) {
		t.Fatalf("pending device info %v", pd)
	}
	approve := func(list *wire.SignedDeviceList) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
			DeviceId: ok.DeviceId, DeviceList: list, SealedBundle: []byte("sealed")}}}
	}
	// A list signed by another key, or one without the device, or an old version: refused.
	other := newAccount(t, "alice")
	other.list = acct.list
	a1.fails(approve(other.withDevice(t, ok.DeviceId)), wire.Code_CODE_BAD_SIGNATURE)
	a1.fails(approve(acct.sign(t)), wire.Code_CODE_BAD_REQUEST) // does not include the device
	a1.must(approve(acct.withDevice(t, ok.DeviceId)))
	if r := a2.must(fetch).GetApproval(); r.Status != wire.DeviceStatus_DEVICE_STATUS_ACTIVE || string(r.SealedBundle) != "sealed" {
		t.Fatalf("approval after approving: %v", r)
	}
	// Now active on the same stream.
	a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}})
	// The directory serves the stored, signed list.
	dl := a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: "alice"}}}).GetDeviceList()
	pub, _ := identity.ParsePublicKey(dl.IdentityKey)
	l, err := identity.VerifyDeviceList(pub, dl.DeviceList.List, dl.DeviceList.Signature)
	if err != nil || len(l.Devices) != 2 || l.Version != 2 {
		t.Fatalf("fetched list %v %v", l, err)
	}
	// Publishing the same version again is refused.
	a1.fails(&wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{DeviceList: acct.sign(t)}}}, wire.Code_CODE_VERSION)
}

func TestBadCredentials(t *testing.T) {
	h := newHarness(t, Config{})
	h.addUser("bob")
	c := h.connect()
	login := func(user, pw string) *wire.ErrorInfo {
		return c.fails(&wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: user, Password: pw}}}, wire.Code_CODE_BAD_CREDENTIALS)
	}
	wrong := login("bob", "not-the-password")
	unknown := login("nobody", "password-bob")
	if wrong.Message != unknown.Message {
		t.Fatalf("wrong password and unknown user differ: %q vs %q", wrong.Message, unknown.Message)
	}
	login("bob@other.example", "password-bob")
	devs, err := h.s.DeviceList(context.Background(), "bob")
	if err != nil || len(devs) != 0 {
		t.Fatalf("failed logins created devices: %v %v", devs, err)
	}
	// Still unauthenticated.
	c.fails(ping(), wire.Code_CODE_UNAUTHENTICATED)
}

func TestRefreshRotationAndReuse(t *testing.T) {
	h := newHarness(t, Config{})
	c, _ := h.firstDevice("carol")
	first := c.refresh
	refresh := func(c *client, tok string) *wire.ServerFrame {
		return c.call(&wire.ClientFrame{Body: &wire.ClientFrame_Refresh{Refresh: &wire.Refresh{RefreshToken: tok}}})
	}
	r := refresh(c, first).GetRefreshOk()
	if r == nil || r.RefreshToken == first || r.AccessToken == "" {
		t.Fatalf("rotation: %v", r)
	}
	h.clock.Add(time.Second)
	// The new access token works on a new stream.
	c2 := h.connect()
	if hello := c2.hello(r.AccessToken); hello.GetHelloOk() == nil {
		t.Fatalf("hello with refreshed token: %v", hello)
	}
	second := r.RefreshToken
	// Reusing the old token: refused, the chain dies, live sessions close.
	if e := refresh(h.connect(), first).GetError(); e.GetCode() != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("reuse: %v", e)
	}
	c2.closed(wire.Code_CODE_UNAUTHENTICATED)
	c.closed(wire.Code_CODE_UNAUTHENTICATED)
	if e := refresh(h.connect(), second).GetError(); e.GetCode() != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("newest token of a revoked chain still works: %v", e)
	}
	if e := h.connect().hello(r.AccessToken).GetError(); e.GetCode() != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("access token of a revoked chain still works: %v", e)
	}
}

func TestAccessTokenExpiry(t *testing.T) {
	h := newHarness(t, Config{})
	c, _ := h.firstDevice("dave")
	h.clock.Add(16 * time.Minute)
	if e := h.connect().hello(c.access).GetError(); e.GetCode() != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("expired token accepted: %v", e)
	}
	if e := h.connect().hello(c.access[:len(c.access)-2] + "AA").GetError(); e.GetCode() != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("forged token accepted: %v", e)
	}
}

func TestRevocationClosesStream(t *testing.T) {
	h := newHarness(t, Config{})
	a1, acct := h.firstDevice("erin")
	lk, _ := identity.GenerateLinkKey(rand.Reader)
	a2 := h.connect()
	ok := a2.login("erin", "password-erin", lk.Public().Bytes())
	a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok.DeviceId, DeviceList: acct.withDevice(t, ok.DeviceId), SealedBundle: []byte("s")}}})
	a2.must(syncFrame(0))

	revoke := func(list *wire.SignedDeviceList) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_RevokeDevice{RevokeDevice: &wire.RevokeDevice{DeviceId: ok.DeviceId, DeviceList: list}}}
	}
	a1.fails(revoke(nil), wire.Code_CODE_BAD_REQUEST)          // on the list: a new list is required
	a1.fails(revoke(acct.sign(t)), wire.Code_CODE_BAD_REQUEST) // still lists it
	a1.must(revoke(acct.withoutDevice(t, ok.DeviceId)))        // signed successor without it
	a2.closed(wire.Code_CODE_DEVICE_REVOKED)
	if e := h.connect().hello(ok.AccessToken).GetError(); e.GetCode() != wire.Code_CODE_DEVICE_REVOKED {
		t.Fatalf("revoked device's token: %v", e)
	}
	r := h.connect().call(&wire.ClientFrame{Body: &wire.ClientFrame_Refresh{Refresh: &wire.Refresh{RefreshToken: ok.RefreshToken}}})
	if r.GetError().GetCode() != wire.Code_CODE_UNAUTHENTICATED {
		t.Fatalf("revoked device's refresh token: %v", r)
	}
	a1.must(ping()) // the revoking device is unaffected
}

func TestDisabledUser(t *testing.T) {
	h := newHarness(t, Config{})
	c, _ := h.firstDevice("frank")
	ctx := context.Background()
	if err := h.s.UserSetDisabled(ctx, "frank", true); err != nil {
		t.Fatal(err)
	}
	c.closed(wire.Code_CODE_USER_DISABLED)
	if e := h.connect().hello(c.access).GetError(); e.GetCode() != wire.Code_CODE_USER_DISABLED {
		t.Fatalf("disabled user's token: %v", e)
	}
	h.connect().fails(&wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: "frank", Password: "password-frank"}}}, wire.Code_CODE_USER_DISABLED)
	if err := h.s.UserSetDisabled(ctx, "frank", false); err != nil {
		t.Fatal(err)
	}
	if hello := h.connect().hello(c.access); hello.GetHelloOk() == nil {
		t.Fatalf("re-enabled user: %v", hello)
	}
}

func TestAdminRevokeAndDelete(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	c, _ := h.firstDevice("gina")
	if err := h.s.DeviceRevoke(ctx, "gina", c.device); err != nil {
		t.Fatal(err)
	}
	c.closed(wire.Code_CODE_DEVICE_REVOKED)
	if err := h.s.DeviceRevoke(ctx, "gina", c.device); wire.KindOf(err) != wire.Code_CODE_CONFLICT {
		t.Fatalf("second revoke: %v", err)
	}
	devs, _ := h.s.DeviceList(ctx, "gina")
	if len(devs) != 1 || devs[0].Status != "revoked" {
		t.Fatalf("devices %v", devs)
	}
	c2 := h.connect()
	lk, _ := identity.GenerateLinkKey(rand.Reader)
	c2.login("gina", "password-gina", lk.Public().Bytes())
	if err := h.s.UserDelete(ctx, "gina"); err != nil {
		t.Fatal(err)
	}
	c2.closed(wire.Code_CODE_USER_DISABLED)
	// The token is genuine, so its holder learns the account is gone (the
	// CLI says so) rather than "unknown device".
	if e := h.connect().hello(c2.access).GetError(); e.GetCode() != wire.Code_CODE_USER_DISABLED || !strings.Contains(e.GetMessage(), "account deleted") {
		t.Fatalf("deleted user's token: %v", e)
	}
}

// TestSignatureKeyAndSelfApproval: the key a device registers at login is
// shown to the approver and must be the one listed; a pending device that
// holds the recovery key approves itself (docs/decisions/0002).
func TestSignatureKeyAndSelfApproval(t *testing.T) {
	h := newHarness(t, Config{})
	a1, acct := h.firstDevice("hana")
	lk, _ := identity.GenerateLinkKey(rand.Reader)
	a2 := h.connect()
	key := []byte("an ed25519 public key of 32 byte")
	ok := a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: "hana", Password: "password-hana",
		LinkPublicKey: lk.Public().Bytes(), SignatureKey: key}}}).GetLoginOk()
	pd := a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_PendingDevice{PendingDevice: &wire.PendingDevice{LinkCode: ok.LinkCode}}}).GetPendingDevice()
	if string(pd.SignatureKey) != string(key) {
		t.Fatalf("pending device signature key %q", pd.SignatureKey)
	}
	approve := func(c *client, list *wire.SignedDeviceList, bundle string) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
			DeviceId: ok.DeviceId, DeviceList: list, SealedBundle: []byte(bundle)}}}
	}
	saved := acct.list
	a1.fails(approve(a1, acct.withDeviceKey(t, ok.DeviceId, []byte("some other key")), "s"), wire.Code_CODE_BAD_REQUEST)
	acct.list = saved

	// Self-approval: the pending device, holding the recovery key, signs
	// the successor list itself and sends no bundle.
	a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: "hana"}}})
	a3 := h.connect()
	lk3, _ := identity.GenerateLinkKey(rand.Reader)
	ok3 := a3.login("hana", "password-hana", lk3.Public().Bytes())
	saved = acct.list
	a2.fails(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok3.DeviceId, DeviceList: acct.withDevice(t, ok3.DeviceId), SealedBundle: []byte("s")}}}, wire.Code_CODE_PENDING_APPROVAL)
	acct.list = saved
	a2.fails(approve(a2, acct.sign(t), ""), wire.Code_CODE_BAD_REQUEST) // a list without itself
	a2.must(approve(a2, acct.withDeviceKey(t, ok.DeviceId, key), ""))
	r := a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}}).GetApproval()
	if r.Status != wire.DeviceStatus_DEVICE_STATUS_ACTIVE || len(r.SealedBundle) != 0 {
		t.Fatalf("after self-approval: %v", r)
	}
	a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}})
	// An active device still needs a bundle to approve another one.
	a1.fails(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok3.DeviceId, DeviceList: acct.withDevice(t, ok3.DeviceId)}}}, wire.Code_CODE_BAD_REQUEST)
}
