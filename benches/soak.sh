#!/usr/bin/env bash
# Memory and sockets after load: for each gateway binary, in interleaved rounds, a fresh
# Switchyard in front of one mockup takes CONC concurrent streams (loadgen --stream) for
# LOAD_SECS; the gateway's RSS is read idle before, at its peak (VmHWM), and AFTER
# seconds after the load ended, with its open upstream sockets (established TCP
# connections to the mockup) at the same moments. One line per run, then medians.
#
#   SOAK_BINS="system=target/ab/sy-system mimalloc=target/ab/sy-mimalloc" bash benches/soak.sh
#
# Knobs: SOAK_BINS (label=path …, default system=target/release/switchyard), ROUNDS=3,
# CONC=1000, LOAD_SECS=15, AFTER="10 60", GW_WORKERS (server.workers; default one per
# CPU), BIN=target/release (mockup, loadgen).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-1000}
LOAD_SECS=${LOAD_SECS:-15}
AFTER=${AFTER:-10 60}
read -r -a BINS <<<"${SOAK_BINS:-system=$BIN/switchyard}"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
upstream_sockets() { ss -Htn state established "( dport = :$MOCK_PORT )" | wc -l; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

"$BIN/mockup" --listen 127.0.0.1:0 >"$TMP/mockup.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^listening on' "$TMP/mockup.out" && break; sleep 0.05; done
MOCK_PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/mockup.out")

printf '%-10s %5s %8s %8s' variant round idle_MiB peak_MiB
for a in $AFTER; do printf ' %8s %6s' "+${a}s_MiB" "socks"; done
printf ' %7s\n' "rps"
for round in $(seq 1 "$ROUNDS"); do
    for entry in "${BINS[@]}"; do
        label=${entry%%=*} bin=${entry#*=} port=$(free_port)
        {
            echo "server: {listen: '127.0.0.1:$port', log_format: text${GW_WORKERS:+, workers: $GW_WORKERS}}"
            echo "metrics: {enabled: false}"
            echo "upstreams:"
            echo "  - {name: bench, base_url: 'http://127.0.0.1:$MOCK_PORT/v1', auth: {type: none}, models: [bench-model]}"
        } >"$TMP/gw.yaml"
        RUST_LOG=warn "$bin" serve -c "$TMP/gw.yaml" >"$TMP/$label.log" 2>&1 &
        gw=$!
        PIDS+=("$gw")
        wait_port "$port" || { echo "$label did not start: $(cat "$TMP/$label.log")" >&2; exit 1; }
        sleep 1
        idle=$(kb "$gw" VmRSS)
        out=$("$BIN/loadgen" --url "http://127.0.0.1:$port/v1/chat/completions" --stream \
            --concurrency "$CONC" --duration "$LOAD_SECS" --warmup 1)
        rps=$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$out")
        peak=$(kb "$gw" VmHWM)
        printf '%-10s %5s %8s %8s' "$label" "$round" "$(mib "$idle")" "$(mib "$peak")"
        waited=0
        for a in $AFTER; do
            sleep $((a - waited))
            waited=$a
            printf ' %8s %6s' "$(mib "$(kb "$gw" VmRSS)")" "$(upstream_sockets)"
        done
        printf ' %7.0f\n' "$rps"
        kill "$gw"
        wait "$gw" 2>/dev/null || true
    done
done
