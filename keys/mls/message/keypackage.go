package message

import (
	"fmt"
	"io"
	"time"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

// KeyPackageOptions tune NewKeyPackage. Zero values get defaults.
type KeyPackageOptions struct {
	Now      time.Time     // start of the lifetime (default time.Now)
	Validity time.Duration // default 90 days
	// Extensions are the KeyPackage's extensions.
	Extensions Extensions
	// LastResort marks the package reusable (last_resort extension): the
	// directory hands it out when no single-use package is left.
	LastResort bool
	// LeafExtensions go into the leaf node; their types are added to
	// its capabilities.
	LeafExtensions Extensions
	// Capabilities extra to the defaults (MLS 1.0, the suite, basic
	// credentials).
	Capabilities Capabilities
}

// KeyPackagePrivate holds the private parts of a KeyPackage: the HPKE
// init and leaf keys and the signature key. Store it (Marshal) until the
// KeyPackage is used by a Welcome; then delete it (unless last resort).
type KeyPackagePrivate struct {
	// KeyPackage is the public package these keys belong to (nil when
	// the bundle was assembled by hand, e.g. from test vectors).
	KeyPackage    *KeyPackage
	Suite         suite.ID
	InitKey       suite.HPKEPrivateKey
	EncryptionKey suite.HPKEPrivateKey
	SignatureKey  []byte // Signer.PrivateBytes
}

// Signer returns the signer of the bundle's signature key.
func (k *KeyPackagePrivate) Signer() (*suite.Signer, error) {
	s, err := suite.Lookup(k.Suite)
	if err != nil {
		return nil, err
	}
	return s.NewSigner(k.SignatureKey)
}

// Marshal encodes the bundle (secret material: store it encrypted).
func (k *KeyPackagePrivate) Marshal() []byte {
	w := codec.NewWriter(nil)
	w.Uint16(uint16(k.Suite))
	w.Opaque(k.InitKey)
	w.Opaque(k.EncryptionKey)
	w.Opaque(k.SignatureKey)
	w.Optional(k.KeyPackage != nil, func(w *codec.Writer) { k.KeyPackage.Encode(w) })
	return w.Bytes()
}

// UnmarshalKeyPackagePrivate decodes a bundle made by Marshal.
func UnmarshalKeyPackagePrivate(b []byte) (*KeyPackagePrivate, error) {
	r := codec.NewReader(b)
	k := &KeyPackagePrivate{Suite: suite.ID(r.Uint16()), InitKey: r.Opaque(), EncryptionKey: r.Opaque(), SignatureKey: r.Opaque()}
	r.Optional(func(r *codec.Reader) {
		k.KeyPackage = new(KeyPackage)
		k.KeyPackage.Decode(r)
	})
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: key package private bundle: %w", ErrMalformed, err)
	}
	return k, nil
}

func defaultCapabilities(s *suite.Suite, extra Capabilities, leafExt Extensions) Capabilities {
	c := Capabilities{Versions: []ProtocolVersion{MLS10}, CipherSuites: []CipherSuite{s.ID()},
		Credentials: []CredentialType{CredentialBasic}}
	c.Extensions = append(c.Extensions, extra.Extensions...)
	for _, e := range leafExt {
		c.Extensions = append(c.Extensions, e.Type)
	}
	c.Proposals = append(c.Proposals, extra.Proposals...)
	return c
}

// NewKeyPackage makes a signed KeyPackage for credential cred with fresh
// init and leaf keys, and returns it with its private bundle.
func NewKeyPackage(s *suite.Suite, rnd io.Reader, signer *suite.Signer, cred Credential,
	opts KeyPackageOptions) (*KeyPackage, *KeyPackagePrivate, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Validity == 0 {
		opts.Validity = 90 * 24 * time.Hour
	}
	initPriv, initPub, err := s.GenerateKeyPair(rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: init key: %w", err)
	}
	leafPriv, leafPub, err := s.GenerateKeyPair(rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: leaf key: %w", err)
	}
	from := opts.Now.Add(-time.Hour).Unix() // tolerate clock skew
	kp := &KeyPackage{Version: MLS10, CipherSuite: s.ID(), InitKey: initPub, Extensions: opts.Extensions, LeafNode: LeafNode{
		EncryptionKey: leafPub, SignatureKey: signer.Public(), Credential: cred,
		Capabilities: defaultCapabilities(s, opts.Capabilities, opts.LeafExtensions),
		Source:       SourceKeyPackage, Extensions: opts.LeafExtensions,
		Lifetime: Lifetime{NotBefore: uint64(max(from, 0)), NotAfter: uint64(opts.Now.Add(opts.Validity).Unix())},
	}}
	if kp.Extensions == nil {
		kp.Extensions = Extensions{}
	}
	if opts.LastResort {
		kp.Extensions = append(kp.Extensions, Extension{Type: ExtLastResort, Data: []byte{}})
		kp.LeafNode.Capabilities.Extensions = append(kp.LeafNode.Capabilities.Extensions, ExtLastResort)
	}
	if err := kp.LeafNode.Sign(s, signer, nil, 0); err != nil {
		return nil, nil, err
	}
	if err := kp.Sign(s, signer); err != nil {
		return nil, nil, err
	}
	return kp, &KeyPackagePrivate{KeyPackage: kp, Suite: s.ID(), InitKey: initPriv, EncryptionKey: leafPriv,
		SignatureKey: signer.PrivateBytes()}, nil
}

// Message returns the KeyPackage as an MLSMessage, the form published in
// the key directory.
func (k *KeyPackage) Message() []byte {
	return (&MLSMessage{WireFormat: WireKeyPackage, KeyPackage: k}).Marshal()
}

// DecodeKeyPackage reads an MLSMessage(KeyPackage) (as fetched from the
// key directory) and verifies its signatures. Whether its credential is
// acceptable is decided when it is added (keys/mls Config.Validator).
func DecodeKeyPackage(msg []byte) (*KeyPackage, error) {
	var m MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("mls: key package: %w", err)
	}
	if m.KeyPackage == nil {
		return nil, fmt.Errorf("%w: not a KeyPackage message", ErrMalformed)
	}
	s, err := suite.Lookup(m.KeyPackage.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("mls: key package: %w", err)
	}
	if err := m.KeyPackage.Verify(s); err != nil {
		return nil, err
	}
	return m.KeyPackage, nil
}

// ExtLastResort is the last_resort KeyPackage extension (IANA MLS
// Extension Types 0x000A, from the MLS extensions document): the package
// may be used more than once.
const ExtLastResort ExtensionType = 0x000A

// LastResort reports whether the KeyPackage carries last_resort, so its
// private bundle must be kept after a Welcome uses it.
func (k *KeyPackage) LastResort() bool {
	_, ok := k.Extensions.Find(ExtLastResort)
	return ok
}

// BasicCredential returns a basic credential with the given identity
// (for Hearth: `user@domain/DEVICE`).
func BasicCredential(identity string) Credential {
	return Credential{Type: CredentialBasic, Identity: []byte(identity)}
}
