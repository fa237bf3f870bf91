#!/usr/bin/env bash
# Where the gateway's CPU goes: profiles the release build under the standard load
# (chat at c=64, metrics and the access log on) with perf and call graphs, and writes
# the top of the profile and a flame graph. See benches/README.md "Profile".
#
#   bash benches/profile.sh                 # non-stream chat, c=64
#   MODE=stream bash benches/profile.sh     # streams
#
# Environment knobs:
#   MODE=non-stream     non-stream | stream       CONC=64   loadgen concurrency
#   SECONDS_=8          seconds recorded           FREQ=1999 samples per second
#   GW_WORKERS=1        the gateway's server.workers (pinned to PROXY_CPUS)
#   PROXY_CPUS=0        the gateway's CPUs         LOAD_CPUS=1  mockup + loadgen CPUs
#   RUST_LOG=info       info keeps the access log on (as in production)
#   OUT=DIR             where results go (default: a new dir under /tmp)
#   SKIP_BUILD=1        use the binaries already built
#   YAML=...            extra YAML appended to the gateway config
# Needs perf (Debian: linux-perf) and, for the flame graph, inferno
# (`cargo install inferno`); without inferno only the text profile is written.
# perf may need `sysctl kernel.perf_event_paranoid=1` (or root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${MODE:-non-stream}
CONC=${CONC:-64}
SECS=${SECONDS_:-8}
FREQ=${FREQ:-1999}
GW_WORKERS=${GW_WORKERS:-1}
PROXY_CPUS=${PROXY_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
LOG_LEVEL=${RUST_LOG:-info}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/switchyard-profile.XXXXXX")}
mkdir -p "$OUT"

log() { echo "[profile] $*" >&2; }
die() { log "error: $*"; exit 1; }
command -v perf >/dev/null || die "no perf (apt-get install -y linux-perf)"
command -v taskset >/dev/null || die "no taskset (util-linux)"
case $MODE in non-stream | stream) ;; *) die "MODE must be non-stream or stream" ;; esac

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release, with debug info for symbols)"
    (cd "$ROOT" && cargo build --release -p switchyard -p switchyard-benches) || die "build failed"
fi
for b in switchyard mockup loadgen; do [[ -x $BIN/$b ]] || die "no $BIN/$b"; done

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

port_of() { # FILE: the address a binary printed as "listening on ADDR"
    local addr="" _
    for _ in $(seq 1 100); do
        addr=$(sed -n 's/^listening on //p' "$1" 2>/dev/null | head -n 1)
        [[ -n $addr ]] && break
        sleep 0.05
    done
    echo "${addr##*:}"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

taskset -c "$LOAD_CPUS" "$BIN/mockup" --listen 127.0.0.1:0 >"$OUT/mockup.out" 2>&1 &
PIDS+=($!)
MOCK_PORT=$(port_of "$OUT/mockup.out")
[[ -n $MOCK_PORT ]] || die "mockup did not start"

GW_PORT=$(free_port)
METRICS_PORT=$(free_port)
cat >"$OUT/gateway.yaml" <<EOF
server:
  listen: 127.0.0.1:$GW_PORT
  workers: $GW_WORKERS
metrics:
  listen: 127.0.0.1:$METRICS_PORT
upstreams:
  - name: bench
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    models: [bench-model]
${YAML:-}
EOF
RUST_LOG=$LOG_LEVEL taskset -c "$PROXY_CPUS" "$BIN/switchyard" serve -c "$OUT/gateway.yaml" \
    >/dev/null 2>"$OUT/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null && break
    sleep 0.05
done

flags=()
[[ $MODE == stream ]] && flags+=(--stream)
URL=http://127.0.0.1:$GW_PORT/v1/chat/completions
log "warming up, then recording ${SECS}s of $MODE c=$CONC at ${FREQ} Hz"
taskset -c "$LOAD_CPUS" "$BIN/loadgen" --url "$URL" --concurrency "$CONC" \
    --duration $((SECS + 3)) --warmup 1 "${flags[@]}" >"$OUT/loadgen.json" &
LOADGEN=$!
sleep 2
perf record -F "$FREQ" -g --call-graph dwarf,32768 -p "$GW_PID" -o "$OUT/perf.data" \
    -- sleep "$SECS" 2>"$OUT/perf-record.log" || die "perf record failed: $(tail -3 "$OUT/perf-record.log")"
wait "$LOADGEN" || die "loadgen failed"
log "load: $(cat "$OUT/loadgen.json")"

# Self time by symbol (where cycles are spent), and with children (what costs the most
# all in): the two views a profile is read from.
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio --percent-limit 0.7 \
    -g none 2>/dev/null | grep -v '^$' >"$OUT/top-self.txt" || true
perf report -i "$OUT/perf.data" --children --sort symbol --stdio --percent-limit 3 \
    -g none 2>/dev/null | grep -v '^$' >"$OUT/top-children.txt" || true
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
    perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf --all >"$OUT/folded.txt"
    inferno-flamegraph --title "switchyard $MODE c=$CONC" <"$OUT/folded.txt" >"$OUT/flame.svg"
    log "flame graph: $OUT/flame.svg"
    python3 "$ROOT/benches/areas.py" "$OUT/folded.txt" | tee "$OUT/areas.txt"
else
    log "no inferno (cargo install inferno): text profile only"
fi
log "top (self): $OUT/top-self.txt; (children): $OUT/top-children.txt"
head -n 45 "$OUT/top-self.txt"
