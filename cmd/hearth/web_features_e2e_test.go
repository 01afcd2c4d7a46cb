package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"hearth/keys/testutil"
)

// The web page's conversation features (issue 15), run inside
// TestWebClientLinkAndChat's browser session: presence, receipts and read
// marks, files and inline images, groups, unread counts, a phone-sized
// screen. bob follows with `recv --follow --json --signals` (lines).

// pngFile writes a w×h PNG to a file in a temporary folder and returns its
// path and contents.
func pngFile(t *testing.T, name string, w, h int) (string, []byte) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.NRGBA{R: uint8(2 * x), G: uint8(3 * y), B: 200, A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b.Bytes()
}

// evalString is the value of a JavaScript expression that yields a string.
func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ectx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// clickJS clicks the element sel selects once there is one. The page
// draws its lists anew on every event, so a node looked up first and
// clicked next may be gone meanwhile; this looks it up and clicks it in
// one step.
func clickJS(sel string, d time.Duration) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (e === null) return false; e.click(); return true })()`, sel), d)
}

// focusJS is clickJS for the keyboard focus.
func focusJS(sel string, d time.Duration) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (e === null) return false; e.focus(); return document.activeElement === e })()`, sel), d)
}

// openConversation clicks peer's entry in the conversations list.
func openConversation(t *testing.T, ctx context.Context, peer string) {
	t.Helper()
	run(t, ctx, "open "+peer, 20*time.Second,
		clickJS(fmt.Sprintf(`#conversations button[data-peer=%q]`, peer), 10*time.Second),
		poll(fmt.Sprintf(`document.getElementById("conv-title").textContent !== "" && document.querySelector("#conversations button[aria-current]").dataset.peer === %q`, peer), 10*time.Second))
}

// webPresenceAndReceipts: bob's following session shows as online in the
// conversation's header; the page, showing bob's reply, marked it read
// (bob's history shows it ✓✓ read); when bob reads alice's messages, each shows
// ✓✓ read in the page.
func webPresenceAndReceipts(t *testing.T, ctx context.Context, b1 *profile, lines <-chan map[string]any) {
	run(t, ctx, "bob online", 30*time.Second,
		poll(`document.getElementById("presence").textContent === "online"`, 25*time.Second))
	// The receipt event may reach a one-shot command of bob's first, so
	// bob's stored receipt state is what tells (history's "status").
	testutil.WaitFor(t, 30*time.Second, func() error {
		h := b1.must(t, "", "history", aliceAddr, "--json")
		for _, line := range strings.Split(h, "\n") {
			if strings.Contains(line, `"from":"`+bobAddr+`"`) && strings.Contains(line, `"status":"read"`) {
				return nil
			}
		}
		return fmt.Errorf("bob's reply is not read by alice yet: %s", h)
	})
	b1.must(t, "", "read", aliceAddr)
	run(t, ctx, "read marks", 30*time.Second,
		poll(`(() => { const s = [...document.querySelectorAll("#messages li.msg.out .state")].map(e => e.textContent); return s.length >= 2 && s.every(x => x === "✓✓ read") })()`, 25*time.Second))
}

