package transport

import (
	"encoding/hex"
	"encoding/json"
)

// PathCertificates is the JSON a browser client reads before it dials
// WebTransport: {"webtransport_hashes": ["HEX SHA-256", …], …}.
const PathCertificates = "/web/certificates.json"

// certificates is the JSON at PathCertificates (homeserver/webui).
type certificates struct {
	WebTransportHashes []string `json:"webtransport_hashes"`
}

// parseCertHashes decodes PathCertificates' JSON: the SHA-256 hashes it
// lists (at most 4; anything not 32 bytes of hex is skipped).
func parseCertHashes(b []byte) [][]byte {
	var c certificates
	if len(b) > 64<<10 || json.Unmarshal(b, &c) != nil {
		return nil
	}
	var out [][]byte
	for _, h := range c.WebTransportHashes {
		d, err := hex.DecodeString(h)
		if err != nil || len(d) != 32 {
			continue
		}
		out = append(out, d)
		if len(out) == 4 {
			break
		}
	}
	return out
}
