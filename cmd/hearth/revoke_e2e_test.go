package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/store"
	ctransport "hearth/client/transport"
	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
)

// storedAccount reads the account (device id, tokens) a profile holds.
func storedAccount(t *testing.T, p *profile) store.Account {
	t.Helper()
	c, err := client.Open(client.Config{Profile: p.dir, Dial: dialServer})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.Account()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// rawCall sends one frame on a fresh control stream and returns the answer.
func rawCall(t *testing.T, s *server, f *wire.ClientFrame) *wire.ServerFrame {
	t.Helper()
	pool, err := certs.LoadCAPool(filepath.Join(s.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ctransport.Dial(ctx, s.addr, ctransport.DialOptions{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.Id = 1
	if err := wire.NewFrameWriter(c, 0).WriteMessage(f); err != nil {
		t.Fatal(err)
	}
	rd := wire.NewFrameReader(c, 0)
	for {
		var r wire.ServerFrame
		if err := rd.ReadMessage(&r); err != nil {
			t.Fatalf("read answer: %v", err)
		}
		if r.Id == f.Id { // skip pushes (a session's contacts' presence)
			return &r
		}
	}
}

// tokenAnswers presents p's stored tokens to the server as a client does
// and returns its answers: a Hello with the access token, a REST history
// read with it (HTTP status), and a Refresh with the refresh token. A
// successful refresh is stored back into the profile, as the client would.
func tokenAnswers(t *testing.T, s *server, p *profile, conv string) (hello *wire.ErrorInfo, rest int, refresh *wire.ErrorInfo) {
	t.Helper()
	a := storedAccount(t, p)
	h := rawCall(t, s, &wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: a.AccessToken}}})
	if h.GetError() == nil && h.GetHelloOk() == nil {
		t.Fatalf("Hello answered %v", h)
	}
	req, _ := http.NewRequest("GET", "https://"+s.addr+"/hearth/v1/messages?conversation="+url.QueryEscape(conv), nil)
	req.Header.Set("Authorization", "Bearer "+a.AccessToken)
	rsp, body := s.do(t, req)
	if rsp.StatusCode == 200 {
		var msgs []json.RawMessage
		if err := json.Unmarshal(body, &msgs); err != nil {
			t.Fatalf("history with a working token: %s", body)
		}
	}
	r := rawCall(t, s, &wire.ClientFrame{Body: &wire.ClientFrame_Refresh{Refresh: &wire.Refresh{RefreshToken: a.RefreshToken}}})
	if ok := r.GetRefreshOk(); ok != nil {
		c, err := client.Open(client.Config{Profile: p.dir, Dial: dialServer})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Store().Update(func(tx *store.Tx) error {
			cur, err := tx.Account()
			if err != nil {
				return err
			}
			cur.AccessToken, cur.RefreshToken = ok.GetAccessToken(), ok.GetRefreshToken()
			cur.AccessExpires = time.UnixMilli(ok.GetAccessExpiresMs())
			return tx.PutAccount(cur)
		})
		if err != nil {
			t.Fatal(err)
		}
	} else if r.GetError() == nil {
		t.Fatalf("Refresh answered %v", r)
	}
	return h.GetError(), rsp.StatusCode, r.GetError()
}

// waitExit waits for a follower to end by itself and returns its error.
func (f *follower) waitExit(t *testing.T, within time.Duration) error {
	t.Helper()
	for {
		select {
		case _, ok := <-f.lines:
			if !ok {
				return <-f.done
			}
		case <-time.After(within):
			t.Fatalf("recv --follow still running %v after its device was revoked", within)
			return nil
		}
	}
}

// TestRevokeEndsLiveSessionAndTokens: a device revoked by its user
// (`chat device revoke`) and one revoked by an admin (`admin device
// revoke`), each while running `recv --follow`: the process sees its session
// end and exits with a clear error, and its stored access and refresh
// tokens are refused by the server from then on, while other devices go on.
func TestRevokeEndsLiveSessionAndTokens(t *testing.T) {
	skipShort(t)
	n, a1, b1 := newMessagingNet(t)
	a2 := newProfile(t, "alice")
	linkDevice(t, n, a2, a1)
	a1.must(t, "", "send", bobAddr, "before")
	expectRecv(t, b1, aliceAddr+":before")
	conv := expectRecv(t, a2, aliceAddr+":before")[0].Conversation

	for _, tc := range []struct {
		name   string
		victim *profile
		revoke func(device string)
	}{
		{"by the user", a2, func(dev string) { a1.must(t, "", "device", "revoke", dev) }},
		{"by an admin", b1, func(dev string) { mustHearth(t, "", "admin", "--dir", n.dir, "device", "revoke", "bob", dev) }},
	} {
		if h, rest, r := tokenAnswers(t, n.srv, tc.victim, conv); h != nil || rest != 200 || r != nil {
			t.Fatalf("%s: tokens before revocation: hello %v, history %d, refresh %v", tc.name, h, rest, r)
		}
		f, stderr := followLogged(t, tc.victim)
		a1.must(t, "", "send", bobAddr, "live "+tc.name)
		for m := f.next(t); m.Text != "live "+tc.name; m = f.next(t) { // (bob has an earlier one)
			if !strings.HasPrefix(m.Text, "live ") {
				t.Fatalf("%s: follower printed %+v", tc.name, m)
			}
		}

		tc.revoke(storedAccount(t, tc.victim).DeviceID)
		if err := f.waitExit(t, 30*time.Second); err == nil {
			t.Errorf("%s: recv --follow exited 0 after revocation", tc.name)
		}
		if msg := stderr.String(); !strings.Contains(msg, "revoked") || strings.Contains(msg, "goroutine ") {
			t.Errorf("%s: recv --follow stderr %q, want a clear revoked error", tc.name, msg)
		}
		h, rest, r := tokenAnswers(t, n.srv, tc.victim, conv)
		if h.GetCode() != wire.Code_CODE_DEVICE_REVOKED {
			t.Errorf("%s: Hello with the revoked device's token answered %v", tc.name, h)
		}
		if rest != http.StatusUnauthorized && rest != http.StatusForbidden {
			t.Errorf("%s: REST history with the revoked device's token: HTTP %d", tc.name, rest)
		}
		if r.GetCode() != wire.Code_CODE_DEVICE_REVOKED && r.GetCode() != wire.Code_CODE_UNAUTHENTICATED {
			t.Errorf("%s: Refresh with the revoked device's token answered %v", tc.name, r)
		}
		if r := tc.victim.chat(t, "", "recv", "--timeout", "1s"); r.code == 0 || !strings.Contains(r.stderr, "revoked") {
			t.Errorf("%s: a later recv on the revoked profile: exit %d, %q", tc.name, r.code, r.stderr)
		}
	}
	// alice's first device still works and still holds the conversation.
	if got := historyOf(t, a1, bobAddr); len(got) != 3 {
		t.Errorf("alice's remaining device holds %d messages, want 3", len(got))
	}
	if h, rest, r := tokenAnswers(t, n.srv, a1, conv); h != nil || rest != 200 || r != nil {
		t.Errorf("the remaining device's tokens: hello %v, history %d, refresh %v", h, rest, r)
	}
}

// lockedBuffer is a bytes.Buffer safe for a process writing while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// followLogged is follow with the process's stderr kept for the test.
func followLogged(t *testing.T, p *profile) (*follower, *lockedBuffer) {
	t.Helper()
	f := &follower{lines: make(chan chatMsg, 100), done: make(chan error, 1)}
	f.cmd = exec.Command(hearthBin, "chat", "--profile", p.dir, "recv", "--follow", "--json")
	stderr := &lockedBuffer{}
	f.cmd.Stderr = stderr
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m chatMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("follow printed %q: %v", sc.Text(), err)
				continue
			}
			f.lines <- m
		}
		f.done <- f.cmd.Wait()
		close(f.lines)
	}()
	t.Cleanup(func() { f.cmd.Process.Kill() })
	return f, stderr
}
