package store

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// treesMemo remembers, per conversation, which trees (by reference) its
// bucket in bTrees holds, as a write transaction left it: a state save
// that names the same trees as the last one (every message's save) then
// skips the bucket, instead of opening it, listing it and looking up each
// tree (PutGroupSplit). Only write transactions use it, and they run one
// at a time, so an entry holds until a later write of the conversation's
// trees (which drops it first), a failed transaction (which drops the
// entries it made) or the file being opened again (another process may
// have written). The browser's store has no transaction ids and always
// syncs.
type treesMemo struct {
	mu      sync.Mutex
	entries map[string]treesEntry
	syncs   int // full syncs run (tests)
}

type treesEntry struct {
	refs string // refsKey of the trees
	at   int    // id of the transaction that left them so
}

// treesMemoMax bounds the entries (a device with more conversations
// saved since the file was opened starts over).
const treesMemoMax = 4096

// holds reports whether conv's bucket holds exactly the trees of refs.
func (m *treesMemo) holds(conv, refs string) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[conv]
	return ok && e.refs == refs
}

// forget drops conv's entry: its trees are being written.
func (m *treesMemo) forget(conv string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, conv)
}

// synced records that the transaction with id id left conv's bucket
// holding exactly the trees of refs.
func (m *treesMemo) synced(conv, refs string, id int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
	if m.entries == nil || len(m.entries) >= treesMemoMax {
		m.entries = map[string]treesEntry{}
	}
	m.entries[conv] = treesEntry{refs: refs, at: id}
}

// failed drops what the write transaction with id id recorded: it did not
// commit.
func (m *treesMemo) failed(id int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for conv, e := range m.entries {
		if e.at >= id {
			delete(m.entries, conv)
		}
	}
}

// reset forgets everything (the file was opened again).
func (m *treesMemo) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = nil
}

// refsKey is the set of refs of trees as one comparable string.
func refsKey(trees map[string][]byte) string {
	if len(trees) == 1 {
		for ref := range trees {
			return ref
		}
	}
	refs := make([]string, 0, len(trees))
	for ref := range trees {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	var b strings.Builder
	for _, ref := range refs {
		b.WriteString(strconv.Itoa(len(ref))) // refs are hashes; the lengths keep any two sets apart
		b.WriteByte(':')
		b.WriteString(ref)
	}
	return b.String()
}
