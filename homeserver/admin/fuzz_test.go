package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"hearth/homeserver/wire"
)

// FuzzSocketRequest feeds arbitrary requests to the admin handler: it must
// answer every one, with a JSON error body whenever it refuses.
func FuzzSocketRequest(f *testing.F) {
	f.Add("POST", "/v1/users", []byte(`{"name":"a","password":"cGFzc3dvcmQ=","admin":true}`))
	f.Add("PUT", "/v1/users/a/password", []byte(`{"password":"eA=="}`))
	f.Add("DELETE", "/v1/users/a/devices/D1", []byte(nil))
	f.Add("POST", "/v1/users", []byte(`{"name":1}`))
	f.Add("GET", "/v1/users/%2e%2e/devices", []byte(nil))
	f.Add("PUT", "/v1/users/a/role", []byte(`{"role":"admin"}`))
	f.Add("PUT", "/v1/users/a/role", []byte(`{"role":"root"}`))
	f.Add("GET", "/v1/audit?limit=-1", []byte(nil))
	f.Add("GET", "/v1/audit?limit=99999999999999999999", []byte(nil))
	h := NewSocketServer(newMemOps(), nil).routes()
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		req, err := http.NewRequest(method, "http://admin"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 400 && w.Code != http.StatusMethodNotAllowed {
			var eb wire.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Code == "" {
				t.Fatalf("%s %s: %d with body %q", method, path, w.Code, w.Body.Bytes())
			}
		}
	})
}
