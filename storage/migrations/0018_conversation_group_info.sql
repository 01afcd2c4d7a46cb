-- 0018: a conversation's GroupInfo in its own table.
--
-- conversations.group_info held the conversation's current GroupInfo with
-- its ratchet tree: about 4 KB for a 1:1 conversation on suite 0xF001, so
-- each row had a page to itself (a few hundred bytes in its leaf, the rest
-- on an overflow page). Every Send advances its conversation (epoch,
-- last_seq), and rewriting that row wrote a page per conversation and
-- copied the whole record: a page per Send in a transaction of Sends to
-- different conversations (BenchmarkSendPagesByTree, ids=hex32gi). Now the
-- conversations rows are narrow (tens of bytes, many to a leaf) and the
-- GroupInfo is written only by the commits that change it.

CREATE TABLE conversation_group_info (
  conv_id     TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
  group_info  BLOB NOT NULL
);

INSERT INTO conversation_group_info(conv_id, group_info)
  SELECT id, group_info FROM conversations WHERE group_info IS NOT NULL AND length(group_info) > 0;

ALTER TABLE conversations DROP COLUMN group_info;
