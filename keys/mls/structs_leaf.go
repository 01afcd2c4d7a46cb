package mls

import (
	"hearth/keys/mls/codec"

	"hearth/keys/mls/treemath"
)

// LeafNodeSource says why a LeafNode was created (RFC 9420 §7.2).
type LeafNodeSource uint8

// Leaf node sources.
const (
	SourceKeyPackage LeafNodeSource = 1
	SourceUpdate     LeafNodeSource = 2
	SourceCommit     LeafNodeSource = 3
)

// LeafNode is a member's leaf in the ratchet tree (RFC 9420 §7.2).
// Lifetime is set for SourceKeyPackage, ParentHash for SourceCommit.
type LeafNode struct {
	EncryptionKey HPKEPublicKey
	SignatureKey  SignaturePublicKey
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // key_package
	ParentHash    []byte   // commit
	Extensions    Extensions
	Signature     []byte
}

func (l *LeafNode) marshalContent(w *codec.Writer) {
	w.Opaque(l.EncryptionKey)
	w.Opaque(l.SignatureKey)
	l.Credential.marshal(w)
	l.Capabilities.marshal(w)
	w.Uint8(uint8(l.Source))
	switch l.Source {
	case SourceKeyPackage:
		l.Lifetime.marshal(w)
	case SourceCommit:
		w.Opaque(l.ParentHash)
	}
	l.Extensions.marshal(w)
}

// sizeHint is at least the length of the leaf's encoding, to size
// writers up front (a hybrid-suite leaf is about 1.4 KB; growing a writer
// from nothing to that copies it several times, for every leaf signature
// checked and every leaf hashed).
func (l *LeafNode) sizeHint() int {
	c := &l.Capabilities
	n := len(l.EncryptionKey) + len(l.SignatureKey) + len(l.Credential.Identity) + len(l.ParentHash) + len(l.Signature) +
		2*(len(c.Versions)+len(c.CipherSuites)+len(c.Extensions)+len(c.Proposals)+len(c.Credentials)) + 64
	for _, cert := range l.Credential.Certificates {
		n += len(cert) + 4
	}
	for _, e := range l.Extensions {
		n += len(e.Data) + 8
	}
	return n
}

func (l *LeafNode) marshal(w *codec.Writer) {
	l.marshalContent(w)
	w.Opaque(l.Signature)
}

func (l *LeafNode) unmarshal(r *codec.Reader) {
	l.EncryptionKey = r.Opaque()
	l.SignatureKey = r.Opaque()
	l.Credential.unmarshal(r)
	l.Capabilities.unmarshal(r)
	l.Source = LeafNodeSource(r.Uint8())
	switch l.Source {
	case SourceKeyPackage:
		l.Lifetime.unmarshal(r)
	case SourceUpdate:
	case SourceCommit:
		l.ParentHash = r.Opaque()
	default:
		badValue(r, "leaf node source %d", l.Source)
	}
	l.Extensions.unmarshal(r)
	l.Signature = r.Opaque()
}

// Marshal returns the wire encoding.
func (l *LeafNode) Marshal() []byte { return encode(l) }

// Unmarshal decodes exactly b.
func (l *LeafNode) Unmarshal(b []byte) error { return decode(l, b, "LeafNode") }

// TBS returns the LeafNodeTBS bytes the leaf's signature covers (RFC 9420
// §7.2). groupID and leaf are used only for the update and commit sources.
func (l *LeafNode) TBS(groupID []byte, leaf treemath.LeafIndex) []byte {
	w := codec.NewWriter(make([]byte, 0, l.sizeHint()+len(groupID)+8))
	l.marshalContent(w)
	if l.Source == SourceUpdate || l.Source == SourceCommit {
		w.Opaque(groupID)
		w.Uint32(uint32(leaf))
	}
	return w.Bytes()
}

// ParentNode is an interior node of the ratchet tree (RFC 9420 §7.1).
type ParentNode struct {
	EncryptionKey  HPKEPublicKey
	ParentHash     []byte
	UnmergedLeaves []treemath.LeafIndex
}

