-- 0003: federation (docs/federation.md): peers, policy, outbound queues,
-- inbound dedup, pending follower submissions, remote device-list versions.

-- Pinned peers (development and tests) and what the sender loop knows.
CREATE TABLE fed_peers (
  domain        TEXT PRIMARY KEY,
  address       TEXT NOT NULL,             -- HOST:PORT of its federation endpoints
  ca_pem        BLOB,                      -- CA to trust for its TLS certificate; NULL: system roots
  keys_json     BLOB,                      -- its key document as fetched when pinned
  added_ms      INTEGER NOT NULL
) WITHOUT ROWID;

-- Policy: the mode, and the allow and deny lists.
CREATE TABLE fed_settings (
  key           TEXT PRIMARY KEY,          -- 'mode'
  value         TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE fed_policy (
  domain        TEXT PRIMARY KEY,
  list          TEXT NOT NULL CHECK (list IN ('allow', 'deny'))
) WITHOUT ROWID;

-- Outbound queue: one ordered queue per destination (id order).
CREATE TABLE fed_outbox (
  id            INTEGER PRIMARY KEY,
  destination   TEXT NOT NULL,
  envelope_id   TEXT NOT NULL UNIQUE,
  envelope      BLOB NOT NULL,             -- serialized fedwire.Envelope
  created_ms    INTEGER NOT NULL
);
CREATE INDEX fed_outbox_dest ON fed_outbox(destination, id);

-- Inbound dedup by (origin, txn_id): hash of the bytes and the answer.
CREATE TABLE fed_txn_in (
  origin        TEXT NOT NULL,
  txn_id        TEXT NOT NULL,
  hash          BLOB NOT NULL,
  result        BLOB NOT NULL,             -- serialized fedwire.TransactionResult
  created_ms    INTEGER NOT NULL,
  PRIMARY KEY (origin, txn_id)
) WITHOUT ROWID;

-- Inbound dedup by (origin, envelope id).
CREATE TABLE fed_env_in (
  origin        TEXT NOT NULL,
  envelope_id   TEXT NOT NULL,
  created_ms    INTEGER NOT NULL,
  PRIMARY KEY (origin, envelope_id)
) WITHOUT ROWID;

-- A local device's Send to a conversation hubbed elsewhere, waiting for the
-- hub's verdict. code NULL: pending.
CREATE TABLE fed_pending (
  sender        TEXT NOT NULL,
  message_id    TEXT NOT NULL,
  conv_id       TEXT NOT NULL,
  envelope_id   TEXT NOT NULL UNIQUE,
  code          INTEGER,
  message       TEXT NOT NULL DEFAULT '',
  conv_seq      INTEGER NOT NULL DEFAULT 0,
  epoch         INTEGER NOT NULL DEFAULT 0,
  created_ms    INTEGER NOT NULL,
  PRIMARY KEY (sender, message_id)
) WITHOUT ROWID;

-- Remote users' device-list versions, as last heard (DEVICE_LIST or a fetch).
CREATE TABLE fed_remote_lists (
  user          TEXT PRIMARY KEY,          -- user@domain
  version       INTEGER NOT NULL,
  identity_key  BLOB,
  list          BLOB,
  signature     BLOB,
  updated_ms    INTEGER NOT NULL
) WITHOUT ROWID;

-- Hub: the last conversation sequence sent to each follower server, so each
-- DELIVER names its predecessor (prev_conversation_seq) and gaps are seen.
CREATE TABLE fed_conv_dest (
  conv_id       TEXT NOT NULL,
  destination   TEXT NOT NULL,
  last_seq      INTEGER NOT NULL,
  PRIMARY KEY (conv_id, destination)
) WITHOUT ROWID;
