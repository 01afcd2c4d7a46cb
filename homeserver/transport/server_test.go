package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"hearth/homeserver/wire"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWebTransportRoundTrip(t *testing.T) {
	ts := startServer(t, Config{}, echoStreams{})
	ctx := testCtx(t)
	sess, str := ts.dialWT(t, ctx)
	msg := []byte("\x05hello")
	if _, err := str.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(str, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	waitSessions(t, ts.Server, 1)
	// The client finishes its side; the echo server sees EOF and closes its
	// side; the client reads EOF and, as clients do, closes the session.
	str.Close()
	if rest, err := io.ReadAll(str); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q, %v", rest, err)
	}
	sess.CloseWithError(0, "")
	waitSessions(t, ts.Server, 0)
}

// burstStreams reads the first byte (byte 0: then also until the client's
// FIN), writes burstSize bytes and ends the session at once: the last
// frames before a server-side close.
type burstStreams struct{}

const burstSize = 256 << 10

func (burstStreams) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	b := make([]byte, 1)
	if _, err := io.ReadFull(rwc, b); err != nil {
		return
	}
	if b[0] == 0 {
		io.Copy(io.Discard, rwc)
	}
	rwc.Write(bytes.Repeat([]byte{7}, burstSize))
}

func TestServerCloseLosesNoData(t *testing.T) {
	ts := startServer(t, Config{}, burstStreams{})
	ctx := testCtx(t)
	for i := range 10 {
		sess, str := ts.dialWT(t, ctx)
		// Even sessions: the client has finished its side before the server
		// writes and closes; odd: the client is still open.
		str.Write([]byte{byte(i % 2)})
		if i%2 == 0 {
			str.Close()
		}
		got, err := io.ReadAll(str)
		if err != nil || len(got) != burstSize {
			t.Fatalf("session %d: read %d bytes, %v; want %d then EOF", i, len(got), err, burstSize)
		}
		sess.CloseWithError(0, "")
	}
	waitSessions(t, ts.Server, 0)
}

func TestWebSocketRoundTrip(t *testing.T) {
	ts := startServer(t, Config{}, echoStreams{})
	ctx := testCtx(t)
	_, nc := ts.dialWS(t, ctx)
	frame, err := wire.AppendFrame(nil, &wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	var back wire.ClientFrame
	if err := wire.NewFrameReader(nc, 0).ReadMessage(&back); err != nil {
		t.Fatal(err)
	}
	if back.GetId() != 1 || back.GetPing() == nil {
		t.Fatalf("echoed frame %v", &back)
	}
	waitSessions(t, ts.Server, 1)
	nc.Close()
	waitSessions(t, ts.Server, 0)
}

func TestWebSocketOversizedMessageRefused(t *testing.T) {
	ts := startServer(t, Config{MaxFrame: 1024}, echoStreams{})
	ctx := testCtx(t)
	c, nc := ts.dialWS(t, ctx)
	if _, err := nc.Write(make([]byte, 1024+wsSlack)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, make([]byte, 1024+wsSlack)); err != nil {
		t.Fatalf("message at the limit not echoed: %v", err)
	}
	nc.Write(make([]byte, 4096))
	_, err := io.ReadAll(nc)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized message: read err %v, want close status 1009", err)
	}
	c.CloseNow()
	waitSessions(t, ts.Server, 0)
}

// getJSON does GET path on client with an optional bearer token and decodes the body.
func getJSON(t *testing.T, c *http.Client, base, path, token string, v any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rsp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	if ct := rsp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.NewDecoder(rsp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", path, err)
	}
	return rsp
}

