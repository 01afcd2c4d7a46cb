package media

import (
	"bytes"
	"compress/zlib"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"slices"
	"testing"
)

type katFile struct {
	TestGroups []struct {
		AEAD  string `json:"aead"`
		SHA   string `json:"sha"`
		Tests []struct {
			TcID      int      `json:"tcId"`
			Comment   string   `json:"comment"`
			Key       string   `json:"key"`
			Ctx       string   `json:"ctx"`
			CT        string   `json:"ct"`
			AEADKey   string   `json:"aeadKey"`
			BaseNonce string   `json:"baseNonce"`
			MsgLength int      `json:"msgLength"`
			MsgSha512 string   `json:"msgSha512"`
			Result    string   `json:"result"`
			Flags     []string `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWycheproofVectors decrypts every Cobblestone-256 vector of
// Wycheproof (testdata/README.md): valid ones give the message (and
// re-encrypt to the same bytes with their salt), invalid ones are refused,
// header failures before any output, partial plaintexts no further than
// the valid prefix.
func TestWycheproofVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/wycheproof_c2sp_chunked_encryption_aes_256_gcm_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var f katFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.TestGroups {
		if g.AEAD != aeadName || g.SHA != "SHA-512" {
			t.Fatalf("unexpected group %s/%s", g.AEAD, g.SHA)
		}
		for _, tc := range g.Tests {
			n++
			zr, err := zlib.NewReader(bytes.NewReader(unhex(t, tc.CT)))
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			ct, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			ctx := string(unhex(t, tc.Ctx))
			k, kerr := KeyFromBytes(unhex(t, tc.Key))
			if kerr != nil {
				if tc.Result != "invalid" || !slices.Contains(tc.Flags, "InvalidKeySize") {
					t.Fatalf("tc %d (%s): key refused: %v", tc.TcID, tc.Comment, kerr)
				}
				continue
			}
			if tc.AEADKey != "" && len(ct) >= saltSize {
				m, err := derive(k, ct[:saltSize], ctx)
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(m.base[:]) != tc.BaseNonce {
					t.Errorf("tc %d: base nonce %x, want %s", tc.TcID, m.base, tc.BaseNonce)
				}
			}
			var out bytes.Buffer
			got, err := decrypt(&out, bytes.NewReader(ct), k, ctx)
			sum := sha512.Sum512(out.Bytes())
			switch {
			case tc.Result == "valid":
				if err != nil || got != int64(tc.MsgLength) || hex.EncodeToString(sum[:]) != tc.MsgSha512 {
					t.Errorf("tc %d (%s): %v, %d bytes", tc.TcID, tc.Comment, err, got)
					continue
				}
				var again bytes.Buffer
				if _, err := encrypt(&again, bytes.NewReader(out.Bytes()), k, bytes.NewReader(ct[:saltSize]), ctx); err != nil || !bytes.Equal(again.Bytes(), ct) {
					t.Errorf("tc %d (%s): re-encryption differs (%v)", tc.TcID, tc.Comment, err)
				}
			case err == nil:
				t.Errorf("tc %d (%s): invalid ciphertext accepted", tc.TcID, tc.Comment)
			case slices.Contains(tc.Flags, "HeaderFailure") && out.Len() != 0:
				t.Errorf("tc %d (%s): %d bytes written before a header failure", tc.TcID, tc.Comment, out.Len())
			case slices.Contains(tc.Flags, "PartialPlaintext") &&
				(out.Len() > tc.MsgLength || (out.Len() == tc.MsgLength && hex.EncodeToString(sum[:]) != tc.MsgSha512)):
				t.Errorf("tc %d (%s): wrote %d bytes, the valid prefix is %d", tc.TcID, tc.Comment, out.Len(), tc.MsgLength)
			}
		}
	}
	if n < 35 {
		t.Fatalf("only %d vectors", n)
	}
}
