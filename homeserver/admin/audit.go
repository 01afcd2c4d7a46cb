package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"hearth/homeserver/wire"
)

// AuditEntry is one administrative request in the audit log: who (Via and
// Actor), what (Action, Target), when (AtMs) and the result (Status, Code).
type AuditEntry struct {
	ID     int64  `json:"id"`
	AtMs   int64  `json:"at_ms"`
	Via    string `json:"via"`              // "socket" or "rest"
	Actor  string `json:"actor"`            // "local" (socket) or user@domain/DEVICE
	Remote string `json:"remote,omitempty"` // client network address (REST)
	Action string `json:"action"`           // route, e.g. "POST /v1/users/{name}/disable"
	Target string `json:"target,omitempty"` // what it named, e.g. "name=alice"
	Status int    `json:"status"`           // HTTP status answered
	Code   string `json:"code,omitempty"`   // wire error code name; "" on success
}

// Audit ways and the socket's actor.
const (
	ViaSocket   = "socket"
	ViaREST     = "rest"
	ActorLocal  = "local"
	maxAuditLim = 10000
	defAuditLim = 100
)

// AuditLog records audit entries; *homeserver.Server implements it.
type AuditLog interface {
	AuditRecord(ctx context.Context, e AuditEntry) error
}

// auditKey carries the request's *auditNote in its context.
type auditKey struct{}

// auditNote is what a handler adds to its request's audit entry.
type auditNote struct{ target []string }

// noteTarget adds "key=value" to the audit entry of r (for what the route's
// path does not name, e.g. the user in a POST /v1/users body). Never pass
// secrets (passwords, invite codes).
func noteTarget(r *http.Request, key, value string) {
	if n, ok := r.Context().Value(auditKey{}).(*auditNote); ok {
		n.target = append(n.target, key+"="+value)
	}
}

// auditor wraps the admin routes: it records one AuditEntry per request
// that record says to keep, after the route has answered.
type auditor struct {
	mux *http.ServeMux
	log AuditLog
	via string
	now func() time.Time
	lg  *slog.Logger
}

// serve runs the request through the routes and records it as actor.
func (a *auditor) serve(w http.ResponseWriter, r *http.Request, actor string, record bool) {
	note := &auditNote{}
	r = r.WithContext(context.WithValue(r.Context(), auditKey{}, note))
	rec := &statusRecorder{ResponseWriter: w}
	a.mux.ServeHTTP(rec, r)
	if !record || a.log == nil {
		return
	}
	e := AuditEntry{AtMs: a.now().UnixMilli(), Via: a.via, Actor: actor, Action: r.Pattern, Status: rec.status(), Code: rec.code()}
	if a.via == ViaREST {
		e.Remote = r.RemoteAddr
	}
	if e.Action == "" || e.Action == "/" {
		e.Action = r.Method + " " + r.URL.Path
	}
	e.Target = strings.Join(append(patternValues(r), note.target...), " ")
	a.write(r.Context(), e)
}

// write stores e under a context that outlives the request: an admin who
// hangs up after the action is still recorded.
func (a *auditor) write(ctx context.Context, e AuditEntry) {
	e.Actor, e.Remote, e.Action, e.Target = printable(e.Actor), printable(e.Remote), printable(e.Action), printable(e.Target)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.log.AuditRecord(ctx, e); err != nil {
		a.lg.Error("cannot write the admin audit log", "action", e.Action, "actor", e.Actor, "err", err)
	}
}

// maxAuditField bounds each text field of an audit entry.
const maxAuditField = 512

// printable is s cut to maxAuditField bytes with every non-printable rune
// (terminal escapes in a path a refused user sent, say) replaced by '?',
// so that `hearth admin audit` shows what happened and nothing else.
func printable(s string) string {
	if len(s) > maxAuditField {
		s = strings.ToValidUTF8(s[:maxAuditField], "") + "…"
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}

// patternValues returns "name=value" for each wildcard of the matched
// route pattern, e.g. "name=alice id=ABC" for /v1/users/{name}/devices/{id}.
func patternValues(r *http.Request) []string {
	var out []string
	for _, seg := range strings.Split(r.Pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && seg != "{$}" {
			k := strings.TrimSuffix(seg[1:len(seg)-1], "...")
			out = append(out, k+"="+r.PathValue(k))
		}
	}
	return out
}

// statusRecorder remembers the status and the start of an error body.
type statusRecorder struct {
	http.ResponseWriter
	st   int
	head bytes.Buffer
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.st == 0 {
		s.st = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.st == 0 {
		s.st = http.StatusOK
	}
	if s.st >= 300 && s.head.Len() < 512 {
		s.head.Write(b[:min(len(b), 512-s.head.Len())])
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the backup
// route streams and clears its deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if s.st == 0 {
		return http.StatusOK
	}
	return s.st
}

// code is the wire code name of an error answer ("" on success).
func (s *statusRecorder) code() string {
	if s.status() < 300 {
		return ""
	}
	var eb wire.ErrorBody
	if json.Unmarshal(s.head.Bytes(), &eb) != nil || eb.Code == "" {
		return http.StatusText(s.status())
	}
	return eb.Code
}

// auditRoutes serves the role change and the audit log.
func (s *SocketServer) auditRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/users/{name}/role", func(w http.ResponseWriter, r *http.Request) {
		var req roleRequest
		if !s.decode(w, r, &req) {
			return
		}
		noteTarget(r, "role", req.Role)
		isAdmin, err := parseRole(req.Role)
		if err == nil {
			err = s.ops.UserSetRole(r.Context(), r.PathValue("name"), isAdmin)
		}
		s.reply(w, http.StatusNoContent, nil, err)
	})
	mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) {
		limit := defAuditLim
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_BAD_REQUEST, "limit: not a positive number"))
				return
			}
			limit = min(n, maxAuditLim)
		}
		es, err := s.ops.AuditList(r.Context(), limit)
		s.reply(w, http.StatusOK, nonNil(es), err)
	})
}

// roleRequest is the body of PUT /v1/users/{name}/role.
type roleRequest struct {
	Role string `json:"role"` // "admin" or "user"
}

func parseRole(role string) (bool, error) {
	switch role {
	case "admin":
		return true, nil
	case "user":
		return false, nil
	}
	return false, wire.Errorf("admin", wire.Code_CODE_BAD_REQUEST, "role %q: want admin or user", role)
}

// UserSetRole gives or takes the admin role.
func (c *Client) UserSetRole(ctx context.Context, name string, admin bool) error {
	role := "user"
	if admin {
		role = "admin"
	}
	return c.do(ctx, "admin.UserSetRole", http.MethodPut, userPath(name, "role"), roleRequest{Role: role}, nil)
}

// AuditList reads the newest limit entries of the audit log.
func (c *Client) AuditList(ctx context.Context, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := c.do(ctx, "admin.AuditList", http.MethodGet, "/v1/audit?limit="+url.QueryEscape(strconv.Itoa(limit)), nil, &out)
	return out, err
}

// WithAudit records the socket's changing requests in l (as ActorLocal).
func WithAudit(l AuditLog) SocketOption {
	return func(s *SocketServer) { s.audit = l }
}
