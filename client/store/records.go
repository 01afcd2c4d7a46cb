package store

import (
	"bytes"
	"fmt"
	"time"
)

// Account is this device's login.
type Account struct {
	User          string    `json:"user"`      // user@domain
	DeviceID      string    `json:"device_id"` // the server's id of this device
	Server        string    `json:"server"`    // HOST:PORT
	CAPath        string    `json:"ca_path"`   // PEM file of the CA that signs the server certificate
	DeviceName    string    `json:"device_name"`
	AccessToken   string    `json:"access_token"`
	AccessExpires time.Time `json:"access_expires"`
	RefreshToken  string    `json:"refresh_token"`
	// Active is true once the device holds the identity key material and is
	// on the user's signed device list.
	Active bool `json:"active"`
	// LinkCode is what another device approves while this one is pending.
	LinkCode string `json:"link_code,omitempty"`
}

// Account returns the stored account, or ErrNotFound.
func (t *Tx) Account() (Account, error) {
	if t.acct != nil {
		if a, ok := t.acct.get(t.id); ok {
			return a, nil
		}
	}
	var a Account
	err := t.getRecord(t.bucket(bAccount), kAccount, &a)
	if err == nil && t.acct != nil {
		t.acct.put(t.id, a)
	}
	return a, err
}

// PutAccount replaces the stored account.
func (t *Tx) PutAccount(a Account) error {
	if a.User == "" || a.DeviceID == "" {
		return fmt.Errorf("store: account needs user and device id")
	}
	t.acctWrote()
	return t.putRecord(t.bucket(bAccount), kAccount, a)
}

// DeleteAccount removes the stored account (a pending login withdrawn).
func (t *Tx) DeleteAccount() error {
	t.acctWrote()
	return t.bucket(bAccount).Delete(kAccount)
}

func (t *Tx) acctWrote() {
	if t.acct != nil {
		t.acct.wrote(t.id)
	}
}

// Key names in the keys bucket.
const (
	KeyIdentity = "identity" // the user's identity signing key (Ed25519 seed); never the recovery key
	// KeyRecoveryPending holds a first device's recovery key text only
	// until its login finished (so an interrupted login can show it
	// again); activation deletes it (docs/decisions/0008-device-secrets.md).
	KeyRecoveryPending = "recovery-pending"
	KeySignature       = "signature"   // this device's MLS signature private key
	KeyLink            = "link"        // this device's X25519 link private key
	keyPkgPrefix       = "keypackage/" // + KeyPackage reference
)

// Key returns the secret stored under name, or ErrNotFound. The
// signature key is kept in memory between transactions (reccache.go).
func (t *Tx) Key(name string) ([]byte, error) {
	sig := t.sigCache(name)
	if sig != nil {
		if v, ok := sig.get(t.id); ok {
			return bytes.Clone(v), nil
		}
	}
	v, err := t.get(t.bucket(bKeys), []byte(name))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, ErrNotFound
	}
	if sig != nil {
		sig.put(t.id, bytes.Clone(v))
	}
	return v, nil
}

// sigCache is the cache for the key name, if it has one.
func (t *Tx) sigCache(name string) *recCache[[]byte] {
	if name != KeySignature {
		return nil
	}
	return t.sig
}

// PutKey stores a secret under name, replacing any previous one.
func (t *Tx) PutKey(name string, secret []byte) error {
	if name == "" || len(secret) == 0 {
		return fmt.Errorf("store: key needs a name and a value")
	}
	if c := t.sigCache(name); c != nil {
		c.wrote(t.id)
	}
	t.keysWritten()
	return t.put(t.bucket(bKeys), []byte(name), secret)
}

// DeleteKey removes the secret under name, if any.
func (t *Tx) DeleteKey(name string) error {
	if c := t.sigCache(name); c != nil {
		c.wrote(t.id)
	}
	t.keysWritten()
	return t.bucket(bKeys).Delete([]byte(name))
}

// KeysChecked reports whether a transaction called MarkKeysChecked and
// no transaction wrote a key (PutKey, DeleteKey, KeyPackages) between it
// and this one, in this process or another: a check of the keys that
// the caller noted then still holds. False when unknown (the file was
// opened again since, a write failed, the browser's store).
func (t *Tx) KeysChecked() bool {
	if t.keys == nil {
		return false
	}
	_, ok := t.keys.get(t.id)
	return ok
}

// MarkKeysChecked notes that the caller checked the keys as this
// transaction sees them (KeysChecked).
func (t *Tx) MarkKeysChecked() {
	if t.keys != nil {
		t.keys.put(t.id, struct{}{})
	}
}

func (t *Tx) keysWritten() {
	if t.keys != nil {
		t.keys.wrote(t.id)
	}
}

// PutKeyPackage stores the private part of a published KeyPackage by its reference.
func (t *Tx) PutKeyPackage(ref, private []byte) error {
	if len(ref) == 0 {
		return fmt.Errorf("store: empty KeyPackage reference")
	}
	return t.PutKey(keyPkgPrefix+string(ref), private)
}

// KeyPackage returns the private part of a KeyPackage by reference, or ErrNotFound.
func (t *Tx) KeyPackage(ref []byte) ([]byte, error) { return t.Key(keyPkgPrefix + string(ref)) }

// DeleteKeyPackage removes a used KeyPackage's private part.
func (t *Tx) DeleteKeyPackage(ref []byte) error { return t.DeleteKey(keyPkgPrefix + string(ref)) }

