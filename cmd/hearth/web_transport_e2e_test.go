package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"hearth/homeserver/admin"
	"hearth/homeserver/certs"
)

// serverStatus is `hearth admin status --json` of the server in dir.
func serverStatus(t *testing.T, dir string) admin.Status {
	t.Helper()
	var st admin.Status
	if err := json.Unmarshal([]byte(mustHearth(t, "", "admin", "--dir", dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// awaitBrowserTransport waits until the server in dir serves exactly one
// control stream over transport (the browser's; CLI commands use native
// QUIC) and none over the other browser transport.
func awaitBrowserTransport(t *testing.T, dir, transport string) {
	t.Helper()
	other := "websocket"
	if transport == other {
		other = "webtransport"
	}
	deadline := time.Now().Add(30 * time.Second)
	var st admin.Status
	for time.Now().Before(deadline) {
		st = serverStatus(t, dir)
		if st.SessionsByTransport[transport] == 1 && st.SessionsByTransport[other] == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond) // polls another process's state
	}
	t.Fatalf("the browser's session is not on %s: the server serves %v", transport, st.SessionsByTransport)
}

// browserFirstLogin opens the page at url and logs in as user (password
// password(name)) with no other device: the browser becomes the first
// device, active at once, its recovery key shown. beforeLogin run once
// the login form shows.
func browserFirstLogin(t *testing.T, ctx context.Context, url, user, name string, beforeLogin ...func()) {
	t.Helper()
	run(t, ctx, "open the page", 30*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("login-view")))
	for _, f := range beforeLogin {
		f()
	}
	run(t, ctx, "log in", 30*time.Second,
		chromedp.SendKeys(chromedp.ID("login-user"), user),
		chromedp.SendKeys(chromedp.ID("login-password"), strings.TrimSpace(password(name))),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("chat-view")),
		chromedp.WaitVisible(chromedp.ID("recovery-key")))
}

// pageSend sends text to peer from the page and waits for its ✓ (sent).
func pageSend(t *testing.T, ctx context.Context, peer, text string) {
	t.Helper()
	run(t, ctx, "send", 30*time.Second,
		chromedp.Clear(chromedp.ID("to")),
		chromedp.SendKeys(chromedp.ID("to"), peer),
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send")),
		poll(fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg.out")].some(e => e.querySelector(".text").textContent === %q && e.querySelector(".state").textContent.startsWith("✓"))`, text), 25*time.Second))
}

// awaitPageMessage waits until the page shows text received from from.
func awaitPageMessage(t *testing.T, ctx context.Context, from, text string) {
	t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg.in")].some(e => e.querySelector(".text").textContent === %q && e.querySelector(".meta").textContent.startsWith(%q))`, text, from)
	run(t, ctx, "message from "+from+" shown", 40*time.Second, poll(js, 35*time.Second))
}

// udpBlockedPath is a network path to the server at target that carries
// TCP but drops UDP, as some firewalls do: a TCP relay on a port of its
// own, with a UDP socket on the same port that reads nothing (so the
// browser's QUIC packets get no answer, not even a port-unreachable).
// It returns the path's HOST:PORT.
func udpBlockedPath(t *testing.T, target string) string {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := net.ListenPacket("udp", l.Addr().String())
		if err == nil {
			ln, pc = l, p
			break
		}
		l.Close()
	}
	if ln == nil {
		t.Fatal("no port free for both TCP and UDP")
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// TestWebClientWebSocketFallback: a browser whose WebTransport cannot
// connect (its UDP packets to the server are dropped on the way, as on
// networks that block UDP) still logs in and chats, over the WebSocket
// the page races beside WebTransport: the server serves the browser's
// session on the WebSocket and none on WebTransport, and a CLI user on
// the same server exchanges messages with the page. (Chromium's
// --disable-quic does not stop WebTransport, hence the blocked path;
// HTTP/3 is off so that the page's own loads cannot take the server's
// Alt-Svc around the block.) Then a browser without WebTransport (deleted
// from the worker's global scope before the login dials) does the same
// on the server's own address, where UDP works.
func TestWebClientWebSocketFallback(t *testing.T) {
	skipShort(t)
	exe := chromium(t)
	n, _, b1 := newMessagingNet(t)
	mustHearth(t, password("carol"), "admin", "--dir", n.dir, "user", "add", "carol", "--password-stdin")
	path := udpBlockedPath(t, n.srv.addr)
	ctx, cancelBrowser := browserCancel(t, exe, chromedp.Flag("disable-quic", true))
	t.Cleanup(func() {
		if t.Failed() {
			n.srv.mu.Lock()
			t.Logf("server log:\n%s", n.srv.stderr.String())
			n.srv.mu.Unlock()
		}
	})
	const carol = "carol@localhost"
	browserFirstLogin(t, ctx, "https://"+path+"/", carol, "carol")
	awaitBrowserTransport(t, n.dir, "websocket")

	pageSend(t, ctx, bobAddr, "over the websocket")
	expectRecv(t, b1, carol+":over the websocket")
	b1.must(t, "", "send", carol, "back over the websocket")
	awaitPageMessage(t, ctx, bobAddr, "back over the websocket")
	awaitBrowserTransport(t, n.dir, "websocket")
	cancelBrowser()

	// A browser without WebTransport at all (the worker's global deleted
	// before its script runs) goes straight to the WebSocket, on the
	// server's own address (UDP open).
	mustHearth(t, password("dave"), "admin", "--dir", n.dir, "user", "add", "dave", "--password-stdin")
	ctx2, _ := browserCancel(t, exe)
	const dave = "dave@localhost"
	browserFirstLogin(t, ctx2, "https://"+n.srv.addr+"/", dave, "dave", func() { hideWebTransport(t, ctx2) })
	awaitBrowserTransport(t, n.dir, "websocket")
	pageSend(t, ctx2, bobAddr, "no webtransport here")
	expectRecv(t, b1, dave+":no webtransport here")
	b1.must(t, "", "send", dave, "fine by me")
	awaitPageMessage(t, ctx2, bobAddr, "fine by me")
	cctx, cancel := context.WithTimeout(ctx2, 10*time.Second)
	defer cancel()
	if got, err := chromedp.Run(cctx, chromedp.Evaluate[string](`typeof WebTransport`)); err != nil || got != "function" {
		t.Errorf("the page's own WebTransport is %q (%v): only the worker's was to be hidden", got, err)
	}
}

// hideWebTransport deletes WebTransport from the global scope of the
// page's worker (attached to through CDP), as in a browser without it.
// The worker dials only for a login or a logged-in profile, so a page
// showing its login form has not dialled yet.
func hideWebTransport(t *testing.T, ctx context.Context) {
	t.Helper()
	var id target.ID
	deadline := time.Now().Add(20 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		ts, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range ts {
			if strings.Contains(ti.Type, "worker") && strings.HasSuffix(ti.URL, "/web/worker.js") {
				id = ti.TargetID
			}
		}
		if id == "" {
			time.Sleep(50 * time.Millisecond) // polls the browser's target list
		}
	}
	if id == "" {
		t.Fatal("the page's worker is not among the browser's targets")
	}
	wctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	defer cancel()
	ectx, ecancel := context.WithTimeout(wctx, 10*time.Second)
	defer ecancel()
	if err := chromedp.Do(ectx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		r, err := chromedp.Call(ctx, cdpruntime.Evaluate, cdpruntime.EvaluateParams{Expression: `delete self.WebTransport; typeof self.WebTransport`})
		if err != nil {
			return err
		}
		if r.ExceptionDetails != nil || string(r.Result.Value) != `"undefined"` {
			return fmt.Errorf("the worker still has WebTransport: %s", r.Result.Value)
		}
		return nil
	})); err != nil {
		t.Fatalf("hide WebTransport in the worker: %v", err)
	}
}

// TestWebClientSecondServer: the browser user, on a.example, exchanges
// messages with bob, a CLI user on b.example, a second `hearth serve`
// federated with the first. The browser reaches only its own server
// (https://127.0.0.1:PORT of a.example); the servers find each other by
// their static peer table (pinned to loopback), so no name resolves
// outside the test.
func TestWebClientSecondServer(t *testing.T) {
	skipShort(t)
	exe := chromium(t)
	a, b, _, bob := fedPair(t)
	mustHearth(t, password("dora"), "admin", "--dir", a.dir, "user", "add", "dora", "--password-stdin")
	ctx := browser(t, exe)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []*fedServer{a, b} {
				s.srv.mu.Lock()
				t.Logf("%s log:\n%s", s.domain, s.srv.stderr.String())
				s.srv.mu.Unlock()
			}
		}
	})
	const dora, bobAt = "dora@a.example", "bob@b.example"
	// The login form links to how to trust the development CA.
	browserFirstLogin(t, ctx, "https://"+a.srv.addr+"/", dora, "dora", func() {
		run(t, ctx, "CA notice", 10*time.Second,
			chromedp.WaitVisible(chromedp.ID("devca")),
			poll(`document.getElementById("devca-link").getAttribute("href") === "/web/ca.html"`, 5*time.Second))
	})
	awaitBrowserTransport(t, a.dir, "webtransport")
	checkCertificateHashes(t, ctx)

	pageSend(t, ctx, bobAt, "hello from the browser on a")
	expectRecvContains(t, bob, "hello from the browser on a")
	bob.must(t, "", "send", dora, "hello from the terminal on b")
	awaitPageMessage(t, ctx, bobAt, "hello from the terminal on b")
	run(t, ctx, "conversation listed", 10*time.Second,
		poll(`document.querySelector("#conversations .last") !== null && document.querySelector("#conversations .last").textContent === "hello from the terminal on b"`, 5*time.Second))

	// The page on how to trust the development CA names the CA's
	// fingerprint and serves the same file as DIR/ca.pem.
	caPEM, err := os.ReadFile(filepath.Join(a.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		t.Fatal("ca.pem holds no PEM block")
	}
	sum := sha256.Sum256(blk.Bytes)
	fp := strings.ToUpper(hex.EncodeToString(sum[:]))
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, fp[i:i+2])
	}
	run(t, ctx, "CA page", 30*time.Second,
		chromedp.Navigate("https://"+a.srv.addr+"/web/ca.html"),
		chromedp.WaitVisible(chromedp.ID("ca-page")),
		poll(fmt.Sprintf(`document.body.textContent.includes(%q) && document.body.textContent.includes("certutil -d sql:$HOME/.pki/nssdb")`, strings.Join(colons, ":")), 20*time.Second))
	screenshot(t, ctx, webShotsDir(t), "web-ca.png")
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	served, err := chromedp.Run(cctx, chromedp.Evaluate[string](`fetch("/web/ca.pem").then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || served != string(caPEM) {
		t.Errorf("/web/ca.pem = %q (%v), want the server's ca.pem", served, err)
	}
}

// checkCertificateHashes: WebTransport reaches a development-CA server
// only through serverCertificateHashes (Chromium's
// --ignore-certificate-errors does not cover WebTransport): from the page,
// a session with the hash from /web/certificates.json opens, and one with
// a wrong hash or none fails. So the page's working WebTransport session
// is the hash path at work.
func checkCertificateHashes(t *testing.T, ctx context.Context) {
	t.Helper()
	const js = `(async () => {
	  const c = await (await fetch("/web/certificates.json", { cache: "no-store" })).json();
	  const bytes = (hex) => new Uint8Array(hex.match(/../g).map((x) => parseInt(x, 16)));
	  const open = async (opts) => {
	    try {
	      const wt = new WebTransport("https://" + location.host + "/hearth/v1", opts);
	      await wt.ready;
	      wt.close();
	      return "open";
	    } catch (e) {
	      return "failed";
	    }
	  };
	  const hash = (h) => ({ serverCertificateHashes: [{ algorithm: "sha-256", value: bytes(h) }] });
	  return [c.development_ca, c.webtransport_hashes.length, await open(hash(c.webtransport_hashes[0])),
	    await open(hash("00".repeat(32))), await open({})].join(" ");
	})()`
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := chromedp.Run(cctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("WebTransport from the page: %v", err)
	}
	if want := "true 1 open failed failed"; got != want {
		t.Fatalf("development CA, hashes, WebTransport with the published hash, a wrong one, none = %q, want %q", got, want)
	}
}
