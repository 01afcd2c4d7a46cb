package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/homeserver/wire"
)

// ErrDisconnected is returned by requests whose connection ended before the
// response arrived. The request may or may not have reached the server.
var ErrDisconnected = errors.New("client: disconnected")

// Conn multiplexes requests over one control stream: each request gets a
// fresh frame id and waits for the response echoing it, so requests run
// concurrently. Pushes (id 0) are queued in arrival order for one consumer.
//
// Writes honour their context: one that waits for another write to finish
// gives up when its context ends; one whose context ends while its frame
// is being written (the stream blocked by flow control) fails the
// connection, since the frame may be half written (Conn.write).
type Conn struct {
	rw       io.ReadWriteCloser
	fw       *wire.FrameWriter
	maxFrame int // the largest frame written (wire.DefaultMaxFrame unless configured)

	// wslot is held by the one frame write in progress: a channel, so
	// that waiting for it can end with a context.
	wslot chan struct{}
	// writing is the op of the write in progress (set by its holder of
	// wslot, read by abandon); abandon is abandonWrite, bound once.
	writing string
	abandon func()

	meter *Meter
	trips *ConnTrips

	// acks is the session's owed Ack (ack.go), written in front of the
	// next frame once the session made this its connection; nil for a
	// connection without a session (Login).
	acks *acker

	// early0: a 0-RTT connection (handshake 0) whose attempt has not
	// settled by the first answer; readLoop then reads its final facts.
	early0 bool
	// settled: a 0-RTT connection's attempt settled (handshake completed,
	// or moved to the WebSocket); nil for other connections.
	settled <-chan struct{}

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]pendingReq
	level   int   // depth of the deepest response received (meter.go)
	extra   int   // a settled 0-RTT connection's handshake: added to depth-1 requests
	err     error // why the connection ended, once it has
	pushes  []*wire.ServerFrame
	pushed  chan struct{} // signalled (non-blocking) when pushes grows or the conn ends
	done    chan struct{}
}

// pendingReq is a request waiting for its response.
type pendingReq struct {
	ch    chan *wire.ServerFrame
	op    string
	depth int // round trips its response completes (meter.go)
}

// NewConn starts reading frames from rw (at most maxFrame bytes each; 0:
// the wire default). A Session makes one per connection; a request that
// needs no session (Login) uses one directly. Its round trips are counted
// in DefaultMeter.
func NewConn(rw io.ReadWriteCloser, maxFrame int) *Conn {
	return NewConnMeter(rw, maxFrame, DefaultMeter)
}

// NewConnMeter is NewConn counting round trips in m.
func NewConnMeter(rw io.ReadWriteCloser, maxFrame int, m *Meter) *Conn {
	trips := m.attach(rw)
	if maxFrame <= 0 {
		maxFrame = wire.DefaultMaxFrame
	}
	c := &Conn{
		rw:       rw,
		fw:       wire.NewFrameWriter(rw, maxFrame),
		maxFrame: maxFrame,
		meter:    m,
		trips:    trips,
		pending:  make(map[uint64]pendingReq),
		level:    trips.Handshake,
		pushed:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		wslot:    make(chan struct{}, 1),
	}
	c.abandon = c.abandonWrite
	if es, ok := rw.(earlySettler); ok && trips.Handshake == 0 {
		c.early0, c.settled = true, es.Settled()
		go c.afterSettle()
	}
	go c.readLoop(wire.NewFrameReader(rw, maxFrame))
	return c
}

// earlySettler is a 0-RTT connection (client/transport's *Conn) that says
// when its attempt settled.
type earlySettler interface {
	Settled() <-chan struct{}
}

// afterSettle counts the handshake's completion as an answer: a request
// written after it waited for that round trip (1; 3 when the connection
// moved to the WebSocket), though no response had arrived yet.
func (c *Conn) afterSettle() {
	select {
	case <-c.settled:
		c.raiseToSettled()
	case <-c.done:
	}
}

func (c *Conn) raiseToSettled() {
	hs := 1
	if h, ok := c.rw.(handshaker); ok {
		hs = max(hs, h.HandshakeRoundTrips())
	}
	c.mu.Lock()
	c.level = max(c.level, hs)
	c.mu.Unlock()
}

