package main

import (
	"fmt"
	"log/slog"
	"os"

	"hearth/cmd/hearth/internal/impair"
	"hearth/cmd/hearth/internal/loadgen"
)

// benchVia is the impairment relay a bench run puts in front of its
// target (--via SPEC): the fleet dials the relay, which forwards to the
// server on loopback with the spec's loss, delay, blackouts… applied.
type benchVia struct {
	spec     string
	upstream string
	rebinds  bool // the spec changes the client's port (rebind=)
	udp      *impair.UDP
	tcp      *impair.TCP
}

// startVia starts the relay pair for spec in front of t and points t at
// it. The server must listen on loopback (the relay refuses anything else).
func startVia(spec string, t *benchTarget) (*benchVia, error) {
	udpCfg, tcpCfg, err := impair.ParseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("--via: %w", err)
	}
	u, l, err := impair.ListenPair("127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("--via: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v := &benchVia{spec: spec, upstream: t.server, rebinds: udpCfg.Rebind > 0}
	if v.udp, err = impair.NewUDP(u, t.server, udpCfg, log); err != nil {
		u.Close()
		l.Close()
		return nil, fmt.Errorf("--via: %w", err)
	}
	if v.tcp, err = impair.NewTCP(l, t.server, tcpCfg, log); err != nil {
		v.udp.Close()
		l.Close()
		return nil, fmt.Errorf("--via: %w", err)
	}
	t.server = l.Addr().String()
	return v, nil
}

// report adds the relay's spec and counters to rep.
func (v *benchVia) report(rep *loadgen.Report) {
	rep.Params["via"] = v.spec
	rep.Params["via_upstream"] = v.upstream
	u, c := v.udp.Stats(), v.tcp.Stats()
	rep.Params["via_flows"], rep.Params["via_rebinds"], rep.Params["via_tcp_connections"] = u.Flows, u.Rebinds, c.Flows
	rep.Notes = append(rep.Notes, fmt.Sprintf("via relay: UDP up %d datagrams (%d lost, %d blackholed), down %d (%d lost, %d blackholed), %d flows, %d rebinds; %d TCP connections",
		u.Up.PacketsIn, u.Up.Dropped, u.Up.Blackholed, u.Down.PacketsIn, u.Down.Dropped, u.Down.Blackholed, u.Flows, u.Rebinds, c.Flows))
}

func (v *benchVia) close() {
	v.udp.Close()
	v.tcp.Close()
}
