package homeserver

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/homeserver/delivery"
	"hearth/homeserver/wire"
)

const (
	maxPipelined       = 128             // Send/Ack requests awaiting their commit per session
	ephemeralQ         = 64              // queued typing/presence pushes per session; more are dropped
	closeGrace         = 2 * time.Second // how long SessionClosed may take to write
	loginPerSec        = 1.0             // per-stream Login/Refresh/Hello attempts
	loginBurst         = 5
	loginPerUserPerSec = 0.2 // per account name and client address, across streams
	loginPerUserBurst  = 10
	loginPerAddrPerSec = 0.5 // per client address, whatever the account
	loginPerAddrBurst  = 20
	typingPerSec       = 2.0 // per-device typing and presence signals
	typingBurst        = 10
)

// session serves one client control stream.
type session struct {
	s      *Server
	rwc    io.ReadWriteCloser
	remote string
	addr   string // clientAddr(remote): the key of per-address limits
	fr     *wire.FrameReader
	fw     *frameWriter // coalesces the frames of the reply queue, the pusher and ephemeral pushes
	ctx    context.Context
	cancel context.CancelFunc

	// Set by the reader goroutine at authentication under Server.mu (the
	// registry reads them under that lock); the session's own goroutines
	// read them freely.
	deviceID string
	userName string
	userID   int64
	status   atomic.Int32 // wire.DeviceStatus; 0 before authentication
	// passive: the session does not change the user's presence
	// (Hello.passive), set before authentication; presenceOn: it holds
	// the user ONLINE (presence_local.go).
	passive    bool
	registered bool // in the registry's authenticated sessions; under its mu
	presenceOn atomic.Bool

	replies    *delivery.Queue                // completions of pipelined requests, in request order; made at the first (later)
	eph        atomic.Pointer[delivery.Queue] // lossy pushes (typing, presence); made at the first (ephQueue)
	ephBroken  atomic.Bool
	dgram      atomic.Pointer[datagramPort] // set at Hello when the client reads signals from datagrams
	authTries  bucket
	authBusy   atomic.Bool // a Hello, Login or Refresh is being verified
	afterReply func()      // set by a handler to run once its answer is written

	// early: the stream may carry 0-RTT data until its handshake
	// completes (early.go); nil then, and for other streams. Only the
	// reader goroutine uses it.
	early earlyConn

	stopWatch func() bool // stops closing rwc when ctx ends (newSession)
	endOnce   sync.Once
	pushMu    sync.Mutex
	push      *delivery.Pusher // the running Sync, if any
}

// ServeStream serves one client control stream until it ends (EOF, an
// unrecoverable framing error, ctx done, the session being closed by the
// server) and closes rwc.
//
// An idle session's goroutine waits in the frame reader below this loop,
// so the loop keeps its own stack frame small and calls out for the rest
// (newSession, dispatch, readFailed): the runtime shrinks a goroutine's
// stack only while less than a quarter of it is in use, so a reader that
// waits deep in a large frame keeps 8 KiB of stack once a login grew it,
// where a shallow one gets back to 4 KiB (docs/transport.md, "Memory").
func (s *Server) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	ss := s.newSession(ctx, rwc, remote)
	if ss == nil {
		return
	}
	defer ss.close()
	for {
		b, err := ss.fr.ReadFrame()
		if err != nil {
			ss.readFailed(err)
			return
		}
		if !ss.dispatch(b) {
			return
		}
	}
}

// newSession registers a session for rwc and starts its watchers; nil
// when the server is shutting down (the stream has been ended then).
//
//go:noinline
func (s *Server) newSession(ctx context.Context, rwc io.ReadWriteCloser, remote string) *session {
	ctx, cancel := context.WithCancel(ctx)
	ss := &session{
		s: s, rwc: rwc, remote: remote, addr: clientAddr(remote),
		fr:     wire.NewFrameReader(rwc, s.cfg.MaxFrame),
		fw:     newFrameWriter(rwc, s.cfg.MaxFrame),
		ctx:    ctx,
		cancel: cancel,
	}
	if ec, ok := rwc.(earlyConn); ok {
		ss.early = ec
	}
	if !s.reg.addStream(ss) {
		ss.end(wire.Code_CODE_UNAVAILABLE, "server shutting down")
		return nil
	}
	if s.cfg.AuthTimeout > 0 {
		go ss.watchAuth(s.cfg.AuthTimeout)
	}
	ss.stopWatch = context.AfterFunc(ctx, func() { rwc.Close() })
	return ss
}

// close tears the session down once its reader stopped and unregisters it.
//
//go:noinline
func (ss *session) close() {
	ss.finish()
	ss.stopWatch()
	ss.s.reg.removeStream(ss)
}

// readFailed answers a frame over the limit before the stream ends: it is
// out of sync then.
//
//go:noinline
func (ss *session) readFailed(err error) {
	if errors.Is(err, wire.ErrFrameTooLarge) {
		ss.writeLast(ss.errorFrame(0, wire.Errorf("homeserver.ServeStream", wire.Code_CODE_TOO_LARGE, "frame over %d bytes", ss.s.cfg.MaxFrame)))
	}
}

