package impair

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the impairment applied to each direction separately.
type Config struct {
	Loss      float64       // probability that a datagram is dropped
	Duplicate float64       // probability that a datagram is sent twice
	Reorder   float64       // probability that a datagram is held back by ReorderGap, so that later ones overtake it
	Delay     time.Duration // one-way delay: the round trip through the relay costs 2×Delay
	Jitter    time.Duration // each datagram's delay varies uniformly within ±Jitter; order is kept
	Blackout  Blackout      // periodic windows in which nothing passes
	Rebind    time.Duration // UDP: move every client to a new upstream port this often; 0: never
	// RateBytesPerSec serialises each direction at this rate; 0: unlimited.
	RateBytesPerSec int64
	Seed            int64 // seeds the loss, reorder, duplication and jitter decisions
	MaxQueue        int   // datagrams waiting per direction; 0: DefaultMaxQueue
	MaxFlows        int   // UDP clients at once; 0: DefaultMaxFlows
	// FlowIdle: a UDP client that sent nothing for this long loses its
	// upstream socket, as a NAT mapping expires; 0: DefaultFlowIdle.
	FlowIdle time.Duration
}

// Blackout is a periodic outage: up for Every−For, then down for For.
type Blackout struct {
	Every, For time.Duration
}

// Defaults for the bounds of Config.
const (
	DefaultMaxQueue = 1024
	DefaultMaxFlows = 256
	DefaultFlowIdle = 30 * time.Second // beyond the client's 20 s QUIC idle timeout and 6 s keep-alive
	// ReorderGap is how much longer than its own delay a reordered datagram waits.
	ReorderGap = 20 * time.Millisecond
	// tcpRTO is the least a lost TCP segment costs (Linux's minimum RTO).
	tcpRTO = 200 * time.Millisecond
)

func (c Config) validate() error {
	for _, p := range []float64{c.Loss, c.Duplicate, c.Reorder} {
		if p < 0 || p > 1 {
			return fmt.Errorf("impair: probability %v outside [0, 1]", p)
		}
	}
	if c.Delay < 0 || c.Jitter < 0 || c.Rebind < 0 || c.RateBytesPerSec < 0 || c.MaxQueue < 0 || c.MaxFlows < 0 || c.FlowIdle < 0 {
		return errors.New("impair: negative duration, rate or bound")
	}
	if b := c.Blackout; b.For < 0 || b.Every < 0 || (b.For > 0 && b.For > b.Every) {
		return fmt.Errorf("impair: blackout of %v every %v", b.For, b.Every)
	}
	return nil
}

// down reports whether a blackout window is open at elapsed since the start.
func (b Blackout) down(elapsed time.Duration) bool {
	if b.For <= 0 || b.Every <= 0 {
		return false
	}
	return elapsed%b.Every >= b.Every-b.For
}

// upAt is the end of the blackout open at elapsed (elapsed if none is).
func (b Blackout) upAt(elapsed time.Duration) time.Duration {
	if !b.down(elapsed) {
		return elapsed
	}
	return (elapsed/b.Every + 1) * b.Every
}

// loopback checks that addr is a loopback IP address with a port.
func loopback(addr net.Addr) error {
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		return fmt.Errorf("impair: %v is not an IP address", addr)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("impair: %v is not a loopback address (127.0.0.0/8 or ::1)", addr)
	}
	return nil
}
