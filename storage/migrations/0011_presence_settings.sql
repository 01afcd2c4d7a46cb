-- Per-account presence: who may see the user's last seen (1 everyone,
-- 2 contacts, 3 nobody: hearth.v1.LastSeenVisibility) and the last seen
-- itself (when the user's presence last changed), kept across restarts.
-- A user without a row has the defaults: everyone, never seen.
CREATE TABLE presence_settings (
    user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    last_seen    INTEGER NOT NULL DEFAULT 1 CHECK (last_seen BETWEEN 1 AND 3),
    last_seen_ms INTEGER NOT NULL DEFAULT 0
);
