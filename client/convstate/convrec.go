package convstate

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

// A conversation record is read on every message sent (roster freshness,
// sealing), so it is stored in a small binary form rather than JSON:
// convBinary (a byte no JSON text starts with), then the id, the peers
// (their count, then each), the creator, each as an unsigned varint length
// and its bytes, and the group flag (0 or 1). Records written as JSON by
// earlier versions still read; fields added later go at the end, and a
// reader ignores bytes after the ones it knows.
const convBinary = 0x01

var errConvRecord = errors.New("convstate: damaged conversation record")

func encodeConversation(cv Conversation) []byte {
	b := make([]byte, 0, 16+len(cv.ID)+len(cv.Creator)+32*len(cv.Peers))
	b = append(b, convBinary)
	b = appendField(b, cv.ID)
	b = binary.AppendUvarint(b, uint64(len(cv.Peers)))
	for _, p := range cv.Peers {
		b = appendField(b, p)
	}
	b = appendField(b, cv.Creator)
	if cv.Group {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func decodeConversation(raw []byte) (Conversation, error) {
	var cv Conversation
	if len(raw) == 0 || raw[0] != convBinary {
		err := json.Unmarshal(raw, &cv)
		return cv, err
	}
	b := raw[1:]
	field := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var ok bool
	if cv.ID, ok = field(); !ok {
		return Conversation{}, errConvRecord
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) { // every peer takes a byte at least
		return Conversation{}, errConvRecord
	}
	b = b[k:]
	if n > 0 {
		cv.Peers = make([]string, n)
	}
	for i := range cv.Peers {
		if cv.Peers[i], ok = field(); !ok {
			return Conversation{}, errConvRecord
		}
	}
	if cv.Creator, ok = field(); !ok || len(b) == 0 || b[0] > 1 {
		return Conversation{}, errConvRecord
	}
	cv.Group = b[0] == 1
	return cv, nil
}
