"""The Python `eventsourcing` library appending events on SQLite, one transaction each: the peer
of Chronicle's single-event appends (DESIGN.md, "Performance budgets").

Usage: eventsourcing_sqlite.py EVENTS.ndjson COUNT DIRECTORY
Appends the first COUNT events of the corpus (one aggregate per Chronicle stream, each event's
`data`, `actor` and `context` as the domain event's attributes), saving after every event, so each
event is its own transaction; the library's SQLite recorder, WAL as it configures it. Prints one
line: `eventsourcing events=N seconds=S events_per_second=R`.
"""

import json
import os
import sys
import time

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Stream(Aggregate):
    """One Chronicle stream, as an aggregate that records whatever happened to it."""

    @event("Opened")
    def __init__(self, name):
        self.name = name

    @event("Happened")
    def happen(self, type, actor, context, data):
        pass


def main():
    source, count, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(directory, exist_ok=True)
    database = os.path.join(directory, "eventsourcing.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(database + suffix):
            os.remove(database + suffix)
    os.environ["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
    os.environ["SQLITE_DBNAME"] = database
    application = Application()
    with open(source) as lines:
        events = [json.loads(line) for _, line in zip(range(count), lines)]
    streams = {}
    started = time.perf_counter()
    for recorded in events:
        stream = streams.get(recorded["stream"])
        if stream is None:
            stream = Stream(recorded["stream"])
            streams[recorded["stream"]] = stream
        stream.happen(
            recorded["type"], recorded["actor"], recorded.get("context"), recorded["data"]
        )
        application.save(stream)
    seconds = time.perf_counter() - started
    print(
        f"eventsourcing events={len(events)} seconds={seconds:.2f} "
        f"events_per_second={len(events) / seconds:.0f}"
    )


if __name__ == "__main__":
    main()
