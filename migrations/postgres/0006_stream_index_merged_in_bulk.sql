-- The schema readers share with SQLite, where the index by stream is a table the appender fills
-- in bulk (see migrations/sqlite/0006). PostgreSQL keeps its unique index on the events table:
-- stream_index is that index seen as a table, and every event is already in it.
CREATE VIEW stream_index AS
SELECT stream_id, stream_version, position FROM events;

CREATE VIEW stream_index_state AS
SELECT COALESCE(MAX(position), 0) AS merged_through FROM events;
