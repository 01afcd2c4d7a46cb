package message

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
	l.Credential.Encode(w)
	l.Capabilities.Encode(w)
	w.Uint8(uint8(l.Source))
	switch l.Source {
	case SourceKeyPackage:
		l.Lifetime.Encode(w)
	case SourceCommit:
		w.Opaque(l.ParentHash)
	}
	l.Extensions.Encode(w)
}

// SizeHint is at least the length of the leaf's encoding, to size
// writers up front (a hybrid-suite leaf is about 1.4 KB; growing a writer
// from nothing to that copies it several times, for every leaf signature
// checked and every leaf hashed).
func (l *LeafNode) SizeHint() int {
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

// Encode writes the wire encoding to w.
func (l *LeafNode) Encode(w *codec.Writer) {
	l.marshalContent(w)
	w.Opaque(l.Signature)
}

// Decode reads the wire encoding from r, recording any error on r.
func (l *LeafNode) Decode(r *codec.Reader) {
	l.EncryptionKey = r.Opaque()
	l.SignatureKey = r.Opaque()
	l.Credential.Decode(r)
	l.Capabilities.Decode(r)
	l.Source = LeafNodeSource(r.Uint8())
	switch l.Source {
	case SourceKeyPackage:
		l.Lifetime.Decode(r)
	case SourceUpdate:
	case SourceCommit:
		l.ParentHash = r.Opaque()
	default:
		badValue(r, "leaf node source %d", l.Source)
	}
	l.Extensions.Decode(r)
	l.Signature = r.Opaque()
}

// Marshal returns the wire encoding.
func (l *LeafNode) Marshal() []byte { return encode(l) }

// Unmarshal decodes exactly b.
func (l *LeafNode) Unmarshal(b []byte) error { return decode(l, b, "LeafNode") }

// TBS returns the LeafNodeTBS bytes the leaf's signature covers (RFC 9420
// §7.2). groupID and leaf are used only for the update and commit sources.
func (l *LeafNode) TBS(groupID []byte, leaf treemath.LeafIndex) []byte {
	w := codec.NewWriter(make([]byte, 0, l.SizeHint()+len(groupID)+8))
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

// Encode writes the wire encoding to w.
func (p *ParentNode) Encode(w *codec.Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	codec.WriteList(w, p.UnmergedLeaves, func(w *codec.Writer, l treemath.LeafIndex) { w.Uint32(uint32(l)) })
}

// Decode reads the wire encoding from r, recording any error on r.
func (p *ParentNode) Decode(r *codec.Reader) {
	p.EncryptionKey = r.Opaque()
	p.ParentHash = r.Opaque()
	p.UnmergedLeaves = codec.ReadList(r, func(r *codec.Reader) treemath.LeafIndex { return treemath.LeafIndex(r.Uint32()) })
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

// Encode writes the wire encoding to w.
func (n *Node) Encode(w *codec.Writer) {
	if n.Leaf != nil {
		w.Uint8(uint8(NodeTypeLeaf))
		n.Leaf.Encode(w)
		return
	}
	w.Uint8(uint8(NodeTypeParent))
	n.Parent.Encode(w)
}

// Decode reads the wire encoding from r, recording any error on r.
func (n *Node) Decode(r *codec.Reader) {
	switch t := NodeType(r.Uint8()); t {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.Decode(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.Decode(r)
	default:
		badValue(r, "node type %d", t)
	}
}

// RatchetTreeNodes is the ratchet_tree extension (RFC 9420 §12.4.3.3):
// the tree's nodes in array order, nil for blank nodes, without trailing
// blanks.
type RatchetTreeNodes []*Node

// Encode writes the wire encoding to w.
func (t RatchetTreeNodes) Encode(w *codec.Writer) {
	codec.WriteList(w, t, func(w *codec.Writer, n *Node) {
		w.Optional(n != nil, func(w *codec.Writer) { n.Encode(w) })
	})
}

// Decode reads the wire encoding from r, recording any error on r.
func (t *RatchetTreeNodes) Decode(r *codec.Reader) {
	*t = codec.ReadList(r, func(r *codec.Reader) *Node {
		var n *Node
		r.Optional(func(r *codec.Reader) {
			n = new(Node)
			n.Decode(r)
		})
		return n
	})
}

// Marshal returns the wire encoding.
func (t RatchetTreeNodes) Marshal() []byte { return encode(t) }

// Unmarshal decodes exactly b. Structural checks (leaf/parent positions,
// odd length, last node present) are done by treekem.NewRatchetTree.
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
	k.LeafNode.Encode(w)
	k.Extensions.Encode(w)
}

// Encode writes the wire encoding to w.
func (k *KeyPackage) Encode(w *codec.Writer) {
	k.marshalTBS(w)
	w.Opaque(k.Signature)
}

// Decode reads the wire encoding from r, recording any error on r.
func (k *KeyPackage) Decode(r *codec.Reader) {
	k.Version = ProtocolVersion(r.Uint16())
	if r.Err() == nil && k.Version != MLS10 {
		badValue(r, "protocol version %d", k.Version)
	}
	k.CipherSuite = CipherSuite(r.Uint16())
	k.InitKey = r.Opaque()
	k.LeafNode.Decode(r)
	k.Extensions.Decode(r)
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
