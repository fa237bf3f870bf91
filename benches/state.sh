#!/usr/bin/env bash
# The cost of shared state and the response cache (`state:` / `cache:`): one mockup, one
# redis-server (Debian's, on a free port, no persistence) and one Switchyard process per
# variant, all on loopback; loadgen runs every variant at each concurrency in
# interleaved rounds and the table shows medians (and ranges) over the rounds.
#
#   bash benches/state.sh
#
# Variants (each its own gateway process in front of the same mockup):
#   direct       no gateway: loadgen → mockup            (this machine's HTTP round-trip floor)
#   none         no plugin, no cache                     (the baseline)
#   rl-memory    rate_limiter, in-process GCRA           (a limit that never refuses)
#   rl-redis     the same limiter with state: redis      (one EVALSHA per request)
#   cache-memory cache: hits from the in-process tier    (deterministic request)
#   cache-redis  cache: hits from Redis alone            (max_bytes: 0 — no memory tier)
#
# Then `statebench` runs the shared GCRA check alone (no HTTP) at c=64 over the store's
# pool of multiplexed connections: checks per second per replica.
#
# Knobs: ROUNDS=3 DURATION=5 WARMUP=1 CONCS="1 64" SKIP_BUILD=1 KEEP_TMP=1 POOLS="1 2 4"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONCS=${CONCS:-"1 64"}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-state-bench.XXXXXX")
PIDS=()

log() { echo "[state-bench] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ ${KEEP_TMP:-0} == 1 ]] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

command -v redis-server >/dev/null || die "redis-server is missing (apt-get install redis-server; bash .ci/run installs it)"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release (switchyard, mockup, loadgen)"
    (cd "$ROOT" && cargo build --release -q -p switchyard --bin switchyard -p switchyard-benches --bin mockup --bin loadgen --bin statebench)
fi
for b in switchyard mockup loadgen statebench; do [[ -x $BIN/$b ]] || die "no $BIN/$b"; done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

REDIS_PORT=$(free_port)
mkdir -p "$TMP/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP/redis" \
    >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT" || die "redis-server did not start: $(cat "$TMP/redis.log")"
log "redis-server on $REDIS_PORT ($(redis-server --version | awk '{print $3}'))"

"$BIN/mockup" --listen 127.0.0.1:0 >"$TMP/mockup.out" 2>"$TMP/mockup.err" &
PIDS+=($!)
for _ in $(seq 100); do
    MOCK_ADDR=$(sed -n 's/^listening on //p' "$TMP/mockup.out")
    [[ -n $MOCK_ADDR ]] && break
    sleep 0.05
done
[[ -n ${MOCK_ADDR:-} ]] || die "mockup did not start"

STATE="state: {backend: redis, url: 'redis://127.0.0.1:$REDIS_PORT/0', prefix: 'bench:'}"
LIMIT="plugins:
  - {name: rate_limiter, config: {limit: 1000000, window: 1s, key: api_key}}"
declare -A EXTRA=(
    [none]=""
    [rl-memory]="$LIMIT"
    [rl-redis]="$LIMIT
$STATE"
    [cache-memory]="cache: {models: ['*']}"
    [cache-redis]="cache: {models: ['*'], max_bytes: 0}
$STATE"
)
VARIANTS=(none rl-memory rl-redis cache-memory cache-redis)
declare -A PORT
for v in "${VARIANTS[@]}"; do
    [[ $v == direct ]] && continue
    PORT[$v]=$(free_port)
    cat >"$TMP/$v.yaml" <<EOF
server: {listen: '127.0.0.1:${PORT[$v]}', workers: 1}
metrics: {enabled: false}
log: {access: false}
upstreams:
  - {name: mock, base_url: 'http://$MOCK_ADDR/v1', models: [bench-model]}
${EXTRA[$v]}
EOF
    "$BIN/switchyard" serve --config "$TMP/$v.yaml" >"$TMP/$v.log" 2>&1 &
    PIDS+=($!)
done
for v in "${VARIANTS[@]}"; do
    [[ $v == direct ]] && continue
    wait_port "${PORT[$v]}" || die "$v did not start: $(cat "$TMP/$v.log")"
done
VARIANTS=(direct "${VARIANTS[@]}")
url_of() {
    if [[ $1 == direct ]]; then echo "http://$MOCK_ADDR/v1/chat/completions"
    else echo "http://127.0.0.1:${PORT[$1]}/v1/chat/completions"; fi
}

# A deterministic request (the cache takes only those by default).
printf '%s' '{"model":"bench-model","temperature":0,"messages":[{"role":"user","content":"Say hello in one short sentence."}]}' \
    >"$TMP/body.json"
RESULTS="$TMP/results.jsonl"
for round in $(seq "$ROUNDS"); do
    for conc in $CONCS; do
        for v in "${VARIANTS[@]}"; do
            line=$("$BIN/loadgen" --url "$(url_of "$v")" \
                --concurrency "$conc" --duration "$DURATION" --warmup "$WARMUP" \
                --body-file "$TMP/body.json") || die "loadgen failed for $v c=$conc"
            echo "{\"variant\":\"$v\",\"round\":$round,\"result\":$line}" >>"$RESULTS"
            log "round $round c=$conc $v: $line"
        done
    done
done
# The cache variants must have answered from the cache, Redis from Redis.
python3 - "$RESULTS" "$REDIS_PORT" <<'EOF'
import json, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs)
def cell(v, c, key):
    xs = [r["result"][key] for r in rows if r["variant"] == v and r["result"]["concurrency"] == c]
    return med(xs), min(xs), max(xs)