// webFiles: the page sends an image that bob receives with its SHA-256
// and fetches byte-identical; an image bob sends shows inline in the page
// (decoded from its blob: URL) and its download button saves it.
func webFiles(t *testing.T, ctx context.Context, b1 *profile, lines <-chan map[string]any) {
	up, upBytes := pngFile(t, "from-browser.png", 96, 64)
	run(t, ctx, "send a file", 10*time.Second, chromedp.SetUploadFiles(chromedp.ID("file"), []string{up}))
	m := await(t, lines, "the browser's image", func(m map[string]any) bool {
		md, ok := m["media"].(map[string]any)
		return ok && md["name"] == "from-browser.png"
	})
	md := m["media"].(map[string]any)
	if want := fmt.Sprintf("%x", sha256.Sum256(upBytes)); md["sha256"] != want || md["type"] != "image/png" || md["size"] != float64(len(upBytes)) {
		t.Fatalf("bob received media %v, want sha256 %s, image/png, %d bytes", md, want, len(upBytes))
	}
	dst := filepath.Join(t.TempDir(), "got.png")
	b1.must(t, "", "media", "get", m["id"].(string), "--out", dst)
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, upBytes) {
		t.Fatalf("bob's copy of the browser's image differs (%v)", err)
	}
	// The page shows its own image too, and ✓ once sent.
	run(t, ctx, "own image shown", 30*time.Second,
		poll(`[...document.querySelectorAll("#messages li.msg.out .file img")].some(i => i.complete && i.naturalWidth === 96)`, 25*time.Second))

	down, downBytes := pngFile(t, "from-terminal.png", 120, 80)
	b1.must(t, "", "send", aliceAddr, "--file", down)
	run(t, ctx, "bob's image shown", 30*time.Second,
		poll(`[...document.querySelectorAll("#messages li.msg.in .file img")].some(i => i.complete && i.naturalWidth === 120 && i.src.startsWith("blob:"))`, 25*time.Second))

	// Its download button saves the decrypted file.
	saved := t.TempDir()
	run(t, ctx, "download", 20*time.Second,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: saved})
			return err
		}),
		clickJS(`#messages li.msg.in .file button.download`, 10*time.Second))
	testutil.WaitFor(t, 20*time.Second, func() error {
		got, err := os.ReadFile(filepath.Join(saved, "from-terminal.png"))
		if err != nil || !bytes.Equal(got, downBytes) {
			return fmt.Errorf("downloaded file: %d bytes, %v", len(got), err)
		}
		return nil
	})
}

// webGroup: the page creates a group with bob, adds carol from the
// members panel, and the three exchange messages both ways; the page
// then removes bob, and carol's view of the group loses him.
func webGroup(t *testing.T, ctx context.Context, n *chatNet, b1 *profile, lines <-chan map[string]any) (group string, carol *profile) {
	mustHearth(t, password("carol"), "admin", "--dir", n.dir, "user", "add", "carol", "--password-stdin")
	carol = newProfile(t, "carol")
	carol.must(t, password("carol"), carol.loginArgs(n)...)
	const carolAddr = "carol@localhost"

	run(t, ctx, "create a group", 60*time.Second,
		chromedp.Click(chromedp.ID("new-group")),
		chromedp.SendKeys(chromedp.ID("group-name"), "hearth team"),
		chromedp.SendKeys(chromedp.ID("group-members"), bobAddr),
		chromedp.Click(chromedp.ID("group-create")),
		poll(`document.getElementById("conv-title").textContent === "hearth team"`, 50*time.Second))
	group = evalString(t, ctx, `document.querySelector("#conversations button[aria-current]").dataset.peer`)
	if !strings.HasSuffix(group, "@localhost") {
		t.Fatalf("the new group's id is %q", group)
	}
	members := func(want ...string) chromedp.Action[chromedp.Void] {
		return poll(fmt.Sprintf(`[...document.querySelectorAll("#group-members-list li")].map(e => e.dataset.user).join(",") === %q`, strings.Join(want, ",")), 50*time.Second)
	}
	run(t, ctx, "add carol", 60*time.Second,
		chromedp.Click(chromedp.ID("group-manage")),
		members(aliceAddr, bobAddr),
		chromedp.SendKeys(chromedp.ID("group-add-user"), carolAddr),
		chromedp.Click(chromedp.ID("group-add")),
		members(aliceAddr, bobAddr, carolAddr))

	const fromPage, fromBob, fromCarol = "hello team, from the browser", "bob to the team", "carol to the team"
	run(t, ctx, "send to the group", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("text"), fromPage),
		chromedp.Click(chromedp.ID("send")))
	await(t, lines, "the group message at bob", func(m map[string]any) bool {
		return m["text"] == fromPage && m["conversation"] == group && m["from"] == aliceAddr
	})
	recvGroup := func(p *profile, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			for _, line := range strings.Split(p.must(t, "", "recv", "--json", "--timeout", "2s"), "\n") {
				if strings.Contains(line, fmt.Sprintf(`"text":%q`, want)) && strings.Contains(line, group) {
					return
				}
			}
		}
		t.Fatalf("%s never received %q in %s", p.dir, want, group)
	}
	recvGroup(carol, fromPage)
	b1.must(t, "", "send", group, fromBob)
	carol.must(t, "", "send", group, fromCarol)
	run(t, ctx, "group replies shown", 30*time.Second,
		poll(fmt.Sprintf(`(() => { const t = [...document.querySelectorAll("#messages li.msg.in")].map(e => e.querySelector(".meta").textContent.split(" · ")[0] + ":" + e.querySelector(".text").textContent); return t.includes(%q) && t.includes(%q) })()`,
			bobAddr+":"+fromBob, carolAddr+":"+fromCarol), 25*time.Second))
	evalString(t, ctx, `(window.scrollTo(0, 0), "")`)
	screenshot(t, ctx, webShotsDir(t), "web-group.png")

	run(t, ctx, "remove bob", 60*time.Second,
		clickJS(fmt.Sprintf(`#group-members-list li[data-user=%q] button.remove`, bobAddr), 10*time.Second),
		members(aliceAddr, carolAddr))
	testutil.WaitFor(t, 30*time.Second, func() error {
		carol.must(t, "", "recv", "--timeout", "1s")
		out := carol.must(t, "", "group", "info", group, "--json")
		if strings.Contains(out, bobAddr) || !strings.Contains(out, carolAddr) {
			return fmt.Errorf("carol's group info: %s", out)
		}
		return nil
	})
	return group, carol
}

