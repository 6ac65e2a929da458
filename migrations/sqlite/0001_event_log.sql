-- The event log. One writer (the appender) owns every write; rows are never updated or deleted.

-- Each stream's numeric id and current version: the appender reads versions here, so the
-- events table needs no lookup by stream name on the write path.
CREATE TABLE streams (
    stream_id INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    version   INTEGER NOT NULL
);

-- Each workspace's numeric id and its last workspace_seq.
CREATE TABLE workspaces (
    workspace_id INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    seq          INTEGER NOT NULL
);

-- body is the RFC 8785 canonical JSON of the recorded event without leaf_hash, the exact bytes
-- leaf_hash = SHA-256(0x00 || body) covers.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    id             BLOB    NOT NULL,
    stream_id      INTEGER NOT NULL,
    stream_version INTEGER NOT NULL,
    workspace_id   INTEGER,
    workspace_seq  INTEGER,
    recorded_at    TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    leaf_hash      BLOB    NOT NULL
);

CREATE UNIQUE INDEX events_by_id ON events (id);
CREATE UNIQUE INDEX events_by_stream ON events (stream_id, stream_version);
CREATE UNIQUE INDEX events_by_workspace ON events (workspace_id, workspace_seq);
