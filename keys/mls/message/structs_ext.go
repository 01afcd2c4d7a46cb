package message

import (
	"hearth/keys/mls/codec"
)

// Extension is one entry of an extensions list (RFC 9420 §13). Data is the
// extension_data; known types are validated when decoded and can be read
// with the typed accessors of Extensions. Unknown types stay opaque.
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Extensions is an extensions list; types are unique.
type Extensions []Extension

// Encode writes the wire encoding to w.
func (e Extensions) Encode(w *codec.Writer) {
	codec.WriteList(w, e, func(w *codec.Writer, x Extension) {
		w.Uint16(uint16(x.Type))
		w.Opaque(x.Data)
	})
}

// Decode reads the wire encoding from r, recording any error on r.
func (e *Extensions) Decode(r *codec.Reader) {
	seen := map[ExtensionType]bool{}
	*e = codec.ReadList(r, func(r *codec.Reader) Extension {
		x := Extension{Type: ExtensionType(r.Uint16()), Data: r.Opaque()}
		if r.Err() != nil {
			return x
		}
		if seen[x.Type] {
			badValue(r, "duplicate extension type %d", x.Type)
		}
		seen[x.Type] = true
		if err := validateExtension(x); err != nil {
			r.Fail(err)
		}
		return x
	})
}

// validateExtension decodes the data of a known extension type.
func validateExtension(x Extension) error {
	var err error
	switch x.Type {
	case ExtApplicationID:
		// opaque application_id<V> is the whole extension_data; any bytes are valid.
	case ExtRatchetTree:
		var t RatchetTreeNodes
		err = t.Unmarshal(x.Data)
	case ExtRequiredCapabilities:
		var rc RequiredCapabilities
		err = rc.Unmarshal(x.Data)
	case ExtExternalPub:
		var ep ExternalPub
		err = ep.Unmarshal(x.Data)
	case ExtExternalSenders:
		var es ExternalSenders
		err = es.Unmarshal(x.Data)
	}
	return err
}

// Find returns the data of the extension of type t.
func (e Extensions) Find(t ExtensionType) ([]byte, bool) {
	for _, x := range e {
		if x.Type == t {
			return x.Data, true
		}
	}
	return nil, false
}

// RequiredCapabilities is the required_capabilities extension (RFC 9420 §11.1).
type RequiredCapabilities struct {
	Extensions  []ExtensionType
	Proposals   []ProposalType
	Credentials []CredentialType
}

// Encode writes the wire encoding to w.
func (c *RequiredCapabilities) Encode(w *codec.Writer) {
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

// Decode reads the wire encoding from r, recording any error on r.
func (c *RequiredCapabilities) Decode(r *codec.Reader) {
	c.Extensions = readU16s[ExtensionType](r)
	c.Proposals = readU16s[ProposalType](r)
	c.Credentials = readU16s[CredentialType](r)
}

// Marshal returns the wire encoding.
func (c *RequiredCapabilities) Marshal() []byte { return encode(c) }

// Unmarshal decodes exactly b.
func (c *RequiredCapabilities) Unmarshal(b []byte) error {
	return decode(c, b, "RequiredCapabilities")
}

// ExternalPub is the external_pub GroupInfo extension (RFC 9420 §12.4.3.2).
type ExternalPub struct {
	PublicKey HPKEPublicKey
}

// Encode writes the wire encoding to w.
func (e *ExternalPub) Encode(w *codec.Writer) { w.Opaque(e.PublicKey) }

// Decode reads the wire encoding from r, recording any error on r.
func (e *ExternalPub) Decode(r *codec.Reader) { e.PublicKey = r.Opaque() }

// Marshal returns the wire encoding.
func (e *ExternalPub) Marshal() []byte { return encode(e) }

// Unmarshal decodes exactly b.
func (e *ExternalPub) Unmarshal(b []byte) error { return decode(e, b, "ExternalPub") }

// ExternalSender is one entry of the external_senders extension (RFC 9420 §12.1.8.1).
type ExternalSender struct {
	SignatureKey SignaturePublicKey
	Credential   Credential
}

// ExternalSenders is the external_senders group context extension.
type ExternalSenders []ExternalSender

// Encode writes the wire encoding to w.
func (e ExternalSenders) Encode(w *codec.Writer) {
	codec.WriteList(w, e, func(w *codec.Writer, s ExternalSender) {
		w.Opaque(s.SignatureKey)
		s.Credential.Encode(w)
	})
}

// Decode reads the wire encoding from r, recording any error on r.
func (e *ExternalSenders) Decode(r *codec.Reader) {
	*e = codec.ReadList(r, func(r *codec.Reader) ExternalSender {
		var s ExternalSender
		s.SignatureKey = r.Opaque()
		s.Credential.Decode(r)
		return s
	})
}

// Marshal returns the wire encoding.
func (e ExternalSenders) Marshal() []byte { return encode(e) }

// Unmarshal decodes exactly b.
func (e *ExternalSenders) Unmarshal(b []byte) error { return decode(e, b, "ExternalSenders") }

// RequiredCapabilities returns the decoded required_capabilities extension.
func (e Extensions) RequiredCapabilities() (*RequiredCapabilities, bool, error) {
	return findTyped[RequiredCapabilities](e, ExtRequiredCapabilities)
}

// ExternalPub returns the decoded external_pub extension.
func (e Extensions) ExternalPub() (*ExternalPub, bool, error) {
	return findTyped[ExternalPub](e, ExtExternalPub)
}

// ExternalSenders returns the decoded external_senders extension.
func (e Extensions) ExternalSenders() (ExternalSenders, bool, error) {
	p, ok, err := findTyped[ExternalSenders](e, ExtExternalSenders)
	if p == nil {
		return nil, ok, err
	}
	return *p, ok, err
}

// RatchetTree returns the decoded ratchet_tree extension.
func (e Extensions) RatchetTree() (RatchetTreeNodes, bool, error) {
	p, ok, err := findTyped[RatchetTreeNodes](e, ExtRatchetTree)
	if p == nil {
		return nil, ok, err
	}
	return *p, ok, err
}

func findTyped[T any, PT interface {
	*T
	Unmarshal([]byte) error
}](e Extensions, t ExtensionType) (*T, bool, error) {
	data, ok := e.Find(t)
	if !ok {
		return nil, false, nil
	}
	v := PT(new(T))
	if err := v.Unmarshal(data); err != nil {
		return nil, true, err
	}
	return (*T)(v), true, nil
}
