package message

import (
	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

// ProtocolVersion is an MLS protocol version (RFC 9420 §6).
type ProtocolVersion uint16

// MLS10 is the only protocol version defined by RFC 9420.
const MLS10 ProtocolVersion = 1

// CipherSuite is a cipher suite identifier on the wire (RFC 9420 §17.1);
// suite.Lookup gives its implementation.
type CipherSuite = suite.ID

// ExtensionType identifies an extension (RFC 9420 §17.3).
type ExtensionType uint16

// Extension types defined by RFC 9420.
const (
	ExtApplicationID        ExtensionType = 1
	ExtRatchetTree          ExtensionType = 2
	ExtRequiredCapabilities ExtensionType = 3
	ExtExternalPub          ExtensionType = 4
	ExtExternalSenders      ExtensionType = 5
)

// ProposalType identifies a proposal (RFC 9420 §17.4).
type ProposalType uint16

// Proposal types defined by RFC 9420.
const (
	ProposalAdd                    ProposalType = 1
	ProposalUpdate                 ProposalType = 2
	ProposalRemove                 ProposalType = 3
	ProposalPSK                    ProposalType = 4
	ProposalReInit                 ProposalType = 5
	ProposalExternalInit           ProposalType = 6
	ProposalGroupContextExtensions ProposalType = 7
)

// CredentialType identifies a credential format (RFC 9420 §17.5).
type CredentialType uint16

// Credential types defined by RFC 9420.
const (
	CredentialBasic CredentialType = 1
	CredentialX509  CredentialType = 2
)

// HPKEPublicKey is a serialized HPKE public key (RFC 9180 SerializePublicKey).
type HPKEPublicKey = suite.HPKEPublicKey

// SignaturePublicKey is a serialized signature public key (RFC 9420 §5.1.2).
type SignaturePublicKey = suite.SignaturePublicKey

// HPKECiphertext is an HPKE encapsulation and AEAD ciphertext (RFC 9420 §7.6).
type HPKECiphertext = suite.HPKECiphertext

// Credential binds an identity to a signature key (RFC 9420 §5.3). Basic
// credentials carry Identity; X.509 credentials carry the DER certificate
// chain, leaf first, undecoded.
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic
	Certificates [][]byte // x509
}

// Encode writes the wire encoding to w.
func (c *Credential) Encode(w *codec.Writer) {
	w.Uint16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		w.Opaque(c.Identity)
	case CredentialX509:
		codec.WriteList(w, c.Certificates, func(w *codec.Writer, cert []byte) { w.Opaque(cert) })
	}
}

// Decode reads the wire encoding from r, recording any error on r.
func (c *Credential) Decode(r *codec.Reader) {
	c.Type = CredentialType(r.Uint16())
	switch c.Type {
	case CredentialBasic:
		c.Identity = r.Opaque()
	case CredentialX509:
		c.Certificates = codec.ReadList(r, func(r *codec.Reader) []byte { return r.Opaque() })
	default:
		badValue(r, "credential type %d", c.Type)
	}
}

// Marshal returns the wire encoding.
func (c *Credential) Marshal() []byte { return encode(c) }

// Unmarshal decodes exactly b.
func (c *Credential) Unmarshal(b []byte) error { return decode(c, b, "Credential") }

// Capabilities lists what a client supports (RFC 9420 §7.2).
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// Encode writes the wire encoding to w.
func (c *Capabilities) Encode(w *codec.Writer) {
	writeU16s(w, c.Versions)
	writeU16s(w, c.CipherSuites)
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

// Decode reads the wire encoding from r, recording any error on r.
func (c *Capabilities) Decode(r *codec.Reader) {
	c.Versions = readU16s[ProtocolVersion](r)
	c.CipherSuites = readU16s[CipherSuite](r)
	c.Extensions = readU16s[ExtensionType](r)
	c.Proposals = readU16s[ProposalType](r)
	c.Credentials = readU16s[CredentialType](r)
}

// Marshal returns the wire encoding.
func (c *Capabilities) Marshal() []byte { return encode(c) }

// Unmarshal decodes exactly b.
func (c *Capabilities) Unmarshal(b []byte) error { return decode(c, b, "Capabilities") }

// Lifetime bounds a KeyPackage's validity in seconds since the Unix epoch.
type Lifetime struct {
	NotBefore, NotAfter uint64
}

// Encode writes the wire encoding to w.
func (l *Lifetime) Encode(w *codec.Writer) {
	w.Uint64(l.NotBefore)
	w.Uint64(l.NotAfter)
}

// Decode reads the wire encoding from r, recording any error on r.
func (l *Lifetime) Decode(r *codec.Reader) {
	l.NotBefore = r.Uint64()
	l.NotAfter = r.Uint64()
}

// Marshal returns the wire encoding.
func (l *Lifetime) Marshal() []byte { return encode(l) }

// Unmarshal decodes exactly b.
func (l *Lifetime) Unmarshal(b []byte) error { return decode(l, b, "Lifetime") }
