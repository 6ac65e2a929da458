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

-- RFC 9162 trees: the hash of every complete subtree above the leaves, stored once as it
-- completes. Leaves (level 0) are events.leaf_hash. A tree head, an inclusion proof or a
-- consistency proof at any size reads O(log n) of these.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE workspace_nodes (
    workspace_id INTEGER NOT NULL,
    level        INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    hash         BLOB    NOT NULL,
    PRIMARY KEY (workspace_id, level, idx)
) WITHOUT ROWID;

-- Every signed checkpoint Chronicle has handed out: tree is '' for the log, else the workspace.
CREATE TABLE checkpoints (
    tree      TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    root      BLOB    NOT NULL,
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL,
    PRIMARY KEY (tree, size)
) WITHOUT ROWID;
