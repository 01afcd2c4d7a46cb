package message

import (
	"hearth/keys/mls/codec"
	"hearth/keys/mls/treemath"
)

// GroupContext summarizes the group's state in an epoch (RFC 9420 §8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

// Encode writes the wire encoding to w.
func (g *GroupContext) Encode(w *codec.Writer) {
	w.Uint16(uint16(g.Version))
	w.Uint16(uint16(g.CipherSuite))
	w.Opaque(g.GroupID)
	w.Uint64(g.Epoch)
	w.Opaque(g.TreeHash)
	w.Opaque(g.ConfirmedTranscriptHash)
	g.Extensions.Encode(w)
}

// Decode reads the wire encoding from r, recording any error on r.
func (g *GroupContext) Decode(r *codec.Reader) {
	g.Version = ProtocolVersion(r.Uint16())
	if r.Err() == nil && g.Version != MLS10 {
		badValue(r, "protocol version %d", g.Version)
	}
	g.CipherSuite = CipherSuite(r.Uint16())
	g.GroupID = r.Opaque()
	g.Epoch = r.Uint64()
	g.TreeHash = r.Opaque()
	g.ConfirmedTranscriptHash = r.Opaque()
	g.Extensions.Decode(r)
}

// Marshal returns the wire encoding.
func (g *GroupContext) Marshal() []byte { return encode(g) }

// Unmarshal decodes exactly b.
func (g *GroupContext) Unmarshal(b []byte) error { return decode(g, b, "GroupContext") }

// GroupInfo describes the group to joiners (RFC 9420 §12.4.3).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          treemath.LeafIndex
	Signature       []byte
}

func (g *GroupInfo) marshalTBS(w *codec.Writer) {
	g.GroupContext.Encode(w)
	g.Extensions.Encode(w)
	w.Opaque(g.ConfirmationTag)
	w.Uint32(uint32(g.Signer))
}

// Encode writes the wire encoding to w.
func (g *GroupInfo) Encode(w *codec.Writer) {
	g.marshalTBS(w)
	w.Opaque(g.Signature)
}

// Decode reads the wire encoding from r, recording any error on r.
func (g *GroupInfo) Decode(r *codec.Reader) {
	g.GroupContext.Decode(r)
	g.Extensions.Decode(r)
	g.ConfirmationTag = r.Opaque()
	g.Signer = treemath.LeafIndex(r.Uint32())
	g.Signature = r.Opaque()
}

// Marshal returns the wire encoding.
func (g *GroupInfo) Marshal() []byte { return encode(g) }

// Unmarshal decodes exactly b.
func (g *GroupInfo) Unmarshal(b []byte) error { return decode(g, b, "GroupInfo") }

// TBS returns the GroupInfoTBS bytes the signature covers.
func (g *GroupInfo) TBS() []byte {
	w := codec.NewWriter(nil)
	g.marshalTBS(w)
	return w.Bytes()
}

// GroupSecrets is what a Welcome encrypts to each new member (RFC 9420 §12.4.3.1).
// PathSecret is nil when absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte
	PSKs         []PreSharedKeyID
}

// Encode writes the wire encoding to w.
func (g *GroupSecrets) Encode(w *codec.Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *codec.Writer) { w.Opaque(g.PathSecret) })
	codec.WriteList(w, g.PSKs, func(w *codec.Writer, p PreSharedKeyID) { p.Encode(w) })
}

// Decode reads the wire encoding from r, recording any error on r.
func (g *GroupSecrets) Decode(r *codec.Reader) {
	g.JoinerSecret = r.Opaque()
	r.Optional(func(r *codec.Reader) {
		g.PathSecret = r.Opaque()
		if g.PathSecret == nil {
			g.PathSecret = []byte{}
		}
	})
	g.PSKs = codec.ReadList(r, func(r *codec.Reader) PreSharedKeyID {
		var p PreSharedKeyID
		p.Decode(r)
		return p
	})
}

// Marshal returns the wire encoding.
func (g *GroupSecrets) Marshal() []byte { return encode(g) }

// Unmarshal decodes exactly b.
func (g *GroupSecrets) Unmarshal(b []byte) error { return decode(g, b, "GroupSecrets") }

// EncryptedGroupSecrets is one recipient's entry in a Welcome.
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// Welcome invites new members (RFC 9420 §12.4.3.1).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// Encode writes the wire encoding to w.
func (wl *Welcome) Encode(w *codec.Writer) {
	w.Uint16(uint16(wl.CipherSuite))
	codec.WriteList(w, wl.Secrets, func(w *codec.Writer, s EncryptedGroupSecrets) {
		w.Opaque(s.NewMember)
		writeHPKECiphertext(w, s.EncryptedGroupSecrets)
	})
	w.Opaque(wl.EncryptedGroupInfo)
}

// Decode reads the wire encoding from r, recording any error on r.
func (wl *Welcome) Decode(r *codec.Reader) {
	wl.CipherSuite = CipherSuite(r.Uint16())
	wl.Secrets = codec.ReadList(r, func(r *codec.Reader) EncryptedGroupSecrets {
		var s EncryptedGroupSecrets
		s.NewMember = r.Opaque()
		s.EncryptedGroupSecrets = readHPKECiphertext(r)
		return s
	})
	wl.EncryptedGroupInfo = r.Opaque()
}

// Marshal returns the wire encoding.
func (wl *Welcome) Marshal() []byte { return encode(wl) }

// Unmarshal decodes exactly b.
func (wl *Welcome) Unmarshal(b []byte) error { return decode(wl, b, "Welcome") }
