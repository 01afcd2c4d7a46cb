package message

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

type messagesVector map[string]hexBytes

// roundTrip decodes b with dec and checks that enc re-encodes it exactly.
type roundTrip struct {
	decode func(b []byte) ([]byte, error) // returns the re-encoding
}

func mlsMessageOf(wf WireFormat) roundTrip {
	return roundTrip{func(b []byte) ([]byte, error) {
		var m MLSMessage
		if err := m.Unmarshal(b); err != nil {
			return nil, err
		}
		if m.WireFormat != wf {
			return nil, fmt.Errorf("wire format %d, want %d", m.WireFormat, wf)
		}
		return m.Marshal(), nil
	}}
}

func proposalBodyOf(t ProposalType) roundTrip {
	return roundTrip{func(b []byte) ([]byte, error) {
		p, err := UnmarshalProposalBody(t, b)
		if err != nil {
			return nil, err
		}
		return p.MarshalBody(), nil
	}}
}

func structOf[T any, PT interface {
	*T
	Unmarshal([]byte) error
	Marshal() []byte
}]() roundTrip {
	return roundTrip{func(b []byte) ([]byte, error) {
		v := PT(new(T))
		if err := v.Unmarshal(b); err != nil {
			return nil, err
		}
		return v.Marshal(), nil
	}}
}

var messageFields = map[string]roundTrip{
	"mls_welcome":                       mlsMessageOf(WireWelcome),
	"mls_group_info":                    mlsMessageOf(WireGroupInfo),
	"mls_key_package":                   mlsMessageOf(WireKeyPackage),
	"ratchet_tree":                      structOf[RatchetTreeNodes](),
	"group_secrets":                     structOf[GroupSecrets](),
	"add_proposal":                      proposalBodyOf(ProposalAdd),
	"update_proposal":                   proposalBodyOf(ProposalUpdate),
	"remove_proposal":                   proposalBodyOf(ProposalRemove),
	"pre_shared_key_proposal":           proposalBodyOf(ProposalPSK),
	"re_init_proposal":                  proposalBodyOf(ProposalReInit),
	"external_init_proposal":            proposalBodyOf(ProposalExternalInit),
	"group_context_extensions_proposal": proposalBodyOf(ProposalGroupContextExtensions),
	"commit":                            structOf[Commit](),
	"public_message_application":        mlsMessageOf(WirePublicMessage),
	"public_message_proposal":           mlsMessageOf(WirePublicMessage),
	"public_message_commit":             mlsMessageOf(WirePublicMessage),
	"private_message":                   mlsMessageOf(WirePrivateMessage),
}

func TestMessagesVectors(t *testing.T) {
	var vs []messagesVector
	loadVectors(t, "messages.json", &vs)
	c := newTally("messages.json")
	for i, v := range vs {
		c.Run(t, fmt.Sprintf("case%d", i), 0, func(t *testing.T) {
			if len(v) != len(messageFields) {
				t.Errorf("vector has %d fields, want %d", len(v), len(messageFields))
			}
			for name, b := range v {
				rt, ok := messageFields[name]
				if !ok {
					t.Errorf("unknown field %q", name)
					continue
				}
				got, err := rt.decode(b)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if !bytes.Equal(got, b) {
					t.Errorf("%s: re-encoding differs", name)
				}
				// Every strict prefix must fail to decode, never panic.
				if len(b) > 0 {
					if _, err := rt.decode(b[:len(b)-1]); err == nil {
						t.Errorf("%s: truncated input decoded", name)
					}
				}
				if _, err := rt.decode(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: trailing byte: err = %v", name, err)
				}
			}
		})
	}
	c.Report(t)
}

func TestDecodeRejectsBadValues(t *testing.T) {
	var vs []messagesVector
	loadVectors(t, "messages.json", &vs)
	v := vs[0]
	mutate := func(b []byte, i int, val byte) []byte {
		c := bytes.Clone(b)
		c[i] = val
		return c
	}
	var m MLSMessage
	cases := []struct {
		name string
		b    []byte
		dec  func([]byte) error
	}{
		{"version 2", mutate(v["mls_key_package"], 1, 2), m.Unmarshal},
		{"wire format 6", mutate(v["mls_key_package"], 3, 6), m.Unmarshal},
		{"wire format 0", mutate(v["private_message"], 3, 0), m.Unmarshal},
		{"commit path flag 2", func() []byte {
			var c Commit
			if err := c.Unmarshal(v["commit"]); err != nil {
				return nil
			}
			w := codec.NewWriter(nil)
			codec.WriteList(w, c.Proposals, func(w *codec.Writer, p ProposalOrRef) { p.Encode(w) })
			return mutate(v["commit"], len(w.Bytes()), 2)
		}(), new(Commit).Unmarshal},
		{"node type 3", func() []byte {
			b := bytes.Clone(v["ratchet_tree"])
			// ratchet_tree<V> header, then optional flag 1, then node type.
			hdr := 1
			if b[0]>>6 == 1 {
				hdr = 2
			} else if b[0]>>6 == 2 {
				hdr = 4
			}
			b[hdr+1] = 3
			return b
		}(), new(RatchetTreeNodes).Unmarshal},
		{"sender type 5", func() []byte {
			// MLSMessage header (4) + group_id<V> + epoch(8) then sender type.
			b := bytes.Clone(v["public_message_application"])
			gid := int(b[4])
			b[4+1+gid+8] = 5
			return b
		}(), m.Unmarshal},
		{"duplicate extension", Extensions{{Type: 7, Data: []byte{1}}, {Type: 7}}.marshalled(), new(extList).Unmarshal},
		{"bad external_pub", Extensions{{Type: ExtExternalPub, Data: []byte{5, 1}}}.marshalled(), new(extList).Unmarshal},
		{"remove too short", []byte{1, 2, 3}, func(b []byte) error { _, err := UnmarshalProposalBody(ProposalRemove, b); return err }},
		{"unknown proposal type", []byte{0, 9, 0, 0, 0, 1}, new(Proposal).Unmarshal},
	}
	for _, tc := range cases {
		if tc.b == nil {
			t.Errorf("%s: could not build input", tc.name)
			continue
		}
		if err := tc.dec(tc.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
}

// extList decodes a bare extensions list for tests.
type extList struct{ e Extensions }

func (l *extList) Unmarshal(b []byte) error { return decode(&l.e, b, "extensions") }

func (e Extensions) marshalled() []byte { return encode(e) }

// TestLeafSizeHint: the size writers are pre-sized with is at least the
// leaf's encoding, for key-package, commit and extension-carrying leaves
// on both suites.
func TestLeafSizeHint(t *testing.T) {
	for _, id := range []suite.ID{1, 0xF001} {
		s, _ := suite.Lookup(id)
		signer, err := s.GenerateSignatureKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		kp, _, err := NewKeyPackage(s, rand.Reader, signer, BasicCredential("someone@example.org/DEVICE1"), KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		leaf := kp.LeafNode
		commit := leaf
		commit.Source, commit.ParentHash = SourceCommit, make([]byte, s.Nh())
		commit.Extensions = Extensions{{Type: 0xff00, Data: make([]byte, 300)}}
		for _, l := range []*LeafNode{&leaf, &commit} {
			if n, hint := len(l.Marshal()), l.SizeHint(); hint < n {
				t.Fatalf("suite %v: size hint %d < encoding %d", id, hint, n)
			}
			if n, hint := len(l.TBS([]byte("group"), 3)), l.SizeHint()+len("group")+8; hint < n {
				t.Fatalf("suite %v: TBS size hint %d < %d", id, hint, n)
			}
		}
	}
}
