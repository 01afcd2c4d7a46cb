package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/mls"

	"google.golang.org/protobuf/proto"
)

// TestGroupLargeDefaultSuite: a group of 160 devices, past the old ceiling
// of about 90 on the default post-quantum suite, is created under the
// default server limits (max_message_bytes 256 KiB, max_commit_bytes
// 6 MiB); every member joins from a Welcome without the ratchet tree and
// decrypts the creator's message and another member's.
func TestGroupLargeDefaultSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	const n = 160
	ts := client.NewTestServerMaxMembers(t, "a.example", 0)
	devs := make([]*dev, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d := newDev(t, ts, ts.AddUser(t, fmt.Sprintf("m%03d", i), groupPW))
			d.login(groupPW)
			devs[i] = d
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var members []string
	for _, d := range devs[1:] {
		members = append(members, d.user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	gid, err := devs[0].c.Groups().Create(ctx, "large", members)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("group of %d devices created in %v", n, time.Since(t0))
	devs[0].send(gid, "hello all")
	t0 = time.Now()
	errs := make(chan error, n)
	for _, d := range devs[1:] {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var got []string
			err := d.c.Receive(ctx, 200*time.Millisecond, func(m store.Message) error { got = append(got, m.Text); return nil })
			if err == nil && !containsText(got, "hello all") {
				err = fmt.Errorf("got %q, want hello all", got)
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", d.user, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d devices joined and decrypted in %v", n-1, time.Since(t0))
	want := devs[0].info(gid)
	if len(want.Devices) != n {
		t.Fatalf("creator sees %d devices, want %d", len(want.Devices), n)
	}
	devs[n-1].send(gid, "from the last")
	for _, d := range []*dev{devs[0], devs[1], devs[n/2]} {
		if got := d.drainTexts(); !containsText(got, "from the last") {
			t.Fatalf("%s got %q", d.user, got)
		}
		if gi := d.info(gid); gi.EpochAuthenticator != want.EpochAuthenticator || gi.Name != "large" {
			t.Fatalf("%s sees %+v", d.user, gi)
		}
	}
}

func containsText(got []string, text string) bool {
	for _, g := range got {
		if strings.HasSuffix(g, text) {
			return true
		}
	}
	return false
}

// TestWelcomeNeedsHubGroupInfo: the Welcome a member gets carries no
// ratchet tree (without the delivery's GroupInfo the device cannot join);
// a GroupInfo of another group, or of another epoch of the same group, is
// refused and changes nothing; the real one joins.
func TestWelcomeNeedsHubGroupInfo(t *testing.T) {
	ts := client.NewTestServerMaxMembers(t, "a.example", 0)
	us := groupUsers(t, ts, "owner", "carol")
	owner, carol := us[0], us[1]
	ctx := ctx30(t)
	// bob's device is offline: no session pushes the Welcomes to it.
	prof := t.TempDir()
	open := func() *client.Client {
		c, err := client.Open(client.Config{Profile: prof, Dial: ts.Dial(), Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	bob := &dev{t: t, c: open(), user: ts.AddUser(t, "bob", groupPW)}
	bob.login(groupPW)
	bob.drain()
	bob.c.Close()
	bob.c = open()
	g1, err := owner.c.Groups().Create(ctx, "one", []string{bob.user})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := owner.c.Groups().Create(ctx, "two", []string{bob.user})
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.c.Groups().AddMembers(ctx, g1, []string{carol.user}); err != nil {
		t.Fatal(err)
	}
	w1 := ts.WelcomeFor(t, deviceID(bob), g1)
	w2 := ts.WelcomeFor(t, deviceID(bob), g2)
	wc := ts.WelcomeFor(t, deviceID(carol), g1) // epoch 2 of g1
	if len(w1.GroupInfo) == 0 || w1.Epoch != 1 || wc.Epoch != 2 {
		t.Fatalf("welcomes: bob's epoch %d with %d bytes of group info; carol's epoch %d", w1.Epoch, len(w1.GroupInfo), wc.Epoch)
	}
	// The commit adding carol reached bob (a member) without an UpdatePath.
	var commits int
	for _, d := range ts.MailboxPayloads(t, deviceID(bob), g1) {
		var m mls.MLSMessage
		if err := m.Unmarshal(d.Payload); err != nil || m.PublicMessage == nil || m.PublicMessage.Content.Commit == nil {
			continue
		}
		commits++
		if m.PublicMessage.Content.Commit.Path != nil {
			t.Fatal("an add-only commit carries an UpdatePath")
		}
	}
	if commits != 1 {
		t.Fatalf("bob's mailbox holds %d commits of %s, want 1", commits, g1)
	}
	bad := map[string][]byte{"none": nil, "another group": w2.GroupInfo, "another epoch": wc.GroupInfo}
	for name, gi := range bad {
		d := proto.Clone(w1).(*wire.Delivery)
		d.GroupInfo = gi
		if err := bob.c.Deliver(ctx, d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bob.c.HasGroup(t, g1) {
			t.Fatalf("bob joined %s from a Welcome with group info %q", g1, name)
		}
	}
	// Online, bob gets the Welcomes with their own GroupInfo and joins
	// both groups: the refused attempts used up nothing.
	bob.drain()
	if !bob.c.HasGroup(t, g1) || !bob.c.HasGroup(t, g2) {
		t.Fatal("bob did not join with the Welcomes' own group info")
	}
	carol.drain()
	owner.send(g1, "to both")
	for _, d := range []*dev{bob, carol} {
		if got := d.drainTexts(); !containsText(got, "to both") {
			t.Fatalf("%s got %q", d.user, got)
		}
	}
	if a, b := owner.info(g1).EpochAuthenticator, bob.info(g1).EpochAuthenticator; a != b {
		t.Fatal("bob and the owner disagree on the epoch")
	}
}
