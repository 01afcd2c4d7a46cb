package schedule

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"hearth/keys/mls/suite"
)

type secretTreeCase struct {
	CipherSuite      uint16   `json:"cipher_suite"`
	EncryptionSecret hexBytes `json:"encryption_secret"`
	SenderData       struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	Leaves [][]struct {
		Generation       uint32   `json:"generation"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
	} `json:"leaves"`
}

// TestSecretTreeVectors runs every case of secret-tree.json: the sender
// data key and nonce, and for every leaf every listed generation of both
// ratchets, received in order (so later generations are forward jumps).
// It also checks that each consumed generation cannot be opened again.
func TestSecretTreeVectors(t *testing.T) {
	const file = "secret-tree.json"
	var cases []secretTreeCase
	loadJSON(t, file, &cases)
	tl, implemented := tally{}, map[uint16]bool{}
	for ci, c := range cases {
		s := lookupOrSkip(t, file, suiteID(c.CipherSuite))
		if s == nil {
			continue
		}
		implemented[c.CipherSuite] = true
		id := s.ID()
		sd := c.SenderData
		key, nonce, err := SenderDataKeyNonce(s, sd.SenderDataSecret, sd.Ciphertext)
		if err != nil {
			t.Fatal(err)
		}
		tl.check(t, id, fmt.Sprintf("case %d sender data key", ci), key, sd.Key)
		tl.check(t, id, fmt.Sprintf("case %d sender data nonce", ci), nonce, sd.Nonce)
		tree, err := NewSecretTree(s, c.EncryptionSecret, uint32(len(c.Leaves)), DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		for leaf, gens := range c.Leaves {
			for _, g := range gens {
				for _, rt := range []struct {
					typ        RatchetType
					key, nonce []byte
				}{{Handshake, g.HandshakeKey, g.HandshakeNonce}, {Application, g.ApplicationKey, g.ApplicationNonce}} {
					what := fmt.Sprintf("case %d leaf %d %s gen %d", ci, leaf, rt.typ, g.Generation)
					var got KeyNonce
					err := tree.Open(uint32(leaf), rt.typ, g.Generation, func(kn KeyNonce) error {
						got = KeyNonce{kn.Generation, bytes.Clone(kn.Key), bytes.Clone(kn.Nonce)}
						return nil
					})
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					tl.check(t, id, what+" key", got.Key, rt.key)
					tl.check(t, id, what+" nonce", got.Nonce, rt.nonce)
					again := tree.Open(uint32(leaf), rt.typ, g.Generation, func(KeyNonce) error { return nil })
					if !errors.Is(again, ErrTooOld) {
						t.Errorf("%s: reopened: %v", what, again)
					}
				}
			}
		}
	}
	tl.log(t, file, len(implemented))
}

func suiteID(v uint16) suite.ID { return suite.ID(v) }
