-- PostgreSQL form of migrations/sqlite/0001_event_log.sql: the same tables, BIGINT and BYTEA columns.
-- The event log. One writer (the appender) owns every write; rows are never updated or deleted.

-- Each stream's numeric id and current version: the appender reads versions here, so the
-- events table needs no lookup by stream name on the write path.
CREATE TABLE streams (
    stream_id BIGINT PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    version   BIGINT NOT NULL
);

-- Each workspace's numeric id and its last workspace_seq.
CREATE TABLE workspaces (
    workspace_id BIGINT PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    seq          BIGINT NOT NULL
);

-- body is the RFC 8785 canonical JSON of the recorded event without leaf_hash, the exact bytes
-- leaf_hash = SHA-256(0x00 || body) covers.
CREATE TABLE events (
    position       BIGINT PRIMARY KEY,
    id             BYTEA    NOT NULL,
    stream_id      BIGINT NOT NULL,
    stream_version BIGINT NOT NULL,
    workspace_id   BIGINT,
    workspace_seq  BIGINT,
    recorded_at    TEXT    NOT NULL,
    body           BYTEA    NOT NULL,
    leaf_hash      BYTEA    NOT NULL
);

CREATE UNIQUE INDEX events_by_id ON events (id);
CREATE UNIQUE INDEX events_by_stream ON events (stream_id, stream_version);
CREATE UNIQUE INDEX events_by_workspace ON events (workspace_id, workspace_seq);

-- RFC 9162 trees: the hash of every complete subtree above the leaves, stored once as it
-- completes. Leaves (level 0) are events.leaf_hash. A tree head, an inclusion proof or a
-- consistency proof at any size reads O(log n) of these.
CREATE TABLE log_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA    NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE workspace_nodes (
    workspace_id BIGINT NOT NULL,
    level        BIGINT NOT NULL,
    idx          BIGINT NOT NULL,
    hash         BYTEA    NOT NULL,
    PRIMARY KEY (workspace_id, level, idx)
);

-- Every signed checkpoint Chronicle has handed out: tree is '' for the log, else the workspace.
CREATE TABLE checkpoints (
    tree      TEXT    NOT NULL,
    size      BIGINT NOT NULL,
    root      BYTEA    NOT NULL,
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL,
    PRIMARY KEY (tree, size)
);
