package transport

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"hearth/homeserver/wire"
)

// Message is one history entry in GET /hearth/v1/messages responses.
type Message struct {
	Seq             uint64 `json:"seq"`
	Conversation    string `json:"conversation"`
	ConversationSeq uint64 `json:"conversation_seq"`
	Sender          string `json:"sender"`
	MessageID       string `json:"message_id"`
	Kind            string `json:"kind"` // "application", "commit", "welcome", "proposal"
	Epoch           uint64 `json:"epoch"`
	Payload         []byte `json:"payload"` // standard base64 in JSON
	ServerTimeMs    int64  `json:"server_time_ms"`
}

// MessageFromWire converts a delivery to its JSON form.
func MessageFromWire(d *wire.Delivery) Message {
	kind := strings.ToLower(strings.TrimPrefix(d.GetKind().String(), "MESSAGE_KIND_"))
	return Message{
		Seq: d.GetSeq(), Conversation: d.GetConversationId(), ConversationSeq: d.GetConversationSeq(),
		Sender: d.GetSender(), MessageID: d.GetMessageId(), Kind: kind, Epoch: d.GetEpoch(),
		Payload: d.GetPayload(), ServerTimeMs: d.GetServerTimeMs(),
	}
}

// serveMessages answers GET /hearth/v1/messages?conversation=ID&before=SEQ&limit=N
// with a JSON list of Message, for the bearer of the Authorization token.
func (s *Server) serveMessages(w http.ResponseWriter, r *http.Request) {
	const op = "transport.Messages"
	token, ok := bearerToken(r)
	if !ok {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "missing bearer token"))
		return
	}
	conv, before, limit, err := parseHistoryQuery(r.URL.Query(), s.cfg.HistoryMaxLimit)
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	if s.deps.History == nil {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "history is not served here"))
		return
	}
	ds, err := s.deps.History.History(r.Context(), token, conv, before, limit)
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	out := make([]Message, 0, len(ds))
	for _, d := range ds {
		out = append(out, MessageFromWire(d))
	}
	wire.WriteJSON(w, http.StatusOK, out)
}

// parseHistoryQuery reads conversation (required), before (optional
// sequence) and limit (optional, 1.., clamped to maxLimit).
func parseHistoryQuery(q url.Values, maxLimit int) (conv string, before uint64, limit int, err error) {
	const op = "transport.Messages"
	conv = q.Get("conversation")
	if conv == "" {
		return "", 0, 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "missing conversation")
	}
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseUint(v, 10, 64); err != nil {
			return "", 0, 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "before: not a sequence number")
		}
	}
	limit = defaultHistoryLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", 0, 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "limit: not a positive number")
		}
		limit = n
	}
	return conv, before, min(limit, maxLimit), nil
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

// serveHealth answers GET /healthz: 200 {"status":"ok",...} or 503.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	type body struct {
		Status string `json:"status"`
		Health
	}
	var h Health
	if s.deps.Health != nil {
		var err error
		if h, err = s.deps.Health(r.Context()); err != nil {
			s.log.Warn("health check failed", "err", err)
			wire.WriteJSON(w, http.StatusServiceUnavailable, body{Status: "unavailable"})
			return
		}
	}
	if s.isClosing() {
		wire.WriteJSON(w, http.StatusServiceUnavailable, body{Status: "shutting down", Health: h})
		return
	}
	wire.WriteJSON(w, http.StatusOK, body{Status: "ok", Health: h})
}
