//go:build !js

package client

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"hearth/client/store"
)

// TLS session tickets in the profile. Each `hearth chat` command is a new
// process; for its first frames to ride in QUIC 0-RTT data (a returning
// device's connect and first send in two round trips), the ticket of the
// previous command's connection must survive the process. It is kept in
// the profile's keys bucket (sealed with the other secrets when the
// profile is encrypted: the ticket's resumption secret is as sensitive as
// a session key). One entry per server name.

// ticketPrefix names the keys-bucket entries of tickets (+ TLS cache key).
const ticketPrefix = "tls-ticket/"

// ticketEarlyMaxAge mirrors the server's EarlyDataMaxAge
// (homeserver/transport): an older ticket still resumes the TLS session
// but is not offered for 0-RTT, which the server would refuse.
const ticketEarlyMaxAge = 12 * time.Hour

// maxTicketRecord bounds a stored ticket record (a Go server's tickets are
// a few hundred bytes; certificates of the chain are not stored).
const maxTicketRecord = 16 << 10

// ticketCache is a tls.ClientSessionCache kept in the profile store.
//
// quic-go calls Get and Put on a connection's own goroutine, in the middle
// of its handshake: they must not wait for the profile store, whose
// transactions another process of the same profile may hold and whose
// writes fsync. So the profile's tickets are read once, when the cache is
// made, and Put writes them on a goroutine of its own; Client.Close waits
// a moment for that write so that the next command finds the ticket.
type ticketCache struct {
	st  *store.Store
	now func() time.Time

	mu      sync.Mutex
	mem     map[string]*tls.ClientSessionState
	pending map[string][]byte // records to write; nil: delete
	writing bool
	idle    *sync.Cond // signalled when nothing is pending
}

var _ tls.ClientSessionCache = (*ticketCache)(nil)

// TLSSessionCache returns the profile's cache of TLS session tickets, for
// client/transport.DialOptions.SessionCache (native QUIC, 0-RTT).
func (c *Client) TLSSessionCache() tls.ClientSessionCache {
	c.ticketsOnce.Do(func() { c.tickets = newTicketCache(c.st, c.cfg.Now) })
	return c.tickets
}

// newTicketCache loads the tickets stored in st; one that cannot be read
// is no ticket (the next connection makes a full handshake).
func newTicketCache(st *store.Store, now func() time.Time) *ticketCache {
	tc := &ticketCache{st: st, now: now, mem: map[string]*tls.ClientSessionState{}, pending: map[string][]byte{}}
	tc.idle = sync.NewCond(&tc.mu)
	st.View(func(tx *store.Tx) error {
		for _, name := range tx.KeyNames(ticketPrefix) {
			rec, err := tx.Key(name)
			if err != nil {
				continue
			}
			if cs, err := decodeTicket(rec, now()); err == nil {
				tc.mem[name[len(ticketPrefix):]] = cs
			}
		}
		return nil
	})
	return tc
}

func (tc *ticketCache) Get(key string) (*tls.ClientSessionState, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	cs := tc.mem[key]
	return cs, cs != nil
}

func (tc *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	var rec []byte
	if cs != nil {
		var err error
		if rec, err = encodeTicket(cs, tc.now()); err != nil {
			return
		}
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.mem[key] = cs
	tc.pending[key] = rec
	if !tc.writing {
		tc.writing = true
		go tc.write()
	}
}

// write stores the pending records until none is left. A ticket that
// cannot be stored costs the next process its 0-RTT, nothing else.
func (tc *ticketCache) write() {
	tc.mu.Lock()
	for len(tc.pending) > 0 {
		batch := tc.pending
		tc.pending = map[string][]byte{}
		tc.mu.Unlock()
		tc.st.Update(func(tx *store.Tx) error {
			for key, rec := range batch {
				if rec == nil {
					tx.DeleteKey(ticketPrefix + key)
				} else if err := tx.PutKey(ticketPrefix+key, rec); err != nil {
					return err
				}
			}
			return nil
		})
		tc.mu.Lock()
	}
	tc.writing = false
	tc.idle.Broadcast()
	tc.mu.Unlock()
}

// flush waits until the pending tickets are stored, at most d.
func (tc *ticketCache) flush(d time.Duration) {
	done := make(chan struct{})
	go func() {
		tc.mu.Lock()
		for tc.writing {
			tc.idle.Wait()
		}
		tc.mu.Unlock()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// A ticket record: "HT1", the time it was stored (8 bytes, Unix ms, big
// endian), the ticket's length (uvarint), the ticket, and the session
// state (tls.SessionState.Bytes).
const ticketMagic = "HT1"

func encodeTicket(cs *tls.ClientSessionState, now time.Time) ([]byte, error) {
	ticket, state, err := cs.ResumptionState()
	if err != nil || state == nil {
		return nil, fmt.Errorf("client: ticket: no resumption state: %v", err)
	}
	sb, err := state.Bytes()
	if err != nil {
		return nil, fmt.Errorf("client: ticket: %w", err)
	}
	b := make([]byte, 0, len(ticketMagic)+8+binary.MaxVarintLen64+len(ticket)+len(sb))
	b = append(b, ticketMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMilli()))
	b = binary.AppendUvarint(b, uint64(len(ticket)))
	b = append(b, ticket...)
	b = append(b, sb...)
	if len(b) > maxTicketRecord {
		return nil, errors.New("client: ticket record too large")
	}
	return b, nil
}

// decodeTicket parses a ticket record; one stored more than
// ticketEarlyMaxAge ago (or in the future) is not offered for 0-RTT.
func decodeTicket(b []byte, now time.Time) (*tls.ClientSessionState, error) {
	const op = "client: ticket record"
	if len(b) > maxTicketRecord || len(b) < len(ticketMagic)+8+1 || string(b[:len(ticketMagic)]) != ticketMagic {
		return nil, errors.New(op + ": not a ticket record")
	}
	b = b[len(ticketMagic):]
	storedMs := binary.BigEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > uint64(len(b)-k) {
		return nil, errors.New(op + ": bad ticket length")
	}
	ticket := b[k : k+int(n)]
	state, err := tls.ParseSessionState(b[k+int(n):])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if storedMs > 1<<62 {
		return nil, errors.New(op + ": bad time")
	}
	stored := time.UnixMilli(int64(storedMs))
	if now.Sub(stored) > ticketEarlyMaxAge || now.Before(stored) {
		state.EarlyData = false
	}
	cs, err := tls.NewResumptionState(append([]byte(nil), ticket...), state)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return cs, nil
}