func (p *ParentNode) marshal(w *codec.Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	writeList(w, p.UnmergedLeaves, func(w *codec.Writer, l treemath.LeafIndex) { w.Uint32(uint32(l)) })
}

func (p *ParentNode) unmarshal(r *codec.Reader) {
	p.EncryptionKey = r.Opaque()
	p.ParentHash = r.Opaque()
	p.UnmergedLeaves = readList(r, func(r *codec.Reader) treemath.LeafIndex { return treemath.LeafIndex(r.Uint32()) })
}

// Marshal returns the wire encoding.
func (p *ParentNode) Marshal() []byte { return encode(p) }

// Unmarshal decodes exactly b.
func (p *ParentNode) Unmarshal(b []byte) error { return decode(p, b, "ParentNode") }

// NodeType tags a Node.
type NodeType uint8

// Node types.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Node is a non-blank node of the ratchet tree: exactly one of Leaf and
// Parent is set.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

func (n *Node) marshal(w *codec.Writer) {
	if n.Leaf != nil {
		w.Uint8(uint8(NodeTypeLeaf))
		n.Leaf.marshal(w)
		return
	}
	w.Uint8(uint8(NodeTypeParent))
	n.Parent.marshal(w)
}

func (n *Node) unmarshal(r *codec.Reader) {
	switch t := NodeType(r.Uint8()); t {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.unmarshal(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.unmarshal(r)
	default:
		badValue(r, "node type %d", t)
	}
}

// RatchetTreeNodes is the ratchet_tree extension (RFC 9420 §12.4.3.3):
// the tree's nodes in array order, nil for blank nodes, without trailing
// blanks.
type RatchetTreeNodes []*Node

func (t RatchetTreeNodes) marshal(w *codec.Writer) {
	writeList(w, t, func(w *codec.Writer, n *Node) {
		w.Optional(n != nil, func(w *codec.Writer) { n.marshal(w) })
	})
}

func (t *RatchetTreeNodes) unmarshal(r *codec.Reader) {
	*t = readList(r, func(r *codec.Reader) *Node {
		var n *Node
		r.Optional(func(r *codec.Reader) {
			n = new(Node)
			n.unmarshal(r)
		})
		return n
	})
}

// Marshal returns the wire encoding.
func (t RatchetTreeNodes) Marshal() []byte { return encode(t) }

// Unmarshal decodes exactly b. Structural checks (leaf/parent positions,
// odd length, last node present) are done by NewRatchetTree.
func (t *RatchetTreeNodes) Unmarshal(b []byte) error {
	return decode(t, b, "ratchet tree")
}

// KeyPackage advertises a client's ability to join a group (RFC 9420 §10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     HPKEPublicKey
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

func (k *KeyPackage) marshalTBS(w *codec.Writer) {
	w.Uint16(uint16(k.Version))
	w.Uint16(uint16(k.CipherSuite))
	w.Opaque(k.InitKey)
	k.LeafNode.marshal(w)
	k.Extensions.marshal(w)
}

func (k *KeyPackage) marshal(w *codec.Writer) {
	k.marshalTBS(w)
	w.Opaque(k.Signature)
}

func (k *KeyPackage) unmarshal(r *codec.Reader) {
	k.Version = ProtocolVersion(r.Uint16())
	if r.Err() == nil && k.Version != MLS10 {
		badValue(r, "protocol version %d", k.Version)
	}
	k.CipherSuite = CipherSuite(r.Uint16())
	k.InitKey = r.Opaque()
	k.LeafNode.unmarshal(r)
	k.Extensions.unmarshal(r)
	k.Signature = r.Opaque()
}

// Marshal returns the wire encoding.
func (k *KeyPackage) Marshal() []byte { return encode(k) }

// Unmarshal decodes exactly b.
func (k *KeyPackage) Unmarshal(b []byte) error { return decode(k, b, "KeyPackage") }

// TBS returns the KeyPackageTBS bytes the signature covers.
func (k *KeyPackage) TBS() []byte {
	w := codec.NewWriter(nil)
	k.marshalTBS(w)
	return w.Bytes()
}
