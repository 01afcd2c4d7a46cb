-- A mailbox entry with failed_server set is not a logged message but the
-- hub's notice to the device that sent message failed_message_id (conversation
-- seq conv_seq) that it could not be delivered to that server before the
-- federation expiry (docs/federation.md). The sender's own server may not log
-- its message, so the notice carries what it names.
ALTER TABLE mailbox ADD COLUMN failed_server TEXT;
ALTER TABLE mailbox ADD COLUMN failed_message_id TEXT;
ALTER TABLE mailbox ADD COLUMN failed_sender TEXT;
