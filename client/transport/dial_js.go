//go:build js

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
	"time"

	"hearth/homeserver/wire"
)

// In the browser (GOOS=js) the client reaches its homeserver through the
// browser's own APIs (syscall/js, not Go libraries, so that the
// WebAssembly carries no net/http nor crypto/tls): WebTransport first
// (webtransport_js.go), the WebSocket beside it when WebTransport has not
// connected within browserRaceDelay or as soon as it failed. The browser
// does TLS, trusts certificates itself and answers the server's pings.

const pathWebSocket = "/hearth/v1/ws"

// wsSlack is the frame's varint length prefix a message carries beyond MaxFrame.
const wsSlack = 16

// browserRaceDelay is how long DialBrowser gives WebTransport alone before
// it also dials the WebSocket (the first to connect wins). The browser
// does not say when the QUIC handshake completed, so this is longer than
// the native client's DefaultRaceDelay: a busy page must not lose
// WebTransport to the WebSocket on a network where UDP works.
const browserRaceDelay = 500 * time.Millisecond

// browserWTTimeout bounds the WebTransport attempt.
const browserWTTimeout = 3 * time.Second

// browserMemo remembers servers where WebTransport failed and the
// WebSocket worked, for the worker's life (memo.go).
var browserMemo = &fallbackMemo{now: time.Now}

// DialBrowser connects to the homeserver at addr (HOST:PORT, usually the
// page's own location.host) and returns the control stream, a *Conn:
// WebTransport, with the WebSocket raced beside it after
// browserRaceDelay (or at once when WebTransport fails or the browser has
// none). After WebTransport failed and the WebSocket worked there, dials
// in the next five minutes use the WebSocket at once, and the Conn's
// RetryQUICAfter tells the session when to try WebTransport again.
// maxFrame bounds frames from the server (0: wire.DefaultMaxFrame): a
// longer message closes the connection.
func DialBrowser(ctx context.Context, addr string, maxFrame int) (io.ReadWriteCloser, error) {
	if addr == "" {
		return nil, errors.New("transport: dial: no server address")
	}
	if maxFrame <= 0 {
		maxFrame = wire.DefaultMaxFrame
	}
	if !js.Global().Get("WebTransport").Truthy() {
		c, err := dialBrowserWS(ctx, addr, maxFrame)
		if err != nil {
			return nil, fmt.Errorf("transport: dial %s: websocket (this browser has no WebTransport): %w", addr, err)
		}
		return c, nil
	}
	if browserMemo.blocked(addr) {
		c, err := dialBrowserWS(ctx, addr, maxFrame)
		if err == nil {
			c.retryQUIC = browserMemo.remaining(addr) + retryMargin
			return c, nil
		}
		wc, werr := dialBrowserWTHashes(ctx, addr)
		if werr == nil {
			browserMemo.forget(addr)
			return wc, nil
		}
		return nil, fmt.Errorf("transport: dial %s: %w", addr, errors.Join(fmt.Errorf("websocket: %w", err), werr))
	}
	return browserRace(ctx, addr, maxFrame)
}

// retryMargin is added to the memo's expiry in Conn.RetryQUICAfter, so
// that the redial comes after it.
const retryMargin = 10 * time.Second

// dialBrowserWTHashes reads the server's published leaf hashes and dials
// WebTransport (within browserWTTimeout).
func dialBrowserWTHashes(ctx context.Context, addr string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, browserWTTimeout)
	defer cancel()
	c, err := dialBrowserWT(ctx, addr, certHashes(ctx, addr))
	if err != nil {
		return nil, fmt.Errorf("webtransport: %w", err)
	}
	return c, nil
}

// browserRace is race (race.go) for the browser: WebTransport alone for
// browserRaceDelay, then the WebSocket beside it (raceDial).
func browserRace(ctx context.Context, addr string, maxFrame int) (*Conn, error) {
	return raceDial(ctx, addr, racers{
		quic:  func(ctx context.Context, _ chan<- struct{}) (*Conn, error) { return dialBrowserWTHashes(ctx, addr) },
		ws:    func(ctx context.Context) (*Conn, error) { return dialBrowserWS(ctx, addr, maxFrame) },
		delay: browserRaceDelay, quicTimeout: browserWTTimeout, memo: browserMemo,
	})
}

// dialBrowserWS dials the WebSocket at wss://addr/hearth/v1/ws.
func dialBrowserWS(ctx context.Context, addr string, maxFrame int) (*Conn, error) {
	b := &browserWS{limit: maxFrame + wsSlack, wake: make(chan struct{}, 1)}
	if err := b.open(ctx, "wss://"+addr+pathWebSocket); err != nil {
		return nil, err
	}
	return &Conn{rwc: b, protocol: ProtocolWebSocket, handshake: 3}, nil
}

