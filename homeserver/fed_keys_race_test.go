package homeserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
)

// TestKeyRefreshSharedByConcurrentRequests: right after a.example rotates
// its key, several requests signed with the new key reach b.example at
// once; the first starts a key refresh and the others wait for it, so all
// are accepted (none is refused as "refreshed just now").
func TestKeyRefreshSharedByConcurrentRequests(t *testing.T) {
	ctx := context.Background()
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	if _, err := a.s.FederationKeyRotate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	key := a.s.fed.Peers.SigningKey()
	cl := &federation.Client{Peers: fixedPeer{b}}
	defer cl.Close()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			st, err := federation.SignTransaction(key, &fedwire.Transaction{Origin: a.domain, Destination: b.domain,
				TxnId: fmt.Sprintf("race-%d", i), OriginTimeMs: time.Now().UnixMilli()})
			if err != nil {
				errs <- err
				return
			}
			<-start
			res, err := cl.Send(ctx, b.domain, st)
			if err == nil && res.GetCode() != fedwire.Code_CODE_OK {
				err = fmt.Errorf("transaction %d: %v %s", i, res.GetCode(), res.GetMessage())
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
