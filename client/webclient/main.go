//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall/js"
	"time"

	"hearth/client"
	"hearth/client/convstate"
	"hearth/client/mlsgroup"
	"hearth/client/store"
	"hearth/client/transport"
)

// profileName is the IndexedDB database holding this origin's profile.
const profileName = "hearth-profile"

// web is the worker's state: one profile, one client.
type web struct {
	host string // the page's HOST:PORT, the homeserver
	c    *client.Client
	log  *slog.Logger

	mu        sync.Mutex
	receiving bool
	loggedOut bool // the profile is deleted: nothing runs any more
}

func main() {
	w := &web{host: js.Global().Get("location").Get("host").String(), log: newPageLog(slog.LevelInfo)}
	c, err := client.Open(client.Config{
		Profile: profileName,
		Dial: func(ctx context.Context, addr, _ string) (io.ReadWriteCloser, error) {
			return transport.DialBrowser(ctx, addr, 0)
		},
		Groups: mlsgroup.New(),
		Logger: w.log,
	})
	handler := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) == 1 {
			go w.handle(args[0])
		}
		return nil
	})
	js.Global().Set("hearthHandle", handler)
	if err != nil {
		post("error", map[string]any{"op": "open", "message": err.Error()})
	} else {
		w.c = c
		c.OnSignal(w.signal)
		w.start()
	}
	js.Global().Call("hearthReady")
	select {} // the worker lives as long as the page
}

// post sends one event to the page.
func post(ev string, fields map[string]any) {
	m := map[string]any{"ev": ev}
	for k, v := range fields {
		m[k] = v
	}
	js.Global().Call("postMessage", js.ValueOf(m))
}

func fail(op string, err error) {
	post("error", map[string]any{"op": op, "message": err.Error()})
}

// start tells the page the profile's account and, for an active device,
// starts receiving.
func (w *web) start() {
	a, err := w.c.Account()
	if errors.Is(err, client.ErrNotLoggedIn) || errors.Is(err, store.ErrNotFound) {
		post("account", map[string]any{"user": "", "device": "", "active": false})
		return
	}
	if err != nil {
		fail("open", err)
		return
	}
	post("account", map[string]any{"user": a.User, "device": a.DeviceID, "active": a.Active})
	if a.Active {
		w.history(a.User)
		go w.receive()
	}
}

func str(v js.Value, k string) string {
	if f := v.Get(k); f.Type() == js.TypeString {
		return f.String()
	}
	return ""
}

func (w *web) handle(msg js.Value) {
	if msg.Type() != js.TypeObject {
		return
	}
	op := str(msg, "op")
	w.mu.Lock()
	out := w.loggedOut
	w.mu.Unlock()
	if out {
		fail(op, errors.New("logged out: reload the page"))
		return
	}
	if w.c == nil {
		fail(op, errors.New("the profile could not be opened"))
		return
	}
	switch op {
	case "login":
		w.login(str(msg, "user"), str(msg, "password"), str(msg, "device_name"))
	case "send":
		w.send(str(msg, "to"), str(msg, "text"))
	case "logout":
		w.logout()
	case "typing":
		w.typing(str(msg, "to"), msg.Get("typing").Truthy())
	case "devices":
		w.devices()
	case "revoke":
		w.revoke(str(msg, "device"))
	case "read":
		w.markRead(str(msg, "conversation"), str(msg, "id"))
	case "presence":
		w.presence(strs(msg, "users"))
	case "send_file":
		w.sendFile(str(msg, "to"), str(msg, "name"), str(msg, "type"), msg.Get("data"), str(msg, "ref"))
	case "fetch":
		w.fetch(str(msg, "id"))
	case "group_create":
		w.groupCreate(str(msg, "name"), strs(msg, "members"))
	case "group_add":
		w.groupMembers(op, str(msg, "conversation"), strs(msg, "users"), true)
	case "group_remove":
		w.groupMembers(op, str(msg, "conversation"), strs(msg, "users"), false)
	case "group_info":
		w.groupInfo(str(msg, "conversation"))
	default:
		fail(op, fmt.Errorf("unknown operation %q", op))
	}
}

