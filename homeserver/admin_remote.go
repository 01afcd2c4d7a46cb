package homeserver

import (
	"context"

	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/storage"
)

var (
	_ admin.Authorizer = (*Admin)(nil)
	_ admin.AuditLog   = (*Admin)(nil)
)

// UserSetRole gives (isAdmin) or takes the admin role. It takes effect at
// the account's next remote admin request: roles are checked on each.
func (s *Admin) UserSetRole(ctx context.Context, name string, isAdmin bool) error {
	const op = "homeserver.UserSetRole"
	u, err := s.userByName(ctx, op, name)
	if err != nil {
		return err
	}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetUserAdmin(u.ID, isAdmin) }); err != nil {
		return internal(op, err)
	}
	s.log.Info("user role set", "user", u.Name, "admin", isAdmin)
	return nil
}

// AuthorizeAdmin checks an access token for remote administration: it
// must be valid, of an active device, of an enabled admin-role account.
// The actor (user@domain/DEVICE) is returned whenever the token is valid,
// also with CODE_FORBIDDEN for a user who is not an admin.
func (s *Admin) AuthorizeAdmin(ctx context.Context, accessToken string) (string, error) {
	const op = "homeserver.AuthorizeAdmin"
	d, err := s.auth.checkAccessToken(ctx, accessToken)
	if err != nil {
		return "", wire.E(op, err)
	}
	var u *storage.User
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { u, err = tx.UserByID(d.UserID); return err }); err != nil {
		return "", internal(op, err)
	}
	actor := s.userAddress(u.Name) + "/" + d.ID
	if d.Status == storage.DeviceActive && u.Admin {
		return actor, nil
	}
	// Refusals are audited; past a device's budget they are answered
	// without an actor, so not written: no user can fill the log.
	if err := s.refused.check(op, "admin-refused:"+d.ID, s.now(), refusedRate, refusedBurst); err != nil {
		return "", err
	}
	if d.Status != storage.DeviceActive {
		return actor, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "device %s waits for approval", d.ID)
	}
	return actor, wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "%s does not have the admin role (an admin can grant it: hearth admin user role %s admin)", s.userAddress(u.Name), u.Name)
}

// Budget of audited remote admin refusals per device: a burst, then one a minute.
const (
	refusedBurst = 20
	refusedRate  = 1.0 / 60
)

// AuditRecord appends an entry to the admin audit log.
func (s *Admin) AuditRecord(ctx context.Context, e admin.AuditEntry) error {
	const op = "homeserver.AuditRecord"
	row := &storage.AuditEntry{AtMs: e.AtMs, Via: e.Via, Actor: e.Actor, Remote: e.Remote, Action: e.Action,
		Target: e.Target, Status: e.Status, Code: e.Code}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.InsertAudit(row) }); err != nil {
		return internal(op, err)
	}
	return nil
}

// AuditList returns the newest limit entries of the audit log.
func (s *Admin) AuditList(ctx context.Context, limit int) ([]admin.AuditEntry, error) {
	const op = "homeserver.AuditList"
	var rows []*storage.AuditEntry
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { rows, err = tx.AuditEntries(limit); return err }); err != nil {
		return nil, internal(op, err)
	}
	out := make([]admin.AuditEntry, 0, len(rows))
	for _, r := range rows {
		out = append(out, admin.AuditEntry{ID: r.ID, AtMs: r.AtMs, Via: r.Via, Actor: r.Actor, Remote: r.Remote,
			Action: r.Action, Target: r.Target, Status: r.Status, Code: r.Code})
	}
	return out, nil
}
