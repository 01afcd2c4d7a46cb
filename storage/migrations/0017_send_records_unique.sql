-- 0017: the dedup claim in one statement.
--
-- send_records_key becomes UNIQUE, so that a claim is one INSERT OR IGNORE
-- into send_records (storage.claimSendRecord): when it inserts, (sender,
-- message id) had no record; only when the key is taken does the claim
-- read the record under it. The key is a 63-bit hash of the pair, so two
-- pairs may share one: the record of the second (and any later) pair is
-- kept apart in send_record_spill, looked up by key with the strings
-- compared, as send_records is.
--
-- A pair's key is in send_records as long as the key has a record in the
-- spill: when retention deletes the record under a key, the trigger below
-- moves the oldest spilled record of that key into send_records. So an
-- insert under a free key means the pair has no record anywhere. The
-- moved record gets an id past every record and every retention mark
-- (send_record_marks): it is kept at least the window from then on, never
-- deleted early; at most it lives the window and the time between two
-- passes longer than its own (those of the record it waited behind).

CREATE TABLE send_record_spill (
  id          INTEGER PRIMARY KEY,           -- spill order: the oldest moves first
  key         INTEGER NOT NULL,              -- hearth_send_key(sender, message_id), taken in send_records
  sender      TEXT NOT NULL,
  message_id  TEXT NOT NULL,
  conv_id     TEXT NOT NULL,
  conv_seq    INTEGER NOT NULL,
  epoch       INTEGER NOT NULL,
  created_ms  INTEGER NOT NULL
);
CREATE INDEX send_record_spill_key ON send_record_spill(key);

-- Records under a key taken by an older record (none but by a hash
-- collision) go to the spill, oldest first.
INSERT INTO send_record_spill(key, sender, message_id, conv_id, conv_seq, epoch, created_ms)
  SELECT key, sender, message_id, conv_id, conv_seq, epoch, created_ms FROM send_records r
  WHERE id > (SELECT MIN(id) FROM send_records s WHERE s.key = r.key) ORDER BY id;
DELETE FROM send_records WHERE id > (SELECT MIN(id) FROM send_records s WHERE s.key = send_records.key);

DROP INDEX send_records_key;
CREATE UNIQUE INDEX send_records_key ON send_records(key);

CREATE TRIGGER send_records_unspill AFTER DELETE ON send_records
WHEN EXISTS (SELECT 1 FROM send_record_spill WHERE key = OLD.key) BEGIN
  INSERT INTO send_records(id, key, sender, message_id, conv_id, conv_seq, epoch, created_ms)
    SELECT MAX(COALESCE((SELECT MAX(id) FROM send_records), 0), COALESCE((SELECT MAX(upto) FROM send_record_marks), 0)) + 1,
      key, sender, message_id, conv_id, conv_seq, epoch, created_ms
    FROM send_record_spill WHERE key = OLD.key ORDER BY id LIMIT 1;
  DELETE FROM send_record_spill WHERE id = (SELECT MIN(id) FROM send_record_spill WHERE key = OLD.key);
END;
