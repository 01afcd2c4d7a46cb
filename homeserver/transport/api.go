package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"hearth/homeserver/wire"
)

// REST paths for integrations (docs/rest.md, docs/openapi.json).
const (
	PathTokenRefresh  = "/hearth/v1/token/refresh"
	PathConversations = "/hearth/v1/conversations"
)

// TokenServer trades a refresh token for a new token pair for the client
// at remote (its "host:port", for per-address limits).
type TokenServer interface {
	RefreshTokens(ctx context.Context, remote, refreshToken string) (*wire.RefreshOK, error)
}

// ConversationLister lists the conversations of the bearer's user.
type ConversationLister interface {
	Conversations(ctx context.Context, accessToken string) ([]*wire.ConversationInfo, error)
}

// TokenPair is the answer of POST /hearth/v1/token/refresh.
type TokenPair struct {
	AccessToken     string `json:"access_token"`
	AccessExpiresMs int64  `json:"access_expires_ms"`
	RefreshToken    string `json:"refresh_token"` // the one sent stops working
}

// Conversation is one entry of GET /hearth/v1/conversations.
type Conversation struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"` // "direct" or "group"
	Epoch     uint64   `json:"epoch"`
	Members   []string `json:"members"` // device addresses user@domain/DEVICE
	LastSeq   uint64   `json:"last_seq"`
	Creator   string   `json:"creator"`
	CreatedMs int64    `json:"created_ms"`
}

// maxTokenBody bounds a token refresh request body.
const maxTokenBody = 4 << 10

// parseRefreshBody reads {"refresh_token": "..."}; anything else is
// CODE_BAD_REQUEST.
func parseRefreshBody(b []byte) (string, error) {
	const op = "transport.TokenRefresh"
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "bad request body: want {\"refresh_token\": \"...\"}")
	}
	if dec.More() {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "bad request body: one JSON object only")
	}
	if req.RefreshToken == "" {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "missing refresh_token")
	}
	return req.RefreshToken, nil
}

// serveTokenRefresh answers POST PathTokenRefresh.
func (s *Server) serveTokenRefresh(w http.ResponseWriter, r *http.Request) {
	const op = "transport.TokenRefresh"
	if s.deps.Tokens == nil {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "token refresh is not served here"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenBody))
	if err != nil || len(body) == 0 {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "bad request body: want {\"refresh_token\": \"...\"} of at most %d bytes", maxTokenBody))
		return
	}
	tok, err := parseRefreshBody(body)
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	ok, err := s.deps.Tokens.RefreshTokens(r.Context(), r.RemoteAddr, tok)
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, TokenPair{AccessToken: ok.GetAccessToken(), AccessExpiresMs: ok.GetAccessExpiresMs(), RefreshToken: ok.GetRefreshToken()})
}

// serveConversations answers GET PathConversations for the bearer.
func (s *Server) serveConversations(w http.ResponseWriter, r *http.Request) {
	const op = "transport.Conversations"
	token, ok := bearerToken(r)
	if !ok {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "missing bearer token"))
		return
	}
	if s.deps.Conversations == nil {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "conversations are not served here"))
		return
	}
	cs, err := s.deps.Conversations.Conversations(r.Context(), token)
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	out := make([]Conversation, 0, len(cs))
	for _, c := range cs {
		members := c.GetMembers()
		if members == nil {
			members = []string{}
		}
		out = append(out, Conversation{ID: c.GetConversationId(), Kind: strings.ToLower(strings.TrimPrefix(c.GetKind().String(), "CONVERSATION_KIND_")),
			Epoch: c.GetEpoch(), Members: members, LastSeq: c.GetLastSeq(), Creator: c.GetCreator(), CreatedMs: c.GetCreatedMs()})
	}
	wire.WriteJSON(w, http.StatusOK, out)
}
