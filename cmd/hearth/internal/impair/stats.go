package impair

import "sync/atomic"

// Stats are a relay's counters since it started.
type Stats struct {
	Up, Down DirStats // client → upstream, upstream → client
	Flows    int      // UDP clients (source addresses) seen; TCP connections accepted
	Live     int      // UDP clients with an upstream socket now; TCP connections open
	Rebinds  int      // UDP upstream sockets replaced by Rebind
}

// DirStats count one direction. PacketsOut can exceed PacketsIn by the
// duplicates; on TCP a packet is a read chunk.
type DirStats struct {
	PacketsIn, BytesIn   uint64
	PacketsOut, BytesOut uint64
	Dropped              uint64 // by Loss
	Blackholed           uint64 // during a blackout
	Overflow             uint64 // queue full, or a send that failed
	Duplicated           uint64
	Reordered            uint64
	Delayed              uint64 // TCP: chunks held back by a loss (RTO) or a blackout
}

type dirCounters struct {
	packetsIn, bytesIn, packetsOut, bytesOut                      atomic.Uint64
	dropped, blackholed, overflow, duplicated, reordered, delayed atomic.Uint64
}

func (c *dirCounters) in(n int)  { c.packetsIn.Add(1); c.bytesIn.Add(uint64(n)) }
func (c *dirCounters) out(n int) { c.packetsOut.Add(1); c.bytesOut.Add(uint64(n)) }

func (c *dirCounters) snapshot() DirStats {
	return DirStats{
		PacketsIn: c.packetsIn.Load(), BytesIn: c.bytesIn.Load(),
		PacketsOut: c.packetsOut.Load(), BytesOut: c.bytesOut.Load(),
		Dropped: c.dropped.Load(), Blackholed: c.blackholed.Load(), Overflow: c.overflow.Load(),
		Duplicated: c.duplicated.Load(), Reordered: c.reordered.Load(), Delayed: c.delayed.Load(),
	}
}
