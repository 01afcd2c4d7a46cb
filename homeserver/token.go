package homeserver

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Access tokens are JWTs (RFC 7519) signed with EdDSA (RFC 8037, Ed25519)
// by the server's signing key. Claims: iss (domain), sub (user address),
// did (device id), iat, exp, jti, and ims (issue time in milliseconds, to
// compare with a device's tokens_after mark precisely).

// jwtHeader is the one header this server issues and accepts.
const jwtHeader = `{"alg":"EdDSA","typ":"JWT"}`

var (
	b64url        = base64.RawURLEncoding
	jwtHeaderB64  = b64url.EncodeToString([]byte(jwtHeader))
	errBadToken   = errors.New("invalid access token")
	errExpired    = errors.New("access token expired")
	maxTokenBytes = 2048
)

type claims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Did string `json:"did"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
	Ims int64  `json:"ims"`
}

// parseAccessToken verifies the signature, issuer and expiry of a token.
func parseAccessToken(pub ed25519.PublicKey, domain string, now time.Time, tok string) (*claims, error) {
	if len(tok) > maxTokenBytes {
		return nil, errBadToken
	}
	h, rest, ok := strings.Cut(tok, ".")
	if !ok || h != jwtHeaderB64 {
		return nil, errBadToken
	}
	body, sigText, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, errBadToken
	}
	sig, err := b64url.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errBadToken
	}
	if !ed25519.Verify(pub, []byte(tok[:len(h)+1+len(body)]), sig) {
		return nil, errBadToken
	}
	raw, err := b64url.DecodeString(body)
	if err != nil {
		return nil, errBadToken
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errBadToken
	}
	if c.Iss != domain || c.Sub == "" || c.Did == "" {
		return nil, errBadToken
	}
	if now.Unix() >= c.Exp {
		return nil, errExpired
	}
	return &c, nil
}

// randomText returns n random bytes as unpadded base64url.
func randomText(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("randomness: %w", err)
	}
	return b64url.EncodeToString(b), nil
}

// base32 alphabet for device ids and link tokens: readable, no 0/1/8/9.
const b32chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// randomCode returns n random characters of b32chars (5 bits each).
func randomCode(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("randomness: %w", err)
	}
	for i := range b {
		b[i] = b32chars[b[i]&31]
	}
	return string(b), nil
}

// tokenHash is how refresh and link tokens are stored.
func tokenHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// issueAccessToken signs a token for a device; it returns the token and
// its expiry.
func (s *authority) issueAccessToken(userAddr, deviceID string) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(s.cfg.AccessTokenTTL)
	jti, err := randomText(s.rand, 16)
	if err != nil {
		return "", time.Time{}, err
	}
	c := claims{Iss: s.cfg.Domain, Sub: userAddr, Did: deviceID, Iat: now.Unix(), Exp: exp.Unix(), Jti: jti, Ims: now.UnixMilli()}
	body, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	signing := jwtHeaderB64 + "." + b64url.EncodeToString(body)
	sig := ed25519.Sign(s.signingKey(), []byte(signing))
	return signing + "." + b64url.EncodeToString(sig), exp, nil
}
