-- Media rows deleted (an abandoned upload removed by the janitor, or every
-- upload of a deleted user, by cascade) leave their files behind; this
-- trigger records them so that the media janitor removes the files and
-- then the record, also after a crash in between.
CREATE TABLE media_gone (
    upload_id TEXT PRIMARY KEY,
    media_id  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER media_gone_on_delete AFTER DELETE ON media
BEGIN
    INSERT OR IGNORE INTO media_gone(upload_id, media_id) VALUES (OLD.upload_id, OLD.media_id);
END;
