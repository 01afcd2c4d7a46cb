-- Invite codes issued by an administrator (hearth admin invite create). A
-- code lets anyone who knows it create one account with the Register
-- request. Only the SHA-256 of the code is stored; prefix is its first
-- group, kept so that listings can tell invites apart without the secret.
CREATE TABLE invites (
    id         INTEGER PRIMARY KEY,
    code_hash  BLOB NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    uses       INTEGER NOT NULL,            -- uses granted
    uses_left  INTEGER NOT NULL CHECK (uses_left >= 0),
    expires_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER NOT NULL DEFAULT 0   -- 0: not revoked
);