func TestRESTMessages(t *testing.T) {
	ts := startServer(t, Config{HistoryMaxLimit: 100}, echoStreams{})
	base := "https://" + ts.addr
	q := PathMessages + "?conversation=" + url.QueryEscape("c1@a.example") + "&before=10&limit=1000"
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              wire.Code
	}{
		{"no token", q, "", 401, wire.Code_CODE_UNAUTHENTICATED},
		{"bad token", q, "bad", 401, wire.Code_CODE_UNAUTHENTICATED},
		{"not member", PathMessages + "?conversation=other@a.example", "good", 403, wire.Code_CODE_NOT_MEMBER},
		{"no conversation", PathMessages + "?limit=3", "good", 400, wire.Code_CODE_BAD_REQUEST},
		{"bad before", PathMessages + "?conversation=x&before=-1", "good", 400, wire.Code_CODE_BAD_REQUEST},
		{"bad limit", PathMessages + "?conversation=x&limit=0", "good", 400, wire.Code_CODE_BAD_REQUEST},
		{"internal", q, "boom", 500, wire.Code_CODE_INTERNAL},
		{"unknown path", "/hearth/v1/nothing", "good", 404, wire.Code_CODE_NOT_FOUND},
	} {
		var body wire.ErrorBody
		rsp := getJSON(t, ts.httpClient(), base, tc.path, tc.token, &body)
		if rsp.StatusCode != tc.status || body.Code != tc.code.String() || body.Message == "" {
			t.Errorf("%s: %d %+v, want %d %v", tc.name, rsp.StatusCode, body, tc.status, tc.code)
		}
		if strings.Contains(body.Message, "secret") {
			t.Errorf("%s: internal detail leaked: %q", tc.name, body.Message)
		}
		if tc.status == 401 && rsp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", tc.name)
		}
	}

	var msgs []map[string]any
	rsp := getJSON(t, ts.httpClient(), base, q, "good", &msgs)
	if rsp.StatusCode != 200 || len(msgs) != 1 {
		t.Fatalf("good token: %d %v", rsp.StatusCode, msgs)
	}
	m := msgs[0]
	want := map[string]any{"seq": 7.0, "conversation": "c1@a.example", "conversation_seq": 9.0,
		"sender": "bob@a.example/D1", "message_id": "m1", "kind": "application", "epoch": 2.0,
		"payload": "AAEC/w==", "server_time_ms": 1700000000000.0}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("field %s = %v, want %v", k, m[k], v)
		}
	}
	if got := ts.deps.History.(*tokenHistory).limit(); got != 100 {
		t.Errorf("limit 1000 reached the HistoryServer as %d, want the cap 100", got)
	}
	// The same endpoint over HTTP/3.
	var h3msgs []Message
	if rsp := getJSON(t, ts.h3Client(t), base, q, "good", &h3msgs); rsp.StatusCode != 200 || len(h3msgs) != 1 {
		t.Errorf("over HTTP/3: %d %v", rsp.StatusCode, h3msgs)
	}
}

func TestHealthzAndAltSvc(t *testing.T) {
	ts := startServer(t, Config{}, echoStreams{})
	var h struct {
		Status string `json:"status"`
		Domain string `json:"domain"`
	}
	rsp := getJSON(t, ts.httpClient(), "https://"+ts.addr, PathHealth, "", &h)
	if rsp.StatusCode != 200 || h.Status != "ok" || h.Domain != "localhost" {
		t.Fatalf("healthz: %d %+v", rsp.StatusCode, h)
	}
	want := fmt.Sprintf(`h3=":%d"; ma=86400`, ts.port())
	if got := rsp.Header.Get("Alt-Svc"); got != want {
		t.Errorf("Alt-Svc %q, want %q", got, want)
	}
}

func TestOversizedRequestRefused(t *testing.T) {
	ts := startServer(t, Config{MaxHeaderBytes: 4 << 10}, echoStreams{})
	req, _ := http.NewRequest("GET", "https://"+ts.addr+PathMessages+"?conversation="+strings.Repeat("x", 64<<10), nil)
	rsp, err := ts.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB request line: status %d, want 431", rsp.StatusCode)
	}
	// Over HTTP/3 the stream is refused instead of answered.
	if rsp, err := ts.h3Client(t).Do(req); err == nil {
		rsp.Body.Close()
		if rsp.StatusCode < 400 {
			t.Fatalf("64 KiB request over HTTP/3 answered %d", rsp.StatusCode)
		}
	}
}

