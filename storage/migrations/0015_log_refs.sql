-- 0015: log retention without the indexes only it used.
--
-- A log entry counts the mailbox rows that refer to it (refs), so that
-- retention needs neither mailbox_log (to find whether a row refers to an
-- entry) nor conversation_log_created (to find old entries): each Send
-- writes two B-tree pages fewer. The writer sets refs when it logs an
-- entry or appends mailbox rows (storage: AppendLog, FanOut,
-- AppendMailbox, AppendMailboxNotice); the trigger below takes a row's
-- reference back however the row goes (retention, a revoked device, a
-- device or user deleted with its mailbox by the foreign keys).
--
-- Retention passes over the log once, in id (append) order: retention_marks
-- holds how far the last pass went (every entry up to log_id was older
-- than that pass's cut-off, log_cutoff_ms; storage.DeleteUnreferencedLog).
-- An entry the pass found still referenced is deleted by the trigger when
-- its last mailbox row goes, so no pass reads it again.

ALTER TABLE conversation_log ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;
UPDATE conversation_log SET refs = (SELECT COUNT(*) FROM mailbox m
  WHERE m.conv_id = conversation_log.conv_id AND m.conv_seq = conversation_log.seq);
DROP INDEX conversation_log_created;
DROP INDEX mailbox_log;

CREATE TABLE retention_marks (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  log_id         INTEGER NOT NULL, -- the last log entry the log retention passed
  log_cutoff_ms  INTEGER NOT NULL  -- the cut-off of the pass that moved log_id
);
INSERT INTO retention_marks(id, log_id, log_cutoff_ms) VALUES (1, 0, 0);

CREATE TRIGGER mailbox_unref AFTER DELETE ON mailbox BEGIN
  UPDATE conversation_log SET refs = refs - 1 WHERE conv_id = OLD.conv_id AND seq = OLD.conv_seq;
  -- Every entry up to the mark was older than the last pass's cut-off.
  DELETE FROM conversation_log WHERE conv_id = OLD.conv_id AND seq = OLD.conv_seq AND refs <= 0
    AND id <= (SELECT log_id FROM retention_marks WHERE id = 1);
END;
