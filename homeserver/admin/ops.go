package admin

import (
	"context"
)

// Ops is what the admin socket serves. *homeserver.Server implements it;
// the socket server consumes it. Errors are *wire.Error values whose Kind
// the socket maps to its response.
type Ops interface {
	UserAdd(ctx context.Context, name string, password []byte, admin bool) (UserInfo, error)
	UserList(ctx context.Context) ([]UserInfo, error)
	UserSetDisabled(ctx context.Context, name string, disabled bool) error
	UserDelete(ctx context.Context, name string) error
	UserPasswd(ctx context.Context, name string, password []byte) error
	DeviceList(ctx context.Context, name string) ([]DeviceInfo, error)
	DeviceRevoke(ctx context.Context, name, deviceID string) error
	Status(ctx context.Context) (Status, error)
}

// UserInfo describes one account.
type UserInfo struct {
	Name      string `json:"name"`    // local part
	Address   string `json:"address"` // name@domain
	Admin     bool   `json:"admin"`
	Disabled  bool   `json:"disabled"`
	Devices   int    `json:"devices"` // active and pending devices
	CreatedMs int64  `json:"created_ms"`
}

// DeviceInfo describes one device of an account.
type DeviceInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Status     string `json:"status"` // "pending", "active", "revoked"
	CreatedMs  int64  `json:"created_ms"`
	LastSeenMs int64  `json:"last_seen_ms"`
	Online     bool   `json:"online"`
}

// Status is a short health summary of the running server.
type Status struct {
	Domain         string `json:"domain"`
	Version        string `json:"version"`
	StartedMs      int64  `json:"started_ms"`
	Users          int    `json:"users"`
	OnlineSessions int    `json:"online_sessions"`
}
