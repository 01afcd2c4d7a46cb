package message

import (
	"fmt"

	"hearth/keys/mls/treemath"
)

// Envelope is what a server can read from an MLSMessage without any group
// secret: enough for the hub to order messages per group and epoch and to
// follow the roster through commits (which Hearth sends as
// PublicMessage). Nothing in it is verified: to accept a commit and learn
// the roster change it makes, the hub uses keys/mls PublicGroup.Apply, which
// checks the commit against the group's public state.
type Envelope struct {
	WireFormat  WireFormat
	GroupID     []byte
	Epoch       uint64
	ContentType ContentType // PublicMessage and PrivateMessage
	// Sender of a PublicMessage (PrivateMessage senders are encrypted).
	Sender *Sender
	// For a PublicMessage commit: identities added by value (Adds and,
	// for an external commit, the joiner), leaves removed by value, and
	// whether proposals by reference are included (their content is in
	// earlier proposal messages).
	Added        [][]byte
	Removed      []treemath.LeafIndex
	ByReference  int
	ExternalJoin bool
	// AuthenticatedData of a PublicMessage (Hearth puts the group admin
	// signature of a role-gated commit there).
	AuthenticatedData []byte
	// Extensions is the new GroupContext extension list of a commit's
	// GroupContextExtensions proposal by value (HasExtensions tells an
	// empty list from none).
	Extensions    Extensions
	HasExtensions bool
}

// PeekWireFormat returns the wire format an MLSMessage declares in its
// header (the two bytes after the protocol version) without decoding the
// rest, and false if msg is too short or not MLS 1.0. Nothing is
// verified: it lets a caller skip a full decode (Inspect) of messages it
// has no use for, e.g. the PrivateMessages a member receives most.
func PeekWireFormat(msg []byte) (WireFormat, bool) {
	if len(msg) < 4 || ProtocolVersion(uint16(msg[0])<<8|uint16(msg[1])) != MLS10 {
		return 0, false
	}
	return WireFormat(uint16(msg[2])<<8 | uint16(msg[3])), true
}

// Inspect decodes msg's envelope. It does not verify anything.
func Inspect(msg []byte) (*Envelope, error) {
	var m MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("mls: inspect: %w", err)
	}
	e := &Envelope{WireFormat: m.WireFormat}
	switch m.WireFormat {
	case WirePrivateMessage:
		p := m.PrivateMessage
		e.GroupID, e.Epoch, e.ContentType = p.GroupID, p.Epoch, p.ContentType
	case WirePublicMessage:
		c := &m.PublicMessage.Content
		e.GroupID, e.Epoch, e.ContentType, e.Sender = c.GroupID, c.Epoch, c.ContentType, &c.Sender
		e.AuthenticatedData = c.AuthenticatedData
		if c.ContentType == ContentProposal {
			e.addProposal(c.Proposal)
		}
		if c.ContentType == ContentCommit {
			e.addCommit(c)
		}
	case WireGroupInfo:
		gc := &m.GroupInfo.GroupContext
		e.GroupID, e.Epoch = gc.GroupID, gc.Epoch
	}
	return e, nil
}

func (e *Envelope) addProposal(p *Proposal) {
	switch p.Type {
	case ProposalAdd:
		e.Added = append(e.Added, p.Add.LeafNode.Credential.Identity)
	case ProposalRemove:
		e.Removed = append(e.Removed, p.Remove)
	case ProposalGroupContextExtensions:
		e.Extensions, e.HasExtensions = p.GroupContextExtensions, true
	}
}

func (e *Envelope) addCommit(c *FramedContent) {
	for _, p := range c.Commit.Proposals {
		if p.Proposal == nil {
			e.ByReference++
			continue
		}
		e.addProposal(p.Proposal)
	}
	if c.Sender.Type == SenderNewMemberCommit && c.Commit.Path != nil {
		e.ExternalJoin = true
		e.Added = append(e.Added, c.Commit.Path.LeafNode.Credential.Identity)
	}
}