concs = sorted({r["result"]["concurrency"] for r in rows})
variants = list(dict.fromkeys(r["variant"] for r in rows))
bad = [r for r in rows if r["result"]["non_2xx"] or r["result"]["errors"]]
print(f"\n| variant | c | rps (median [range]) | p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|")
for c in concs:
    for v in variants:
        rps, lo, hi = cell(v, c, "rps")
        print(f"| {v} | {c} | {rps:,.0f} [{lo:,.0f}–{hi:,.0f}] | {cell(v, c, 'p50_ms')[0]:.3f} | {cell(v, c, 'p99_ms')[0]:.3f} |")
print()
if 1 in concs:
    d50 = cell("rl-redis", 1, "p50_ms")[0] - cell("rl-memory", 1, "p50_ms")[0]
    d99 = cell("rl-redis", 1, "p99_ms")[0] - cell("rl-memory", 1, "p99_ms")[0]
    print(f"- Redis-backed limit check over the in-memory one at c=1: p50 +{d50:.3f} ms (target ≤ 0.15), p99 +{d99:.3f} ms (target ≤ 0.5)")
    print(f"- cache hit p50 at c=1: memory {cell('cache-memory', 1, 'p50_ms')[0]:.3f} ms (target ≤ 0.1), Redis {cell('cache-redis', 1, 'p50_ms')[0]:.3f} ms (target ≤ 0.3); one HTTP round trip to the mockup alone: {cell('direct', 1, 'p50_ms')[0]:.3f} ms")
top = max(concs)
print(f"- Redis-backed limit checks per second at c={top}: {cell('rl-redis', top, 'rps')[0]:,.0f} (target ≥ 20,000 per replica)")
base = cell("none", top, "rps")[0]
print(f"- cache hits vs no cache at c={top}: memory {cell('cache-memory', top, 'rps')[0] / base:.2f}×, Redis {cell('cache-redis', top, 'rps')[0] / base:.2f}× (target ≥ 2×)")
if bad:
    print(f"- WARNING: {len(bad)} runs had errors or non-2xx answers")
EOF
echo
echo "| statebench (GCRA checks, no HTTP) | pool | checks/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|---:|"
for pool in ${POOLS:-1 2 4}; do
    for round in $(seq "$ROUNDS"); do
        line=$("$BIN/statebench" --url "redis://127.0.0.1:$REDIS_PORT/0" --concurrency 64 \
            --duration "$DURATION" --pool "$pool") || die "statebench failed"
        log "statebench pool=$pool round $round: $line"
        echo "$line" >>"$TMP/statebench.$pool.jsonl"
    done
    python3 - "$TMP/statebench.$pool.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = lambda k: statistics.median(r[k] for r in rows)
lo, hi = min(r["checks_per_s"] for r in rows), max(r["checks_per_s"] for r in rows)
print(f"| c=64, {len(rows)} rounds | {rows[0]['pool']} | {m('checks_per_s'):,.0f} [{lo:,.0f}–{hi:,.0f}] | {m('p50_ms'):.3f} | {m('p99_ms'):.3f} |")
EOF
done
echo
log "redis keys by kind: $(redis-cli -p "$REDIS_PORT" --scan --pattern 'bench:*' | cut -d: -f2 | sort | uniq -c | tr '\n' ';')"
