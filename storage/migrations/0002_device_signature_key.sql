-- 0002: a device's MLS signature public key, sent at login (wire Login.signature_key,
-- docs/decisions/0002) and shown to the approving device.
ALTER TABLE devices ADD COLUMN signature_key BLOB;
-- 0001 once had this index; fan-out writes one page less per recipient without it.
DROP INDEX IF EXISTS mailbox_conv;
