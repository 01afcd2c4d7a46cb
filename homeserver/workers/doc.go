// Package workers runs short-lived tasks on goroutines that outlive them
// for a moment, so that a task started right after another reuses its
// goroutine and the stack it grew.
//
// The homeserver starts a goroutine for each pass of a pusher, each run of
// a session's reply queue and each carried-on flush, and lets it end when
// there is nothing left to do, so that an idle session holds none. Under
// load that is thousands of goroutines a second, each starting with a
// small stack and growing it (a copy of the stack each time it doubles)
// on the way down to a QUIC stream write: 3–4 % of the server's CPU at
// 10,000 messages a second. A goroutine that stays parked for a short
// while after its task (Idle) takes the next one with its stack already
// grown; an idle server keeps none of them past that while.
package workers
