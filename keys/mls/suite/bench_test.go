package suite

import "testing"

var benchSuites = []ID{MLS128X25519AES128GCMSHA256Ed25519, HearthMLKEM768X25519AES256GCMSHA256Ed25519}

func BenchmarkExpandWithLabel(b *testing.B) {
	for _, id := range benchSuites {
		s, _ := Lookup(id)
		secret := make([]byte, s.Nh())
		b.Run(id.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.ExpandWithLabel(secret, "key", []byte("context"), s.Nk()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHPKE(b *testing.B) {
	for _, id := range benchSuites {
		s, _ := Lookup(id)
		priv, pub, _ := s.GenerateKeyPair(&detRand{})
		pt := make([]byte, 64)
		ct, _ := s.EncryptWithLabel(pub, "UpdatePathNode", nil, pt)
		b.Run(id.String()+"/seal", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.EncryptWithLabel(pub, "UpdatePathNode", nil, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(id.String()+"/open", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", nil, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSignature(b *testing.B) {
	for _, id := range benchSuites {
		s, _ := Lookup(id)
		signer, _ := s.GenerateSignatureKey(&detRand{})
		msg := make([]byte, 256)
		sig, _ := s.SignWithLabel(signer, "FramedContentTBS", msg)
		b.Run(id.String()+"/sign", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.SignWithLabel(signer, "FramedContentTBS", msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(id.String()+"/verify", func(b *testing.B) {
			for b.Loop() {
				if err := s.VerifyWithLabel(signer.Public(), "FramedContentTBS", msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
