package pebbletest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS answers A queries for a fixed table of names over UDP and TCP (the
// same port) on loopback;
// other names get NXDOMAIN, other types an empty answer. It is what
// Pebble's -dnsserver points at.
type DNS struct {
	Addr  string
	hosts map[string][4]byte // lowercased FQDN -> IPv4
	pc    net.PacketConn
	ln    net.Listener
}

// StartDNS serves hosts (name -> IPv4) until the test ends.
func StartDNS(t testing.TB, hosts map[string]string) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatalf("pebbletest DNS: %v", err)
	}
	d := &DNS{Addr: pc.LocalAddr().String(), hosts: map[string][4]byte{}, pc: pc, ln: ln}
	for name, ip := range hosts {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			t.Fatalf("pebbletest DNS: %s -> %q: want a loopback IPv4 address", name, ip)
		}
		d.hosts[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = a.As4()
	}
	done, tcpDone := make(chan struct{}), make(chan struct{})
	go d.serve(done)
	go d.serveTCP(tcpDone)
	t.Cleanup(func() { pc.Close(); ln.Close(); <-done; <-tcpDone })
	return d
}

func (d *DNS) serve(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := d.answer(buf[:n]); ok {
			d.pc.WriteTo(resp, from)
		}
	}
}

// serveTCP answers queries framed with a two-byte length (RFC 1035
// 4.2.2), one connection at a time.
func (d *DNS) serveTCP(done chan struct{}) {
	defer close(done)
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		for {
			var n [2]byte
			if _, err := io.ReadFull(c, n[:]); err != nil {
				break
			}
			q := make([]byte, binary.BigEndian.Uint16(n[:]))
			if _, err := io.ReadFull(c, q); err != nil {
				break
			}
			resp, ok := d.answer(q)
			if !ok {
				break
			}
			if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
				break
			}
		}
		c.Close()
	}
}

// answer builds the response to one query; ok is false for what is not
// a well-formed single-question query (dropped).
func (d *DNS) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	question := qs[0]
	ip, known := d.hosts[strings.ToLower(question.Name.String())]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(question) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	if known && question.Type == dnsmessage.TypeA && question.Class == dnsmessage.ClassINET {
		if b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: ip}) != nil {
			return nil, false
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}
