-- The index by stream leaves the events table: each 1,000-event commit put ~170 streams' next
-- entries in ~170 scattered pages of events_by_stream, ~150 of the ~360 pages the commit wrote.
-- stream_index now holds the entries of events up to merged_through, and the appender moves the
-- newer ones in bulk, every few thousand events, in stream order (far fewer pages per event).
-- Events after merged_through are found by position: readers scan that short tail, and the
-- appender keeps its streams' versions in memory. The appender alone writes both tables.
CREATE TABLE stream_index (
    stream_id      INTEGER NOT NULL,
    stream_version INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (stream_id, stream_version)
) WITHOUT ROWID;

CREATE TABLE stream_index_state (
    merged_through INTEGER NOT NULL
);

INSERT INTO stream_index (stream_id, stream_version, position)
SELECT stream_id, stream_version, position FROM events ORDER BY stream_id, stream_version;

INSERT INTO stream_index_state (merged_through) SELECT COALESCE(MAX(position), 0) FROM events;

DROP INDEX events_by_stream;
