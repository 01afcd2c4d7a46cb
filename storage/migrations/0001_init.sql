-- 0001: accounts, devices, auth, key directory, conversation hubs, mailboxes.
-- Device status values are wire.DeviceStatus (1 pending, 2 active, 3 revoked);
-- kinds are wire.ConversationKind / wire.MessageKind numbers.

CREATE TABLE users (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,          -- local part; address is name@domain
  pass_hash   TEXT NOT NULL,                 -- argon2id, PHC string form
  role        TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  disabled    INTEGER NOT NULL DEFAULT 0,
  created_ms  INTEGER NOT NULL
);

CREATE TABLE devices (
  id               TEXT PRIMARY KEY,
  user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name             TEXT NOT NULL,
  status           INTEGER NOT NULL CHECK (status IN (1, 2, 3)),
  link_token       BLOB UNIQUE,              -- SHA-256 of the link code token; NULL once decided
  link_public_key  BLOB,
  sealed_bundle    BLOB,                     -- from the approving device, for FetchApproval
  tokens_after_ms  INTEGER NOT NULL DEFAULT 0, -- access tokens issued before this are dead
  created_ms       INTEGER NOT NULL,
  last_seen_ms     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_user ON devices(user_id);

CREATE TABLE refresh_tokens (
  hash        BLOB PRIMARY KEY,              -- SHA-256 of the token; the token itself is never stored
  device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  family      BLOB NOT NULL,                 -- rotation chain id
  expires_ms  INTEGER NOT NULL,
  created_ms  INTEGER NOT NULL,
  rotated_ms  INTEGER                        -- set when replaced; presenting it again is reuse
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
CREATE INDEX refresh_tokens_device ON refresh_tokens(device_id);

CREATE TABLE identity_keys (
  user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  public_key  BLOB NOT NULL,
  created_ms  INTEGER NOT NULL
);

CREATE TABLE device_lists (
  user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  version     INTEGER NOT NULL,
  list        BLOB NOT NULL,                 -- exact signed bytes (keys/identity encoding)
  signature   BLOB NOT NULL,
  updated_ms  INTEGER NOT NULL
);

CREATE TABLE key_packages (
  id          INTEGER PRIMARY KEY,
  device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  data        BLOB NOT NULL,
  created_ms  INTEGER NOT NULL
);
CREATE INDEX key_packages_device ON key_packages(device_id, id);

CREATE TABLE last_resort_packages (
  device_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  data        BLOB NOT NULL,
  updated_ms  INTEGER NOT NULL
);

CREATE TABLE conversations (
  id          TEXT PRIMARY KEY,              -- LOCAL@hubdomain
  kind        INTEGER NOT NULL,
  creator     TEXT NOT NULL,                 -- device address
  epoch       INTEGER NOT NULL,
  group_info  BLOB,
  last_seq    INTEGER NOT NULL DEFAULT 0,
  created_ms  INTEGER NOT NULL
);

CREATE TABLE conversation_peers (
  conv_id     TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  user        TEXT NOT NULL,
  PRIMARY KEY (conv_id, user)
) WITHOUT ROWID;

-- Roster. address is user@domain/DEVICE; device_id is set for devices of this
-- server (mailbox fan-out) and NULL for remote ones (federation).
CREATE TABLE conversation_members (
  conv_id      TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  address      TEXT NOT NULL,
  device_id    TEXT REFERENCES devices(id) ON DELETE SET NULL,
  added_epoch  INTEGER NOT NULL,
  PRIMARY KEY (conv_id, address)
) WITHOUT ROWID;
CREATE INDEX conversation_members_device ON conversation_members(device_id, conv_id);

-- The hub's total order: one row per accepted message. A commit's welcome
-- is kept with it and delivered to the devices it added.
CREATE TABLE conversation_log (
  id          INTEGER PRIMARY KEY,
  conv_id     TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,
  sender      TEXT NOT NULL,
  message_id  TEXT NOT NULL,
  kind        INTEGER NOT NULL,
  epoch       INTEGER NOT NULL,
  payload     BLOB NOT NULL,
  welcome     BLOB,
  created_ms  INTEGER NOT NULL,
  UNIQUE (conv_id, seq)
);
CREATE INDEX conversation_log_created ON conversation_log(created_ms);

-- Dedup: (sender device address, message id) -> the first result.
CREATE TABLE sends (
  sender      TEXT NOT NULL,
  message_id  TEXT NOT NULL,
  conv_id     TEXT NOT NULL,
  conv_seq    INTEGER NOT NULL,
  epoch       INTEGER NOT NULL,              -- epoch after the message
  created_ms  INTEGER NOT NULL,
  PRIMARY KEY (sender, message_id)
) WITHOUT ROWID;
CREATE INDEX sends_created ON sends(created_ms);

-- Per-device mailbox: head is the last assigned seq (never reused, even after
-- retention deleted the rows), acked the device's cumulative ack.
CREATE TABLE mailbox_state (
  device_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  head        INTEGER NOT NULL DEFAULT 0,
  acked       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE mailbox (
  device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,
  conv_id     TEXT NOT NULL,
  conv_seq    INTEGER NOT NULL,              -- conversation_log(conv_id, seq)
  welcome     INTEGER NOT NULL DEFAULT 0,    -- 1: the entry is that commit's welcome
  created_ms  INTEGER NOT NULL,
  PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX mailbox_log ON mailbox(conv_id, conv_seq);
