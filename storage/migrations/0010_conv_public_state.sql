-- The hub's public MLS state of each conversation it hubs
-- (mls.PublicGroup.Marshal: GroupContext, ratchet tree, interim
-- transcript hash, the proposals received in the epoch; no secret). One
-- row per conversation, replaced in the transaction that accepts each
-- commit or proposal; kept apart from conversations, which every message
-- updates, because the state of a 1,024-device group is 0.2-1.4 MB.
-- A conversation without a row (created before this migration or without
-- a GroupInfo) accepts no commit (docs/groups.md).
CREATE TABLE conv_public_state (
  conv_id  TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
  epoch    INTEGER NOT NULL,
  state    BLOB NOT NULL
); -- a rowid table: its rows are large blobs
