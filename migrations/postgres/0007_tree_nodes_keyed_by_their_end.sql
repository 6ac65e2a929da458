-- Tree nodes keyed by the leaf their subtree ends before (leaf_end = (idx + 1) << level), then
-- level, as on SQLite (see migrations/sqlite/0007): a commit's nodes go to the end of the index.
CREATE TABLE log_nodes_by_end (
    leaf_end BIGINT NOT NULL,
    level    BIGINT NOT NULL,
    hash     BYTEA  NOT NULL,
    PRIMARY KEY (leaf_end, level)
);

INSERT INTO log_nodes_by_end (leaf_end, level, hash)
SELECT (idx + 1) << CAST(level AS INTEGER), level, hash FROM log_nodes ORDER BY 1, 2;

DROP TABLE log_nodes;
ALTER TABLE log_nodes_by_end RENAME TO log_nodes;

CREATE TABLE workspace_nodes_by_end (
    workspace_id BIGINT NOT NULL,
    leaf_end     BIGINT NOT NULL,
    level        BIGINT NOT NULL,
    hash         BYTEA  NOT NULL,
    PRIMARY KEY (workspace_id, leaf_end, level)
);

INSERT INTO workspace_nodes_by_end (workspace_id, leaf_end, level, hash)
SELECT workspace_id, (idx + 1) << CAST(level AS INTEGER), level, hash FROM workspace_nodes
ORDER BY 1, 2, 3;

DROP TABLE workspace_nodes;
ALTER TABLE workspace_nodes_by_end RENAME TO workspace_nodes;
