package message

import (
	"errors"
	"fmt"

	"hearth/keys/mls/suite"
)

// ErrAuth reports a message whose signature, membership tag or
// confirmation tag does not verify, or that fails decryption.
var ErrAuth = errors.New("mls: message authentication failed")

const labelFramedContent = "FramedContentTBS"

// SignContent signs c as the sender would send it in wire format wf and
// returns it as AuthenticatedContent (RFC 9420 §6.1). ctx is the group's
// current GroupContext; it is covered for member and new_member_commit
// senders. A commit's confirmation tag is set by the caller afterwards.
func SignContent(s *suite.Suite, signer *suite.Signer, wf WireFormat, c *FramedContent,
	ctx *GroupContext) (*AuthenticatedContent, error) {
	if wf == WirePublicMessage && c.ContentType == ContentApplication {
		return nil, fmt.Errorf("%w: application data must be sent as PrivateMessage", ErrMalformed)
	}
	sig, err := s.SignWithLabel(signer, labelFramedContent, FramedContentTBS(wf, c, ctx))
	if err != nil {
		return nil, fmt.Errorf("mls: sign content: %w", err)
	}
	return &AuthenticatedContent{WireFormat: wf, Content: *c, Auth: FramedContentAuthData{Signature: sig}}, nil
}

// VerifySignature checks a's signature with the sender's signature key.
func (a *AuthenticatedContent) VerifySignature(s *suite.Suite, key SignaturePublicKey, ctx *GroupContext) error {
	if err := s.VerifyWithLabel(key, labelFramedContent, a.TBS(ctx), a.Auth.Signature); err != nil {
		return fmt.Errorf("%w: content signature: %w", ErrAuth, err)
	}
	return nil
}

// NewPublicMessage frames a (wire format mls_public_message) as a
// PublicMessage, adding the membership tag for member senders
// (RFC 9420 §6.2). Application content is refused.
func NewPublicMessage(s *suite.Suite, a *AuthenticatedContent, membershipKey []byte, ctx *GroupContext) (*PublicMessage, error) {
	if a.WireFormat != WirePublicMessage {
		return nil, fmt.Errorf("%w: content was signed for wire format %d", ErrMalformed, a.WireFormat)
	}
	if a.Content.ContentType == ContentApplication {
		return nil, fmt.Errorf("%w: application data must be sent as PrivateMessage", ErrMalformed)
	}
	if a.Content.ContentType == ContentCommit && len(a.Auth.ConfirmationTag) == 0 {
		return nil, fmt.Errorf("%w: commit without confirmation tag", ErrMalformed)
	}
	p := &PublicMessage{Content: a.Content, Auth: a.Auth}
	if a.Content.Sender.Type == SenderMember {
		p.MembershipTag = s.MAC(membershipKey, p.AuthenticatedContentTBM(ctx))
	}
	return p, nil
}

// VerifyMembershipTag checks the membership tag of a member's message;
// messages from other senders must not carry one.
func (p *PublicMessage) VerifyMembershipTag(s *suite.Suite, membershipKey []byte, ctx *GroupContext) error {
	if p.Content.Sender.Type != SenderMember {
		return nil
	}
	if !s.VerifyMAC(membershipKey, p.AuthenticatedContentTBM(ctx), p.MembershipTag) {
		return fmt.Errorf("%w: membership tag", ErrAuth)
	}
	return nil
}

// VerifyPublic checks a PublicMessage's membership tag (member senders)
// and signature against sigKey, the sender's signature key. A commit's
// confirmation tag is checked by the caller once the new epoch is known.
func (p *PublicMessage) VerifyPublic(s *suite.Suite, membershipKey []byte, sigKey SignaturePublicKey, ctx *GroupContext) error {
	if p.Content.ContentType == ContentApplication {
		return fmt.Errorf("%w: application data in a PublicMessage", ErrMalformed)
	}
	if err := p.VerifyMembershipTag(s, membershipKey, ctx); err != nil {
		return err
	}
	return p.AuthenticatedContent().VerifySignature(s, sigKey, ctx)
}
