package loadgen

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"hearth/homeserver/wire"
)

// Group set-up for --wire. The members other than the creator never
// decrypt in wire mode, so they do not pay for a client beyond their
// login: each logs in with a real client (which publishes its
// KeyPackages), closes it at once and holds a bare wire session from then
// on. The creator's real client creates the group with all of them (the
// client's commits of up to 256 adds, each verified by the hub, one
// Welcome per member, the state message) and seals the one message the
// senders replay. The server gets exactly the roster, commits, Welcomes
// and messages of a real group's creation. What the members skip is
// their own work on the Welcome and the later commits (parsing and
// verifying a tree of up to 1,024 leaves each, on this one machine) and
// the reads a joining client makes for it (its members' signed device
// lists, in batches of 256 users): set-up load on the server, not part
// of a message's fan-out, which is what wire mode measures.

// wireSetup is what a wire member's handler does while its group is set
// up: Welcome, commits and the creator's messages are acknowledged
// without processing (as a device that has not opened them yet would),
// counted by kind, and application messages are kept by id until the one
// the run waits for (expect) arrives. From then on deliveries go to the
// handler's recorder as usual.
type wireSetup struct {
	done     bool
	welcomes int
	commits  int
	apps     int
	other    int
	seen     map[string]captured // application messages so far, by message id
	waitID   string
	waitCh   chan captured
}

func newWireSetup() *wireSetup { return &wireSetup{seen: map[string]captured{}} }

// setupDeliveryLocked takes one delivery during the set-up. Called with
// h.mu held.
func (h *wireHandler) setupDeliveryLocked(d *wire.Delivery) {
	st := h.setup
	switch d.GetKind() {
	case wire.MessageKind_MESSAGE_KIND_WELCOME:
		st.welcomes++
		return
	case wire.MessageKind_MESSAGE_KIND_COMMIT:
		st.commits++
		return
	case wire.MessageKind_MESSAGE_KIND_APPLICATION:
		st.apps++
	default:
		st.other++
		return
	}
	c := captured{conv: d.GetConversationId(), epoch: d.GetEpoch(), payload: d.GetPayload()}
	if st.waitCh != nil && d.GetMessageId() == st.waitID {
		st.waitCh <- c
		h.setup = nil
		h.joined = st
		st.done, st.seen = true, nil
		return
	}
	st.seen[d.GetMessageId()] = c
}

// expect returns the channel that gets application message id once this
// member has it; the set-up ends for this handler with it.
func (h *wireHandler) expect(id string) <-chan captured {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan captured, 1)
	st := h.setup
	if st == nil {
		close(ch) // not in set-up: nothing to wait for
		return ch
	}
	if c, ok := st.seen[id]; ok {
		ch <- c
		h.setup, h.joined = nil, st
		st.done, st.seen = true, nil
		return ch
	}
	st.waitID, st.waitCh = id, ch
	return ch
}

// joinedCounts returns what the handler acknowledged during its set-up
// (zero values while it is still in it).
func (h *wireHandler) joinedCounts() (welcomes, commits, apps, other int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.joined; st != nil {
		return st.welcomes, st.commits, st.apps, st.other
	}
	return 0, 0, 0, 0
}

// groupWire sets up Group's group for --wire (see the top of this file)
// and returns its devices, their wire sessions (devs[i] on ws[i]), the
// conversation and the captured message every sender replays.
func (f *Fleet) groupWire(ctx context.Context, p GroupParams, r *Report, recs []*recorder) (devs []*Device, ws []*wireDev, conv string, c captured, err error) {
	now := f.cfg.Now
	ws = make([]*wireDev, p.Size)
	defer func() {
		if err != nil {
			stopWire(ws)
		}
	}()
	t0 := now()
	devs, err = f.addEach(ctx, p.Size, func(i int, d *Device) error {
		if i == 0 {
			return nil // the creator keeps its client
		}
		w, err := f.prepareWire(d, recs[i])
		if err != nil {
			return err
		}
		w.h.setup = newWireSetup()
		ws[i] = w
		return f.startWire(ctx, w, true)
	})
	if err != nil {
		return nil, nil, "", captured{}, err
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d members logged in (KeyPackages published), %d of them then on bare wire sessions, in %.2fs",
		p.Size, p.Size-1, now().Sub(t0).Seconds()))

	// The creator's client stays online while it creates the group, as a
	// real one would; what it receives is not measured.
	creator := devs[0]
	rctx, stopRecv := context.WithCancel(ctx)
	recvDone := make(chan struct{})
	var recvErrs atomic.Int64
	go func() {
		defer close(recvDone)
		f.receiveLoop(rctx, creator, newRecorder(f.run, now), &recvErrs, pairsQuiet)
	}()
	defer func() { stopRecv(); <-recvDone }()

	members := make([]string, 0, len(devs)-1)
	for _, d := range devs[1:] {
		members = append(members, d.Address)
	}
	t1 := now()
	conv, err = creator.C.Groups().Create(ctx, "bench "+f.run, members)
	if err != nil {
		return nil, nil, "", captured{}, fmt.Errorf("loadgen: create a group of %d: %w", p.Size, err)
	}
	created := now().Sub(t1)
	fmt.Fprintf(f.cfg.Progress, "group: %d members added in %.2fs\n", len(members), created.Seconds())

	// The message the senders replay; every member having it shows that
	// every member is in the hub's roster and online.
	t2 := now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	id, err := creator.C.Queue(conv, padText(fmt.Sprintf("%s %s %s ", tagCapture, f.run, creator.Name), p.MsgSize))
	if err == nil {
		err = creator.C.Flush(cctx, id)
	}
	if err != nil {
		return nil, nil, "", captured{}, fmt.Errorf("loadgen: capture message to the group: %w", err)
	}
	for i, w := range ws[1:] {
		select {
		case got, ok := <-w.h.expect(id):
			if !ok || len(got.payload) == 0 {
				return nil, nil, "", captured{}, fmt.Errorf("loadgen: member %d got the capture message without a payload", i+1)
			}
			if i == 0 {
				c = got
			}
		case <-cctx.Done():
			return nil, nil, "", captured{}, fmt.Errorf("loadgen: capture message not received by member %d within 10 minutes", i+1)
		}
	}
	commits, err := checkJoined(ws[1:])
	if err != nil {
		return nil, nil, "", captured{}, err
	}
	stopRecv()
	<-recvDone
	if ws[0], err = f.goWire(ctx, creator, recs[0]); err != nil {
		return nil, nil, "", captured{}, err
	}
	r.Notes = append(r.Notes, fmt.Sprintf("group of %d created by its creator's client in %.2fs (every add committed, Welcomes out); "+
		"the first message reached all %d other members %.2fs later; they acknowledged one Welcome each and %d later commits in all, unprocessed",
		p.Size, created.Seconds(), len(members), now().Sub(t2).Seconds(), commits))
	return devs, ws, conv, c, nil
}

// checkJoined checks that every member acknowledged exactly one Welcome
// during the set-up (the server sent each its own) and returns the
// commits they acknowledged in all (each member gets the commits after
// the one that added it).
func checkJoined(ws []*wireDev) (commits int, err error) {
	for i, w := range ws {
		n, c, _, _ := w.h.joinedCounts()
		if n != 1 {
			return 0, fmt.Errorf("loadgen: member %d got %d Welcomes during the set-up, want 1", i+1, n)
		}
		commits += c
	}
	return commits, nil
}
