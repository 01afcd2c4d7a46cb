package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"hearth/homeserver/wire"
)

// PathREST is where the server's HTTPS listener serves the admin routes to
// admin-role users: /hearth/v1/admin/users is the socket's /v1/users, and
// so on for every route.
const PathREST = "/hearth/v1/admin"

// Authorizer checks the bearer of an access token for remote
// administration. It returns the actor (user@domain/DEVICE) whenever the
// token names a device, and an error: CODE_UNAUTHENTICATED (401) for a
// missing, invalid or expired token, CODE_FORBIDDEN (403) for a user
// without the admin role, or the code of a revoked, pending or disabled
// device or account.
type Authorizer interface {
	AuthorizeAdmin(ctx context.Context, accessToken string) (actor string, err error)
}

// NewRESTHandler serves the same routes as the admin socket under
// PathREST, for bearers of an access token of an admin-role user's active
// device. Every request that passes the token check, or is refused for
// its user's role, is recorded in audit with the user's device as actor
// (reads included: they happen over the network). Requests without a
// valid token are answered 401 and logged, not recorded, so that
// anonymous traffic cannot fill the audit log.
func NewRESTHandler(ops Ops, authz Authorizer, audit AuditLog, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &SocketServer{ops: ops, audit: audit, log: log}
	a := &auditor{mux: s.routes(), log: audit, via: ViaREST, now: time.Now, lg: log}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const op = "admin.REST"
		rest, ok := strings.CutPrefix(r.URL.Path, PathREST)
		if !ok || (rest != "" && rest[0] != '/') {
			wire.WriteError(w, log, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no admin operation %s %s", r.Method, r.URL.Path))
			return
		}
		tok, ok := bearerToken(r)
		if !ok {
			log.Info("remote admin request without a token", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			wire.WriteError(w, log, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "remote administration needs the access token of an admin's device (Authorization: Bearer TOKEN; see hearth chat token)"))
			return
		}
		actor, err := authz.AuthorizeAdmin(r.Context(), tok)
		if err != nil {
			if actor == "" {
				log.Info("remote admin request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err)
				wire.WriteError(w, log, err)
				return
			}
			a.refuse(w, r, actor, rest, err)
			return
		}
		if rest == "/backup" {
			// A backup is the whole data folder: it is taken on the server's
			// host, where it is written (and has no request time limit).
			a.refuse(w, r, actor, rest, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "backups are taken over the local admin socket only: hearth admin --dir DIR backup on the server's host"))
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/v1" + rest
		r2.URL.RawPath = ""
		if raw, ok := strings.CutPrefix(r.URL.EscapedPath(), PathREST); ok {
			r2.URL.RawPath = "/v1" + raw
		}
		a.serve(w, r2, actor, true)
	})
}

// refuse answers err to an identified actor and records the refusal.
func (a *auditor) refuse(w http.ResponseWriter, r *http.Request, actor, rest string, err error) {
	rec := &statusRecorder{ResponseWriter: w}
	wire.WriteError(rec, a.lg, err)
	if a.log == nil {
		return
	}
	a.write(r.Context(), AuditEntry{AtMs: a.now().UnixMilli(), Via: a.via, Actor: actor, Remote: r.RemoteAddr,
		Action: r.Method + " /v1" + rest, Status: rec.status(), Code: rec.code()})
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// DialREST returns a Client for the admin routes of the server at addr
// (HOST:PORT) over HTTPS, trusting tlsConf's roots (nil: the system's),
// sending the access token that token returns with every request.
func DialREST(addr string, tlsConf *tls.Config, token func(ctx context.Context) (string, error)) (*Client, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("admin: server address %q: want HOST:PORT", addr)
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConns: 1, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: time.Minute, ForceAttemptHTTP2: true}
	return &Client{base: "https://" + addr + PathREST, token: token, hc: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}