// dispatch decodes and handles one frame; false ends the session.
//
//go:noinline
func (ss *session) dispatch(b []byte) bool {
	f := &wire.ClientFrame{}
	if err := proto.Unmarshal(b, f); err != nil {
		ss.writeError(0, wire.Errorf("homeserver.ServeStream", wire.Code_CODE_BAD_REQUEST, "undecodable frame"))
		return true
	}
	if ss.ctx.Err() != nil || !ss.awaitHandshake(f) {
		return false
	}
	ss.noteEarly()
	ss.handle(f)
	return true
}

// finish tears the session down once the reader stopped.
func (ss *session) finish() {
	ss.cancel()
	ss.rwc.Close()
	ss.stopPush()
	if ss.replies != nil {
		ss.replies.Wait() // the reader queued the last one
	}
	if ss.deviceID != "" {
		ss.s.reg.unregister(ss)
		ss.s.userOffline(ss)
	}
}

// writeLast writes f, the last frame before the stream is closed, and
// waits up to closeGrace for it to leave: written by this call, or only
// queued behind a write in progress (frameWriter), or held back by a
// client that does not read; the caller closes the stream after it in
// any case.
func (ss *session) writeLast(f *wire.ServerFrame) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss.fw.WriteMessage(f)
		ss.fw.drain() // left, not only queued behind a write in progress
	}()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// end closes the session from the server side: a SessionClosed push (given
// a moment to be written), then the stream is closed.
func (ss *session) end(code wire.Code, msg string) {
	ss.endOnce.Do(func() {
		ss.writeLast(&wire.ServerFrame{Body: &wire.ServerFrame_Closed{Closed: &wire.SessionClosed{Code: code, Message: msg}}})
		ss.cancel()
		ss.rwc.Close()
	})
}

// later queues a completion, run after the earlier ones; it blocks when
// maxPipelined are waiting, which stops reading from this client
// (backpressure). Only the reader goroutine calls it, and finish, which
// waits for the queue, runs on that goroutine too: the queue is made at
// the first call, since a session that never sends or acknowledges
// needs none.
func (ss *session) later(f func()) {
	if ss.replies == nil {
		ss.replies = delivery.NewQueue(maxPipelined)
	}
	ss.replies.Push(f)
}

// pushEphemeral queues a lossy push, dropping it if the client is slow
// (ephemeralQ waiting) or the stream broke. When the client reads signals
// from datagrams, one that fits goes there instead (datagram.go).
func (ss *session) pushEphemeral(f *wire.ServerFrame) {
	ss.ephQueue().TryPush(func() {
		if ss.ctx.Err() != nil || ss.ephBroken.Load() {
			return
		}
		if ss.sendDatagram(f) {
			return
		}
		if err := ss.fw.WriteMessage(f); err != nil {
			ss.ephBroken.Store(true)
		}
	})
}

// pushOnStream queues a lossy push like pushEphemeral, always on the
// stream.
func (ss *session) pushOnStream(f *wire.ServerFrame) {
	ss.ephQueue().TryPush(func() {
		if ss.ctx.Err() != nil || ss.ephBroken.Load() {
			return
		}
		if err := ss.fw.WriteMessage(f); err != nil {
			ss.ephBroken.Store(true)
		}
	})
}

// ephQueue returns the session's queue of lossy pushes, made at the
// first: most idle sessions never get one.
func (ss *session) ephQueue() *delivery.Queue {
	if q := ss.eph.Load(); q != nil {
		return q
	}
	ss.eph.CompareAndSwap(nil, delivery.NewQueue(ephemeralQ))
	return ss.eph.Load()
}

func (ss *session) write(f *wire.ServerFrame) {
	if err := ss.fw.WriteMessage(f); err != nil {
		ss.cancel() // the stream is gone or broken: end the session
	}
}

// writeError answers request id with err.
func (ss *session) writeError(id uint64, err error) { ss.write(ss.errorFrame(id, err)) }

// errorFrame is the answer to request id refused with err, counted.
// Internal errors are logged here, once, and reach the client without
// detail.
func (ss *session) errorFrame(id uint64, err error) *wire.ServerFrame {
	kind := wire.KindOf(err)
	ss.s.ctr.refuse(kind)
	switch {
	case kind != wire.Code_CODE_INTERNAL:
	case ss.ctx.Err() != nil || errors.Is(err, context.Canceled):
		// The client went away mid-request: nothing failed on this side.
		ss.s.log.Debug("request ended with its session", "err", err, "remote", ss.remote, "device", ss.deviceID)
	default:
		ss.s.log.Error("request failed", "err", err, "remote", ss.remote, "device", ss.deviceID)
	}
	return &wire.ServerFrame{Id: id, Body: &wire.ServerFrame_Error{Error: wire.ToProto(err)}}
}