func TestShutdownEndsSessions(t *testing.T) {
	g := goodbyeStreams{started: make(chan struct{}, 3)}
	ts := startServer(t, Config{}, g)
	ctx := testCtx(t)
	sess, str := ts.dialWT(t, ctx)
	str.Write([]byte{1})
	_, nc := ts.dialWS(t, ctx)
	nc.Write([]byte{1})
	qconn, qstr := ts.dialNative(t, ctx)
	qstr.Write([]byte{1})
	<-g.started
	<-g.started
	<-g.started

	// Clients read while the server shuts down, and end the session on EOF.
	type result struct {
		name string
		got  []byte
		err  error
	}
	results := make(chan result, 3)
	go func() {
		got, err := io.ReadAll(str)
		sess.CloseWithError(0, "")
		results <- result{"webtransport", got, err}
	}()
	go func() {
		got, err := io.ReadAll(nc)
		nc.Close()
		results <- result{"websocket", got, err}
	}()
	go func() {
		got, err := io.ReadAll(qstr)
		qconn.CloseWithError(0, "")
		results <- result{"quic", got, err}
	}()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 3 {
		r := <-results
		if string(r.got) != "bye" || r.err != nil {
			t.Errorf("%s after shutdown: %q, %v; want the goodbye then EOF", r.name, r.got, r.err)
		}
	}
	if n := ts.Sessions(); n != 0 {
		t.Errorf("%d sessions after Shutdown", n)
	}
	if _, err := ts.httpClient().Get("https://" + ts.addr + PathHealth); err == nil {
		t.Error("HTTPS still answers after Shutdown")
	}
}

func FuzzParseHistoryQuery(f *testing.F) {
	f.Add("conversation=c@a.example&before=10&limit=5")
	f.Add("conversation=&limit=-1")
	f.Add("before=18446744073709551616")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		conv, _, limit, err := parseHistoryQuery(q, 100)
		if err != nil {
			if !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
				t.Fatalf("error of kind %v", wire.KindOf(err))
			}
			return
		}
		if conv == "" || limit < 1 || limit > 100 {
			t.Fatalf("accepted conv %q limit %d", conv, limit)
		}
	})
}

func TestWebTransportOriginChecked(t *testing.T) {
	ts := startServer(t, Config{OriginPatterns: []string{"app.example"}}, echoStreams{})
	ctx := testCtx(t)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"https://" + ts.addr, true},
		{"https://app.example", true},
		{"https://evil.example", false},
	} {
		d := &webtransport.Transport{
			TLSClientConfig: ts.tlsConfig(http3.NextProtoH3),
			QUICConfig:      &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
		}
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		_, sess, err := d.Dial(ctx, "https://"+ts.addr+PathWebTransport, hdr)
		if (err == nil) != tc.ok {
			t.Errorf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if sess != nil {
			sess.CloseWithError(0, "")
		}
	}
}

func TestCORSForAllowedOrigins(t *testing.T) {
	ts := startServer(t, Config{OriginPatterns: []string{"app.example"}}, echoStreams{})
	base := "https://" + ts.addr
	for _, tc := range []struct {
		origin string
		allow  bool
	}{{"https://app.example", true}, {"https://evil.example", false}} {
		pre, _ := http.NewRequest("OPTIONS", base+PathMessages, nil)
		pre.Header.Set("Origin", tc.origin)
		pre.Header.Set("Access-Control-Request-Method", "GET")
		pre.Header.Set("Access-Control-Request-Headers", "authorization")
		rsp, err := ts.httpClient().Do(pre)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		got := rsp.Header.Get("Access-Control-Allow-Origin")
		if tc.allow && (rsp.StatusCode != 204 || got != tc.origin || rsp.Header.Get("Access-Control-Allow-Headers") != "Authorization, Range") {
			t.Errorf("preflight from %s: %d %v", tc.origin, rsp.StatusCode, rsp.Header)
		}
		if !tc.allow && got != "" {
			t.Errorf("preflight from %s allowed", tc.origin)
		}
		var msgs []Message
		req, _ := http.NewRequest("GET", base+PathMessages+"?conversation=c1@a.example&before=5", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Authorization", "Bearer good")
		rsp, err = ts.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(rsp.Body).Decode(&msgs)
		rsp.Body.Close()
		if got := rsp.Header.Get("Access-Control-Allow-Origin"); (got == tc.origin) != tc.allow || len(msgs) != 1 {
			t.Errorf("GET from %s: allow-origin %q, %d messages", tc.origin, got, len(msgs))
		}
	}
}
