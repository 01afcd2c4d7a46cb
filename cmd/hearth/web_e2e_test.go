package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// webShots is where TestWebClientLinkAndChat writes its screenshots.
// Without it they go to $HEARTH_TEST_ARTIFACTS/web, else to
// hearth-test-artifacts/web in the system's temporary folder (kept after
// the test, for CI to collect); the test logs the paths.
var webShots = flag.String("web.screenshots", "", "folder for the web client test's screenshots (default: $HEARTH_TEST_ARTIFACTS/web or $TMPDIR/hearth-test-artifacts/web)")

// chromium finds Debian's chromium (or another Chrome) or skips the test:
// .ci/run installs chromium, so CI never skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("Chromium is not installed (apt-get install chromium): the web client's browser test cannot run")
	return ""
}

// browser starts a headless Chromium with its own profile folder. The
// development CA's certificate is not in the browser's trust store, so
// certificate errors are ignored; the test's server is on loopback. extra
// adds allocator options (Chromium flags).
func browser(t *testing.T, exe string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	ctx, _ := browserCancel(t, exe, extra...)
	return ctx
}

// browserCancel is browser with the function that stops it (also called
// at the test's end).
func browserCancel(t *testing.T, exe string, extra ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.WindowSize(1000, 700),
	)
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	stop := func() { cancel(); acancel() }
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	// The page's console (where it writes the client's log) is shown
	// when the test fails.
	var mu sync.Mutex
	var lines []string
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
			mu.Lock()
			lines = append(lines, string(e.Type)+": "+strings.Join(parts, " "))
			mu.Unlock()
		case *cdpruntime.EventExceptionThrown:
			mu.Lock()
			lines = append(lines, "exception: "+e.ExceptionDetails.Text)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("page console:\n%s", strings.Join(lines, "\n"))
			mu.Unlock()
		}
	})
	return ctx, stop
}

// run runs browser actions with a deadline, failing the test with what
// the page shows on error.
func run(t *testing.T, ctx context.Context, what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(rctx, actions...); err != nil {
		t.Fatalf("%s: %v (page status %q, error %q)", what, err, text(ctx, "status"), text(ctx, "error"))
	}
}

// text is the text of the element with id, or "" after 5 s.
func text(ctx context.Context, id string) string {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(sctx, chromedp.TextContent(chromedp.ID(id)))
	return s
}

// poll waits until the JavaScript expression is true.
func poll(expr string, d time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d)))
		return err
	})
}

