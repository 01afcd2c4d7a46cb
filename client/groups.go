package client

import (
	"context"
	"io"
	"log/slog"
	"time"

	"hearth/client/account"
	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/roster"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Groups are this device's group operations (docs/decisions/0003): create
// a group, add and remove members, name and describe it, promote and
// demote admins, leave. Membership changes are admin-signed commits; name,
// description and admins travel in signed control messages through the
// outbox. Client.Groups returns them.
type Groups struct {
	e2ee    bool // an MLS engine is configured
	st      *store.Store
	states  convstate.States
	mls     e2ee.Engine
	dir     *directory.Directory
	rosters *roster.Roster
	acct    *account.Manager
	session func(ctx context.Context) (*session.Session, error)
	// ensureKeyPackages publishes KeyPackages when few are left.
	ensureKeyPackages func(ctx context.Context) error
	// enqueue puts a control message in the outbox; flush sends it.
	enqueue        func(op, to string, it store.OutboxItem, also func(*store.Tx) error) (string, error)
	flush          func(ctx context.Context, until string) error
	call           func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)
	callIdempotent func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)
	newID          func() (string, error)
	rand           io.Reader
	now            func() time.Time
	log            *slog.Logger
}

// Groups returns this device's group operations.
func (c *Client) Groups() *Groups { return c.groups }

// GroupName returns the name of group conv as this device holds it ("",
// false for a conversation that is not a group or has no name yet). It
// reads only the profile store.
func (c *Client) GroupName(conv string) (string, bool) {
	var name string
	c.st.View(func(tx *store.Tx) error {
		if m, ok, err := getGroupMeta(tx, conv); err == nil && ok {
			name = m.Name
		}
		return nil
	})
	return name, name != ""
}
