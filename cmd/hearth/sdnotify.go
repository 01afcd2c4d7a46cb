package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sdNotify tells the service manager about the server's state through the
// sd_notify protocol: one datagram of newline-separated VAR=VALUE lines
// sent to the unixgram socket named by $NOTIFY_SOCKET (a leading "@" names
// an abstract socket). Without $NOTIFY_SOCKET (not run by systemd with
// Type=notify) it does nothing. States used: READY=1 once serving,
// RELOADING=1 (with MONOTONIC_USEC) while a SIGHUP reload runs, STOPPING=1
// when shutting down, STATUS= for `systemctl status`.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	} else if path[0] != '/' {
		return fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or @abstract name", path)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants
// it in MONOTONIC_USEC.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
