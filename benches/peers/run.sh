#!/usr/bin/env bash
# Runs the Python and PostgreSQL peers of Chronicle's budgets over one NDJSON corpus of the
# fixtures' history (`--bin corpus`), each printing its figures on one line or a small table.
#
# Usage: benches/peers/run.sh [EVENTS] [APPEND_EVENTS]   (defaults 1000000 and 100000)
# The corpus, the virtual environment (eventsourcing, psycopg) and the databases go under
# target/peers/. SQLite FTS5 is the search bench's peer (`--bench search`), not repeated here.
set -euo pipefail

events=${1:-1000000}
append_events=${2:-100000}
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/peers"
venv="$root/target/peers-venv"
corpus="$work/events-$events.ndjson"
mkdir -p "$work"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import eventsourcing, psycopg' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet eventsourcing 'psycopg[binary]' >&2
fi
if [ ! -s "$corpus" ]; then
    cargo run --quiet --release -p chronicle-benches --bin corpus -- "$events" > "$corpus"
fi
"$venv/bin/python" "$root/benches/peers/eventsourcing_sqlite.py" "$corpus" "$append_events" "$work/eventsourcing"
"$venv/bin/python" "$root/benches/peers/postgres_fts.py" "$corpus" "$work/postgres"
