package delivery

import (
	"slices"
	"time"

	"hearth/storage"
)

// Handed entries: after the transaction that accepted a Send commits,
// Engine.HandCommitted hands the new mailbox entries to the recipients' pushers through
// the router (EntryNotifier), so that a pusher that is exactly caught up
// pushes them without reading them back from the database. They are only
// hints: the entries are durable in the mailbox. A pusher that cannot
// continue its cursor from them (a gap in seq, entries it was only
// notified of, hints dropped over the bound, a fresh Sync) reads the
// database.

const (
	MaxHandoffs     = 64      // hints a pusher keeps at most
	MaxHandoffBytes = 1 << 20 // payload bytes of the hints it keeps at most
)

// handoff is one handed entry: the device's seq and the message, shared by
// every device it went to (e.Seq is not used).
type handoff struct {
	seq uint64
	e   *storage.Entry
	at  time.Time // when it was handed (Config.PushLatency)
}

// handoffs is a pusher's bounded set of hints in seq order (guarded by
// pusher.mu).
type handoffs struct {
	list  []handoff
	bytes int
}

func handoffSize(e *storage.Entry) int { return len(e.Payload) + len(e.GroupInfo) }

// add keeps a hint; false if it was dropped because the set is full.
func (h *handoffs) add(seq uint64, e *storage.Entry, at time.Time) bool {
	size := handoffSize(e)
	if len(h.list) >= MaxHandoffs || h.bytes+size > MaxHandoffBytes {
		return false
	}
	i, found := slices.BinarySearchFunc(h.list, seq, func(x handoff, s uint64) int {
		switch {
		case x.seq < s:
			return -1
		case x.seq > s:
			return 1
		}
		return 0
	})
	if found {
		return true // the same entry twice: once is enough
	}
	h.list = slices.Insert(h.list, i, handoff{seq: seq, e: e, at: at})
	h.bytes += size
	return true
}

// dropThrough forgets the hints with seq <= upTo (pushed already).
func (h *handoffs) dropThrough(upTo uint64) {
	n := 0
	for n < len(h.list) && h.list[n].seq <= upTo {
		h.bytes -= handoffSize(h.list[n].e)
		n++
	}
	h.shift(n)
}

// take removes and returns the hints that continue seq next without a
// gap, at most n.
func (h *handoffs) take(next uint64, n int) []handoff {
	k := 0
	for k < len(h.list) && k < n && h.list[k].seq == next+uint64(k) {
		h.bytes -= handoffSize(h.list[k].e)
		k++
	}
	if k == 0 {
		return nil
	}
	out := slices.Clone(h.list[:k])
	h.shift(k)
	return out
}

func (h *handoffs) shift(n int) {
	if n == 0 {
		return
	}
	clear(h.list[:n]) // let the payloads go
	h.list = h.list[n:]
	if len(h.list) == 0 {
		h.list = nil // an idle pusher holds no backing array
	}
}

// offer is the pusher's router callback: e is a just-committed entry at
// seq, or nil when the router only says that something new is stored.
func (p *Pusher) offer(seq uint64, e *storage.Entry) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	if e == nil || !p.hints.add(seq, e, p.handedAt()) {
		p.stale = true // read the database on the next pass
	}
	p.mu.Unlock()
	p.kick()
}

// handedAt is the hand-off time of an offered entry; zero when no one
// measures push latency.
func (p *Pusher) handedAt() time.Time {
	if p.e.pushed == nil {
		return time.Time{}
	}
	return p.e.now()
}

// wake is offer without an entry: something new is stored.
func (p *Pusher) wake() { p.offer(0, nil) }

// next returns the hints that continue the cursor (at most n) or, when
// there are none, whether the database must be read: entries were stored
// that were not handed (stale), or the first hint leaves a gap after the
// cursor (gapOnly: the entries before it committed no later than it did,
// and a read finds them).
func (p *Pusher) next(n int) (hs []handoff, read, gapOnly bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hints.dropThrough(p.cursor)
	if hs = p.hints.take(p.cursor+1, n); len(hs) > 0 {
		return hs, false, false
	}
	if !p.stale && len(p.hints.list) == 0 {
		return nil, false, false // caught up
	}
	gapOnly = !p.stale
	p.stale = false // a notify during the read sets it again
	return nil, true, gapOnly
}

// dropHints forgets every hint: a read that began after they were handed
// found none of them, so they are not (or no longer) in the mailbox.
func (p *Pusher) dropHints() {
	p.mu.Lock()
	p.hints.dropThrough(^uint64(0))
	p.mu.Unlock()
}

// moreStored says a read filled its batch: more entries may be stored.
func (p *Pusher) moreStored() {
	p.mu.Lock()
	p.stale = true
	p.mu.Unlock()
}
