package delivery

import (
	"log/slog"
	"time"

	"hearth/storage"
)

// Config tunes delivery.
type Config struct {
	// Window is how many pushed entries may wait for an Ack.
	Window int
	// Now is the clock of the push latencies (default time.Now).
	Now func() time.Time
	// PushLatency, when set, is told each Delivery written: handed (the
	// entry was handed at its commit) with the time since the hand-off,
	// else (read back from the mailbox) with the time since the entry's
	// CreatedMs. It must be quick: it runs on the push path.
	PushLatency func(handed bool, d time.Duration)
}

// Engine pushes mailboxes to sessions and tells them of new entries.
type Engine struct {
	db     *storage.DB
	router Router
	log    *slog.Logger
	window int
	now    func() time.Time
	pushed func(handed bool, d time.Duration)
}

// New returns an Engine reading mailboxes from db and woken by router.
func New(cfg Config, db *storage.DB, router Router, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Engine{db: db, router: router, log: log, window: max(cfg.Window, 1), now: cfg.Now, pushed: cfg.PushLatency}
}

// Router is the router the engine subscribes pushers to.
func (e *Engine) Router() Router { return e.router }

// Notify tells the router about new mailbox heads.
func (e *Engine) Notify(heads []storage.Head) {
	for _, h := range heads {
		e.router.Notify(h.DeviceID, h.Seq)
	}
}

// HandCommitted gives the pushers of the recipients the entries a
// committed Send wrote: one Entry for the message l and one for its
// welcome (heads from welcomeFrom on), shared by all their devices.
// Routers that do not carry entries are only notified of the new heads.
// Call it only after the commit: nothing is pushed that is not durable.
func (e *Engine) HandCommitted(heads []storage.Head, welcomeFrom int, l *storage.LogEntry) {
	en, ok := e.router.(EntryNotifier)
	if !ok || l == nil {
		e.Notify(heads)
		return
	}
	msg := &storage.Entry{ConvID: l.ConvID, ConvSeq: l.Seq, Sender: l.Sender, MessageID: l.MessageID, Kind: l.Kind,
		Epoch: l.Epoch, Payload: l.Payload, CreatedMs: l.CreatedMs}
	var welcome *storage.Entry
	for i, h := range heads {
		m := msg
		if i >= welcomeFrom {
			if welcome == nil {
				w := *msg
				w.Welcome, w.Payload, w.GroupInfo = true, l.Welcome, l.GroupInfo
				welcome = &w
			}
			m = welcome
		}
		en.NotifyEntry(h.DeviceID, h.Seq, m)
	}
}
