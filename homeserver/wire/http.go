// The HTTP form of errors is for servers and tools; the browser's client
// (GOOS=js) has no use for it and does not carry net/http.

//go:build !js

package wire

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// HTTPStatus is the HTTP status for a wire code: the one place where wire
// codes become HTTP statuses (REST and the admin socket both use it).
func HTTPStatus(c Code) int {
	switch c {
	case Code_CODE_OK:
		return http.StatusOK
	case Code_CODE_BAD_REQUEST, Code_CODE_BAD_SIGNATURE:
		return http.StatusBadRequest
	case Code_CODE_UNAUTHENTICATED, Code_CODE_BAD_CREDENTIALS, Code_CODE_DEVICE_REVOKED:
		return http.StatusUnauthorized
	case Code_CODE_FORBIDDEN, Code_CODE_PENDING_APPROVAL, Code_CODE_USER_DISABLED,
		Code_CODE_NOT_MEMBER, Code_CODE_LIMIT:
		return http.StatusForbidden
	case Code_CODE_NOT_FOUND, Code_CODE_NO_KEY_PACKAGES:
		return http.StatusNotFound
	case Code_CODE_CONFLICT, Code_CODE_STALE_EPOCH, Code_CODE_VERSION:
		return http.StatusConflict
	case Code_CODE_TOO_LARGE:
		return http.StatusRequestEntityTooLarge
	case Code_CODE_RATE_LIMITED:
		return http.StatusTooManyRequests
	case Code_CODE_UNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Code         string `json:"code"` // wire code name, e.g. "CODE_NOT_FOUND"
	Message      string `json:"message"`
	Retryable    bool   `json:"retryable,omitempty"`
	RetryAfterMs uint64 `json:"retry_after_ms,omitempty"`
}

// Err turns a received ErrorBody back into a *Error for op. An unknown
// code name becomes CODE_INTERNAL.
func (b ErrorBody) Err(op string) error {
	kind := Code_CODE_INTERNAL
	if v, ok := Code_value[b.Code]; ok && v != 0 {
		kind = Code(v)
	}
	return &Error{Op: op, Kind: kind, Msg: b.Message, RetryAfter: int64(b.RetryAfterMs)}
}

// WriteError answers with err's code as HTTP status and an ErrorBody.
// Internal errors are logged here, with their detail, and answered with a
// generic message.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	pe := ToProto(err)
	if pe.Code == Code_CODE_INTERNAL && log != nil {
		log.Error("internal error", "err", err)
	}
	var we *Error
	if pe.Code == Code_CODE_UNAUTHENTICATED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hearth"`)
	}
	if errors.As(err, &we) && we.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt((we.RetryAfter+999)/1000, 10))
	}
	WriteJSON(w, HTTPStatus(pe.Code), ErrorBody{
		Code: pe.Code.String(), Message: pe.Message, Retryable: pe.Retryable, RetryAfterMs: pe.RetryAfterMs,
	})
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v) // the status is sent; a failed write has nowhere to go
}