// webShotsDir is the folder for the web tests' screenshots (made if
// missing): -web.screenshots, else $HEARTH_TEST_ARTIFACTS/web, else
// hearth-test-artifacts/web in the system's temporary folder.
func webShotsDir(t *testing.T) string {
	t.Helper()
	shots := *webShots
	if shots == "" {
		base := os.Getenv("HEARTH_TEST_ARTIFACTS")
		if base == "" {
			base = filepath.Join(os.TempDir(), "hearth-test-artifacts")
		}
		shots = filepath.Join(base, "web")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return shots
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// TestWebClientLinkAndChat is issue 15's first slice in real headless
// Chromium: the page served by `hearth serve` logs in as a new device of
// alice (the link code and its QR code shown on the page), alice's CLI
// device approves it with `hearth chat device approve` reading a
// screenshot of the QR code, the page sends bob (a CLI user) a
// text that bob's `chat recv` gets, bob's typing and his reply show (and
// alice's typing in the page reaches bob) in the page's
// conversation view, after a reload the page shows both again from the
// browser's store (IndexedDB) without logging in, a second tab is refused
// the profile, and logging out deletes it (the next load asks to log in). Screenshots of the three views go to -web.screenshots.
func TestWebClientLinkAndChat(t *testing.T) {
	skipShort(t)
	exe := chromium(t)
	n, a1, b1 := newMessagingNet(t)
	shots := webShotsDir(t)
	ctx := browser(t, exe)
	t.Cleanup(func() {
		if t.Failed() {
			n.srv.mu.Lock()
			t.Logf("server log:\n%s", n.srv.stderr.String())
			n.srv.mu.Unlock()
		}
	})
	url := "https://" + n.srv.addr + "/"

	run(t, ctx, "open the page", 30*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("login-view")),
		chromedp.WaitVisible(chromedp.ID("devca"))) // the development CA: how to trust it
	screenshot(t, ctx, shots, "web-login.png")
	run(t, ctx, "log in", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("login-user"), aliceAddr),
		chromedp.SendKeys(chromedp.ID("login-password"), strings.TrimSpace(password("alice"))),
		chromedp.Click(chromedp.ID("login-submit")))
	run(t, ctx, "link code", 30*time.Second, chromedp.WaitVisible(chromedp.ID("link-view")))
	code, fp := text(ctx, "link-code"), text(ctx, "link-fingerprint")
	if code == "" || fp == "" {
		t.Fatalf("link view shows code %q, fingerprint %q", code, fp)
	}
	screenshot(t, ctx, shots, "web-link.png")

	// Alice approves by the QR code: a screenshot of the page's QR image,
	// which `device approve FILE.png` reads (it holds hearth-link:USER:CODE).
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	qr, err := chromedp.Run(qctx, chromedp.Screenshot(chromedp.ID("link-qr")))
	qcancel()
	if err != nil {
		t.Fatalf("screenshot of the link QR code: %v", err)
	}
	qrFile := filepath.Join(t.TempDir(), "link-qr.png")
	if err := os.WriteFile(qrFile, qr, 0o600); err != nil {
		t.Fatal(err)
	}
	out := a1.must(t, "", "device", "approve", qrFile)
	if !strings.Contains(out, "approved: ") {
		t.Fatalf("approve output %q", out)
	}
	run(t, ctx, "approved", 30*time.Second, chromedp.WaitVisible(chromedp.ID("chat-view")))
	// The browser's session is WebTransport (the CLI's are native QUIC).
	awaitBrowserTransport(t, n.dir, "webtransport")

	const hello, reply = "hello from the browser", "reply from the terminal"
	run(t, ctx, "send", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("to"), bobAddr),
		chromedp.SendKeys(chromedp.ID("text"), hello),
		chromedp.Click(chromedp.ID("send")))
	// "sent" appears once the server durably accepted it.
	run(t, ctx, "sent", 30*time.Second,
		poll(`[...document.querySelectorAll("#messages li.msg.out .state")].some(e => e.textContent.startsWith("✓"))`, 25*time.Second))
	expectRecv(t, b1, aliceAddr+":"+hello)

	// Bob types: the page shows it in the conversation with him.
	b1.must(t, "", "typing", aliceAddr)
	run(t, ctx, "typing shown", 20*time.Second,
		poll(fmt.Sprintf(`document.getElementById("typing").textContent === %q`, bobAddr+" is typing…"), 15*time.Second))
	// It came as a datagram: the browser asked for them (only its session
	// is open), and the server sent the push as one.
	if st := serverStatus(t, n.dir); st.SignalDatagrams == 0 {
		t.Errorf("the typing push reached the page but the server sent no datagram (status %+v)", st.SessionsByTransport)
	}

	b1.must(t, "", "send", aliceAddr, reply)
	js := fmt.Sprintf(`[...document.querySelectorAll("#messages li.msg.in")].some(e => e.querySelector(".text").textContent === %q && e.querySelector(".meta").textContent.startsWith(%q))`, reply, bobAddr)
	run(t, ctx, "reply shown", 30*time.Second, poll(js, 25*time.Second),
		poll(fmt.Sprintf(`document.querySelector("#conversations .last").textContent === %q`, reply), 5*time.Second))

	// Typing in the page reaches bob (`recv --follow --signals`).
	const again = "still there?"
	lines := followSignals(t, b1)
	run(t, ctx, "send again", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("text"), again),
		chromedp.Click(chromedp.ID("send")))
	await(t, lines, "the browser's second message", func(m map[string]any) bool { return m["text"] == again })
	run(t, ctx, "type", 10*time.Second, chromedp.SendKeys(chromedp.ID("text"), "x"))
	await(t, lines, "alice typing", func(m map[string]any) bool {
		return m["event"] == "typing" && m["user"] == aliceAddr && m["typing"] == true
	})
	evalString(t, ctx, `(document.getElementById("text").value = "")`)

	// Presence, receipts, files (web_features_e2e_test.go).
	webPresenceAndReceipts(t, ctx, b1, lines)
	webFiles(t, ctx, b1, lines)
	screenshot(t, ctx, shots, "web-chat.png")
	webPhone(t, ctx)
	// Groups, and unread counts in the conversations list.
	group, carol := webGroup(t, ctx, n, b1, lines)
	webUnread(t, ctx, b1, group)
	// A group message while bob's conversation is open stays unread, also
	// after the reload below.
	carol.must(t, "", "send", group, "unread across a reload")
	groupUnread := fmt.Sprintf(`(() => { const u = document.querySelector('#conversations button[data-peer=%q] .unread'); return u !== null && u.textContent === "1" })()`, group)
	run(t, ctx, "group unread", 30*time.Second, poll(groupUnread, 25*time.Second))

	// A reload finds the profile in IndexedDB: no login, the conversation
	// with its messages from the stored history.
	// The receipt state and the files come back too.
	both := fmt.Sprintf(`(() => { const t = [...document.querySelectorAll("#messages li.msg .text")].map(e => e.textContent); return t.join("|") === %q && document.querySelector("#messages li.msg.out .state").textContent === "✓✓ read" && document.querySelectorAll("#messages .file img").length === 2 })()`, hello+"|"+reply+"|"+again+"|while you were in the group")
	start := time.Now()
	run(t, ctx, "reload", 30*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#conversations button[data-peer=%q]`, bobAddr))),
		poll(fmt.Sprintf(`(() => { const b = document.querySelector('#conversations button[data-peer=%q] .peer'); return b !== null && b.textContent === "hearth team" })()`, group), 10*time.Second),
		// No conversation is open at start; the list says what is unread.
		poll(groupUnread+` && document.getElementById("conv-title").textContent === ""`, 10*time.Second))
	t.Logf("reload to the conversation list: %v", time.Since(start).Round(time.Millisecond))
	openConversation(t, ctx, bobAddr)
	run(t, ctx, "history after reload", 30*time.Second, poll(both, 25*time.Second))
	// Issue 15's target is 2 s on an idle machine; this run shares the CPU.
	t.Logf("reload to the conversation view with its history and images: %v", time.Since(start).Round(time.Millisecond))

	// The CLI device sees bob's reply too (it is alice's other device).
	msgs := parseMsgs(t, a1.must(t, "", "recv", "--json", "--timeout", "3s"))
	if got := texts(msgs); !strings.Contains(strings.Join(got, "|"), bobAddr+":"+reply) {
		t.Errorf("alice's CLI device got %q, want bob's reply", got)
	}

	// The device list shows both of alice's devices; the browser revokes
	// the CLI device, which can then no longer send.
	var a1dev string
	for _, d := range devices(t, a1) {
		if d.This {
			a1dev = d.Device
		}
	}
	if a1dev == "" {
		t.Fatal("alice's CLI device is not in its own device list")
	}
	row := fmt.Sprintf(`#devices tr[data-device=%q]`, a1dev)
	run(t, ctx, "devices", 30*time.Second,
		chromedp.Click(chromedp.ID("devices-button")),
		chromedp.WaitVisible(chromedp.CSS(row+" button.revoke")),
		poll(`[...document.querySelectorAll("#devices tbody tr")].length === 2 && document.querySelector("#devices tbody").textContent.includes("(this browser)")`, 10*time.Second))
	screenshot(t, ctx, shots, "web-devices.png")
	run(t, ctx, "revoke", 30*time.Second,
		chromedp.Click(chromedp.CSS(row+" button.revoke")),
		poll(fmt.Sprintf(`(() => { const r = document.querySelector(%q); return r !== null && r.textContent.includes("revoked") && r.querySelector("button") === null })()`, row), 25*time.Second),
		chromedp.Click(chromedp.ID("devices-close")),
		chromedp.WaitVisible(chromedp.ID("chat-view")))
	if r := a1.chat(t, "", "send", bobAddr, "from a revoked device", "--timeout", "5s"); r.code == 0 {
		t.Errorf("the revoked CLI device could still send: %s", r.stdout)
	}

	// A second tab of the same browser does not open the profile the
	// first tab's client holds in memory.
	tab2, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	run(t, tab2, "second tab", 30*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("error")),
		poll(`document.getElementById("error").textContent.includes("open in another tab")`, 20*time.Second))

	// Logging out deletes the browser's profile: a reload asks to log in.
	run(t, ctx, "log out", 30*time.Second,
		chromedp.Click(chromedp.ID("logout")),
		chromedp.Click(chromedp.ID("logout-confirm")),
		chromedp.WaitVisible(chromedp.ID("logged-out-view")),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("login-view")))

}
