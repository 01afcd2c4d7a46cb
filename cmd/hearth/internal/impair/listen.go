package impair

import (
	"fmt"
	"net"
	"strconv"
)

// ListenPair opens a UDP socket and a TCP listener on the same loopback
// port, as a Hearth server listens (QUIC and HTTPS on one HOST:PORT), so
// that one relay address serves WebTransport and the WebSocket fallback.
// host is "127.0.0.1" or "::1"; the port is chosen by the system.
func ListenPair(host string) (*net.UDPConn, net.Listener, error) {
	var last error
	for range 20 {
		u, err := ListenUDP(net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return u, l, nil
		}
		u.Close()
		last = err
	}
	return nil, nil, fmt.Errorf("impair: no port free for UDP and TCP: %w", last)
}
