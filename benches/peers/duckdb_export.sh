#!/usr/bin/env bash
# DuckDB converting an NDJSON export to ZSTD Parquet: the peer of Chronicle's Parquet export.
#
# Usage: benches/peers/duckdb_export.sh EVENTS.ndjson OUT.parquet
# Prints one line: `duckdb seconds=S bytes=B peak_kib=K` (peak resident memory of the process).
# DuckDB is installed with pip into a virtual environment under target/ on first use.
set -euo pipefail

input=$1
output=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/duckdb-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet duckdb >&2
fi
rm -f "$output"
"$venv/bin/python" - "$input" "$output" <<'PY'
import resource, sys, time, os
import duckdb

source, target = sys.argv[1], sys.argv[2]
connection = duckdb.connect()
started = time.perf_counter()
connection.execute(
    f"COPY (SELECT * FROM read_json_auto('{source}', format='newline_delimited')) "
    f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"duckdb seconds={seconds:.3f} bytes={os.path.getsize(target)} peak_kib={peak}")
PY