func (c *Conn) readLoop(fr *wire.FrameReader) {
	for {
		f := new(wire.ServerFrame)
		if err := fr.ReadMessage(f); err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrDisconnected
			} else {
				err = fmt.Errorf("%w: %w", ErrDisconnected, err)
			}
			c.fail(err)
			return
		}
		if f.GetId() == 0 {
			c.mu.Lock()
			c.pushes = append(c.pushes, f)
			c.mu.Unlock()
			c.signal()
			continue
		}
		if c.early0 {
			// The first answer comes after the 0-RTT attempt settled.
			// Requests written before any answer waited for the
			// handshake the connection finally needed.
			c.early0 = false
			c.meter.settled(c.trips, c.rw)
			if h, ok := c.rw.(handshaker); ok {
				c.mu.Lock()
				c.extra = h.HandshakeRoundTrips()
				c.mu.Unlock()
			}
		}
		c.mu.Lock()
		p, ok := c.pending[f.GetId()]
		delete(c.pending, f.GetId())
		if ok {
			if p.depth == 1 {
				p.depth += c.extra
			}
			c.level = max(c.level, p.depth)
		}
		c.mu.Unlock()
		if ok {
			c.meter.answered(c.trips, p.op, p.depth)
			p.ch <- f // buffered: never blocks
		}
	}
}

func (c *Conn) signal() {
	select {
	case c.pushed <- struct{}{}:
	default:
	}
}

// fail ends the connection with err (the first error wins) and wakes every waiter.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.pending = map[uint64]pendingReq{}
	c.mu.Unlock()
	close(c.done)
	if d, ok := c.rw.(writeDeadliner); ok && len(c.wslot) > 0 {
		// A write in progress returns now, not once Close has finished:
		// closing a QUIC stream does not end a Write blocked on flow
		// control.
		d.SetWriteDeadline(time.Now())
	}
	c.rw.Close()
	c.signal()
}

// writeDeadliner is a stream whose blocked writes a deadline ends
// (net.Conn, client/transport's *Conn).
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.fail(ErrDisconnected)
	return nil
}

