package media

// ValidID reports whether id has the form of a media id a homeserver
// makes: 16 to 64 characters of unpadded base64url. The server refuses
// anything else without a lookup (so nothing else reaches a file name),
// and clients refuse references carrying anything else.
func ValidID(id string) bool {
	if len(id) < 16 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
