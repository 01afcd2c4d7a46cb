package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Error is the error type of the homeserver and client. Op names the
// operation ("homeserver.Send"), Kind is the stable wire code.
type Error struct {
	Op         string
	Kind       Code
	Msg        string
	Err        error
	RetryAfter int64 // milliseconds, with CODE_RATE_LIMITED
}

// E builds an *Error. Args may be: string op (first string), Code kind,
// error (wrapped; its Kind is inherited when kind is unset, and an
// *Error's RetryAfter always), and a message
// given as a second string.
func E(args ...any) error {
	e := &Error{}
	for _, a := range args {
		switch v := a.(type) {
		case string:
			if e.Op == "" {
				e.Op = v
			} else {
				e.Msg = v
			}
		case Code:
			e.Kind = v
		case *Error:
			e.Err, e.RetryAfter = v, v.RetryAfter
		case error:
			e.Err = v
		}
	}
	if e.Kind == Code_CODE_OK {
		e.Kind = KindOf(e.Err)
	}
	return e
}

// Errorf is E(op, kind, fmt.Sprintf(format, args...)).
func Errorf(op string, kind Code, format string, args ...any) error {
	return &Error{Op: op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Msg != "" {
		b.WriteString(e.Msg)
	} else if e.Err == nil {
		b.WriteString(KindText(e.Kind))
	}
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Code of the first *Error in err's chain that has one,
// CODE_OK for nil and CODE_INTERNAL otherwise.
func KindOf(err error) Code {
	if err == nil {
		return Code_CODE_OK
	}
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			break
		}
		if e.Kind != Code_CODE_OK {
			return e.Kind
		}
		err = e.Err
	}
	return Code_CODE_INTERNAL
}

// Is reports whether err carries kind.
func Is(err error, kind Code) bool { return KindOf(err) == kind }

// Retryable reports whether a client should retry after this code.
func Retryable(c Code) bool {
	switch c {
	case Code_CODE_STALE_EPOCH, Code_CODE_RATE_LIMITED, Code_CODE_UNAVAILABLE, Code_CODE_INTERNAL:
		return true
	}
	return false
}

// KindText is a short lowercase description of a code, for messages.
func KindText(c Code) string {
	s := strings.TrimPrefix(c.String(), "CODE_")
	return strings.ToLower(strings.ReplaceAll(s, "_", " "))
}

// ToProto turns any error into a wire Error for a response frame. Internal
// errors get a generic message: details stay in the server log.
func ToProto(err error) *ErrorInfo {
	kind := KindOf(err)
	msg := KindText(kind)
	var e *Error
	if kind != Code_CODE_INTERNAL && errors.As(err, &e) {
		msg = err.Error()
	}
	pe := &ErrorInfo{Code: kind, Message: msg, Retryable: Retryable(kind)}
	if errors.As(err, &e) && e.RetryAfter > 0 {
		pe.RetryAfterMs = uint64(e.RetryAfter)
	}
	return pe
}

// FromProto turns a wire Error into an *Error for the client side.
func FromProto(op string, pe *ErrorInfo) error {
	return &Error{Op: op, Kind: pe.GetCode(), Msg: pe.GetMessage(), RetryAfter: int64(pe.GetRetryAfterMs())}
}

// Internal wraps an unexpected error (storage, crypto) of op as
// CODE_INTERNAL; an *Error keeps its kind (re-attributed to op when it
// came from another operation).
func Internal(op string, err error) error {
	var we *Error
	if errors.As(err, &we) {
		if we.Op == op {
			return err
		}
		return E(op, err)
	}
	return &Error{Op: op, Kind: Code_CODE_INTERNAL, Err: err}
}
