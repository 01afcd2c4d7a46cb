package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Wire mode (--wire): the conversations are set up with real clients and
// real MLS, then every device's client is closed and a bare control
// session (client/session over the same transport, no MLS, no store)
// takes its place. Senders send a captured ciphertext of the run's size
// with a fresh message id each; receivers acknowledge deliveries without
// decrypting and match them by message id (wireID). The server cannot
// tell the difference: it never decrypts, and the kind, conversation,
// epoch and payload size are those of a real message.

// wireWindow is how many Sends one wire sender keeps in flight on its
// stream (pipelined; the hub keeps their order).
const wireWindow = 64

// tagCapture marks the one real (MLS) message per conversation whose
// ciphertext the wire senders replay.
const tagCapture = "hbc"

// captured is a real application message as the hub delivered it.
type captured struct {
	conv    string
	epoch   uint64
	payload []byte
}

// wireDev is one device speaking the wire protocol directly.
type wireDev struct {
	dev  *Device
	tok  *memTokens
	dial func(ctx context.Context) (io.ReadWriteCloser, error)
	h    *wireHandler
	sess *session.Session
}

// wireHandler is the DeliveryHandler of a wire device: it acknowledges
// every delivery, hands bench message ids to the recorder and captures
// the first message from an armed sender.
type wireHandler struct {
	rec *recorder

	mu        sync.Mutex
	processed uint64
	armed     map[string]chan captured // sender user address -> its capture
	setup     *wireSetup               // a group member joining without a client (groupwire.go); nil: none
	joined    *wireSetup               // the set-up once it ended (its counts)
}

var _ session.BatchHandler = (*wireHandler)(nil)

func newWireHandler(rec *recorder, processed uint64) *wireHandler {
	return &wireHandler{rec: rec, processed: processed, armed: map[string]chan captured{}}
}

// arm returns the channel that gets the next application message from
// user (user@domain) that is not a bench message.
func (h *wireHandler) arm(user string) <-chan captured {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan captured, 1)
	h.armed[user] = ch
	return ch
}

func (h *wireHandler) ProcessedSeq() (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.processed, nil
}

func (h *wireHandler) HandleDelivery(ctx context.Context, d *wire.Delivery) error {
	return h.HandleDeliveries(ctx, []*wire.Delivery{d})
}

func (h *wireHandler) HandleDeliveries(_ context.Context, ds []*wire.Delivery) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range ds {
		if d.GetSeq() <= h.processed {
			continue // re-pushed after a reconnect
		}
		h.processed = d.GetSeq()
		if h.setup != nil {
			h.setupDeliveryLocked(d)
			continue
		}
		if d.GetKind() == wire.MessageKind_MESSAGE_KIND_APPLICATION && h.rec.noteID(d.GetMessageId(), d.GetServerTimeMs()) {
			continue
		}
		user, _, _ := strings.Cut(d.GetSender(), "/")
		if ch, ok := h.armed[user]; ok && d.GetKind() == wire.MessageKind_MESSAGE_KIND_APPLICATION {
			delete(h.armed, user)
			ch <- captured{conv: d.GetConversationId(), epoch: d.GetEpoch(), payload: d.GetPayload()}
			continue
		}
		h.rec.noteForeign()
	}
	return nil
}

// memTokens holds a wire device's tokens in memory (taken from its
// profile when its client closed); Rotate refreshes them in place.
type memTokens struct {
	now func() time.Time

	mu      sync.Mutex
	access  string
	expires time.Time
	refresh string
}

var _ session.Tokens = (*memTokens)(nil)

func (t *memTokens) Tokens() (string, time.Time, string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.access, t.expires, t.refresh, nil
}

func (t *memTokens) Rotate(stale string, exchange func(string) (string, time.Time, string, error)) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access != stale && t.now().Add(30*time.Second).Before(t.expires) {
		return t.access, nil
	}
	acc, exp, refresh, err := exchange(t.refresh)
	if err != nil {
		return "", err
	}
	t.access, t.expires, t.refresh = acc, exp, refresh
	return acc, nil
}

// goWire closes d's client and starts a wire session in its place that
// resumes the mailbox after the client's last processed entry, and waits
// until it is connected.
func (f *Fleet) goWire(ctx context.Context, d *Device, rec *recorder) (*wireDev, error) {
	w, err := f.prepareWire(d, rec)
	if err != nil {
		return nil, err
	}
	return w, f.startWire(ctx, w, true)
}

