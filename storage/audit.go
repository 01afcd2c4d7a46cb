package storage

// AuditEntry is one row of the admin audit log (migration 0013).
type AuditEntry struct {
	ID     int64
	AtMs   int64
	Via    string // "socket" or "rest"
	Actor  string // "local" or user@domain/DEVICE; "" for an unauthenticated request
	Remote string // the client's network address (REST); "" on the socket
	Action string // the route, e.g. "POST /v1/users/{name}/disable"
	Target string // what the request named (user, device, invite, …)
	Status int    // HTTP status answered
	Code   string // wire error code name; "" on success
}

// InsertAudit appends an entry to the admin audit log.
func (t *Tx) InsertAudit(e *AuditEntry) error {
	const op = "storage.InsertAudit"
	res, err := t.exec(`INSERT INTO admin_audit(at_ms, via, actor, remote, action, target, status, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.AtMs, e.Via, e.Actor, e.Remote, e.Action, e.Target, e.Status, e.Code)
	if err != nil {
		return wrap(op, err)
	}
	e.ID, err = res.LastInsertId()
	return wrap(op, err)
}

// AuditEntries lists the newest limit entries of the audit log, newest first.
func (t *Tx) AuditEntries(limit int) ([]*AuditEntry, error) {
	const op = "storage.AuditEntries"
	rows, err := t.query(`SELECT id, at_ms, via, actor, remote, action, target, status, code FROM admin_audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []*AuditEntry
	for rows.Next() {
		e := &AuditEntry{}
		if err := rows.Scan(&e.ID, &e.AtMs, &e.Via, &e.Actor, &e.Remote, &e.Action, &e.Target, &e.Status, &e.Code); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, e)
	}
	return out, wrap(op, rows.Err())
}
