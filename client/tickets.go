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
type ticketCache struct {
	st  *store.Store
	now func() time.Time

	mu  sync.Mutex
	mem map[string]*tls.ClientSessionState
}

var _ tls.ClientSessionCache = (*ticketCache)(nil)

// TLSSessionCache returns the profile's cache of TLS session tickets, for
// client/transport.DialOptions.SessionCache (native QUIC, 0-RTT).
func (c *Client) TLSSessionCache() tls.ClientSessionCache {
	c.ticketsOnce.Do(func() {
		c.tickets = &ticketCache{st: c.st, now: c.cfg.Now, mem: map[string]*tls.ClientSessionState{}}
	})
	return c.tickets
}

func (tc *ticketCache) Get(key string) (*tls.ClientSessionState, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if cs, ok := tc.mem[key]; ok {
		return cs, cs != nil
	}
	var rec []byte
	err := tc.st.View(func(tx *store.Tx) error {
		b, err := tx.Key(ticketPrefix + key)
		rec = append([]byte(nil), b...) // b lives only as long as the transaction
		return err
	})
	if err != nil {
		return nil, false // none stored (or unreadable): a full handshake
	}
	cs, err := decodeTicket(rec, tc.now())
	if err != nil {
		return nil, false
	}
	tc.mem[key] = cs
	return cs, true
}

func (tc *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.mem[key] = cs
	if cs == nil {
		tc.st.Update(func(tx *store.Tx) error { return tx.DeleteKey(ticketPrefix + key) })
		return
	}
	rec, err := encodeTicket(cs, tc.now())
	if err != nil {
		return
	}
	// A ticket that cannot be stored costs the next process its 0-RTT,
	// nothing else.
	tc.st.Update(func(tx *store.Tx) error { return tx.PutKey(ticketPrefix+key, rec) })
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
