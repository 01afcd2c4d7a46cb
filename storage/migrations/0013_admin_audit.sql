-- The admin audit log: one row per administrative request, over the local
-- admin socket or the remote REST endpoints. actor is "local" (socket) or
-- the admin's device address user@domain/DEVICE ("" when a remote request
-- carried no valid token); action the route (e.g. "POST /v1/users"),
-- target what it named (user, device, …), status the HTTP status answered
-- and code the wire error code name ("" on success).
CREATE TABLE admin_audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    via       TEXT    NOT NULL CHECK (via IN ('socket', 'rest')),
    actor     TEXT    NOT NULL,
    remote    TEXT    NOT NULL DEFAULT '',
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL DEFAULT '',
    status    INTEGER NOT NULL,
    code      TEXT    NOT NULL DEFAULT ''
);
