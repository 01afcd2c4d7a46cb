-- 0016: the dedup records in append order under a narrow key.
--
-- sends was a WITHOUT ROWID table keyed by (sender, message_id), two
-- strings: every Send inserted its record at a random place among rows of
-- about a hundred bytes (a page and a third per Send, with the splits),
-- plus its entry in sends_created, kept only for retention. Now a record
-- is appended to send_records (rowid order) and found through one narrow
-- index on key, a 63-bit hash of (sender, message_id) (storage.sendKey;
-- the SQL function hearth_send_key is the same, registered on every
-- connection): a Send writes the table's last page, which it shares with
-- the other Sends of its transaction, and an index entry of about fifteen
-- bytes. Two keys with one hash are told apart by the strings in the row:
-- every lookup compares them.
--
-- Retention walks the records in id order (storage.DeleteSendRecords):
-- each pass leaves a mark, the highest id at the time of the pass, in
-- send_record_marks; a later pass deletes the records up to the highest
-- mark older than the dedup window. A record thus lives at least the
-- window (it was there before its mark was left) and at most the window
-- plus the time between two passes, whatever its created_ms says
-- (created_ms is the answer's server time, stamped by the hub, which may
-- be another server).

CREATE TABLE send_records (
  id          INTEGER PRIMARY KEY,
  key         INTEGER NOT NULL,              -- hearth_send_key(sender, message_id)
  sender      TEXT NOT NULL,
  message_id  TEXT NOT NULL,
  conv_id     TEXT NOT NULL,
  conv_seq    INTEGER NOT NULL,
  epoch       INTEGER NOT NULL,              -- epoch after the message
  created_ms  INTEGER NOT NULL
);
CREATE INDEX send_records_key ON send_records(key);

CREATE TABLE send_record_marks (
  upto   INTEGER PRIMARY KEY,                -- the highest send_records id at the pass
  at_ms  INTEGER NOT NULL                    -- when the pass ran
);

INSERT INTO send_records(key, sender, message_id, conv_id, conv_seq, epoch, created_ms)
  SELECT hearth_send_key(sender, message_id), sender, message_id, conv_id, conv_seq, epoch, created_ms
  FROM sends ORDER BY created_ms, sender, message_id;
-- The records kept before: due when the newest of them is, or a window
-- after the migration if one is stamped later than now (another hub's
-- clock: it must not keep them all for longer).
INSERT INTO send_record_marks(upto, at_ms)
  SELECT MAX(id), MIN(MAX(created_ms), CAST(strftime('%s', 'now') AS INTEGER) * 1000)
  FROM send_records HAVING COUNT(*) > 0;

DROP TABLE sends;
