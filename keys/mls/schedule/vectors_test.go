package schedule

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// lookupOrSkip returns the suite, or nil after logging that the vector
// case is skipped because the suite is not implemented.
func lookupOrSkip(t *testing.T, file string, id suite.ID) *suite.Suite {
	t.Helper()
	s, err := suite.Lookup(id)
	if errors.Is(err, suite.ErrUnsupported) {
		if !skipLogged[file+id.String()] {
			skipLogged[file+id.String()] = true
			t.Logf("%s: skipping suite %d: not implemented", file, id)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// skipLogged keeps the skip notice to one line per file and suite.
var skipLogged = map[string]bool{}

// tally counts checks per suite for the vector logs.
type tally map[suite.ID]*[2]int

func (tl tally) check(t *testing.T, id suite.ID, what string, got, want []byte) {
	t.Helper()
	if tl[id] == nil {
		tl[id] = new([2]int)
	}
	tl[id][0]++
	if !bytes.Equal(got, want) {
		t.Errorf("suite %d %s: got %x, want %x", id, what, got, want)
		return
	}
	tl[id][1]++
}

func (tl tally) log(t *testing.T, file string, implemented int) {
	t.Helper()
	for _, id := range suite.Supported() {
		if c := tl[id]; c != nil {
			t.Logf("%s suite %d: %d checks ran, %d passed", file, id, c[0], c[1])
		}
	}
	if len(tl) < implemented || implemented < 5 {
		t.Fatalf("%s: only %d suites checked", file, len(tl))
	}
}

// encodeGroupContext encodes GroupContext (RFC 9420 §8.1) with empty
// extensions, as the key-schedule vector prescribes.
func encodeGroupContext(id suite.ID, groupID []byte, epoch uint64, treeHash, cth []byte) []byte {
	w := codec.NewWriter(nil)
	w.Uint16(1) // ProtocolVersion mls10
	w.Uint16(uint16(id))
	w.Opaque(groupID)
	w.Uint64(epoch)
	w.Opaque(treeHash)
	w.Opaque(cth)
	w.Vector(func(*codec.Writer) {})
	return w.Bytes()
}

type keyScheduleCase struct {
	CipherSuite       suite.ID `json:"cipher_suite"`
	GroupID           hexBytes `json:"group_id"`
	InitialInitSecret hexBytes `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		ExporterSecret          hexBytes `json:"exporter_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ExternalSecret          hexBytes `json:"external_secret"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
		ResumptionPSK           hexBytes `json:"resumption_psk"`
		ExternalPub             hexBytes `json:"external_pub"`
		Exporter                struct {
			// The exporter label is a string; the generator happens to
			// use a hex-looking one, and it is used as that text.
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

// TestKeyScheduleVectors runs every epoch of every case of
// key-schedule.json and checks every listed output.
func TestKeyScheduleVectors(t *testing.T) {
	const file = "key-schedule.json"
	var cases []keyScheduleCase
	loadJSON(t, file, &cases)
	tl, implemented := tally{}, 0
	for _, c := range cases {
		s := lookupOrSkip(t, file, c.CipherSuite)
		if s == nil {
			continue
		}
		implemented++
		initSecret := []byte(c.InitialInitSecret)
		for i, ep := range c.Epochs {
			at := func(what string) string { return fmt.Sprintf("epoch %d %s", i, what) }
			gc := encodeGroupContext(c.CipherSuite, c.GroupID, uint64(i), ep.TreeHash, ep.ConfirmedTranscriptHash)
			tl.check(t, c.CipherSuite, at("group_context"), gc, ep.GroupContext)
			e, err := NewEpoch(s, initSecret, ep.CommitSecret, ep.PSKSecret, ep.GroupContext)
			if err != nil {
				t.Fatalf("suite %d %s: %v", c.CipherSuite, at("NewEpoch"), err)
			}
			for _, f := range []struct {
				name      string
				got, want []byte
			}{
				{"joiner_secret", e.JoinerSecret, ep.JoinerSecret},
				{"welcome_secret", e.WelcomeSecret, ep.WelcomeSecret},
				{"init_secret", e.InitSecret, ep.InitSecret},
				{"sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret},
				{"encryption_secret", e.EncryptionSecret, ep.EncryptionSecret},
				{"exporter_secret", e.ExporterSecret, ep.ExporterSecret},
				{"epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator},
				{"external_secret", e.ExternalSecret, ep.ExternalSecret},
				{"confirmation_key", e.ConfirmationKey, ep.ConfirmationKey},
				{"membership_key", e.MembershipKey, ep.MembershipKey},
				{"resumption_psk", e.ResumptionPSK, ep.ResumptionPSK},
			} {
				tl.check(t, c.CipherSuite, at(f.name), f.got, f.want)
			}
			_, pub, err := e.ExternalKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			tl.check(t, c.CipherSuite, at("external_pub"), pub, ep.ExternalPub)
			x := ep.Exporter
			exp, err := e.Export(x.Label, x.Context, x.Length)
			if err != nil {
				t.Fatal(err)
			}
			tl.check(t, c.CipherSuite, at("exporter"), exp, x.Secret)
			// A joiner starting from joiner_secret reaches the same epoch.
			j, err := FromJoiner(s, ep.JoinerSecret, ep.PSKSecret, ep.GroupContext)
			if err != nil {
				t.Fatal(err)
			}
			tl.check(t, c.CipherSuite, at("joiner epoch_secret"), j.EpochSecret, e.EpochSecret)
			initSecret = e.InitSecret
		}
	}
	tl.log(t, file, implemented)
}

type pskCase struct {
	CipherSuite suite.ID `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

// TestPSKSecretVectors runs every case of psk_secret.json (external PSKs).
func TestPSKSecretVectors(t *testing.T) {
	const file = "psk_secret.json"
	var cases []pskCase
	loadJSON(t, file, &cases)
	tl, implemented := tally{}, map[suite.ID]bool{}
	for i, c := range cases {
		s := lookupOrSkip(t, file, c.CipherSuite)
		if s == nil {
			continue
		}
		implemented[c.CipherSuite] = true
		var psks []PSK
		for _, p := range c.PSKs {
			psks = append(psks, PSK{ID: ExternalPSKID(p.PSKID, p.PSKNonce), Secret: p.PSK})
		}
		got, err := PSKSecret(s, psks)
		if err != nil {
			t.Fatal(err)
		}
		tl.check(t, c.CipherSuite, fmt.Sprintf("case %d (%d psks)", i, len(psks)), got, c.PSKSecret)
	}
	tl.log(t, file, len(implemented))
}
