package message

import (
	"hearth/keys/mls/codec"
)

// WireFormat tags an MLSMessage (RFC 9420 §6).
type WireFormat uint16

// Wire formats.
const (
	WirePublicMessage  WireFormat = 1
	WirePrivateMessage WireFormat = 2
	WireWelcome        WireFormat = 3
	WireGroupInfo      WireFormat = 4
	WireKeyPackage     WireFormat = 5
)

// ContentType tags FramedContent.
type ContentType uint8

// Content types.
const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

func validContentType(r *codec.Reader, t ContentType) {
	if r.Err() == nil && (t < ContentApplication || t > ContentCommit) {
		badValue(r, "content type %d", t)
	}
}

// SenderType tags a Sender.
type SenderType uint8

// Sender types.
const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// Sender identifies who sent a message (RFC 9420 §6). Index is the leaf
// index for members and the external_senders index for external senders.
type Sender struct {
	Type  SenderType
	Index uint32
}

// Encode writes the wire encoding to w.
func (s *Sender) Encode(w *codec.Writer) {
	w.Uint8(uint8(s.Type))
	if s.Type == SenderMember || s.Type == SenderExternal {
		w.Uint32(s.Index)
	}
}

// Decode reads the wire encoding from r, recording any error on r.
func (s *Sender) Decode(r *codec.Reader) {
	s.Type = SenderType(r.Uint8())
	switch s.Type {
	case SenderMember, SenderExternal:
		s.Index = r.Uint32()
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		badValue(r, "sender type %d", s.Type)
	}
}

// FramedContent is the signed content of a handshake or application
// message (RFC 9420 §6). The field matching ContentType is set.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte    // application
	Proposal          *Proposal // proposal
	Commit            *Commit   // commit
}

// Encode writes the wire encoding to w.
func (f *FramedContent) Encode(w *codec.Writer) {
	w.Opaque(f.GroupID)
	w.Uint64(f.Epoch)
	f.Sender.Encode(w)
	w.Opaque(f.AuthenticatedData)
	w.Uint8(uint8(f.ContentType))
	f.marshalBody(w)
}

// marshalBody writes the content selected by ContentType.
func (f *FramedContent) marshalBody(w *codec.Writer) {
	switch f.ContentType {
	case ContentApplication:
		w.Opaque(f.ApplicationData)
	case ContentProposal:
		f.Proposal.Encode(w)
	case ContentCommit:
		f.Commit.Encode(w)
	}
}

// Decode reads the wire encoding from r, recording any error on r.
func (f *FramedContent) Decode(r *codec.Reader) {
	f.GroupID = r.Opaque()
	f.Epoch = r.Uint64()
	f.Sender.Decode(r)
	f.AuthenticatedData = r.Opaque()
	f.ContentType = ContentType(r.Uint8())
	validContentType(r, f.ContentType)
	f.unmarshalBody(r)
}

func (f *FramedContent) unmarshalBody(r *codec.Reader) {
	switch f.ContentType {
	case ContentApplication:
		f.ApplicationData = r.Opaque()
	case ContentProposal:
		f.Proposal = new(Proposal)
		f.Proposal.Decode(r)
	case ContentCommit:
		f.Commit = new(Commit)
		f.Commit.Decode(r)
	}
}

// Marshal returns the wire encoding.
func (f *FramedContent) Marshal() []byte { return encode(f) }

// Unmarshal decodes exactly b.
func (f *FramedContent) Unmarshal(b []byte) error { return decode(f, b, "FramedContent") }

// FramedContentAuthData is the signature and, for commits, the
// confirmation tag of a FramedContent.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // commit only
}

