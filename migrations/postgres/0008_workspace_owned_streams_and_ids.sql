-- PostgreSQL form of migrations/sqlite/0008: streams and event ids belong to a workspace
-- (ADR 0017). stream_index is a view of the events table here, so every stream's first event
-- is already in it.
UPDATE streams SET name = COALESCE((
    SELECT w.name FROM events e
    JOIN workspaces w ON w.workspace_id = e.workspace_id
    WHERE e.stream_id = streams.stream_id AND e.stream_version = 1), '') || '/' || name;

DROP INDEX events_by_id;
CREATE UNIQUE INDEX events_by_id ON events (id, COALESCE(workspace_id, 0));

DELETE FROM machines;
DELETE FROM sessions;
DELETE FROM schedules;
DELETE FROM runs;
DELETE FROM members;
DELETE FROM billing;
DELETE FROM activity;
UPDATE projection_checkpoints SET position = 0;
