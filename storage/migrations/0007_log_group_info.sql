-- A commit that adds devices may send them a Welcome without the ratchet
-- tree (large groups on the post-quantum suite: the tree is ~1.4 KB per
-- leaf). The GroupInfo the committer sent with it, which carries the tree,
-- is kept with the commit's log row and delivered with the Welcome
-- (docs/decisions/0004-large-groups.md). NULL for every other row.
ALTER TABLE conversation_log ADD COLUMN group_info BLOB;
