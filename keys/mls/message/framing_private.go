package message

import (
	"bytes"
	"fmt"
	"io"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// senderDataLen is the size of an encoded SenderData: leaf_index,
// generation and the 4-byte reuse guard.
const senderDataLen = 4 + 4 + 4

// PrivateKeys are the secrets of one epoch that protect PrivateMessages:
// sender_data_secret and the epoch's secret tree.
type PrivateKeys struct {
	SenderDataSecret []byte
	Tree             *schedule.SecretTree
}

func ratchetFor(t ContentType) schedule.RatchetType {
	if t == ContentApplication {
		return schedule.Application
	}
	return schedule.Handshake
}

// privateContentAAD encodes PrivateContentAAD (RFC 9420 §6.3.1).
func privateContentAAD(groupID []byte, epoch uint64, t ContentType, authData []byte) []byte {
	w := codec.NewWriter(make([]byte, 0, len(groupID)+len(authData)+17))
	w.Opaque(groupID)
	w.Uint64(epoch)
	w.Uint8(uint8(t))
	w.Opaque(authData)
	return w.Bytes()
}

// senderDataAAD encodes SenderDataAAD (RFC 9420 §6.3.2).
func senderDataAAD(groupID []byte, epoch uint64, t ContentType) []byte {
	w := codec.NewWriter(make([]byte, 0, len(groupID)+13))
	w.Opaque(groupID)
	w.Uint64(epoch)
	w.Uint8(uint8(t))
	return w.Bytes()
}

// marshalPrivateContent encodes PrivateMessageContent with zero padding
// up to a multiple of padBlock bytes (no padding when padBlock <= 1).
func marshalPrivateContent(a *AuthenticatedContent, padBlock int) []byte {
	// Sized for an application message and its padding (a proposal or
	// commit grows the buffer as it needs).
	hint := len(a.Content.ApplicationData) + len(a.Auth.Signature) + len(a.Auth.ConfirmationTag) + 16
	w := codec.NewWriter(make([]byte, 0, hint+max(padBlock, 0)))
	a.Content.marshalBody(w)
	a.Auth.marshal(w, a.Content.ContentType)
	b := w.Bytes()
	if padBlock > 1 {
		if r := len(b) % padBlock; r != 0 {
			b = append(b, make([]byte, padBlock-r)...)
		}
	}
	return b
}

// unmarshalPrivateContent decodes PrivateMessageContent of type t into
// c's body and auth; the padding must be all zero.
func unmarshalPrivateContent(b []byte, c *FramedContent, auth *FramedContentAuthData) error {
	r := codec.NewReader(bytes.Clone(b)) // decoded fields outlive b
	c.unmarshalBody(r)
	auth.unmarshal(r, c.ContentType)
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: PrivateMessageContent: %w", ErrMalformed, err)
	}
	for _, x := range r.Raw(r.Len()) {
		if x != 0 {
			return fmt.Errorf("%w: PrivateMessageContent padding is not zero", ErrMalformed)
		}
	}
	return nil
}

// EncryptPrivate protects a (wire format mls_private_message, signed by
// a member) as a PrivateMessage (RFC 9420 §6.3), consuming the next
// generation of the sender's ratchet in keys.Tree.
func EncryptPrivate(s *suite.Suite, rnd io.Reader, a *AuthenticatedContent, keys PrivateKeys, padBlock int) (*PrivateMessage, error) {
	c := &a.Content
	if a.WireFormat != WirePrivateMessage || c.Sender.Type != SenderMember {
		return nil, fmt.Errorf("%w: PrivateMessage needs member content signed for it", ErrMalformed)
	}
	if c.ContentType == ContentCommit && len(a.Auth.ConfirmationTag) == 0 {
		return nil, fmt.Errorf("%w: commit without confirmation tag", ErrMalformed)
	}
	var guard [4]byte
	if _, err := io.ReadFull(rnd, guard[:]); err != nil {
		return nil, fmt.Errorf("mls: reuse guard: %w", err)
	}
	kn, err := keys.Tree.Next(c.Sender.Index, ratchetFor(c.ContentType))
	if err != nil {
		return nil, fmt.Errorf("mls: message key: %w", err)
	}
	defer kn.Clear()
	for i := range guard {
		kn.Nonce[i] ^= guard[i]
	}
	pt := marshalPrivateContent(a, padBlock)
	defer clear(pt)
	ct, err := s.Seal(kn.Key, kn.Nonce, privateContentAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData), pt)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt content: %w", err)
	}
	w := codec.NewWriter(nil)
	w.Uint32(c.Sender.Index)
	w.Uint32(kn.Generation)
	w.Raw(guard[:])
	key, nonce, err := schedule.SenderDataKeyNonce(s, keys.SenderDataSecret, ct)
	if err != nil {
		return nil, err
	}
	esd, err := s.Seal(key, nonce, senderDataAAD(c.GroupID, c.Epoch, c.ContentType), w.Bytes())
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt sender data: %w", err)
	}
	return &PrivateMessage{GroupID: c.GroupID, Epoch: c.Epoch, ContentType: c.ContentType,
		AuthenticatedData: c.AuthenticatedData, EncryptedSenderData: esd, Ciphertext: ct}, nil
}

