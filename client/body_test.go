package client

import "testing"

func TestBodyRoundTrip(t *testing.T) {
	for _, text := range []string{"hello", "", "ünïcødé \x00 \"quoted\"\n"} {
		b, err := encodeBody(text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBody(b)
		if err != nil || got != text {
			t.Errorf("round trip of %q = %q, %v", text, got, err)
		}
	}
	for _, bad := range []string{``, `{`, `{"v":2,"text":"x"}`, `{"text":"x"}`, `[]`} {
		if _, err := decodeBody([]byte(bad)); err == nil {
			t.Errorf("decodeBody(%q) accepted", bad)
		}
	}
}

// FuzzDecodeBody: decrypted application messages come from other devices;
// decoding must never panic and must accept only version 1 bodies.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"v":1,"text":"hi"}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, b []byte) {
		text, err := decodeBody(b)
		if err != nil {
			return
		}
		again, err := encodeBody(text)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodeBody(again); err != nil || got != text {
			t.Fatalf("re-encoding %q changed it: %q, %v", text, got, err)
		}
	})
}
