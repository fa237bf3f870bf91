#!/usr/bin/env bash
# Measures what the Kubernetes resource requests/limits in deploy/ are sized from:
# Switchyard's resident memory idle and under load, and its CPU per request, in front of
# the bench mock upstream (benches/src/bin/mockup.rs), loaded by benches/src/bin/loadgen.rs.
#
#   bash deploy/measure.sh                 # c=64, 20 s per mode
#   CONC=512 DUR=10 bash deploy/measure.sh
#
# Everything runs on 127.0.0.1 and stops on exit. RSS is VmRSS from /proc (sampled every
# second under load), CPU is utime+stime ticks from /proc/PID/stat.
set -euo pipefail
cd "$(dirname "$0")/.."
CONC=${CONC:-64}
DUR=${DUR:-20}
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release -q -p switchyard -p switchyard-benches
BIN=target/release
tmp=$(mktemp -d)
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" "${SAMPLER:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" && return 0; sleep 0.1; done; echo "timed out: $1" >&2; cat "$1" >&2; exit 1; }

"$BIN/mockup" --listen 127.0.0.1:0 --threads 1 >"$tmp/mock.log" 2>&1 &
MOCK_PID=$!
wait_for "$tmp/mock.log" "listening on"
mock_addr=$(awk '/listening on/ {print $3; exit}' "$tmp/mock.log")
cat >"$tmp/gateway.yaml" <<YAML
server:
  listen: 127.0.0.1:0
catalogue:
  fetch_timeout: 2s
upstreams:
  - name: bench
    base_url: http://$mock_addr/v1
    auth: { type: none }
    models: [bench-model]
YAML
RUST_LOG=info "$BIN/switchyard" serve -c "$tmp/gateway.yaml" >"$tmp/gateway.log" 2>&1 &
GW_PID=$!
wait_for "$tmp/gateway.log" "switchyard listening"
addr=$(sed -n 's/.*switchyard listening.*addr=\([^ ]*\).*/\1/p' "$tmp/gateway.log" | head -1)
url="http://$addr/v1/chat/completions"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$GW_PID/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
hz=$(getconf CLK_TCK)

curl -fsS -o /dev/null "$url" -H 'content-type: application/json' \
    -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
sleep 2
echo "switchyard $("$BIN/switchyard" --version | awk '{print $2}'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "idle (after one request): VmRSS $(rss) kB"
t0=$(ticks); sleep 10; t1=$(ticks)
echo "idle CPU: $((t1 - t0)) ticks in 10 s"
for mode in non-stream stream; do
    flag=""; [ "$mode" = stream ] && flag="--stream"
    : >"$tmp/rss"
    (while sleep 1; do rss >>"$tmp/rss"; done) &
    SAMPLER=$!
    t0=$(ticks)
    line=$("$BIN/loadgen" --url "$url" --concurrency "$CONC" --duration "$DUR" --warmup 1 $flag)
    t1=$(ticks)
    kill "$SAMPLER"; SAMPLER=""
    total=$(sed -n 's/.*"total_requests":\([0-9]*\).*/\1/p' <<<"$line")
    rps=$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$line")
    awk -v m="$mode" -v c="$CONC" -v t=$((t1 - t0)) -v hz="$hz" -v d="$DUR" -v n="$total" -v rps="$rps" \
        -v peak="$(sort -n "$tmp/rss" | tail -1)" 'BEGIN {
        printf "%s c=%d: %.0f req/s, CPU %.2f cores, %.1f us/request, VmRSS peak %d kB\n",
            m, c, rps, t / hz / (d + 1), t * 1e6 / hz / n, peak }'
done
echo "after load: VmRSS $(rss) kB, VmHWM $(hwm) kB"
