-- DELIVERs the hub gave up on for a destination (expired undelivered, or
-- refused for good by it): seq was never delivered there, and the DELIVER
-- before it was prev. A later DELIVER naming seq as its previous one is
-- sent naming prev instead (followed through consecutive skips), so the
-- follower does not wait for ever on a gap (fedlink.Batch). Rows below a
-- sequence the destination accepted are removed.
CREATE TABLE fed_deliver_skipped (
    conv_id     TEXT    NOT NULL,
    destination TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    prev        INTEGER NOT NULL,
    PRIMARY KEY (conv_id, destination, seq)
) WITHOUT ROWID;