// SenderData is the decrypted sender data of a PrivateMessage.
type SenderData struct {
	Leaf       treemath.LeafIndex
	Generation uint32
	ReuseGuard [4]byte
}

// OpenSenderData decrypts a PrivateMessage's sender data. It changes no
// state.
func OpenSenderData(s *suite.Suite, p *PrivateMessage, senderDataSecret []byte) (SenderData, error) {
	key, nonce, err := schedule.SenderDataKeyNonce(s, senderDataSecret, p.Ciphertext)
	if err != nil {
		return SenderData{}, err
	}
	b, err := s.Open(key, nonce, senderDataAAD(p.GroupID, p.Epoch, p.ContentType), p.EncryptedSenderData)
	if err != nil {
		return SenderData{}, fmt.Errorf("%w: sender data: %w", ErrAuth, err)
	}
	if len(b) != senderDataLen {
		return SenderData{}, fmt.Errorf("%w: sender data is %d bytes", ErrMalformed, len(b))
	}
	r := codec.NewReader(b)
	sd := SenderData{Leaf: treemath.LeafIndex(r.Uint32()), Generation: r.Uint32()}
	copy(sd.ReuseGuard[:], r.Raw(4))
	return sd, nil
}

// DecryptPrivate unprotects a PrivateMessage (RFC 9420 §6.3). check is
// called with the decrypted content before the message key is consumed;
// it verifies the sender (leaf in the tree, signature) and may do any
// further processing. Only if check returns nil is the key deleted from
// keys.Tree, so a message that fails any check changes nothing.
func DecryptPrivate(s *suite.Suite, p *PrivateMessage, keys PrivateKeys,
	check func(*AuthenticatedContent) error) (*AuthenticatedContent, error) {
	sd, err := OpenSenderData(s, p, keys.SenderDataSecret)
	if err != nil {
		return nil, err
	}
	aad := privateContentAAD(p.GroupID, p.Epoch, p.ContentType, p.AuthenticatedData)
	var out *AuthenticatedContent
	err = keys.Tree.Open(uint32(sd.Leaf), ratchetFor(p.ContentType), sd.Generation, func(kn schedule.KeyNonce) error {
		nonce := append([]byte(nil), kn.Nonce...)
		defer clear(nonce)
		for i := range sd.ReuseGuard {
			nonce[i] ^= sd.ReuseGuard[i]
		}
		pt, err := s.Open(kn.Key, nonce, aad, p.Ciphertext)
		if err != nil {
			return fmt.Errorf("%w: content: %w", ErrAuth, err)
		}
		defer clear(pt)
		a := &AuthenticatedContent{WireFormat: WirePrivateMessage, Content: FramedContent{
			GroupID: p.GroupID, Epoch: p.Epoch, Sender: Sender{Type: SenderMember, Index: uint32(sd.Leaf)},
			AuthenticatedData: p.AuthenticatedData, ContentType: p.ContentType}}
		if err := unmarshalPrivateContent(pt, &a.Content, &a.Auth); err != nil {
			return err
		}
		if err := check(a); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mls: open PrivateMessage from leaf %d generation %d: %w", sd.Leaf, sd.Generation, err)
	}
	return out, nil
}
