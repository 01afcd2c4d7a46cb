//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall/js"
	"time"

	"hearth/client"
	"hearth/client/store"
)

// The page's conversation features beyond text: receipts and read marks,
// presence, files, groups (see doc.go for the messages).

// self is this device's user ("" before login).
func (w *web) self() string {
	a, err := w.c.Account()
	if err != nil {
		return ""
	}
	return a.User
}

// strs reads a field holding an array of strings.
func strs(v js.Value, k string) []string {
	f := v.Get(k)
	if f.Type() != js.TypeObject || !f.InstanceOf(js.Global().Get("Array")) {
		return nil
	}
	var out []string
	for i := range f.Length() {
		if e := f.Index(i); e.Type() == js.TypeString {
			out = append(out, e.String())
		}
	}
	return out
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// messageFields is what the page gets of a message: the conversation it
// lists it under (peer) and that conversation's title (a group's name),
// the sender's time, the receipt state of this user's messages (status
// "sent", "delivered" or "read" as `chat history` shows them with ✓, ✓✓
// and ✓✓ read), the file a media message refers to (without its key), and
// for a group event its kind and the user it is about.
func (w *web) messageFields(m store.Message, peer string, outgoing bool) map[string]any {
	f := map[string]any{"id": m.ID, "conversation": m.Conversation, "peer": peer, "from": m.From,
		"text": m.Text, "sent_ms": float64(m.SentAt.UnixMilli()), "outgoing": outgoing, "sent": outgoing}
	if name, ok := w.c.GroupName(m.Conversation); ok {
		f["title"] = name
	}
	if m.Status != "" {
		f["status"] = m.Status
		f["recipients"] = anys(m.Recipients)
		f["delivered_to"] = anys(m.DeliveredTo)
		f["read_by"] = anys(m.ReadBy)
	}
	if m.Media != nil {
		f["media"] = map[string]any{"name": m.Media.Name, "type": m.Media.Type, "size": float64(m.Media.Size), "sha256": m.Media.PlainSHA256}
	}
	if m.Event != "" {
		f["event"], f["user"] = m.Event, m.User
	}
	return f
}

// receipt passes the page the new receipt state of the messages a
// receipt event covers (as history would show them now).
func (w *web) receipt(s client.Signal) {
	post("receipt", map[string]any{"conversation": s.Conversation, "user": s.User, "kind": s.Kind, "ids": anys(s.MessageIDs)})
	w.statuses(s.Conversation, s.MessageIDs)
}

// statuses posts {ev: "status"} for the messages ids of conv.
func (w *web) statuses(conv string, ids []string) {
	msgs, err := w.c.History(conv, historyLimit)
	if err != nil {
		w.log.Warn("receipt state", "err", err)
		return
	}
	var list []any
	for _, m := range msgs {
		if m.Status != "" && (ids == nil || slices.Contains(ids, m.ID)) {
			list = append(list, map[string]any{"id": m.ID, "status": m.Status, "recipients": anys(m.Recipients),
				"delivered_to": anys(m.DeliveredTo), "read_by": anys(m.ReadBy)})
		}
	}
	if len(list) > 0 {
		post("status", map[string]any{"messages": list})
	}
}

// markRead marks conv read up to message id (the page shows it) and sends
// the read receipt, as `recv --mark-read` does for what it prints.
func (w *web) markRead(conv, id string) {
	if conv == "" {
		return
	}
	mark, err := w.c.MarkRead(conv, id)
	if err != nil {
		fail("read", err)
		return
	}
	if mark.ReceiptID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	if err := w.c.Flush(ctx, mark.ReceiptID); err != nil {
		w.log.Info("read receipt stays queued", "err", err) // the next send or receive sends it
	}
}

func postPresence(user, state string, lastActiveMs int64) {
	post("presence", map[string]any{"user": user, "state": state, "last_active_ms": float64(lastActiveMs)})
}

// presence asks the presence of users (the page's open conversation);
// later changes come as pushes (signal).
func (w *web) presence(users []string) {
	if len(users) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ps, err := w.c.GetPresence(ctx, users)
	if err != nil {
		w.log.Debug("presence", "err", err) // shown as unknown
		return
	}
	for _, p := range ps {
		var ms int64
		if !p.LastSeen.IsZero() {
			ms = p.LastSeen.UnixMilli()
		}
		postPresence(p.User, p.State, ms)
	}
}

// maxPageFile bounds a file the page sends or fetches: the browser holds
// it whole in memory (the page's copy and the worker's).
const maxPageFile = 64 << 20

// fileTimeout bounds one file's upload or download for the page.
const fileTimeout = 5 * time.Minute

// sendFile encrypts and uploads a file the page read (data: a
// Uint8Array) and sends the message that refers to it. The message event
// carries the page's ref back, so the page shows its own copy.
func (w *web) sendFile(to, name, typ string, data js.Value, ref0 string) {
	if data.Type() != js.TypeObject || !data.InstanceOf(js.Global().Get("Uint8Array")) {
		fail("send_file", errors.New("no file data"))
		return
	}
	if n := data.Length(); n > maxPageFile {
		fail("send_file", fmt.Errorf("%s is %d bytes: the web client sends files up to %d MiB", name, n, maxPageFile>>20))
		return
	}
	b := make([]byte, data.Length())
	js.CopyBytesToGo(b, data)
	ctx, cancel := context.WithTimeout(context.Background(), fileTimeout)
	defer cancel()
	id, ref, err := w.c.QueueBytes(ctx, to, name, typ, b)
	if err != nil {
		fail("send_file", fmt.Errorf("%s not sent to %s: %w", name, to, err))
		return
	}
	f := w.messageFields(store.Message{ID: id, SentAt: time.Now(), Media: &ref}, to, true)
	f["sent"], f["ref"] = false, ref0 // not sent until flush says so; ref: the page's own copy
	post("message", f)
	w.flush("send_file", to, id)
}

// fetch downloads and decrypts the file of message id and passes it to
// the page ({ev: "file", id, name, type, data}), which shows or saves it.
func (w *web) fetch(id string) {
	ref, err := w.c.MediaOf(id)
	if err != nil {
		fail("fetch", err)
		return
	}
	if ref.Size > maxPageFile {
		fail("fetch", fmt.Errorf("%s is %d bytes: the web client fetches files up to %d MiB", ref.Name, ref.Size, maxPageFile>>20))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fileTimeout)
	defer cancel()
	var buf bytes.Buffer
	if err := w.c.FetchMedia(ctx, ref, &buf); err != nil {
		fail("fetch", fmt.Errorf("%s: %w", ref.Name, err))
		return
	}
	data := js.Global().Get("Uint8Array").New(buf.Len())
	js.CopyBytesToJS(data, buf.Bytes())
	post("file", map[string]any{"id": id, "name": ref.Name, "type": ref.Type, "data": data})
}

// groupCreate creates a group with members and passes the page its info.
func (w *web) groupCreate(name string, members []string) {
	if name == "" {
		fail("group_create", errors.New("a group needs a name"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	id, err := w.c.Groups().Create(ctx, name, members)
	if err != nil {
		if id != "" {
			err = fmt.Errorf("group %s created, but: %w", id, err)
		}
		fail("group_create", err)
		if id == "" {
			return
		}
	}
	w.groupInfo(id)
}

// groupMembers adds (or removes) users to (from) group conv.
func (w *web) groupMembers(op, conv string, users []string, add bool) {
	if conv == "" || len(users) == 0 {
		fail(op, errors.New("a group and at least one user are required"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var err error
	if add {
		err = w.c.Groups().AddMembers(ctx, conv, users)
	} else {
		err = w.c.Groups().RemoveMembers(ctx, conv, users)
	}
	if err != nil {
		fail(op, err)
	}
	w.groupInfo(conv)
}

// groupInfo passes the page a group's name, members and admins.
func (w *web) groupInfo(conv string) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	gi, err := w.c.Groups().Info(ctx, conv)
	if err != nil {
		fail("group_info", err)
		return
	}
	post("group", map[string]any{"id": gi.ID, "name": gi.Name, "members": anys(gi.Members), "admins": anys(gi.Admins), "admin": gi.Admin})
}

// groups lists the groups this device is in for the page, those without
// messages too (a group just created, or joined).
func (w *web) groups() {
	gs, err := w.c.GroupList()
	if err != nil {
		fail("history", err)
		return
	}
	for _, g := range gs {
		post("conversation", map[string]any{"peer": g.ID, "title": g.Name})
	}
}