func (ss *session) answer(id uint64, resp *wire.ServerFrame, err error) {
	if err != nil {
		ss.writeError(id, err)
		return
	}
	if resp != nil {
		resp.Id = id
		ss.write(resp)
	}
}

func okFrame() *wire.ServerFrame {
	return &wire.ServerFrame{Body: &wire.ServerFrame_Ok{Ok: &wire.Empty{}}}
}

// handle dispatches one request after the authentication gate.
func (ss *session) handle(f *wire.ClientFrame) {
	const op = "homeserver.session"
	// Every request needs an id, except an Ack, which may be sent without
	// one and then gets no answer (wire doc: cumulative, no response).
	if _, isAck := f.Body.(*wire.ClientFrame_Ack); f.Id == 0 && !isAck {
		ss.writeError(0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "request id must be non-zero"))
		return
	}
	if err := ss.gate(f); err != nil {
		ss.writeError(f.Id, err)
		return
	}
	switch f.Body.(type) {
	case *wire.ClientFrame_Hello, *wire.ClientFrame_Login, *wire.ClientFrame_Register, *wire.ClientFrame_Refresh:
		ss.authBusy.Store(true)
		defer ss.authBusy.Store(false)
	}
	resp, err, handled := ss.directoryRequest(f)
	if !handled {
		resp, err, handled = ss.conversationRequest(f)
	}
	switch b := f.Body.(type) {
	case *wire.ClientFrame_Hello:
		resp, err = ss.hello(b.Hello)
	case *wire.ClientFrame_Login:
		resp, err = ss.login(b.Login)
	case *wire.ClientFrame_Register:
		resp, err = ss.register(b.Register)
	case *wire.ClientFrame_Refresh:
		resp, err = ss.refresh(b.Refresh)
	case *wire.ClientFrame_Ping:
		resp = &wire.ServerFrame{Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{ServerTimeMs: ss.s.nowMs()}}}
	case *wire.ClientFrame_Send:
		ss.send(f.Id, b.Send) // answers when committed
		return
	case *wire.ClientFrame_Sync:
		ss.sync(f.Id, b.Sync) // answers, then pushes
		return
	case *wire.ClientFrame_Ack:
		ss.ack(f.Id, b.Ack) // answers when committed
		return
	case *wire.ClientFrame_Typing:
		resp, err = ss.typing(b.Typing)
	case *wire.ClientFrame_SetPresence:
		resp, err = ss.setPresence(b.SetPresence)
	case *wire.ClientFrame_GetPresence:
		resp, err = ss.getPresence(b.GetPresence)
	case *wire.ClientFrame_PresenceSettings:
		resp, err = ss.presenceSettings(b.PresenceSettings)
	case *wire.ClientFrame_UploadMedia:
		resp, err = uploadMedia(ss.ctx, ss.s.mediaSt, ss.userID, ss.deviceID, b.UploadMedia) // media.go
	case *wire.ClientFrame_DownloadMedia:
		resp, err = downloadMedia(ss.ctx, ss.s.mediaSt, ss.s.fed, ss.s.cfg.Domain, b.DownloadMedia)
	default:
		if !handled {
			err = wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "unknown or empty request")
		}
	}
	ss.answer(f.Id, resp, err)
	if ss.afterReply != nil {
		f := ss.afterReply
		ss.afterReply = nil
		f()
	}
}

// gate applies the authentication rules: before Hello/Login only Hello,
// Login and Refresh; a pending device only what it needs to get approved.
func (ss *session) gate(f *wire.ClientFrame) error {
	const op = "homeserver.session"
	switch f.Body.(type) {
	case *wire.ClientFrame_Hello, *wire.ClientFrame_Login, *wire.ClientFrame_Register:
		if ss.status.Load() != 0 {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "stream is already authenticated")
		}
		return nil
	case *wire.ClientFrame_Refresh:
		return nil
	case nil:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "empty request")
	}
	switch wire.DeviceStatus(ss.status.Load()) {
	case wire.DeviceStatus_DEVICE_STATUS_ACTIVE:
		return nil
	case wire.DeviceStatus_DEVICE_STATUS_PENDING:
		switch f.Body.(type) {
		case *wire.ClientFrame_FetchApproval, *wire.ClientFrame_PublishKeyPackages, *wire.ClientFrame_ListDevices, *wire.ClientFrame_Ping,
			*wire.ClientFrame_FetchDeviceList, *wire.ClientFrame_ApproveDevice: // self-approval (docs/decisions/0002)
			return nil
		case *wire.ClientFrame_RevokeDevice: // withdrawing itself (a login that gave up waiting)
			if b := f.Body.(*wire.ClientFrame_RevokeDevice); b.RevokeDevice.GetDeviceId() == ss.deviceID {
				return nil
			}
		}
		return wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "device waits for approval")
	case wire.DeviceStatus_DEVICE_STATUS_REVOKED:
		return wire.Errorf(op, wire.Code_CODE_DEVICE_REVOKED, "device revoked")
	}
	return wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "send Hello or Login first")
}