// webUnread: a message to a conversation not open shows as an unread
// count and last message in the list, which puts it first; opening it from
// the keyboard (the arrow keys in the list) clears the count.
func webUnread(t *testing.T, ctx context.Context, b1 *profile, group string) {
	const unread = "while you were in the group"
	b1.must(t, "", "send", aliceAddr, unread)
	entry := fmt.Sprintf(`document.querySelector('#conversations button[data-peer=%q]')`, bobAddr)
	run(t, ctx, "unread count", 30*time.Second,
		poll(fmt.Sprintf(`(() => { const b = %s; return b !== null && b.querySelector(".unread") !== null && b.querySelector(".unread").textContent === "1" && b.querySelector(".last").textContent === %q })()`, entry, unread), 25*time.Second))
	// Escape closes the members panel (and gives the focus to its button).
	run(t, ctx, "close the members panel", 10*time.Second,
		chromedp.KeyEvent(kb.Escape),
		poll(`document.getElementById("group-panel").hidden && document.activeElement.id === "group-manage"`, 5*time.Second))
	evalString(t, ctx, `(window.scrollTo(0, 0), "")`)
	screenshot(t, ctx, webShotsDir(t), "web-conversations.png")
	order := evalString(t, ctx, `[...document.querySelectorAll("#conversations button")].map(b => b.dataset.peer).join(",")`)
	if order != bobAddr+","+group {
		t.Fatalf("conversations listed as %s, want the newest (bob's) first, then the group", order)
	}
	run(t, ctx, "open bob's conversation by keyboard", 20*time.Second,
		focusJS(fmt.Sprintf(`#conversations button[data-peer=%q]`, group), 10*time.Second),
		chromedp.KeyEvent(kb.ArrowUp),
		poll(fmt.Sprintf(`document.activeElement.dataset.peer === %q && document.getElementById("conv-title").textContent === %q`, bobAddr, bobAddr), 10*time.Second),
		poll(fmt.Sprintf(`%s.querySelector(".unread") === null`, entry), 5*time.Second))
}

// webPhone takes a screenshot of the conversation on a phone-sized
// screen (390 px wide) and checks nothing is wider than the screen.
func webPhone(t *testing.T, ctx context.Context) {
	run(t, ctx, "phone screen", 20*time.Second,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		poll(`document.documentElement.clientWidth === 390 && document.documentElement.scrollWidth <= 390`, 10*time.Second))
	screenshot(t, ctx, webShotsDir(t), "web-phone.png")
	run(t, ctx, "desktop screen", 20*time.Second, chromedp.EmulateViewport(1000, 700))
}
