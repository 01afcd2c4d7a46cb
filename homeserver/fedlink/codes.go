package fedlink

import (
	"errors"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
)

// The two stable code enums, wire.Code (devices) and fedwire.Code
// (servers), meet here and only here: one table read both ways. A code of
// one side without a row for that direction becomes CODE_BAD_REQUEST on
// the other (a refusal the receiver cannot act on otherwise).
type direction uint8

const (
	both   direction = iota
	toFed            // only wire -> fedwire
	toWire           // only fedwire -> wire
)

var codeTable = []struct {
	fed  fedwire.Code
	wire wire.Code
	dir  direction
}{
	{fedwire.Code_CODE_OK, wire.Code_CODE_OK, both},
	{fedwire.Code_CODE_BAD_REQUEST, wire.Code_CODE_BAD_REQUEST, both},
	{fedwire.Code_CODE_UNAVAILABLE, wire.Code_CODE_UNAVAILABLE, both},
	{fedwire.Code_CODE_NOT_FOUND, wire.Code_CODE_NOT_FOUND, both},
	{fedwire.Code_CODE_FORBIDDEN, wire.Code_CODE_FORBIDDEN, both},
	{fedwire.Code_CODE_NOT_MEMBER, wire.Code_CODE_NOT_MEMBER, both},
	{fedwire.Code_CODE_NO_KEY_PACKAGES, wire.Code_CODE_NO_KEY_PACKAGES, both},
	{fedwire.Code_CODE_STALE_EPOCH, wire.Code_CODE_STALE_EPOCH, both},
	{fedwire.Code_CODE_TOO_LARGE, wire.Code_CODE_TOO_LARGE, both},
	{fedwire.Code_CODE_RATE_LIMITED, wire.Code_CODE_RATE_LIMITED, both},
	// A failure inside this server is CODE_INTERNAL to the peer (it retries
	// the envelope); a peer's internal failure is, to a device, the peer
	// being unavailable.
	{fedwire.Code_CODE_INTERNAL, wire.Code_CODE_INTERNAL, toFed},
	{fedwire.Code_CODE_INTERNAL, wire.Code_CODE_UNAVAILABLE, toWire},
	// A peer's bad signature is reported to the device as such; this
	// server's own signature failures are not the peer's concern.
	{fedwire.Code_CODE_BAD_SIGNATURE, wire.Code_CODE_BAD_SIGNATURE, toWire},
}

// fedKind is the fedwire code of wire code c.
func fedKind(c wire.Code) fedwire.Code {
	for _, r := range codeTable {
		if r.wire == c && r.dir != toWire {
			return r.fed
		}
	}
	return fedwire.Code_CODE_BAD_REQUEST
}

// wireKind is the wire code of fedwire code c, for a device.
func wireKind(c fedwire.Code) wire.Code {
	for _, r := range codeTable {
		if r.fed == c && r.dir != toFed {
			return r.wire
		}
	}
	return wire.Code_CODE_BAD_REQUEST
}

// fedKindOf is the fedwire code of an error of either vocabulary: a
// *federation.Error keeps its own, anything else is mapped from its wire
// kind.
func fedKindOf(err error) fedwire.Code {
	var fe *federation.Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return fedKind(wire.KindOf(err))
}
