-- Tree nodes keyed by the leaf their subtree ends before (leaf_end = (idx + 1) << level), then
-- level: the nodes a commit completes all sort after every stored one, so they go to the end of
-- the table. Keyed by (level, idx), a 1,000-event commit added rows at the end of each level's
-- range, and of each workspace's: ~40 places, each a page written.
CREATE TABLE log_nodes_by_end (
    leaf_end INTEGER NOT NULL,
    level    INTEGER NOT NULL,
    hash     BLOB    NOT NULL,
    PRIMARY KEY (leaf_end, level)
) WITHOUT ROWID;

INSERT INTO log_nodes_by_end (leaf_end, level, hash)
SELECT (idx + 1) << level, level, hash FROM log_nodes ORDER BY 1, 2;

DROP TABLE log_nodes;
ALTER TABLE log_nodes_by_end RENAME TO log_nodes;

CREATE TABLE workspace_nodes_by_end (
    workspace_id INTEGER NOT NULL,
    leaf_end     INTEGER NOT NULL,
    level        INTEGER NOT NULL,
    hash         BLOB    NOT NULL,
    PRIMARY KEY (workspace_id, leaf_end, level)
) WITHOUT ROWID;

INSERT INTO workspace_nodes_by_end (workspace_id, leaf_end, level, hash)
SELECT workspace_id, (idx + 1) << level, level, hash FROM workspace_nodes ORDER BY 1, 2, 3;

DROP TABLE workspace_nodes;
ALTER TABLE workspace_nodes_by_end RENAME TO workspace_nodes;
