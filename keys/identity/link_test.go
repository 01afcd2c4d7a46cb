package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestLinkCodeAndFingerprint(t *testing.T) {
	priv, err := GenerateLinkKey(&detRand{})
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public()
	fp := LinkFingerprint(pub)
	if len(fp) != 8 || strings.Trim(fp, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		t.Fatalf("fingerprint %q", fp)
	}
	code, err := FormatLinkCode("k7q2zx", pub)
	if err != nil || code != "K7Q2ZX-"+fp {
		t.Fatalf("FormatLinkCode = %q, %v", code, err)
	}
	token, gotFP, err := ParseLinkCode("  " + strings.ToLower(code) + "\n")
	if err != nil || token != "K7Q2ZX" || gotFP != fp {
		t.Fatalf("ParseLinkCode = %q %q %v", token, gotFP, err)
	}
	if err := CheckLinkKey(pub, gotFP); err != nil {
		t.Fatal(err)
	}
	// A key substituted by the server does not match.
	evil, _ := GenerateLinkKey(&detRand{ctr: 40})
	if err := CheckLinkKey(evil.Public(), gotFP); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("substituted key accepted: %v", err)
	}
	for _, bad := range []string{"", "K7Q2ZX", "K7Q2ZX-", "K7Q2ZX-" + fp[:7], "K7Q2ZX-" + fp + "A",
		"K7Q-" + fp, "K7Q2ZX-ABCDEFG1", "K7_2ZX-" + fp, strings.Repeat("A", 33) + "-" + fp, "K7Q2ZX-" + fp + "-X"} {
		if _, _, err := ParseLinkCode(bad); !errors.Is(err, ErrLinkCode) {
			t.Errorf("ParseLinkCode(%q) accepted (%v)", bad, err)
		}
	}
	if _, err := FormatLinkCode("ab", pub); !errors.Is(err, ErrLinkCode) {
		t.Error("short token formatted")
	}
	// Keys survive storage.
	again, err := ParseLinkPrivateKey(priv.Bytes())
	if err != nil || again.Public() != pub {
		t.Fatalf("link key round trip: %v", err)
	}
	if p2, err := ParseLinkPublicKey(pub.Bytes()); err != nil || p2 != pub {
		t.Fatalf("link public key round trip: %v", err)
	}
	if _, err := ParseLinkPublicKey(make([]byte, 31)); !errors.Is(err, ErrKey) {
		t.Fatal("short link key accepted")
	}
}

func TestSealOpenBundle(t *testing.T) {
	priv, _ := GenerateLinkKey(&detRand{})
	rk, _ := NewRecoveryKey(&detRand{ctr: 3})
	dev, _ := ParseDevice("alice@a.example/NEWPHONE")
	b := &Bundle{User: dev.User, Identity: rk.Signer()}
	sealed, err := SealBundle(priv.Public(), dev, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenBundle(priv, dev, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != dev.User || !got.Identity.Public().Equal(rk.Signer().Public()) {
		t.Fatal("opened bundle differs")
	}
	other, _ := GenerateLinkKey(&detRand{ctr: 50})
	otherDev, _ := ParseDevice("alice@a.example/OTHER")
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-3] ^= 1
	for name, err := range map[string]error{
		"wrong key":    second(OpenBundle(other, dev, sealed)),
		"wrong device": second(OpenBundle(priv, otherDev, sealed)),
		"tampered":     second(OpenBundle(priv, dev, tampered)),
		"truncated":    second(OpenBundle(priv, dev, sealed[:20])),
	} {
		if !errors.Is(err, ErrBundle) {
			t.Errorf("%s: got %v, want ErrBundle", name, err)
		}
	}
	bobDev, _ := ParseDevice("bob@a.example/NEWPHONE")
	if _, err := SealBundle(priv.Public(), bobDev, b); !errors.Is(err, ErrBundle) {
		t.Fatalf("alice's bundle sealed to bob's device: %v", err)
	}
}

func FuzzParseLinkCode(f *testing.F) {
	f.Add("K7Q2ZX-ABCDEFGH")
	f.Add(" abcd-22222222 ")
	f.Fuzz(func(t *testing.T, code string) {
		token, fp, err := ParseLinkCode(code)
		if err != nil {
			return
		}
		if token != strings.ToUpper(token) || len(fp) != 8 || strings.Contains(token, "-") {
			t.Fatalf("accepted %q as %q %q", code, token, fp)
		}
	})
}

func FuzzParseRecoveryKey(f *testing.F) {
	k, _ := NewRecoveryKey(&detRand{})
	f.Add(k.Text())
	f.Add("HRK1-AAAA")
	f.Fuzz(func(t *testing.T, text string) {
		got, err := ParseRecoveryKey(text)
		if err != nil {
			return
		}
		again, err := ParseRecoveryKey(got.Text())
		if err != nil || !again.Equal(got) {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}

func FuzzParseDevice(f *testing.F) {
	f.Add("alice@a.example/PHONE")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDevice(s)
		if err == nil && d.String() != s {
			t.Fatalf("ParseDevice(%q) is not canonical: %q", s, d.String())
		}
	})
}

func FuzzOpenBundle(f *testing.F) {
	priv, _ := GenerateLinkKey(&detRand{})
	rk, _ := NewRecoveryKey(&detRand{ctr: 3})
	dev, _ := ParseDevice("alice@a.example/NEWPHONE")
	sealed, _ := SealBundle(priv.Public(), dev, &Bundle{User: dev.User, Identity: rk.Signer()})
	f.Add(sealed)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := OpenBundle(priv, dev, data)
		if err == nil && b.User != dev.User {
			t.Fatal("opened a bundle for another user")
		}
	})
}
