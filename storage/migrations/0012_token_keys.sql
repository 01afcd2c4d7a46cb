-- Access-token (JWT) signing keys after a rotation (docs/security.md, "Key
-- rotation"). Public halves only: the current private key is the server's
-- signing.key file. valid_until_ms = 0 marks the current key; a retired key
-- verifies tokens it signed until valid_until_ms.
CREATE TABLE token_keys (
    key_id         TEXT PRIMARY KEY,
    public_key     BLOB NOT NULL,
    valid_from_ms  INTEGER NOT NULL,
    valid_until_ms INTEGER NOT NULL DEFAULT 0
);
