package transport

import (
	"sync"
	"time"
)

// quicBlockedFor is how long Dial goes straight to the WebSocket for an
// address after WebTransport failed and the WebSocket worked there, so
// that reconnects on networks that block UDP do not each wait QUICTimeout.
// After it, WebTransport is tried again.
const quicBlockedFor = 5 * time.Minute

// fallbackMemo remembers addresses where QUIC recently failed. One memo
// serves the whole process (like a browser's Alt-Svc cache).
type fallbackMemo struct {
	now func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
	// noNativeUntil: addresses whose server refused native QUIC's ALPN
	// (an older server): WebTransport goes first there until then.
	noNativeUntil map[string]time.Time
}

var defaultMemo = &fallbackMemo{now: time.Now}

// blocked reports whether addr is remembered as blocking QUIC.
func (m *fallbackMemo) blocked(addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[addr]
	if ok && !m.now().Before(t) {
		delete(m.until, addr)
		return false
	}
	return ok
}

// remaining is how long addr stays remembered (0: not).
func (m *fallbackMemo) remaining(addr string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(0, m.until[addr].Sub(m.now()))
}

// remember records that QUIC failed for addr while the WebSocket worked.
func (m *fallbackMemo) remember(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = make(map[string]time.Time)
	}
	m.until[addr] = m.now().Add(quicBlockedFor)
}

// forget drops addr, after WebTransport worked there again.
func (m *fallbackMemo) forget(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.until, addr)
}

// noNative reports whether addr is remembered as not speaking native QUIC.
func (m *fallbackMemo) noNative(addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.noNativeUntil[addr]
	if ok && !m.now().Before(t) {
		delete(m.noNativeUntil, addr)
		return false
	}
	return ok
}

// rememberNoNative records that addr refused native QUIC's ALPN.
func (m *fallbackMemo) rememberNoNative(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.noNativeUntil == nil {
		m.noNativeUntil = make(map[string]time.Time)
	}
	m.noNativeUntil[addr] = m.now().Add(quicBlockedFor)
}
