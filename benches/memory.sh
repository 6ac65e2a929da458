#!/usr/bin/env bash
# Peak server memory while ingesting N events (default 10M) over HTTP, with the projections and
# the search index following, as a user's server would run: `chronicle serve` (release) on a
# fresh data directory, `loadgen --events N` sending 1,000-event batches from four producers
# with a reader and a searcher beside them. Samples the server's resident set every second and
# reports its peak (VmHWM), the time to ingest, the time until the read models and the index
# caught up, and the database size.
#
# Run: benches/memory.sh [EVENTS] [DATA_DIR]   (DATA_DIR defaults to a fresh directory in /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

events=${1:-10000000}
data=${2:-$(mktemp -d /tmp/chronicle-memory.XXXXXX)}
port=${CHRONICLE_MEMORY_PORT:-7781}
token=memory-bench-admin-token-0123456789

cargo build --release --quiet -p chronicle -p chronicle-benches --bin chronicle --bin loadgen

target/release/chronicle serve --data "$data" --listen "127.0.0.1:$port" --admin-token "$token" \
    >"$data/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done

# Resident memory in KiB: all of it, and the anonymous part (the heap: caches, buffers), which
# leaves out the pages of files the server maps (the search index segments), which the kernel
# can drop and read again. Every sample (about one a second: each also reads /metrics) goes to
# $data/memory.tsv with the log position and the lags, so a peak can be placed; the mappings at
# the highest peak are kept in $data/smaps.peak.
peak_rss=0
peak_anon=0
metric() {
    curl -sf "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 ~ "^"name {sum += $2} END {print sum + 0}'
}
printf 'seconds\trss_kib\tanon_kib\tfile_kib\tlog_position\tprojection_lag\tindex_lag\tindex_segments\n' >"$data/memory.tsv"
sample() {
    local rss anon file
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")
    anon=$(awk '/^RssAnon/ {print $2}' "/proc/$server/status")
    file=$(awk '/^RssFile/ {print $2}' "/proc/$server/status")
    if ((rss > peak_rss)); then
        peak_rss=$rss
        cp "/proc/$server/smaps" "$data/smaps.peak" 2>/dev/null || true
    fi
    ((anon > peak_anon)) && peak_anon=$anon
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')" \
        "$rss" "$anon" "$file" "$(metric chronicle_log_position)" \
        "$(metric chronicle_projection_lag_events)" "$(metric chronicle_index_lag_events)" \
        "$(find "$data/index" -name '*.idx' 2>/dev/null | wc -l)" >>"$data/memory.tsv"
    return 0
}

# Spikes shorter than a second: every 50 ms, each time the peak (VmHWM) has risen by 1 MiB or
# more, $data/hwm.tsv gets the moment and the resident set's parts, and past 256 MiB the
# mappings are kept in $data/smaps.hwm (the highest such moment).
watch_peak() {
    local key value hwm=0 rss=0 anon=0 file=0 last=0
    printf 'seconds\tvmhwm_kib\trss_kib\tanon_kib\tfile_kib\n' >"$data/hwm.tsv"
    while kill -0 "$server" 2>/dev/null; do
        while read -r key value _; do
            case $key in
                VmHWM:) hwm=$value ;;
                VmRSS:) rss=$value ;;
                RssAnon:) anon=$value ;;
                RssFile:) file=$value ;;
            esac
        done <"/proc/$server/status" 2>/dev/null || return 0
        if ((hwm >= last + 1024)); then
            last=$hwm
            printf '%s\t%s\t%s\t%s\t%s\n' \
                "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')" \
                "$hwm" "$rss" "$anon" "$file" >>"$data/hwm.tsv"
            ((hwm > 262144)) && { cp "/proc/$server/smaps" "$data/smaps.hwm" 2>/dev/null || true; }
        fi
        sleep 0.05
    done
}

started=$(date +%s.%N)
watch_peak &
watcher=$!
target/release/loadgen --url "http://127.0.0.1:$port" --token "$token" \
    --batch-producers 4 --single-producers 0 --readers 1 --searchers 1 \
    --events "$events" --duration 36000 >"$data/loadgen.txt" 2>&1 &
loadgen=$!
while kill -0 $loadgen 2>/dev/null; do sample; sleep 1; done
wait $loadgen
ingested=$(date +%s.%N)
# The read models and the index follow the log: wait until both have caught up.
while (( $(metric chronicle_projection_lag_events) > 0 || $(metric chronicle_index_lag_events) > 0 )); do
    sample; sleep 1
done
caught_up=$(date +%s.%N)
sample
kill "$watcher" 2>/dev/null || true

cat "$data/loadgen.txt"
echo
echo "events:                 $events"
echo "log position:           $(metric chronicle_log_position)"
echo "ingest:                 $(awk -v a="$started" -v b="$ingested" 'BEGIN {printf "%.1f", b - a}') s"
echo "caught up after:        $(awk -v a="$started" -v b="$caught_up" 'BEGIN {printf "%.1f", b - a}') s"
echo "peak RSS (sampled):     $((peak_rss / 1024)) MiB"
echo "peak RSS (VmHWM):       $(($(awk '/^VmHWM/ {print $2}' "/proc/$server/status") / 1024)) MiB"
echo "peak anonymous (heap):  $((peak_anon / 1024)) MiB"
grep -E '^(VmRSS|RssAnon|RssFile|RssShmem)' "/proc/$server/status" | tr -s ' \t' ' ' | sed 's/^/now: /'
echo "database:               $(du -sh "$data"/*.db* | tr '\n' ' ')"
echo "search index:           $(du -sh "$data/index" 2>/dev/null | cut -f1)"
echo "trace:                  $data/memory.tsv (about one sample a second); the samples at the peaks:"
sort -t$'\t' -k2,2n "$data/memory.tsv" | tail -1 | sed 's/^/  highest resident set: /'
sort -t$'\t' -k3,3n "$data/memory.tsv" | tail -1 | sed 's/^/  highest anonymous:    /'
echo "peak moments:           $data/hwm.tsv (each rise of VmHWM by 1 MiB, read every 50 ms); the last:"
tail -1 "$data/hwm.tsv" | sed 's/^/  /'
