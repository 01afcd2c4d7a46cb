package message

import (
	"hearth/keys/mls/codec"
	"hearth/keys/mls/treemath"
)

func writeHPKECiphertext(w *codec.Writer, c HPKECiphertext) {
	w.Opaque(c.KEMOutput)
	w.Opaque(c.Ciphertext)
}

func readHPKECiphertext(r *codec.Reader) HPKECiphertext {
	return HPKECiphertext{KEMOutput: r.Opaque(), Ciphertext: r.Opaque()}
}

// UpdatePathNode carries a new parent public key and the path secret
// encrypted to each node of the corresponding copath resolution.
type UpdatePathNode struct {
	EncryptionKey       HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

// UpdatePath is the committer's new leaf and direct-path keys (RFC 9420 §7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// Encode writes the wire encoding to w.
func (u *UpdatePath) Encode(w *codec.Writer) {
	u.LeafNode.Encode(w)
	codec.WriteList(w, u.Nodes, func(w *codec.Writer, n UpdatePathNode) {
		w.Opaque(n.EncryptionKey)
		codec.WriteList(w, n.EncryptedPathSecret, writeHPKECiphertext)
	})
}

// Decode reads the wire encoding from r, recording any error on r.
func (u *UpdatePath) Decode(r *codec.Reader) {
	u.LeafNode.Decode(r)
	u.Nodes = codec.ReadList(r, func(r *codec.Reader) UpdatePathNode {
		var n UpdatePathNode
		n.EncryptionKey = r.Opaque()
		n.EncryptedPathSecret = codec.ReadList(r, readHPKECiphertext)
		return n
	})
}

// Marshal returns the wire encoding.
func (u *UpdatePath) Marshal() []byte { return encode(u) }

// Unmarshal decodes exactly b.
func (u *UpdatePath) Unmarshal(b []byte) error { return decode(u, b, "UpdatePath") }

// PSKType distinguishes external and resumption PSKs (RFC 9420 §8.4).
type PSKType uint8

// PSK types.
const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage says why a resumption PSK is used.
type ResumptionPSKUsage uint8

// Resumption PSK usages.
const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID names a PSK (RFC 9420 §8.4). PSKID is set for external
// PSKs; Usage, PSKGroupID and PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	Type       PSKType
	PSKID      []byte
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64
	Nonce      []byte
}

// Encode writes the wire encoding to w.
func (p *PreSharedKeyID) Encode(w *codec.Writer) {
	w.Uint8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		w.Opaque(p.PSKID)
	case PSKResumption:
		w.Uint8(uint8(p.Usage))
		w.Opaque(p.PSKGroupID)
		w.Uint64(p.PSKEpoch)
	}
	w.Opaque(p.Nonce)
}

// Decode reads the wire encoding from r, recording any error on r.
func (p *PreSharedKeyID) Decode(r *codec.Reader) {
	p.Type = PSKType(r.Uint8())
	switch p.Type {
	case PSKExternal:
		p.PSKID = r.Opaque()
	case PSKResumption:
		p.Usage = ResumptionPSKUsage(r.Uint8())
		if r.Err() == nil && (p.Usage < ResumptionApplication || p.Usage > ResumptionBranch) {
			badValue(r, "resumption PSK usage %d", p.Usage)
		}
		p.PSKGroupID = r.Opaque()
		p.PSKEpoch = r.Uint64()
	default:
		badValue(r, "PSK type %d", p.Type)
	}
	p.Nonce = r.Opaque()
}

// Marshal returns the wire encoding.
func (p *PreSharedKeyID) Marshal() []byte { return encode(p) }

// Unmarshal decodes exactly b.
func (p *PreSharedKeyID) Unmarshal(b []byte) error { return decode(p, b, "PreSharedKeyID") }

// ReInit proposes re-initializing the group with new parameters.
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

// Proposal is one proposal (RFC 9420 §12.1); the field matching Type is set.
type Proposal struct {
	Type                   ProposalType
	Add                    *KeyPackage        // add
	Update                 *LeafNode          // update
	Remove                 treemath.LeafIndex // remove
	PSK                    *PreSharedKeyID    // psk
	ReInit                 *ReInit            // reinit
	ExternalInitKEMOutput  []byte             // external_init
	GroupContextExtensions Extensions         // group_context_extensions
}

// Encode writes the wire encoding to w.
func (p *Proposal) Encode(w *codec.Writer) {
	w.Uint16(uint16(p.Type))
	p.marshalBody(w)
}

