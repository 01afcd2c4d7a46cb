package transport

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// TestParseCertHashes: the hashes of /web/certificates.json, each 32
// bytes of hex; anything else in the list is skipped, a body that is not
// the JSON gives none (the browser then verifies as usual).
func TestParseCertHashes(t *testing.T) {
	h1, h2 := strings.Repeat("ab", 32), strings.Repeat("01", 32)
	for _, c := range []struct {
		body string
		want []string
	}{
		{`{"development_ca":true,"webtransport_hashes":["` + h1 + `"]}`, []string{h1}},
		{`{"webtransport_hashes":["` + h1 + `","zz","` + h2[:62] + `","` + h2 + `"]}`, []string{h1, h2}},
		{`{"development_ca":false,"webtransport_hashes":[]}`, nil},
		{`{"webtransport_hashes":"` + h1 + `"}`, nil},
		{`<html>not found</html>`, nil},
		{``, nil},
		{`{"webtransport_hashes":["` + strings.Repeat(h1+`","`, 6) + h1 + `"]}`, []string{h1, h1, h1, h1}},
	} {
		got := parseCertHashes([]byte(c.body))
		var hexes []string
		for _, h := range got {
			hexes = append(hexes, hex.EncodeToString(h))
		}
		if strings.Join(hexes, ",") != strings.Join(c.want, ",") {
			t.Errorf("parseCertHashes(%.60q) = %v, want %v", c.body, hexes, c.want)
		}
	}
}

// FuzzParseCertHashes: any body (the server's answer, or whatever a
// proxy put there) gives at most four 32-byte hashes, each one listed in
// the body, without panicking.
func FuzzParseCertHashes(f *testing.F) {
	f.Add([]byte(`{"development_ca":true,"webtransport_hashes":["` + strings.Repeat("ab", 32) + `"],"ca_page":"/web/ca.html"}`))
	f.Add([]byte(`{"webtransport_hashes":[]}`))
	f.Add([]byte(`{"webtransport_hashes":[1,null,"x"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := parseCertHashes(b)
		if len(got) > 4 {
			t.Fatalf("%d hashes", len(got))
		}
		if len(got) == 0 {
			return
		}
		var c certificates
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("hashes from a body that is not JSON: %v", err)
		}
		for _, h := range got {
			if len(h) != 32 {
				t.Fatalf("a hash of %d bytes", len(h))
			}
			found := false
			for _, s := range c.WebTransportHashes {
				if d, err := hex.DecodeString(s); err == nil && bytes.Equal(d, h) {
					found = true
				}
			}
			if !found {
				t.Fatalf("hash %x is not in the body", h)
			}
		}
	})
}
