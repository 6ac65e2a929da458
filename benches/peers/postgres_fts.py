"""PostgreSQL full-text search (tsvector + GIN) over the fixtures' history: the peer of
Chronicle's search indexing and audit queries (DESIGN.md, "Performance budgets").

Usage: postgres_fts.py EVENTS.ndjson DIRECTORY
Starts a throwaway PostgreSQL 15 cluster (initdb/pg_ctl from /usr/lib/postgresql/15/bin, as the
`postgres` user when run as root) in DIRECTORY on a free port, default durability. Indexing, timed
as a whole: read the NDJSON, extract one lexeme per field value (`ws:`, `type:`, `stream:`,
`actor:`, `request:`, `ip:`, the data's `*_id`s as `machine:`/`session:`/`schedule:`/`run:`, and
every word of the data's strings), `COPY` the rows (position = line number, tsvector) into a
table with no index, then build its primary key and its GIN index. Queries, in the corpus' busiest
workspace, newest 50 positions plus the total, 10 warm-ups then 300 timed answers:
selective = one actor (the median actor of the workspace's events), broad = `type:machine.*`
(a prefix lexeme). Prints the figures, one per line.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psycopg

BIN = "/usr/lib/postgresql/15/bin"
WORD = re.compile(r"[a-z0-9]+")
IDS = {"machine_id": "machine", "session_id": "session", "schedule_id": "schedule", "run_id": "run"}


def as_postgres(command):
    """Runs a cluster command as the postgres user when root (initdb refuses root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--"] + command
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lexemes(event):
    """The event's searchable terms, as tsvector lexemes."""
    terms = {
        "ws:" + event["workspace"],
        "type:" + event["type"],
        "stream:" + event["stream"],
        "actor:" + str(event["actor"].get("id", "")),
    }
    context = event.get("context") or {}
    if "request_id" in context:
        terms.add("request:" + context["request_id"])
    if "source_ip" in context:
        terms.add("ip:" + context["source_ip"])
    pending = [event["data"]]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in IDS and isinstance(inner, str):
                    terms.add(IDS[key] + ":" + inner)
                pending.append(inner)
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            terms.update(WORD.findall(value.lower()))
    return terms


def tsvector_text(terms):
    """A tsvector literal escaped for COPY's text format."""
    quoted = " ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
    return quoted.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def percentiles(connection, query):
    """p50 and p99 (ms) of newest-50-plus-total answers, and the total."""
    page = "SELECT pos FROM audit WHERE doc @@ %s::tsquery ORDER BY pos DESC LIMIT 50"
    count = "SELECT count(*) FROM audit WHERE doc @@ %s::tsquery"
    timings = []
    total = 0
    for round in range(310):
        started = time.perf_counter()
        connection.execute(page, (query,)).fetchall()
        total = connection.execute(count, (query,)).fetchone()[0]
        if round >= 10:
            timings.append(time.perf_counter() - started)
    timings.sort()
    return timings[len(timings) // 2] * 1e3, timings[int(len(timings) * 0.99)] * 1e3, total


def main():
    source, directory = sys.argv[1], os.path.abspath(sys.argv[2])
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(directory)), exist_ok=True)
    cluster = tempfile.mkdtemp(prefix="postgres-fts-", dir=os.path.dirname(os.path.abspath(directory)))
    os.rename(cluster, directory)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = os.path.join(directory, "data")
    port = free_port()
    as_postgres([f"{BIN}/initdb", "-D", data, "-U", "postgres", "--auth=trust"])
    as_postgres([f"{BIN}/pg_ctl", "-D", data, "-l", os.path.join(directory, "log"), "-w",
                 "-o", f"-p {port} -k {directory} -c listen_addresses=''", "start"])
    try:
        run(source, directory, port)
    finally:
        as_postgres([f"{BIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])


def run(source, directory, port):
    connection = psycopg.connect(host=directory, port=port, user="postgres", autocommit=True)
    connection.execute("CREATE TABLE audit (pos bigint NOT NULL, doc tsvector NOT NULL)")
    by_workspace = {}
    started = time.perf_counter()
    with connection.cursor() as cursor, open(source) as lines:
        with cursor.copy("COPY audit (pos, doc) FROM STDIN") as copy:
            for position, line in enumerate(lines, start=1):
                event = json.loads(line)
                by_workspace.setdefault(event["workspace"], []).append(str(event["actor"].get("id")))
                copy.write(f"{position}\t{tsvector_text(lexemes(event))}\n")
    loaded = time.perf_counter() - started
    connection.execute("ALTER TABLE audit ADD PRIMARY KEY (pos)")
    connection.execute("CREATE INDEX audit_doc ON audit USING gin (doc)")
    indexed = time.perf_counter() - started
    connection.execute("ANALYZE audit")
    events = sum(len(actors) for actors in by_workspace.values())
    print(f"postgres_fts events={events} seconds={indexed:.2f} events_per_second={events / indexed:.0f}"
          f" (read+extract+COPY {loaded:.2f} s, primary key + GIN {indexed - loaded:.2f} s)")
    workspace, actors = max(by_workspace.items(), key=lambda item: len(item[1]))
    actor = sorted(actors)[len(actors) // 2]
    for name, query in [
        (f"selective actor:{actor}", f"'ws:{workspace}' & 'actor:{actor}'"),
        ("broad type:machine.*", f"'ws:{workspace}' & 'type:machine.':*"),
    ]:
        p50, p99, total = percentiles(connection, query)
        print(f"postgres_fts {workspace} {name}: hits={total} p50_ms={p50:.2f} p99_ms={p99:.2f}")


if __name__ == "__main__":
    main()
