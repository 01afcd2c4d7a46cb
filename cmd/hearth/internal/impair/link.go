package impair

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"
)

// fate is what the impairment decides for one packet arriving at now.
type fate struct {
	drop, blackout bool
	due            time.Time // when to send (the first copy)
	dup, reordered bool
	heldByBlackout bool // TCP: due was moved past a blackout
	lost           bool // TCP: due includes a retransmission timeout
}

// shaper makes the decisions of one direction. Its methods are called
// with mu held by the owner.
type shaper struct {
	mu       sync.Mutex
	cfg      Config
	start    time.Time
	rng      *rand.Rand
	lastDue  time.Time // keeps order under jitter
	nextFree time.Time // rate limit: when the link is free again
}

func newShaper(cfg Config, stream uint64, now time.Time) *shaper {
	return &shaper{cfg: cfg, start: now, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), stream))}
}

// set replaces the configuration and restarts the blackout phase and the generator.
func (s *shaper) set(cfg Config, stream uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.start, s.rng = cfg, now, rand.New(rand.NewPCG(uint64(cfg.Seed), stream))
}

// decide draws the fate of a packet of n bytes. Every packet draws the
// same four numbers, so decisions depend only on the seed and the order.
// With stream set (TCP) nothing is dropped or reordered: losses and
// blackouts become delay.
func (s *shaper) decide(now time.Time, n int, stream bool) fate {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg
	pLoss, pReorder, pDup, pJit := s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64()
	var f fate
	elapsed := now.Sub(s.start)
	if c.Blackout.down(elapsed) {
		if !stream {
			return fate{drop: true, blackout: true}
		}
		f.heldByBlackout = true
		now = s.start.Add(c.Blackout.upAt(elapsed))
	}
	if pLoss < c.Loss {
		if !stream {
			return fate{drop: true}
		}
		f.lost = true
		now = now.Add(tcpRTO + 3*c.Delay)
	}
	d := c.Delay
	if c.Jitter > 0 {
		d += time.Duration((pJit*2 - 1) * float64(c.Jitter))
		d = max(d, 0)
	}
	due := now.Add(d)
	if due.Before(s.lastDue) {
		due = s.lastDue
	}
	s.lastDue = due
	if c.RateBytesPerSec > 0 {
		if due.Before(s.nextFree) {
			due = s.nextFree
		}
		s.nextFree = due.Add(time.Duration(float64(n) / float64(c.RateBytesPerSec) * float64(time.Second)))
	}
	if !stream {
		f.reordered = pReorder < c.Reorder
		f.dup = pDup < c.Duplicate
		if f.reordered {
			due = due.Add(ReorderGap)
		}
	}
	f.due = due
	return f
}

// packet is a datagram waiting in a udpQueue.
type packet struct {
	due  time.Time
	seq  uint64
	data []byte
	send func([]byte) error
}

type packetHeap []*packet

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(*packet)) }
func (h *packetHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

// udpQueue is one direction of a UDP relay: shaping, then a bounded queue
// of datagrams sent by one goroutine when due.
type udpQueue struct {
	shaper *shaper
	stream uint64
	count  *dirCounters
	max    int
	wake   chan struct{}

	mu  sync.Mutex
	q   packetHeap
	seq uint64
}

func newUDPQueue(cfg Config, stream uint64, count *dirCounters) *udpQueue {
	return &udpQueue{shaper: newShaper(cfg, stream, time.Now()), stream: stream, count: count,
		max: queueBound(cfg), wake: make(chan struct{}, 1)}
}

func queueBound(cfg Config) int {
	if cfg.MaxQueue > 0 {
		return cfg.MaxQueue
	}
	return DefaultMaxQueue
}

func (u *udpQueue) set(cfg Config) {
	u.shaper.set(cfg, u.stream, time.Now())
	u.mu.Lock()
	u.max = queueBound(cfg)
	u.mu.Unlock()
}

// add takes a datagram (copying it) that send will deliver.
func (u *udpQueue) add(data []byte, send func([]byte) error) {
	u.count.in(len(data))
	f := u.shaper.decide(time.Now(), len(data), false)
	switch {
	case f.blackout:
		u.count.blackholed.Add(1)
		return
	case f.drop:
		u.count.dropped.Add(1)
		return
	}
	if f.reordered {
		u.count.reordered.Add(1)
	}
	b := append([]byte(nil), data...)
	copies := 1
	if f.dup {
		copies = 2
		u.count.duplicated.Add(1)
	}
	u.mu.Lock()
	for range copies {
		if len(u.q) >= u.max {
			u.count.overflow.Add(1)
			continue
		}
		u.seq++
		heap.Push(&u.q, &packet{due: f.due, seq: u.seq, data: b, send: send})
	}
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run sends datagrams when due until done is closed.
func (u *udpQueue) run(done <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		u.mu.Lock()
		var next *packet
		wait := time.Hour
		if len(u.q) > 0 {
			if d := time.Until(u.q[0].due); d <= 0 {
				next = heap.Pop(&u.q).(*packet)
			} else {
				wait = d
			}
		}
		u.mu.Unlock()
		if next != nil {
			if err := next.send(next.data); err != nil {
				u.count.overflow.Add(1)
			} else {
				u.count.out(len(next.data))
			}
			continue
		}
		t.Reset(wait)
		select {
		case <-done:
			return
		case <-u.wake:
		case <-t.C:
		}
	}
}