func (a *FramedContentAuthData) marshal(w *codec.Writer, t ContentType) {
	w.Opaque(a.Signature)
	if t == ContentCommit {
		w.Opaque(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(r *codec.Reader, t ContentType) {
	a.Signature = r.Opaque()
	if t == ContentCommit {
		a.ConfirmationTag = r.Opaque()
	}
}

// FramedContentTBS returns the bytes a FramedContent's signature covers
// (RFC 9420 §6.1). ctx is required (and only used) for member and
// new_member_commit senders.
func FramedContentTBS(wf WireFormat, f *FramedContent, ctx *GroupContext) []byte {
	// Sized for an application message and its GroupContext (a proposal
	// or commit grows the buffer as it needs).
	hint := len(f.GroupID) + len(f.AuthenticatedData) + len(f.ApplicationData) + 32
	if ctx != nil {
		hint += len(ctx.GroupID) + len(ctx.TreeHash) + len(ctx.ConfirmedTranscriptHash) + 32
		for _, e := range ctx.Extensions {
			hint += len(e.Data) + 6
		}
	}
	w := codec.NewWriter(make([]byte, 0, hint))
	w.Uint16(uint16(MLS10))
	w.Uint16(uint16(wf))
	f.Encode(w)
	if f.Sender.Type == SenderMember || f.Sender.Type == SenderNewMemberCommit {
		ctx.Encode(w)
	}
	return w.Bytes()
}

// AuthenticatedContent is a FramedContent with its auth data and the wire
// format it travels in (RFC 9420 §6.1).
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

// Encode writes the wire encoding to w.
func (a *AuthenticatedContent) Encode(w *codec.Writer) {
	w.Uint16(uint16(a.WireFormat))
	a.Content.Encode(w)
	a.Auth.marshal(w, a.Content.ContentType)
}

// Decode reads the wire encoding from r, recording any error on r.
func (a *AuthenticatedContent) Decode(r *codec.Reader) {
	a.WireFormat = WireFormat(r.Uint16())
	if r.Err() == nil && a.WireFormat != WirePublicMessage && a.WireFormat != WirePrivateMessage {
		badValue(r, "wire format %d for framed content", a.WireFormat)
	}
	a.Content.Decode(r)
	a.Auth.unmarshal(r, a.Content.ContentType)
}

// Marshal returns the wire encoding.
func (a *AuthenticatedContent) Marshal() []byte { return encode(a) }

// Unmarshal decodes exactly b.
func (a *AuthenticatedContent) Unmarshal(b []byte) error {
	return decode(a, b, "AuthenticatedContent")
}

// TBS returns the FramedContentTBS of a (see FramedContentTBS).
func (a *AuthenticatedContent) TBS(ctx *GroupContext) []byte {
	return FramedContentTBS(a.WireFormat, &a.Content, ctx)
}

// ConfirmedTranscriptHashInput returns the ConfirmedTranscriptHashInput
// of a commit (RFC 9420 §8.2): wire_format, content, signature.
func (a *AuthenticatedContent) ConfirmedTranscriptHashInput() []byte {
	w := codec.NewWriter(nil)
	w.Uint16(uint16(a.WireFormat))
	a.Content.Encode(w)
	w.Opaque(a.Auth.Signature)
	return w.Bytes()
}

// InterimTranscriptHashInput returns the InterimTranscriptHashInput of a
// commit (RFC 9420 §8.2): its confirmation tag.
func (a *AuthenticatedContent) InterimTranscriptHashInput() []byte {
	w := codec.NewWriter(nil)
	w.Opaque(a.Auth.ConfirmationTag)
	return w.Bytes()
}

// PublicMessage is a signed, unencrypted handshake or application message
// (RFC 9420 §6.2). MembershipTag is present for member senders only.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

// Encode writes the wire encoding to w.
func (p *PublicMessage) Encode(w *codec.Writer) {
	p.Content.Encode(w)
	p.Auth.marshal(w, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		w.Opaque(p.MembershipTag)
	}
}

// Decode reads the wire encoding from r, recording any error on r.
func (p *PublicMessage) Decode(r *codec.Reader) {
	p.Content.Decode(r)
	p.Auth.unmarshal(r, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		p.MembershipTag = r.Opaque()
	}
}

// Marshal returns the wire encoding.
func (p *PublicMessage) Marshal() []byte { return encode(p) }

// Unmarshal decodes exactly b.
func (p *PublicMessage) Unmarshal(b []byte) error { return decode(p, b, "PublicMessage") }

// AuthenticatedContent returns the message as AuthenticatedContent with
// wire format mls_public_message (sharing p's slices).
func (p *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WirePublicMessage, Content: p.Content, Auth: p.Auth}
}

// AuthenticatedContentTBM returns the bytes the membership tag covers
// (RFC 9420 §6.2): FramedContentTBS followed by the auth data.
func (p *PublicMessage) AuthenticatedContentTBM(ctx *GroupContext) []byte {
	w := codec.NewWriter(FramedContentTBS(WirePublicMessage, &p.Content, ctx))
	p.Auth.marshal(w, p.Content.ContentType)
	return w.Bytes()
}

// PrivateMessage is an encrypted message (RFC 9420 §6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// Encode writes the wire encoding to w.
func (p *PrivateMessage) Encode(w *codec.Writer) {
	w.Opaque(p.GroupID)
	w.Uint64(p.Epoch)
	w.Uint8(uint8(p.ContentType))
	w.Opaque(p.AuthenticatedData)
	w.Opaque(p.EncryptedSenderData)
	w.Opaque(p.Ciphertext)
}

// Decode reads the wire encoding from r, recording any error on r.
func (p *PrivateMessage) Decode(r *codec.Reader) {
	p.GroupID = r.Opaque()
	p.Epoch = r.Uint64()
	p.ContentType = ContentType(r.Uint8())
	validContentType(r, p.ContentType)
	p.AuthenticatedData = r.Opaque()
	p.EncryptedSenderData = r.Opaque()
	p.Ciphertext = r.Opaque()
}

// Marshal returns the wire encoding.
func (p *PrivateMessage) Marshal() []byte { return encode(p) }

// Unmarshal decodes exactly b.
func (p *PrivateMessage) Unmarshal(b []byte) error { return decode(p, b, "PrivateMessage") }

// MLSMessage is the top-level MLS wire message (RFC 9420 §6); the field
// matching WireFormat is set. Version is always mls10.
type MLSMessage struct {
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// Encode writes the wire encoding to w.
func (m *MLSMessage) Encode(w *codec.Writer) {
	w.Uint16(uint16(MLS10))
	w.Uint16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WirePublicMessage:
		m.PublicMessage.Encode(w)
	case WirePrivateMessage:
		m.PrivateMessage.Encode(w)
	case WireWelcome:
		m.Welcome.Encode(w)
	case WireGroupInfo:
		m.GroupInfo.Encode(w)
	case WireKeyPackage:
		m.KeyPackage.Encode(w)
	}
}

// sizeHint estimates the encoding's size for a PrivateMessage (the
// message every member sends most), 0 for the others.
func (m *MLSMessage) sizeHint() int {
	if p := m.PrivateMessage; m.WireFormat == WirePrivateMessage && p != nil {
		return len(p.GroupID) + len(p.AuthenticatedData) + len(p.EncryptedSenderData) + len(p.Ciphertext) + 32
	}
	return 0
}

// Decode reads the wire encoding from r, recording any error on r.
func (m *MLSMessage) Decode(r *codec.Reader) {
	if v := ProtocolVersion(r.Uint16()); r.Err() == nil && v != MLS10 {
		badValue(r, "protocol version %d", v)
		return
	}
	m.WireFormat = WireFormat(r.Uint16())
	switch m.WireFormat {
	case WirePublicMessage:
		m.PublicMessage = new(PublicMessage)
		m.PublicMessage.Decode(r)
	case WirePrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.Decode(r)
	case WireWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.Decode(r)
	case WireGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.Decode(r)
	case WireKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.Decode(r)
	default:
		badValue(r, "wire format %d", m.WireFormat)
	}
}

// Marshal returns the wire encoding.
func (m *MLSMessage) Marshal() []byte { return encode(m) }

// Unmarshal decodes exactly b.
func (m *MLSMessage) Unmarshal(b []byte) error { return decode(m, b, "MLSMessage") }
