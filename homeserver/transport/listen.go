package transport

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Listen opens the two sockets a Server needs on one port number: UDP for
// QUIC and TCP for HTTPS. With port 0 the UDP port is chosen by the system
// and TCP binds the same number, retrying with a new choice when that TCP
// port is taken. The caller owns and closes both.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: listen address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 20
	}
	for range tries {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("transport: listen UDP %s: %w", addr, err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if tries == 1 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("transport: listen TCP %s: %w", addr, err)
		}
	}
	return nil, nil, fmt.Errorf("transport: no port free for both UDP and TCP on %s", host)
}
