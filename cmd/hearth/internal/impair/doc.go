// Package impair is a userspace relay that makes a loopback link behave like
// a poor network, for tests of the real binary and for benchmarks: these
// machines have no kernel netem.
//
// A relay listens on a loopback address and forwards to one upstream
// loopback address (the homeserver). Clients dial the relay instead of the
// server; TLS stays end to end because the relay only moves bytes, and the
// server's certificate names 127.0.0.1 whatever the port.
//
// UDP (QUIC): [NewUDP] gives each client source address its own upstream
// socket, so the server sees one peer per client, as behind a NAT. Each
// datagram, per direction, is subject to Config: blackout (dropped while a
// blackout window is open), Loss (dropped), Delay and Jitter (one-way: a
// round trip costs 2×Delay), Reorder (held back so later datagrams overtake
// it), Duplicate (sent twice) and RateBytesPerSec (serialised at that rate).
// With Rebind the relay moves every client to a fresh upstream socket (a new
// source port) each period, as a NAT rebinding would: datagrams the server
// sends to the old port are lost, and the server sees the client's address
// change, which QUIC connection migration must cope with.
//
// TCP (the WebSocket fallback): [NewTCP] relays each accepted connection
// to its own upstream connection. TCP cannot lose, duplicate or reorder
// bytes, so on TCP those impairments show up as what the kernel would make
// of them: a "lost" chunk and everything after it is held back by a
// retransmission timeout (200 ms + 3×Delay), data arriving during a
// blackout is held until the blackout ends, Delay, Jitter (order kept) and
// RateBytesPerSec apply, Duplicate, Reorder and Rebind do not.
//
// Decisions (loss, reorder, duplication, jitter) come from a PCG generator
// seeded with Config.Seed, one per direction, drawn in a fixed order per
// packet: the same packets in the same order get the same fate. Blackouts
// follow the clock: from the relay's start (or the last [UDP.Set]) the link
// is up for Every−For, then down for For, and so on.
//
// Memory is bounded: at most MaxQueue datagrams wait per direction (more
// are dropped and counted as Overflow), at most MaxFlows clients per UDP
// relay (a client silent for FlowIdle loses its upstream socket, as a NAT
// mapping expires; it gets a new one, with a new port, when it sends
// again), and a TCP direction holds at most tcpQueue chunks of 16 KiB before
// it stops reading (back-pressure, as a TCP window would).
//
// Only loopback addresses are accepted, for the listener and the upstream:
// the relay exists for tests on one machine and must never become an open
// proxy.
package impair
