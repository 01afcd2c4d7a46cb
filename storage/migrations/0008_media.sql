-- Media uploads (encrypted files; the server only ever sees ciphertext).
-- A row is made when an upload starts and holds the media id it will get;
-- the bytes live in files under the server's media folder (partial/ while
-- uploading, complete/ once done), never in SQLite. complete_ms is set
-- only after the complete file and its folder were fsynced, so a row with
-- complete_ms > 0 always has its bytes. Incomplete rows older than the
-- upload timeout are removed with their files by the media janitor.
CREATE TABLE media (
    upload_id   TEXT PRIMARY KEY,                 -- random, known only to the uploading device
    media_id    TEXT NOT NULL UNIQUE,             -- random, revealed when complete; the download capability
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,                    -- uploader device (kept when the device goes)
    total_size  INTEGER NOT NULL CHECK (total_size > 0),
    sha256      BLOB,                             -- of the stored bytes, once complete
    created_ms  INTEGER NOT NULL,
    complete_ms INTEGER NOT NULL DEFAULT 0        -- 0: still uploading
);
CREATE INDEX media_open ON media(complete_ms, created_ms);
CREATE INDEX media_user ON media(user_id);
CREATE INDEX media_device ON media(device_id, complete_ms);
