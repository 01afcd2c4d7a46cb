//go:build js

package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"
)

// The browser's WebTransport (https://HOST:PORT/hearth/v1): the session's
// first bidirectional stream is the control stream, as for native clients,
// and typing and presence pushes arrive as datagrams beside it.
//
// A server on its development CA publishes the SHA-256 of the leaf it
// serves at PathCertificates (homeserver/webui); the browser then accepts
// that leaf for WebTransport through serverCertificateHashes, whether or
// not the CA is in its trust store (the leaf is ECDSA P-256 and valid for
// at most 14 days, as browsers require for it). With a certificate from a
// public CA the list is empty and the browser verifies as usual.

const pathWebTransport = "/hearth/v1"

// errNoWebTransport: the browser has no WebTransport API.
var errNoWebTransport = errors.New("this browser has no WebTransport")

// browserWT is a WebTransport session's control stream as a byte stream,
// with the session's datagrams beside it.
type browserWT struct {
	wt     js.Value
	writer js.Value // the control stream's WritableStreamDefaultWriter
	reader js.Value // its ReadableStreamDefaultReader
	dgw    js.Value // the datagrams' writer

	chunks chan []byte  // what the pump read; closed at the stream's end
	rd     *chunkReader // reads chunks for Read, and drains them for Close
	dgrams chan []byte  // datagrams received, dropped when it is full
	closed chan struct{}
	// ended is cancelled once the session is closed: a Write still
	// waiting for the browser returns then.
	ended  context.Context
	cancel context.CancelFunc

	wmu       sync.Mutex // one Write at a time, in order
	closeOnce sync.Once
}

// dgramQueue is how many received datagrams wait for ReceiveDatagram
// before more are dropped (they are lossy signals).
const dgramQueue = 64

// wtLinger bounds how long Close waits for the server's FIN.
const wtLinger = 3 * time.Second

// dialBrowserWT opens a WebTransport session to addr, accepting a leaf
// whose SHA-256 is in hashes (none: the browser's usual verification),
// and its control stream.
func dialBrowserWT(ctx context.Context, addr string, hashes [][]byte) (*Conn, error) {
	ctor := js.Global().Get("WebTransport")
	if !ctor.Truthy() {
		return nil, errNoWebTransport
	}
	opts := map[string]any{}
	if len(hashes) > 0 {
		list := make([]any, 0, len(hashes))
		for _, h := range hashes {
			list = append(list, map[string]any{"algorithm": "sha-256", "value": bytesToJS(h)})
		}
		opts["serverCertificateHashes"] = list
	}
	var wt js.Value
	if err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r) // a bad URL or option throws
			}
		}()
		wt = ctor.New("https://"+addr+pathWebTransport, js.ValueOf(opts))
		return nil
	}(); err != nil {
		return nil, err
	}
	quiet(wt.Get("closed"))
	fail := func(err error) (*Conn, error) {
		jsCall(wt, "close")
		return nil, err
	}
	if _, err := awaitJS(ctx, wt.Get("ready")); err != nil {
		return fail(fmt.Errorf("session: %w", err))
	}
	p, err := jsCallValue(wt, "createBidirectionalStream")
	if err != nil {
		return fail(err)
	}
	bidi, err := awaitJS(ctx, p)
	if err != nil {
		return fail(fmt.Errorf("open control stream: %w", err))
	}
	b := &browserWT{
		wt:     wt,
		writer: bidi.Get("writable").Call("getWriter"),
		reader: bidi.Get("readable").Call("getReader"),
		chunks: make(chan []byte, 4),
		dgrams: make(chan []byte, dgramQueue),
		closed: make(chan struct{}),
	}
	b.rd = newChunkReader(b.chunks)
	b.ended, b.cancel = context.WithCancel(context.Background())
	go b.pump()
	if d := wt.Get("datagrams"); d.Truthy() {
		b.dgw = d.Get("writable").Call("getWriter")
		go b.pumpDatagrams(d.Get("readable").Call("getReader"))
	} else {
		close(b.dgrams)
	}
	// The browser waits for the QUIC handshake and the CONNECT's answer.
	return &Conn{rwc: b, protocol: ProtocolWebTransport, handshake: 2}, nil
}

