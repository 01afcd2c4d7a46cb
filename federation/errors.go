package federation

import (
	"errors"
	"fmt"

	"hearth/federation/fedwire"
)

// Error is a federation failure with its stable wire code. It has the
// shape of the homeserver's wire.Error (Op, Kind, KindOf, Retryable);
// homeserver/fedlink maps one vocabulary to the other in one table.
type Error struct {
	Op   string
	Kind fedwire.Code
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	s := e.Op + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(op string, code fedwire.Code, format string, args ...any) error {
	return &Error{Op: op, Kind: code, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the code of the first *Error in err's chain, CODE_OK for
// nil and CODE_INTERNAL for anything else.
func KindOf(err error) fedwire.Code {
	if err == nil {
		return fedwire.Code_CODE_OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return fedwire.Code_CODE_INTERNAL
}

// Retryable reports whether an envelope refused with code should be sent
// again later. Unlike wire.Retryable, CODE_STALE_EPOCH is not: it is the
// hub's verdict, which the device redoes.
func Retryable(code fedwire.Code) bool {
	switch code {
	case fedwire.Code_CODE_UNAVAILABLE, fedwire.Code_CODE_INTERNAL, fedwire.Code_CODE_RATE_LIMITED:
		return true
	}
	return false
}
