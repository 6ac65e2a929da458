#!/usr/bin/env python3
"""What each index of the log's `events` table costs a 1,000-event commit on SQLite.

Appends a corpus (the NDJSON `corpus` writes) in commits of 1,000 rows to the `events` table of
migrations/sqlite/0001_event_log.sql, with stream ids, stream versions and workspace sequences
assigned as the appender does and time-ordered ids, once per set of indexes, and prints the WAL
frames each commit wrote (one frame per page it changed) and the rows per second; the last
variants drop the index by stream for the table the store keeps instead (migrations/sqlite/0006),
filled in bulk, in stream order, every MERGE commits, the bulk insert counted in its commit. WAL,
`synchronous=FULL`, 16 MiB page cache and no automatic checkpoint, as Chronicle's writer runs;
the WAL is reset every 20 commits, outside the timing, as Chronicle's checkpointer does.

Run:
    cargo run --release -p chronicle-benches --bin corpus -- 200000 > /tmp/corpus.ndjson
    python3 benches/scripts/wal_frames.py /tmp/corpus.ndjson [DIR]
"""

import json
import os
import sqlite3
import sys
import tempfile
import time

BATCH = 1_000
ROUNDS = 3  # passes over the corpus; the first, filling the indexes, is not counted
INDEXES = {
    "id": "CREATE UNIQUE INDEX events_by_id ON events (id)",
    "stream": "CREATE UNIQUE INDEX events_by_stream ON events (stream_id, stream_version)",
    "workspace": "CREATE UNIQUE INDEX events_by_workspace ON events (workspace_id, workspace_seq)",
}
# (indexes, merge the stream index every this many commits; 0: no stream index table)
VARIANTS = [([], 0), (["id"], 0), (["id", "workspace"], 0), (["id", "stream"], 0),
            (["id", "stream", "workspace"], 0), (["id", "workspace"], 5), (["id", "workspace"], 10),
            (["id", "workspace"], 20), (["id", "workspace"], 50)]


def measure(lines, events, directory, indexes, page_size=4096, merge=0):
    path = os.path.join(directory, "-".join(["events"] + indexes) + f"-{merge}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size = {page_size}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA cache_size = -16384")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, id BLOB NOT NULL, "
        "stream_id INTEGER NOT NULL, stream_version INTEGER NOT NULL, workspace_id INTEGER, "
        "workspace_seq INTEGER, recorded_at TEXT NOT NULL, body BLOB NOT NULL, "
        "leaf_hash BLOB NOT NULL)"
    )
    for index in indexes:
        db.execute(INDEXES[index])
    if merge:
        db.execute(
            "CREATE TABLE stream_index (stream_id INTEGER NOT NULL, stream_version INTEGER NOT NULL, "
            "position INTEGER NOT NULL, PRIMARY KEY (stream_id, stream_version)) WITHOUT ROWID"
        )
    merged_through = 0
    streams, workspaces, versions, seqs = {}, {}, {}, {}
    position, frames, rows_timed, seconds = 0, 0, 0, 0.0
    for round_ in range(ROUNDS):
        for start in range(0, len(events) - BATCH + 1, BATCH):
            rows = []
            for line, event in zip(lines[start : start + BATCH], events[start : start + BATCH]):
                position += 1
                stream = streams.setdefault(event["stream"], len(streams) + 1)
                versions[stream] = versions.get(stream, 0) + 1
                workspace = workspaces.setdefault(event.get("workspace"), len(workspaces) + 1)
                seqs[workspace] = seqs.get(workspace, 0) + 1
                uuid7 = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)
                rows.append(
                    (position, uuid7, stream, versions[stream], workspace, seqs[workspace],
                     "2026-11-24T03:50:26.123Z", line, os.urandom(32))
                )
            wal_before = os.path.getsize(path + "-wal")
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if merge and position - merged_through >= merge * BATCH:
                db.execute(
                    "INSERT INTO stream_index SELECT stream_id, stream_version, position FROM events "
                    "WHERE position > ? ORDER BY stream_id, stream_version", (merged_through,)
                )
                merged_through = position
            db.execute("COMMIT")
            elapsed = time.perf_counter() - started
            wal_after = os.path.getsize(path + "-wal")
            if round_ > 0 and wal_after > wal_before:
                frames += (wal_after - wal_before) // (page_size + 24)
                rows_timed += BATCH
                seconds += elapsed
            if position % (20 * BATCH) == 0:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return frames * BATCH / rows_timed, rows_timed / seconds


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: wal_frames.py CORPUS.ndjson [DIR]")
    with open(sys.argv[1], "rb") as corpus:
        lines = corpus.read().splitlines()
    events = [json.loads(line) for line in lines]
    print(f"{len(events)} events, {len({e['stream'] for e in events})} streams, "
          f"{len({e.get('workspace') for e in events})} workspaces")
    directory = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="wal-frames-")
    os.makedirs(directory, exist_ok=True)
    print("indexes\tWAL frames per commit\trows/s")
    for indexes, merge in VARIANTS:
        frames, rate = measure(lines, events, directory, indexes, merge=merge)
        label = "+".join(indexes) or "none"
        if merge:
            label += f", stream index merged every {merge * BATCH} events"
        print(f"{label}\t{frames:.0f}\t{rate:.0f}", flush=True)


if __name__ == "__main__":
    main()