func (w *web) login(user, password, name string) {
	if user == "" || password == "" {
		fail("login", errors.New("user and password are required"))
		return
	}
	if name == "" {
		name = "browser"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, err := w.c.Login(ctx, client.LoginParams{User: user, Password: password, Server: w.host, DeviceName: name})
	cancel()
	if res.RecoveryKey != "" {
		post("recovery_key", map[string]any{"key": res.RecoveryKey})
	}
	if err != nil {
		fail("login", err)
		return
	}
	if res.LinkCode != "" {
		fp, _ := w.c.Fingerprint()
		svg, err := qrSVG(linkQRText(res.User, res.LinkCode))
		if err != nil {
			w.log.Warn("link QR code", "err", err)
		}
		post("link_code", map[string]any{"user": res.User, "device": res.DeviceID, "code": res.LinkCode, "fingerprint": fp, "qr_svg": svg})
		// Waits as `hearth chat login` does, until another device approves.
		if err := w.c.WaitApproval(context.Background(), time.Second); err != nil {
			fail("login", fmt.Errorf("waiting for approval: %w", err))
			return
		}
	}
	post("active", map[string]any{"user": res.User, "device": res.DeviceID})
	go w.receive()
}

// logout ends the session and deletes the profile from the browser. The
// device stays on the user's signed list (a device cannot revoke itself)
// until another device revokes it; the page says so.
func (w *web) logout() {
	a, _ := w.c.Account()
	w.mu.Lock()
	w.loggedOut = true
	w.mu.Unlock()
	w.c.Close()
	if err := w.c.Store().Wipe(); err != nil {
		fail("logout", err)
		return
	}
	post("logged_out", map[string]any{"user": a.User, "device": a.DeviceID})
}

// signal passes a typing push to the page, with the conversation as the
// page lists it. It must not block the session: the store is read on a
// goroutine of its own.
func (w *web) signal(s client.Signal) {
	switch s.Event {
	case "presence":
		postPresence(s.User, s.State, s.LastActiveMs)
		return
	case "receipt":
		go w.receipt(s)
		return
	case "typing":
	default:
		return
	}
	go func() {
		peer := s.User
		w.c.Store().View(func(tx *store.Tx) error {
			if _, err := convstate.Get(tx, s.Conversation); err == nil {
				peer = peerOf(tx, s.Conversation)
			}
			return nil
		})
		post("typing", map[string]any{"peer": peer, "user": s.User, "typing": s.Typing})
	}()
}

// typing tells the conversation with to that this user types (or stopped).
// Lossy by design: a failure is not shown.
func (w *web) typing(to string, typing bool) {
	if to == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Typing(ctx, to, typing); err != nil {
		w.log.Debug("typing not sent", "err", err)
	}
}

// callTimeout bounds one request to the server made for the page.
const callTimeout = 30 * time.Second

// devices passes the page the user's devices.
func (w *web) devices() {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ds, err := w.c.Devices(ctx)
	if err != nil {
		fail("devices", err)
		return
	}
	list := make([]any, 0, len(ds))
	for _, d := range ds {
		list = append(list, map[string]any{"id": d.ID, "name": d.Name, "status": d.Status, "listed": d.Listed, "this": d.This,
			"created_ms": float64(d.Created.UnixMilli()), "last_seen_ms": float64(d.LastSeen.UnixMilli())})
	}
	post("devices", map[string]any{"devices": list})
}

// revoke takes another device of the user off the signed list and out of
// its conversations, then lists the devices again.
func (w *web) revoke(id string) {
	if id == "" {
		fail("revoke", errors.New("no device given"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := w.c.Revoke(ctx, id); err != nil {
		fail("revoke", err)
		return
	}
	post("revoked", map[string]any{"device": id})
	w.devices()
}

// sendTimeout bounds one send; the text stays queued after it (a later
// send or the receive loop's flush sends it, exactly once).
const sendTimeout = 30 * time.Second

func (w *web) send(to, text string) {
	id, err := w.c.Queue(to, text)
	if err != nil {
		fail("send", fmt.Errorf("not sent to %s: %w", to, err))
		return
	}
	post("message", map[string]any{"id": id, "conversation": "", "peer": to, "from": "", "text": text,
		"sent_ms": float64(time.Now().UnixMilli()), "outgoing": true})
	w.flush("send", to, id)
}

// flush sends the queued message id and tells the page it is sent, with
// its receipt state.
func (w *web) flush(op, to, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	if err := w.c.Flush(ctx, id); err != nil {
		fail(op, fmt.Errorf("message to %s not sent yet: %w", to, err))
		return
	}
	post("sent", map[string]any{"id": id, "to": to})
}

// historyLimit is how many messages per conversation the page gets at start.
const historyLimit = 200

// history passes the page the stored messages of every conversation, oldest
// first: what this browser sent and received before the page was reloaded.
func (w *web) history(self string) {
	var convs []string
	w.c.Store().View(func(tx *store.Tx) error { convs = tx.HistoryConversations(); return nil })
	unread := map[string]int{} // by the page's list entry (peer)
	for _, conv := range convs {
		// Client.History fills in the receipt state of this user's messages.
		msgs, err := w.c.History(conv, historyLimit)
		if err != nil {
			fail("history", err)
			return
		}
		var peer string
		w.c.Store().View(func(tx *store.Tx) error { peer = peerOf(tx, conv); return nil })
		for _, m := range msgs {
			if m.Conversation != conv {
				continue // another conversation with the same user: listed on its own
			}
			f := w.messageFields(m, peer, m.From == self)
			f["history"] = true
			post("message", f)
		}
		if n, err := w.c.Unread(conv); err == nil {
			unread[peer] += n
		}
	}
	for peer, n := range unread {
		post("unread", map[string]any{"peer": peer, "count": n})
	}
	w.groups()
}

// peerOf is what the page lists a conversation as: the other user of a
// 1:1, else the conversation id.
func peerOf(tx *store.Tx, conv string) string {
	if cv, err := convstate.Get(tx, conv); err == nil && !cv.Group && len(cv.Peers) == 1 {
		return cv.Peers[0]
	}
	return conv
}

// postMessage passes the page one message (or group event) of history or
// the inbox; see messageFields.
func (w *web) postMessage(m store.Message, peer string, outgoing bool) {
	post("message", w.messageFields(m, peer, outgoing))
}

// receive passes every received message to the page, reconnecting after
// an error, until the device is refused for good.
func (w *web) receive() {
	w.mu.Lock()
	if w.receiving {
		w.mu.Unlock()
		return
	}
	w.receiving = true
	w.mu.Unlock()
	for {
		err := w.c.Receive(context.Background(), 0, func(m store.Message) error {
			if m.Event == "undecryptable" || m.Event == "commit_refused" {
				w.log.Warn("conversation event", "conversation", m.Conversation, "event", m.Event, "reason", m.Reason)
			}
			peer := m.From
			w.c.Store().View(func(tx *store.Tx) error {
				if _, err := convstate.Get(tx, m.Conversation); err == nil {
					peer = peerOf(tx, m.Conversation)
				}
				return nil
			})
			w.postMessage(m, peer, m.From == w.self())
			// Shown is read when the page has it on screen: the page says
			// so with {op: "read"} (as `recv --mark-read` for a terminal).
			return nil
		})
		w.mu.Lock()
		out := w.loggedOut
		w.mu.Unlock()
		if out {
			return
		}
		if errors.Is(err, client.ErrSessionEnded) {
			fail("receive", err)
			return
		}
		if err != nil {
			fail("receive", err)
		}
		time.Sleep(2 * time.Second)
	}
}
