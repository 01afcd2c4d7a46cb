package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"hearth/homeserver/wire"
)

// NotRunningError says that no server answers on the admin socket.
type NotRunningError struct {
	Path string
	Err  error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("server not running (no admin socket at %s)", e.Path)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// Client is the admin client; it implements Ops. Dial makes one for the
// local socket, DialREST one for the server's REST endpoints.
type Client struct {
	path  string // socket path; "" for REST
	base  string // URL the routes' paths are appended to
	token func(ctx context.Context) (string, error)
	hc    *http.Client
}

var _ Ops = (*Client)(nil)

// Dial connects to the admin socket at path. When nobody answers there it
// returns a *NotRunningError.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, &NotRunningError{Path: path, Err: err}
		}
		if _, serr := os.Stat(path); serr != nil {
			return nil, &NotRunningError{Path: path, Err: err}
		}
		return nil, fmt.Errorf("admin: connect to %s: %w", path, err)
	}
	c.Close()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 1,
	}
	return &Client{path: path, base: "http://admin", hc: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// do sends method path with in as JSON (if not nil) and decodes the answer
// into out (if not nil). Error answers become *wire.Error values for op.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
		defer clear(b) // may hold a password
		body = bytes.NewReader(b)
	}
	if c.path == "" {
		path = strings.TrimPrefix(path, "/v1") // REST: PathREST+"/users" is the socket's /v1/users
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if c.token != nil {
		tok, err := c.token(ctx)
		if err != nil {
			return fmt.Errorf("%s: access token: %w", op, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rsp, err := c.hc.Do(req)
	if err != nil {
		if c.path != "" && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist)) {
			return &NotRunningError{Path: c.path, Err: err}
		}
		if c.path == "" {
			return fmt.Errorf("cannot reach the server at %s: %w", req.URL.Host, errors.Unwrap(err))
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	defer rsp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(rsp.Body, 16<<20))
	if rsp.StatusCode >= 300 {
		var eb wire.ErrorBody
		if err := dec.Decode(&eb); err != nil || eb.Code == "" {
			return fmt.Errorf("%s: server answered %s", op, rsp.Status)
		}
		return eb.Err(op)
	}
	if out != nil {
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return nil
}

func userPath(name string, rest ...string) string {
	p := "/v1/users/" + url.PathEscape(name)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// UserAdd creates an account.
func (c *Client) UserAdd(ctx context.Context, name string, password []byte, admin bool) (UserInfo, error) {
	var u UserInfo
	err := c.do(ctx, "admin.UserAdd", "POST", "/v1/users", userAddRequest{Name: name, Password: password, Admin: admin}, &u)
	return u, err
}

// UserList lists every account.
func (c *Client) UserList(ctx context.Context) ([]UserInfo, error) {
	var us []UserInfo
	err := c.do(ctx, "admin.UserList", "GET", "/v1/users", nil, &us)
	return us, err
}

// UserSetDisabled disables or enables an account.
func (c *Client) UserSetDisabled(ctx context.Context, name string, disabled bool) error {
	action := "enable"
	if disabled {
		action = "disable"
	}
	return c.do(ctx, "admin.UserSetDisabled", "POST", userPath(name, action), nil, nil)
}

// UserDelete deletes an account.
func (c *Client) UserDelete(ctx context.Context, name string) error {
	return c.do(ctx, "admin.UserDelete", "DELETE", userPath(name), nil, nil)
}

// UserPasswd sets an account's password.
func (c *Client) UserPasswd(ctx context.Context, name string, password []byte) error {
	return c.do(ctx, "admin.UserPasswd", "PUT", userPath(name, "password"), passwordRequest{Password: password}, nil)
}

// DeviceList lists an account's devices.
func (c *Client) DeviceList(ctx context.Context, name string) ([]DeviceInfo, error) {
	var ds []DeviceInfo
	err := c.do(ctx, "admin.DeviceList", "GET", userPath(name, "devices"), nil, &ds)
	return ds, err
}

// DeviceRevoke revokes one device of an account.
func (c *Client) DeviceRevoke(ctx context.Context, name, deviceID string) error {
	return c.do(ctx, "admin.DeviceRevoke", "DELETE", userPath(name, "devices", deviceID), nil, nil)
}

// Status reports on the running server.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, "admin.Status", "GET", "/v1/status", nil, &st)
	return st, err
}