// prepareWire takes d's tokens and mailbox position from its profile and
// closes its client (the device is offline until startWire).
func (f *Fleet) prepareWire(d *Device, rec *recorder) (*wireDev, error) {
	var acct store.Account
	var seq uint64
	err := d.C.Store().View(func(tx *store.Tx) (err error) {
		acct, err = tx.Account()
		seq = tx.MailboxSeq()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("loadgen: read the account of %s: %w", d.Address, err)
	}
	if err := f.CloseDevice(d); err != nil {
		return nil, fmt.Errorf("loadgen: close %s: %w", d.Address, err)
	}
	w := &wireDev{dev: d, h: newWireHandler(rec, seq),
		tok: &memTokens{now: f.cfg.Now, access: acct.AccessToken, expires: acct.AccessExpires, refresh: acct.RefreshToken}}
	w.dial = func(ctx context.Context) (io.ReadWriteCloser, error) {
		return f.cfg.Dial(ctx, acct.Server, acct.CAPath)
	}
	return w, nil
}

// startWire (re)starts w's session; with wait, it waits until the session
// is connected.
func (f *Fleet) startWire(ctx context.Context, w *wireDev, wait bool) error {
	w.sess = session.Start(context.WithoutCancel(ctx), session.Config{Dial: w.dial, Tokens: w.tok, Handler: w.h,
		Logger: f.cfg.Logger, Now: f.cfg.Now, MinBackoff: 50 * time.Millisecond, MaxBackoff: 3 * time.Second,
		Meter: &session.Meter{}, AckDelay: f.cfg.AckDelay})
	if !wait {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := w.sess.Live(lctx); err != nil {
		w.sess.Close()
		w.sess = nil
		return fmt.Errorf("loadgen: wire session of %s: %w", w.dev.Address, err)
	}
	return nil
}

// stop ends w's session (the device goes offline; its handler keeps the
// mailbox position for startWire).
func (w *wireDev) stop() {
	if w != nil && w.sess != nil {
		w.sess.Close()
		w.sess = nil
	}
}

func stopWire(ws []*wireDev) {
	for _, w := range ws {
		w.stop()
	}
}

// capture has from's (real) client send one message of size bytes to
// target (a user address or conversation id) and returns it as the armed
// receiver got it.
func (f *Fleet) capture(ctx context.Context, from *Device, target string, size int, got <-chan captured) (captured, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id, err := from.C.Queue(target, padText(fmt.Sprintf("%s %s %s ", tagCapture, f.run, from.Name), size))
	if err == nil {
		err = from.C.Flush(cctx, id)
	}
	if err != nil {
		return captured{}, fmt.Errorf("loadgen: capture message %s -> %s: %w", from.Address, target, err)
	}
	select {
	case c := <-got:
		if len(c.payload) == 0 {
			return c, errors.New("loadgen: captured message has no payload")
		}
		return c, nil
	case <-cctx.Done():
		return captured{}, fmt.Errorf("loadgen: capture message %s -> %s not delivered within 2 minutes", from.Address, target)
	}
}

// wirePairs switches every pair to the wire protocol: B goes wire, A's
// client sends the capture to B, A goes wire; both directions replay that
// ciphertext (one per conversation).
func (f *Fleet) wirePairs(ctx context.Context, pairs [][2]*Device, senders []*sender, rec *recorder, size int) ([]*wireDev, error) {
	out := make([]*wireDev, 2*len(pairs))
	err := f.each(ctx, len(pairs), func(k int) error {
		a, b := pairs[k][0], pairs[k][1]
		wb, err := f.goWire(ctx, b, rec)
		if err != nil {
			return err
		}
		out[2*k+1] = wb
		c, err := f.capture(ctx, a, b.Address, size, wb.h.arm(a.Address))
		if err != nil {
			return err
		}
		wa, err := f.goWire(ctx, a, rec)
		if err != nil {
			return err
		}
		out[2*k] = wa
		senders[2*k].w = newWireOut(wa, c)
		senders[2*k+1].w = newWireOut(wb, c)
		return nil
	})
	if err != nil {
		stopWire(out)
		return nil, err
	}
	return out, nil
}

// each runs fn(0..n-1), at most cfg.Parallel at a time, and returns the
// first error.
func (f *Fleet) each(ctx context.Context, n int, fn func(i int) error) error {
	sem := make(chan struct{}, f.cfg.Parallel)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// wireID is the message id of a wire-mode bench message: the receiver
// takes sender, sequence and due time from it (recorder.noteID).
func wireID(run string, sender int, seq uint64, t time.Time) string {
	return fmt.Sprintf("%s.%s.%d.%d.%d", tagMsg, run, sender, seq, t.UnixNano())
}

// padText pads h with 'x' to size bytes.
func padText(h string, size int) string {
	if pad := size - len(h); pad > 0 {
		return h + strings.Repeat("x", pad)
	}
	return h
}

// wireBacklog switches the receiver and the senders to the wire protocol:
// the receiver goes wire, each sender's client sends its capture (one
// conversation per sender), then each sender goes wire. The receiver's
// session is left running; the caller stops it.
func (f *Fleet) wireBacklog(ctx context.Context, recv *Device, senders []*sender, rec *recorder, size int) (*wireDev, []*wireDev, error) {
	wr, err := f.goWire(ctx, recv, rec)
	if err != nil {
		return nil, nil, err
	}
	got := make([]<-chan captured, len(senders))
	for i, s := range senders {
		got[i] = wr.h.arm(s.dev.Address)
	}
	ws := make([]*wireDev, len(senders))
	quiet := newRecorder(f.run, f.cfg.Now) // senders receive nothing measured
	err = f.each(ctx, len(senders), func(i int) error {
		s := senders[i]
		c, err := f.capture(ctx, s.dev, recv.Address, size, got[i])
		if err != nil {
			return err
		}
		if ws[i], err = f.goWire(ctx, s.dev, quiet); err != nil {
			return err
		}
		s.w = newWireOut(ws[i], c)
		return nil
	})
	if err != nil {
		wr.stop()
		stopWire(ws)
		return nil, nil, err
	}
	return wr, ws, nil
}
