-- Federation signing keys after a rotation (docs/federation.md, "Key
-- rotation"). The current key has its seed and valid_until_ms = 0; a retired
-- key keeps only its public half, published until valid_until_ms so that
-- peers can verify what it signed while it was valid.
CREATE TABLE fed_server_keys (
    key_id         TEXT PRIMARY KEY,
    public_key     BLOB NOT NULL,
    seed           BLOB,
    valid_from_ms  INTEGER NOT NULL,
    valid_until_ms INTEGER NOT NULL DEFAULT 0
);