// KeyPackageRefs lists the references of every stored KeyPackage private key.
func (t *Tx) KeyPackageRefs() [][]byte {
	var refs [][]byte
	c := t.bucket(bKeys).Cursor()
	p := []byte(keyPkgPrefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		refs = append(refs, cloneBytes(k[len(p):]))
	}
	return refs
}

// CountKeyPackages counts the stored KeyPackage private keys for which
// counts (if not nil) reports true, up to max (all of them if max <= 0),
// without copying their references: a check run on every Flush.
func (t *Tx) CountKeyPackages(max int, counts func(ref []byte) bool) int {
	n := 0
	c := t.bucket(bKeys).Cursor()
	p := []byte(keyPkgPrefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && (max <= 0 || n < max); k, _ = c.Next() {
		if counts == nil || counts(k[len(p):]) {
			n++
		}
	}
	return n
}

// KeyNames returns the names of the secrets stored under prefix.
func (t *Tx) KeyNames(prefix string) []string {
	var names []string
	c := t.bucket(bKeys).Cursor()
	p := []byte(prefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		names = append(names, string(k))
	}
	return names
}

// Group returns the serialized MLS state of a conversation, or ErrNotFound.
func (t *Tx) Group(conv string) ([]byte, error) {
	b := t.bucket(bConvs)
	if b == nil || validConv(conv) != nil {
		return nil, ErrNotFound
	}
	v, err := t.get(b, stateKey(conv))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, ErrNotFound
	}
	return v, nil
}

// putState writes conv's MLS state, beside its newest history (convs.go).
func (t *Tx) putState(conv string, state []byte) error {
	if conv == "" || len(state) == 0 {
		return fmt.Errorf("store: group needs a conversation and a state")
	}
	if err := validConv(conv); err != nil {
		return err
	}
	size := len(state)
	if t.s != nil {
		size += sealOverhead
	}
	return t.put(t.convBucket(conv, size), stateKey(conv), state)
}

// PutGroup replaces the serialized MLS state of a conversation with a
// whole state (one that embeds its trees): trees stored for a split state
// of the conversation (PutGroupSplit) are deleted.
func (t *Tx) PutGroup(conv string, state []byte) error {
	if err := t.putState(conv, state); err != nil {
		return err
	}
	return treesOf(t).delete(conv)
}

// Conversations lists the conversations that have a group state, in id order.
func (t *Tx) Conversations() []string {
	var out []string
	t.eachConv(kindState, func(conv string) { out = append(out, conv) })
	return out
}

// MailboxSeq returns the last processed mailbox sequence (0 if none).
func (t *Tx) MailboxSeq() uint64 {
	v := t.bucket(bMailbox).Get(kMailbox)
	if len(v) != 8 {
		return 0
	}
	return be64(v)
}

// SetMailboxSeq records seq as processed. Sequences only grow: a smaller or
// equal seq is refused, so a delivery can never be processed twice.
func (t *Tx) SetMailboxSeq(seq uint64) error {
	if cur := t.MailboxSeq(); seq <= cur {
		return fmt.Errorf("store: mailbox seq %d not after %d", seq, cur)
	}
	return t.bucket(bMailbox).Put(kMailbox, u64key(seq))
}

// Meta returns a small named value from the sync bucket (nil if unset).
func (t *Tx) Meta(name string) []byte {
	v, err := t.get(t.bucket(bSync), []byte("meta/"+name))
	if err != nil {
		return nil // a value that does not open reads as unset
	}
	return v
}

// PutMeta stores a small named value in the sync bucket.
func (t *Tx) PutMeta(name string, v []byte) error {
	return t.put(t.bucket(bSync), []byte("meta/"+name), v)
}

func be64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// MetaNames returns the names of the values whose name starts with
// prefix, without the prefix, in order.
func (t *Tx) MetaNames(prefix string) []string {
	var out []string
	p := []byte("meta/" + prefix)
	c := t.bucket(bSync).Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

// DeleteMeta removes a named value from the sync bucket.
func (t *Tx) DeleteMeta(name string) error {
	return t.bucket(bSync).Delete([]byte("meta/" + name))
}

// DeleteGroup removes a conversation's group state and its stored trees.
func (t *Tx) DeleteGroup(conv string) error {
	if validConv(conv) == nil {
		if err := t.bucket(bConvs).Delete(stateKey(conv)); err != nil {
			return err
		}
	}
	return treesOf(t).delete(conv)
}

// MediaRef is an encrypted file on the homeserver that a message refers
// to (client.SendFile, client.FetchMedia). Key decrypts it; it is secret
// like the message itself.
type MediaRef struct {
	ID     string `json:"id"`     // the server's media id
	Key    string `json:"key"`    // keys/media key, base64url
	SHA256 string `json:"sha256"` // of the ciphertext, hex
	// PlainSHA256 is the SHA-256 of the file itself (what sha256sum
	// prints), hex; empty in references from before it was sent.
	PlainSHA256 string `json:"plain_sha256,omitempty"`
	Size        int64  `json:"size"` // plaintext bytes
	Type        string `json:"type"` // MIME type, e.g. "image/png"
	Name        string `json:"name"` // file name, without folders
	// Server is the domain of the server holding the file (the uploader's);
	// empty in references from before media crossed servers: the reader's own.
	Server string `json:"server,omitempty"`
}
