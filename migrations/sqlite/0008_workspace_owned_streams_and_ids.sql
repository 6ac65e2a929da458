-- v2 tenancy: a stream and an event id belong to a workspace (ADR 0017).
--
-- A stream's row is named `WORKSPACE/STREAM` (`/STREAM` for the account and token streams that
-- belong to no workspace): neither name may hold a `/`, so the key is unambiguous, and
-- `machine-mch_9` of ws_a and of ws_b are two streams with versions of their own.
--
-- An existing stream belongs to the workspace of its first event. Events a store took before v2
-- from another workspace into that stream stay where they were recorded (their leaf hashes
-- commit to their stream versions); the other workspace's next event opens its own stream.

-- Every stream's first event is found through stream_index: merge its tail first.
INSERT INTO stream_index (stream_id, stream_version, position)
SELECT stream_id, stream_version, position FROM events
WHERE position > (SELECT merged_through FROM stream_index_state)
ORDER BY stream_id, stream_version;

UPDATE stream_index_state SET merged_through = (SELECT COALESCE(MAX(position), 0) FROM events);

UPDATE streams SET name = COALESCE((
    SELECT w.name FROM stream_index i
    JOIN events e ON e.position = i.position
    JOIN workspaces w ON w.workspace_id = e.workspace_id
    WHERE i.stream_id = streams.stream_id AND i.stream_version = 1), '') || '/' || name;

-- An id is unique within its workspace (0 standing for none).
DROP INDEX events_by_id;
CREATE UNIQUE INDEX events_by_id ON events (id, COALESCE(workspace_id, 0));

-- Read-model rows are keyed `WORKSPACE/ID` and folded from their own workspace's events only:
-- the models are built again from the log when the server starts.
DELETE FROM machines;
DELETE FROM sessions;
DELETE FROM schedules;
DELETE FROM runs;
DELETE FROM members;
DELETE FROM billing;
DELETE FROM activity;
UPDATE projection_checkpoints SET position = 0;
