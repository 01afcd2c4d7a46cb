package mls_test

import (
	"crypto/rand"
	"fmt"

	"hearth/keys/mls"
	"hearth/keys/mls/suite"
)

// The client's flow: alice creates a group, adds bob's device from its
// KeyPackage through the hub's two-phase commit, bob joins from the
// Welcome, they exchange a message, and bob saves and restores his state.
func Example() {
	s, _ := suite.Lookup(suite.Default)           // 0xF001; suite.Mandatory is suite 1
	cfg := mls.Config{Validator: mls.AcceptAll{}} // a client passes its *identity.Validator

	aliceKey, _ := s.GenerateSignatureKey(rand.Reader)
	alice, _ := mls.NewGroup(cfg, s, []byte("conv-1@a.example"), aliceKey,
		mls.BasicCredential("alice@a.example/PHONE"), mls.GroupOptions{})

	// Bob's device published a KeyPackage and stored its private bundle.
	bobKey, _ := s.GenerateSignatureKey(rand.Reader)
	kp, kpPriv, _ := mls.NewKeyPackage(s, rand.Reader, bobKey, mls.BasicCredential("bob@b.example/LAPTOP"), mls.KeyPackageOptions{})
	stored := kpPriv.Marshal()
	fetched, _ := mls.DecodeKeyPackage(kp.Message()) // from the key directory

	out, _ := alice.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{fetched}})
	// ... save alice.Marshal(), send out.Commit, out.Welcome, out.GroupInfo to the hub ...
	alice.ApplyPendingCommit() // the hub accepted it (DiscardPendingCommit if it refused)

	bob, _, err := mls.JoinWelcome(cfg, out.Welcome, func(ref []byte) (*mls.KeyPackagePrivate, error) {
		return mls.UnmarshalKeyPackagePrivate(stored) // looked up by ref in bob's store
	}, mls.JoinOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ct, _ := alice.Encrypt([]byte("hi bob"), nil)
	res, _ := bob.Process(ct)
	fmt.Printf("%s from %s in epoch %d\n", res.Plaintext, res.SenderIdentity, res.Epoch)

	state, _ := bob.Marshal()
	bob, _ = mls.UnmarshalGroup(state, cfg.Validator)
	fmt.Println(len(bob.Members()), "members; same epoch authenticator:",
		string(bob.EpochAuthenticator()) == string(alice.EpochAuthenticator()))
	// Output:
	// hi bob from alice@a.example/PHONE in epoch 1
	// 2 members; same epoch authenticator: true
}
