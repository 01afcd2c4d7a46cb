package admin

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"hearth/homeserver/wire"
)

// InviteOps is what the admin socket serves for invite codes. It is a
// separate interface so that Ops stays as it was; the socket server uses
// it when its Ops value also implements it.
type InviteOps interface {
	// InviteCreate issues a code good for uses accounts until now+ttl.
	InviteCreate(ctx context.Context, uses int, ttl time.Duration) (InviteCreated, error)
	// InviteList lists every invite (prefix only: codes are stored hashed).
	InviteList(ctx context.Context) ([]InviteInfo, error)
	// InviteRevoke revokes the invite with this full code, or, when code
	// is empty, the one with this id (from InviteList).
	InviteRevoke(ctx context.Context, code string, id int64) error
}

// InviteInfo describes one invite. The full code is never kept by the
// server; Prefix is its first group, enough to tell invites apart.
type InviteInfo struct {
	ID        int64  `json:"id"`
	Prefix    string `json:"prefix"`
	Uses      int    `json:"uses"`
	UsesLeft  int    `json:"uses_left"`
	ExpiresMs int64  `json:"expires_ms"`
	CreatedMs int64  `json:"created_ms"`
	RevokedMs int64  `json:"revoked_ms,omitempty"`
	State     string `json:"state"` // "active", "expired", "used", "revoked"
}

// InviteCreated is `hearth admin invite create`: the only time the full
// code is shown.
type InviteCreated struct {
	Code string `json:"code"`
	InviteInfo
}

type (
	inviteCreateRequest struct {
		Uses  int   `json:"uses"`
		TTLMs int64 `json:"ttl_ms"`
	}
	inviteRevokeRequest struct {
		Code string `json:"code,omitempty"`
		ID   int64  `json:"id,omitempty"`
	}
)

var _ InviteOps = (*Client)(nil)

// inviteRoutes serves InviteOps when the server's Ops has them. Codes
// travel only in request and response bodies, never in paths.
func (s *SocketServer) inviteRoutes(mux *http.ServeMux) {
	iops := func(w http.ResponseWriter) InviteOps {
		i, ok := s.ops.(InviteOps)
		if !ok {
			wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_UNAVAILABLE, "this server has no invite codes"))
		}
		return i
	}
	mux.HandleFunc("GET /v1/invites", func(w http.ResponseWriter, r *http.Request) {
		if i := iops(w); i != nil {
			list, err := i.InviteList(r.Context())
			s.reply(w, http.StatusOK, nonNil(list), err)
		}
	})
	mux.HandleFunc("POST /v1/invites", func(w http.ResponseWriter, r *http.Request) {
		var req inviteCreateRequest
		if !s.decode(w, r, &req) {
			return
		}
		if i := iops(w); i != nil {
			c, err := i.InviteCreate(r.Context(), req.Uses, time.Duration(req.TTLMs)*time.Millisecond)
			s.reply(w, http.StatusCreated, c, err)
		}
	})
	mux.HandleFunc("POST /v1/invites/revoke", func(w http.ResponseWriter, r *http.Request) {
		var req inviteRevokeRequest
		if !s.decode(w, r, &req) {
			return
		}
		if req.ID != 0 {
			noteTarget(r, "id", strconv.FormatInt(req.ID, 10)) // never the code: it is a secret
		}
		if i := iops(w); i != nil {
			s.reply(w, http.StatusNoContent, nil, i.InviteRevoke(r.Context(), req.Code, req.ID))
		}
	})
}

// InviteCreate issues an invite code (see InviteOps).
func (c *Client) InviteCreate(ctx context.Context, uses int, ttl time.Duration) (InviteCreated, error) {
	var out InviteCreated
	err := c.do(ctx, "admin.InviteCreate", http.MethodPost, "/v1/invites", inviteCreateRequest{uses, ttl.Milliseconds()}, &out)
	return out, err
}

// InviteList lists invites (see InviteOps).
func (c *Client) InviteList(ctx context.Context) ([]InviteInfo, error) {
	var out []InviteInfo
	err := c.do(ctx, "admin.InviteList", http.MethodGet, "/v1/invites", nil, &out)
	return out, err
}

// InviteRevoke revokes an invite by code or id (see InviteOps).
func (c *Client) InviteRevoke(ctx context.Context, code string, id int64) error {
	return c.do(ctx, "admin.InviteRevoke", http.MethodPost, "/v1/invites/revoke", inviteRevokeRequest{code, id}, nil)
}