// pump reads the control stream into b.chunks until its end; a full
// channel holds it back, so the stream's flow control works as usual.
func (b *browserWT) pump() {
	defer close(b.chunks)
	for {
		p, err := jsCallValue(b.reader, "read")
		if err != nil {
			return
		}
		r, err := awaitJS(context.Background(), p)
		if err != nil || r.Get("done").Truthy() {
			return
		}
		b.chunks <- bytesFromJS(r.Get("value"))
	}
}

func (b *browserWT) pumpDatagrams(reader js.Value) {
	defer close(b.dgrams)
	for {
		p, err := jsCallValue(reader, "read")
		if err != nil {
			return
		}
		r, err := awaitJS(context.Background(), p)
		if err != nil || r.Get("done").Truthy() {
			return
		}
		select {
		case b.dgrams <- bytesFromJS(r.Get("value")):
		default: // lossy: the oldest wait, this one goes
		}
	}
}

// Read returns the control stream's bytes; io.EOF after the server's FIN
// or once the session ended, an error once Close started. One reader
// at a time (the session's loop).
func (b *browserWT) Read(p []byte) (int, error) { return b.rd.Read(p) }

// Write sends p on the control stream and waits until the browser took it.
func (b *browserWT) Write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	select {
	case <-b.closed:
		return 0, errors.New("webtransport: closed")
	default:
	}
	pr, err := jsCallValue(b.writer, "write", bytesToJS(p))
	if err != nil {
		return 0, fmt.Errorf("webtransport: %w", err)
	}
	if _, err := awaitJS(b.ended, pr); err != nil {
		return 0, fmt.Errorf("webtransport: write: %w", err)
	}
	return len(p), nil
}

// Close sends FIN, reads and discards what the server still sends until
// its FIN (at most wtLinger), then closes the session: the client, and
// only the client, closes it, after the server's FIN (see
// homeserver/transport), so no frame in flight is lost. A Write waiting
// on a stalled stream does not hold Close up: the FIN queues behind it,
// and closing the session ends it.
func (b *browserWT) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		if p, err := jsCallValue(b.writer, "close"); err == nil {
			quiet(p)
		}
		b.rd.stop() // a read in progress finishes; the drain never reads from under it
		b.rd.drain(wtLinger)
		jsCall(b.wt, "close", js.ValueOf(map[string]any{"closeCode": 0, "reason": ""}))
		b.cancel()
		go func() { // the pump ends once the closed session fails its read
			for range b.chunks {
			}
		}()
	})
	return nil
}

func (b *browserWT) sendDatagram(p []byte) error {
	if !b.dgw.Truthy() {
		return ErrNoDatagrams
	}
	select {
	case <-b.closed:
		return errors.New("webtransport: closed")
	default:
	}
	pr, err := jsCallValue(b.dgw, "write", bytesToJS(p))
	if err != nil {
		return fmt.Errorf("webtransport: datagram: %w", err)
	}
	quiet(pr) // lossy: a failed datagram is not waited for
	return nil
}

func (b *browserWT) receiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case d, ok := <-b.dgrams:
		if !ok {
			return nil, errors.New("webtransport: session ended")
		}
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// certHashes reads the leaf hashes the server at addr publishes for
// serverCertificateHashes. A server that publishes none, or an answer
// that cannot be read, gives none: the browser then verifies as usual.
func certHashes(ctx context.Context, addr string) [][]byte {
	fetch := js.Global().Get("fetch")
	if !fetch.Truthy() {
		return nil
	}
	p, err := jsCallValue(js.Global(), "fetch", "https://"+addr+PathCertificates,
		js.ValueOf(map[string]any{"cache": "no-store", "credentials": "omit"}))
	if err != nil {
		return nil
	}
	resp, err := awaitJS(ctx, p)
	if err != nil || !resp.Get("ok").Truthy() {
		return nil
	}
	tp, err := jsCallValue(resp, "text")
	if err != nil {
		return nil
	}
	body, err := awaitJS(ctx, tp)
	if err != nil || body.Type() != js.TypeString {
		return nil
	}
	return parseCertHashes([]byte(body.String()))
}