// Err returns why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Call sends one request and waits for its response. A response carrying an
// ErrorInfo becomes a *wire.Error with op. It returns ctx's error, wrapped
// with op, when ctx ends first, even while the request is being written.
func (c *Conn) Call(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	wait, err := c.Start(ctx, op, f)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// Start sends one request and returns a function that waits for its
// response. Requests started one after another are written in that order,
// so several can be in flight (pipelined Sends keep their order at the hub).
// ctx bounds the writing (see Conn); the wait has its own.
func (c *Conn) Start(ctx context.Context, op string, f *wire.ClientFrame) (func(context.Context) (*wire.ServerFrame, error), error) {
	if c.settled != nil && !wire.ReplaySafe(f) {
		// Not for 0-RTT data: written once the handshake settled (the
		// server would hold it until then anyway).
		select {
		case <-c.settled:
			c.raiseToSettled()
		case <-c.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		}
	}
	if err := c.acquire(ctx, op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil { // nothing written: the connection stays up
		<-c.wslot
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ch := make(chan *wire.ServerFrame, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		<-c.wslot
		return nil, fmt.Errorf("%s: %w", op, c.err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = pendingReq{ch: ch, op: op, depth: c.level + 1}
	c.mu.Unlock()
	c.meter.started(c.trips)
	f.Id = id
	if err := c.write(ctx, op, f); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	return func(ctx context.Context) (*wire.ServerFrame, error) {
		select {
		case r := <-ch:
			if e := r.GetError(); e != nil {
				return nil, wire.FromProto(op, e)
			}
			return r, nil
		case <-c.done:
			select {
			case r := <-ch: // answered just before the end
				if e := r.GetError(); e != nil {
					return nil, wire.FromProto(op, e)
				}
				return r, nil
			default:
			}
			return nil, fmt.Errorf("%s: %w", op, c.Err())
		case <-ctx.Done():
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		}
	}, nil
}

// writeAck writes the owed Ack (ack.go) as a frame of its own, honouring
// ctx as Start does; nothing when none is owed on c, which happens when
// a frame written meanwhile carried it.
func (c *Conn) writeAck(ctx context.Context) error {
	const op = "client.Ack"
	if err := c.acquire(ctx, op); err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		<-c.wslot
		return fmt.Errorf("%s: %w", op, err)
	}
	seq := c.acks.take(c)
	if seq == 0 {
		<-c.wslot
		return nil
	}
	err := c.write(ctx, op, ackFrame(seq))
	c.acks.written(seq, err)
	return err
}

// ackFrame is a cumulative Ack up to seq, without an id: it gets no answer.
func ackFrame(seq uint64) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Ack{Ack: &wire.Ack{UpToSeq: seq}}}
}

// acquire takes the write slot, in turn behind the write in progress. A
// request that gives up waiting has written nothing: the connection stays
// usable.
func (c *Conn) acquire(ctx context.Context, op string) error {
	select {
	case c.wslot <- struct{}{}:
		return nil
	default:
	}
	select {
	case c.wslot <- struct{}{}:
		return nil
	case <-c.done:
		return fmt.Errorf("%s: %w", op, c.Err())
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
}

// write writes f as one frame and releases the write slot, which the
// caller holds. While the frame is written, a watchdog on ctx
// (context.AfterFunc, no goroutine unless ctx ends) stands ready to fail
// the connection: the frame may then be half written, so nothing more can
// be written after it, and failing the connection (its stream's write
// deadline, then Close) is also what ends the blocked write. The write
// then returns ctx's error. A context that ends just as its frame was
// written whole fails the connection all the same.
//
// An Ack the session owes (ack.go) goes in front of f, in the same
// stream write.
func (c *Conn) write(ctx context.Context, op string, f *wire.ClientFrame) error {
	defer func() { <-c.wslot }()
	if ctx.Done() == nil { // never ends: no watchdog
		return c.writeErr(op, c.writeFrame(f))
	}
	if err := ctx.Err(); err != nil { // nothing written: the connection stays up
		return fmt.Errorf("%s: %w", op, err)
	}
	c.writing = op
	stop := context.AfterFunc(ctx, c.abandon)
	err := c.writeFrame(f)
	if !stop() {
		// The watchdog runs: the slot is released only once it has
		// failed the connection, so that it cannot end a later write.
		<-c.done
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return c.writeErr(op, err)
}

// writeFrame writes f, behind the owed Ack if there is one (f is not an
// Ack itself): both frames in one Write, so that they leave in one
// packet. An Ack whose write failed stays owed for the next connection.
func (c *Conn) writeFrame(f *wire.ClientFrame) error {
	var seq uint64
	if c.acks != nil && f.GetAck() == nil {
		seq = c.acks.take(c)
	}
	if seq == 0 {
		return c.fw.WriteMessage(f)
	}
	err := c.writeWithAck(seq, f)
	c.acks.written(seq, err)
	return err
}

// writeWithAck writes an Ack up to seq and f in one Write.
func (c *Conn) writeWithAck(seq uint64, f *wire.ClientFrame) error {
	size := proto.Size(f)
	if size > c.maxFrame {
		return fmt.Errorf("%w: %d > %d bytes", wire.ErrFrameTooLarge, size, c.maxFrame)
	}
	b, err := wire.AppendFrame(make([]byte, 0, size+32), ackFrame(seq))
	if err == nil {
		b, err = wire.AppendFrame(b, f)
	}
	if err != nil {
		return fmt.Errorf("wire: encode frame: %w", err)
	}
	if _, err := c.rw.Write(b); err != nil {
		return fmt.Errorf("wire: write frame: %w", err)
	}
	return nil
}

// abandonWrite is the watchdog of a write whose context ended (write).
func (c *Conn) abandonWrite() {
	c.fail(fmt.Errorf("%w: %s abandoned while its frame was written (its context ended)", ErrDisconnected, c.writing))
}

// writeErr fails the connection when a frame could not be written.
func (c *Conn) writeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	c.fail(fmt.Errorf("%w: %w", ErrDisconnected, err))
	return fmt.Errorf("%s: %w", op, c.Err())
}

// nextPush returns the oldest queued push, waiting for one. It returns the
// connection's error once the connection has ended and no push is queued
// that arrived before the end.
func (c *Conn) nextPush(ctx context.Context) (*wire.ServerFrame, error) {
	for {
		c.mu.Lock()
		if len(c.pushes) > 0 {
			f := c.pushes[0]
			c.pushes[0] = nil
			c.pushes = c.pushes[1:]
			c.mu.Unlock()
			return f, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-c.pushed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
