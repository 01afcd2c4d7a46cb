package admin

import (
	"context"
	"net/http"
	"time"

	"hearth/homeserver/wire"
)

// Federation request bodies.
type (
	peerAddRequest struct {
		Domain  string `json:"domain"`
		Address string `json:"address"`
		CAPEM   []byte `json:"ca_pem"`
	}
	keyRotateRequest struct {
		GraceMs int64 `json:"grace_ms"`
	}
	policyRequest struct {
		Op    string `json:"op"` // allow, deny, mode
		Value string `json:"value"`
	}
)

var (
	_ FederationOps    = (*Client)(nil)
	_ FederationKeyOps = (*Client)(nil)
)

// federationRoutes serves FederationOps when the server's Ops has them.
func (s *SocketServer) federationRoutes(mux *http.ServeMux) {
	fops := func(w http.ResponseWriter) FederationOps {
		f, ok := s.ops.(FederationOps)
		if !ok {
			wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_UNAVAILABLE, "this server has no federation"))
		}
		return f
	}
	mux.HandleFunc("GET /v1/federation", func(w http.ResponseWriter, r *http.Request) {
		if f := fops(w); f != nil {
			info, err := f.FederationList(r.Context())
			info.Peers, info.Allow, info.Deny = nonNil(info.Peers), nonNil(info.Allow), nonNil(info.Deny)
			s.reply(w, http.StatusOK, info, err)
		}
	})
	mux.HandleFunc("POST /v1/federation/peers", func(w http.ResponseWriter, r *http.Request) {
		var req peerAddRequest
		if !s.decode(w, r, &req) {
			return
		}
		noteTarget(r, "domain", req.Domain)
		if f := fops(w); f != nil {
			p, err := f.FederationPeerAdd(r.Context(), req.Domain, req.Address, req.CAPEM)
			s.reply(w, http.StatusCreated, p, err)
		}
	})
	mux.HandleFunc("POST /v1/federation/keys/rotate", func(w http.ResponseWriter, r *http.Request) {
		var req keyRotateRequest
		if !s.decode(w, r, &req) {
			return
		}
		k, ok := s.ops.(FederationKeyOps)
		if !ok {
			wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_UNAVAILABLE, "this server cannot rotate federation keys"))
			return
		}
		rot, err := k.FederationKeyRotate(r.Context(), time.Duration(req.GraceMs)*time.Millisecond)
		s.reply(w, http.StatusOK, rot, err)
	})
	mux.HandleFunc("POST /v1/tokens/keys/rotate", func(w http.ResponseWriter, r *http.Request) {
		var req keyRotateRequest
		if !s.decode(w, r, &req) {
			return
		}
		k, ok := s.ops.(TokenKeyOps)
		if !ok {
			wire.WriteError(w, s.log, wire.Errorf("admin", wire.Code_CODE_UNAVAILABLE, "this server cannot rotate token keys"))
			return
		}
		rot, err := k.TokenKeyRotate(r.Context(), time.Duration(req.GraceMs)*time.Millisecond)
		s.reply(w, http.StatusOK, rot, err)
	})
	mux.HandleFunc("POST /v1/federation/policy", func(w http.ResponseWriter, r *http.Request) {
		var req policyRequest
		if !s.decode(w, r, &req) {
			return
		}
		noteTarget(r, req.Op, req.Value)
		if f := fops(w); f != nil {
			s.reply(w, http.StatusNoContent, nil, f.FederationPolicy(r.Context(), req.Op, req.Value))
		}
	})
}

// FederationPeerAdd pins a peer (see FederationOps).
func (c *Client) FederationPeerAdd(ctx context.Context, domain, address string, caPEM []byte) (PeerInfo, error) {
	var p PeerInfo
	err := c.do(ctx, "admin.FederationPeerAdd", http.MethodPost, "/v1/federation/peers", peerAddRequest{domain, address, caPEM}, &p)
	return p, err
}

// FederationList reports the federation state.
func (c *Client) FederationList(ctx context.Context) (FederationInfo, error) {
	var info FederationInfo
	err := c.do(ctx, "admin.FederationList", http.MethodGet, "/v1/federation", nil, &info)
	return info, err
}

// FederationPolicy changes the policy.
func (c *Client) FederationPolicy(ctx context.Context, op, value string) error {
	return c.do(ctx, "admin.FederationPolicy", http.MethodPost, "/v1/federation/policy", policyRequest{op, value}, nil)
}

// FederationKeyRotate makes a new federation signing key current; the old
// one stays published, valid until now+grace.
func (c *Client) FederationKeyRotate(ctx context.Context, grace time.Duration) (KeyRotation, error) {
	var k KeyRotation
	err := c.do(ctx, "admin.FederationKeyRotate", http.MethodPost, "/v1/federation/keys/rotate", keyRotateRequest{grace.Milliseconds()}, &k)
	return k, err
}

// TokenKeyRotate makes a new access-token signing key current; tokens the
// old one signed are accepted until now+grace.
func (c *Client) TokenKeyRotate(ctx context.Context, grace time.Duration) (KeyRotation, error) {
	var k KeyRotation
	err := c.do(ctx, "admin.TokenKeyRotate", http.MethodPost, "/v1/tokens/keys/rotate", keyRotateRequest{grace.Milliseconds()}, &k)
	return k, err
}
