package transport

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"hearth/homeserver/wire"
)

// PathMedia serves encrypted media by id: GET /hearth/v1/media/ID with the
// access token as bearer, ranges allowed (Range: bytes=…). Each download is
// its own HTTP request, so over HTTP/3 its own QUIC stream, beside the
// control stream.
const PathMedia = "/hearth/v1/media/"

// MediaSource opens a complete media (its ciphertext, seekable for
// ranges) for the bearer of an access token.
type MediaSource interface {
	OpenMedia(ctx context.Context, accessToken, mediaID string) (io.ReadSeekCloser, error)
}

// serveMedia answers GET and HEAD on PathMedia+ID.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) {
	const op = "transport.Media"
	token, ok := bearerToken(r)
	if !ok {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "missing bearer token"))
		return
	}
	if s.deps.Media == nil {
		wire.WriteError(w, s.log, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "media is not served here"))
		return
	}
	id := strings.TrimPrefix(r.URL.Path, PathMedia)
	f, err := s.deps.Media.OpenMedia(r.Context(), token, id)
	if err != nil {
		wire.WriteError(w, s.log, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream") // ciphertext; the type travels in the message
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("ETag", `"`+id+`"`) // a media id names one immutable ciphertext
	http.ServeContent(w, r, "", time.Time{}, f)
}