// marshalBody writes the proposal without its type (the Add, Update, …
// structs of RFC 9420 §12.1).
func (p *Proposal) marshalBody(w *codec.Writer) {
	switch p.Type {
	case ProposalAdd:
		p.Add.Encode(w)
	case ProposalUpdate:
		p.Update.Encode(w)
	case ProposalRemove:
		w.Uint32(uint32(p.Remove))
	case ProposalPSK:
		p.PSK.Encode(w)
	case ProposalReInit:
		w.Opaque(p.ReInit.GroupID)
		w.Uint16(uint16(p.ReInit.Version))
		w.Uint16(uint16(p.ReInit.CipherSuite))
		p.ReInit.Extensions.Encode(w)
	case ProposalExternalInit:
		w.Opaque(p.ExternalInitKEMOutput)
	case ProposalGroupContextExtensions:
		p.GroupContextExtensions.Encode(w)
	}
}

// Decode reads the wire encoding from r, recording any error on r.
func (p *Proposal) Decode(r *codec.Reader) {
	p.Type = ProposalType(r.Uint16())
	p.unmarshalBody(r)
}

func (p *Proposal) unmarshalBody(r *codec.Reader) {
	switch p.Type {
	case ProposalAdd:
		p.Add = new(KeyPackage)
		p.Add.Decode(r)
	case ProposalUpdate:
		p.Update = new(LeafNode)
		p.Update.Decode(r)
	case ProposalRemove:
		p.Remove = treemath.LeafIndex(r.Uint32())
	case ProposalPSK:
		p.PSK = new(PreSharedKeyID)
		p.PSK.Decode(r)
	case ProposalReInit:
		p.ReInit = &ReInit{GroupID: r.Opaque(), Version: ProtocolVersion(r.Uint16()),
			CipherSuite: CipherSuite(r.Uint16())}
		p.ReInit.Extensions.Decode(r)
	case ProposalExternalInit:
		p.ExternalInitKEMOutput = r.Opaque()
	case ProposalGroupContextExtensions:
		p.GroupContextExtensions.Decode(r)
	default:
		badValue(r, "proposal type %d", p.Type)
	}
}

// Marshal returns the wire encoding.
func (p *Proposal) Marshal() []byte { return encode(p) }

// Unmarshal decodes exactly b.
func (p *Proposal) Unmarshal(b []byte) error { return decode(p, b, "Proposal") }

// MarshalBody returns the encoding of the proposal's body struct (Add,
// Update, Remove, …) without the proposal_type.
func (p *Proposal) MarshalBody() []byte {
	w := codec.NewWriter(nil)
	p.marshalBody(w)
	return w.Bytes()
}

// UnmarshalProposalBody decodes exactly b as the body struct of a proposal
// of type t (the inverse of MarshalBody).
func UnmarshalProposalBody(t ProposalType, b []byte) (*Proposal, error) {
	p := &Proposal{Type: t}
	if err := decode(proposalBody{p}, b, "proposal body"); err != nil {
		return nil, err
	}
	return p, nil
}

type proposalBody struct{ p *Proposal }

// Decode reads the wire encoding from r, recording any error on r.
func (b proposalBody) Decode(r *codec.Reader) { b.p.unmarshalBody(r) }

// ProposalOrRefType tags a ProposalOrRef.
type ProposalOrRefType uint8

// ProposalOrRef types.
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is a proposal carried by value or by reference in a Commit.
type ProposalOrRef struct {
	Proposal  *Proposal // by value
	Reference []byte    // ProposalRef, by reference
}

// Encode writes the wire encoding to w.
func (p *ProposalOrRef) Encode(w *codec.Writer) {
	if p.Proposal != nil {
		w.Uint8(uint8(ProposalOrRefProposal))
		p.Proposal.Encode(w)
		return
	}
	w.Uint8(uint8(ProposalOrRefReference))
	w.Opaque(p.Reference)
}

// Decode reads the wire encoding from r, recording any error on r.
func (p *ProposalOrRef) Decode(r *codec.Reader) {
	switch t := ProposalOrRefType(r.Uint8()); t {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.Decode(r)
	case ProposalOrRefReference:
		p.Reference = r.Opaque()
	default:
		badValue(r, "ProposalOrRef type %d", t)
	}
}

// Commit applies proposals and optionally updates the committer's path
// (RFC 9420 §12.4).
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// Encode writes the wire encoding to w.
func (c *Commit) Encode(w *codec.Writer) {
	codec.WriteList(w, c.Proposals, func(w *codec.Writer, p ProposalOrRef) { p.Encode(w) })
	w.Optional(c.Path != nil, func(w *codec.Writer) { c.Path.Encode(w) })
}

// Decode reads the wire encoding from r, recording any error on r.
func (c *Commit) Decode(r *codec.Reader) {
	c.Proposals = codec.ReadList(r, func(r *codec.Reader) ProposalOrRef {
		var p ProposalOrRef
		p.Decode(r)
		return p
	})
	r.Optional(func(r *codec.Reader) {
		c.Path = new(UpdatePath)
		c.Path.Decode(r)
	})
}

// Marshal returns the wire encoding.
func (c *Commit) Marshal() []byte { return encode(c) }

// Unmarshal decodes exactly b.
func (c *Commit) Unmarshal(b []byte) error { return decode(c, b, "Commit") }
