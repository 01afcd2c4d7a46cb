package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/testutil"
)

// selfSigned returns a TLS certificate for name and its PEM.
func selfSigned(t *testing.T, name string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type onePeer struct{ p Peer }

func (o onePeer) Peer(context.Context, string) (Peer, error) { return o.p, nil }

// TestCancelledRequestKeepsConnection: a request whose caller gives up
// does not tear down the connection that other requests to the same
// server are using: a slow transaction in flight on it still gets its
// answer.
func TestCancelledRequestKeepsConnection(t *testing.T) {
	cert, caPEM := selfSigned(t, "b.example")
	release := make(chan struct{})
	var slowIn, hangIn atomic.Bool // the request reached its handler
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		slowIn.Store(true)
		<-release
		b, _ := marshalResult(&fedwire.TransactionResult{Code: fedwire.Code_CODE_OK, Message: "slow done"})
		w.Write(b)
	})
	mux.HandleFunc("POST /hang", func(w http.ResponseWriter, r *http.Request) {
		hangIn.Store(true)
		<-r.Context().Done()
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: mux, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close(); pc.Close() })

	c := &Client{Peers: onePeer{Peer{Domain: "b.example", Address: pc.LocalAddr().String(), CAPEM: caPEM}}, Timeout: 10 * time.Second}
	defer c.Close()
	slow := make(chan error, 1)
	var res fedwire.TransactionResult
	go func() {
		slow <- c.post(context.Background(), "b.example", "/slow", c.timeout(), MaxResultBytes, &fedwire.Transaction{}, &res)
	}()
	testutil.WaitFor(t, 10*time.Second, arrived(&slowIn, "the slow request"))
	ctx, cancel := context.WithCancel(context.Background())
	hung := make(chan error, 1)
	go func() {
		hung <- c.post(ctx, "b.example", "/hang", c.timeout(), MaxResultBytes, &fedwire.Transaction{}, &fedwire.TransactionResult{})
	}()
	testutil.WaitFor(t, 10*time.Second, arrived(&hangIn, "the request to cancel"))
	cancel()
	if err := <-hung; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	close(release)
	if err := <-slow; err != nil || res.GetMessage() != "slow done" {
		t.Fatalf("the request in flight beside a cancelled one: %v (%v)", err, res.GetMessage())
	}
}

// arrived is a WaitFor condition: the server's handler saw the request.
func arrived(in *atomic.Bool, what string) func() error {
	return func() error {
		if !in.Load() {
			return fmt.Errorf("%s has not reached the server", what)
		}
		return nil
	}
}

func marshalResult(r *fedwire.TransactionResult) ([]byte, error) { return proto.Marshal(r) }