// browserWS is a browser WebSocket as a byte stream: each binary message
// received is appended to the stream read; each Write is one message.
type browserWS struct {
	ws    js.Value
	limit int
	fns   []js.Func
	evs   []string // the events fns handle

	mu     sync.Mutex
	queue  [][]byte // messages received, not read yet
	err    error    // the connection ended: returned once the queue is read
	opened bool
	wake   chan struct{} // a message, the opening or the end happened
}

func (b *browserWS) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *browserWS) on(ev string, fn func(js.Value)) {
	f := js.FuncOf(func(_ js.Value, args []js.Value) any {
		var e js.Value
		if len(args) > 0 {
			e = args[0]
		}
		fn(e)
		return nil
	})
	b.fns = append(b.fns, f)
	b.evs = append(b.evs, ev)
	b.ws.Set("on"+ev, f)
}

func (b *browserWS) end(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.signal()
}

func (b *browserWS) open(ctx context.Context, url string) error {
	defer func() {
		if b.err != nil {
			b.release()
		}
	}()
	ctor := js.Global().Get("WebSocket")
	if !ctor.Truthy() {
		return errors.New("this browser has no WebSocket")
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r) // a malformed URL throws
			}
		}()
		b.ws = ctor.New(url)
	}()
	if err != nil {
		return err
	}
	b.ws.Set("binaryType", "arraybuffer")
	u8 := js.Global().Get("Uint8Array")
	b.on("open", func(js.Value) {
		b.mu.Lock()
		b.opened = true
		b.mu.Unlock()
		b.signal()
	})
	b.on("message", func(e js.Value) {
		data := e.Get("data")
		if data.Type() == js.TypeString {
			b.end(errors.New("the server sent a text message"))
			b.ws.Call("close", 1003, "binary only")
			return
		}
		arr := u8.New(data)
		n := arr.Length()
		if n > b.limit {
			b.end(fmt.Errorf("a message of %d bytes is over the limit of %d", n, b.limit))
			b.ws.Call("close", 1009, "message too big")
			return
		}
		p := make([]byte, n)
		js.CopyBytesToGo(p, arr)
		b.mu.Lock()
		b.queue = append(b.queue, p)
		b.mu.Unlock()
		b.signal()
	})
	b.on("close", func(e js.Value) {
		b.end(fmt.Errorf("websocket closed (code %d)", e.Get("code").Int()))
	})
	b.on("error", func(js.Value) {
		b.end(errors.New("websocket failed (the browser does not say why: an untrusted certificate, a refused connection)"))
	})
	for {
		b.mu.Lock()
		opened, err := b.opened, b.err
		b.mu.Unlock()
		if opened {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-b.wake:
		case <-ctx.Done():
			b.ws.Call("close")
			b.end(ctx.Err())
			return ctx.Err()
		}
	}
}

func (b *browserWS) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if len(b.queue) > 0 {
			n := copy(p, b.queue[0])
			if n == len(b.queue[0]) {
				b.queue = b.queue[1:]
			} else {
				b.queue[0] = b.queue[0][n:]
			}
			b.mu.Unlock()
			return n, nil
		}
		err := b.err
		b.mu.Unlock()
		if err != nil {
			return 0, io.EOF
		}
		<-b.wake // one reader at a time (client/session's read loop)
	}
}

func (b *browserWS) Write(p []byte) (int, error) {
	b.mu.Lock()
	err := b.err
	b.mu.Unlock()
	if err != nil {
		return 0, err
	}
	arr := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(arr, p)
	if err := jsSend(b.ws, arr); err != nil {
		b.end(err)
		return 0, err
	}
	return len(p), nil
}

// jsSend sends one message; an exception (syscall/js raises it as a
// panic) is an error.
func jsSend(ws, msg js.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("websocket send: %v", r)
		}
	}()
	ws.Call("send", msg)
	return nil
}

func (b *browserWS) Close() error {
	b.ws.Call("close", 1000, "")
	b.end(errors.New("closed"))
	b.release()
	return nil
}

func (b *browserWS) release() {
	for _, ev := range b.evs {
		b.ws.Set("on"+ev, js.Null()) // no event reaches a released function
	}
	b.evs = nil
	for _, f := range b.fns {
		f.Release()
	}
	b.fns = nil
}

// SendDatagram sends b as one unreliable datagram (WebTransport only).
func (c *Conn) SendDatagram(b []byte) error {
	if wt, ok := c.rwc.(*browserWT); ok {
		return wt.sendDatagram(b)
	}
	return ErrNoDatagrams
}

// ReceiveDatagram returns the next datagram from the server (WebTransport only).
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	if wt, ok := c.rwc.(*browserWT); ok {
		return wt.receiveDatagram(ctx)
	}
	return nil, ErrNoDatagrams
}

// nativeSettled: the browser has no native QUIC (Settled is closed at once).
func (c *Conn) nativeSettled() <-chan struct{} { return nil }
