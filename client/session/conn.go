package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"hearth/homeserver/wire"
)

// ErrDisconnected is returned by requests whose connection ended before the
// response arrived. The request may or may not have reached the server.
var ErrDisconnected = errors.New("client: disconnected")

// Conn multiplexes requests over one control stream: each request gets a
// fresh frame id and waits for the response echoing it, so requests run
// concurrently. Pushes (id 0) are queued in arrival order for one consumer.
type Conn struct {
	rw io.ReadWriteCloser
	fw *wire.FrameWriter

	meter *Meter
	trips *ConnTrips

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]pendingReq
	level   int   // depth of the deepest response received (meter.go)
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
	c := &Conn{
		rw:      rw,
		fw:      wire.NewFrameWriter(rw, maxFrame),
		meter:   m,
		trips:   trips,
		pending: make(map[uint64]pendingReq),
		level:   trips.Handshake,
		pushed:  make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go c.readLoop(wire.NewFrameReader(rw, maxFrame))
	return c
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
		c.mu.Lock()
		p, ok := c.pending[f.GetId()]
		delete(c.pending, f.GetId())
		if ok {
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
	c.rw.Close()
	c.signal()
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
// ErrorInfo becomes a *wire.Error with op.
func (c *Conn) Call(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	wait, err := c.Start(op, f)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// Start sends one request and returns a function that waits for its
// response. Requests started one after another are written in that order,
// so several can be in flight (pipelined Sends keep their order at the hub).
func (c *Conn) Start(op string, f *wire.ClientFrame) (func(context.Context) (*wire.ServerFrame, error), error) {
	ch := make(chan *wire.ServerFrame, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", op, c.err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = pendingReq{ch: ch, op: op, depth: c.level + 1}
	c.mu.Unlock()
	c.meter.started(c.trips)
	f.Id = id
	if err := c.fw.WriteMessage(f); err != nil {
		c.fail(fmt.Errorf("%w: %w", ErrDisconnected, err))
		return nil, fmt.Errorf("%s: %w", op, c.Err())
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

// notify sends a frame that has no response (Ack).
func (c *Conn) notify(f *wire.ClientFrame) error {
	if err := c.Err(); err != nil {
		return err
	}
	if err := c.fw.WriteMessage(f); err != nil {
		c.fail(fmt.Errorf("%w: %w", ErrDisconnected, err))
		return c.Err()
	}
	return nil
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
