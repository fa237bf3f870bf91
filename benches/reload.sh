#!/usr/bin/env bash
# Hot reload under load: one Switchyard in front of one mockup, two configs that route
# `bench-model` to two different upstream names (both pointing at the mockup). For chat
# and then stream traffic at CONC concurrent clients, loadgen runs LOAD_SECS without
# reloads, then LOAD_SECS again while RELOADS reloads (POST /admin/reload, alternating
# the two configs) are spread over the run. One line per run: failed requests
# (transport errors + non-2xx; target 0), p50/p99, and how many reloads answered 200.
#
#   bash benches/reload.sh
#
# Knobs: CONC=64, LOAD_SECS=10, RELOADS=20, GW_WORKERS (server.workers; default one per
# CPU), BIN=target/release (switchyard, mockup, loadgen; built unless NO_BUILD=1).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
CONC=${CONC:-64}
LOAD_SECS=${LOAD_SECS:-10}
RELOADS=${RELOADS:-20}
if [[ -z ${NO_BUILD:-} ]]; then
    cargo build --release -q -p switchyard -p switchyard-benches --bins
fi
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2"; }

"$BIN/mockup" --listen 127.0.0.1:0 >"$TMP/mockup.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^listening on' "$TMP/mockup.out" && break; sleep 0.05; done
MOCK_PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/mockup.out")
PORT=$(free_port)
ADMIN_PORT=$(free_port)

# config TARGET: bench-model routed to upstream TARGET (one or two).
config() {
    cat <<EOF
server: {listen: '127.0.0.1:$PORT', log_format: text${GW_WORKERS:+, workers: $GW_WORKERS}}
metrics: {enabled: false}
admin: {listen: '127.0.0.1:$ADMIN_PORT'}
upstreams:
  - {name: one, base_url: 'http://127.0.0.1:$MOCK_PORT/v1', auth: {type: none}, models: [bench-model]}
  - {name: two, base_url: 'http://127.0.0.1:$MOCK_PORT/v1', auth: {type: none}, models: [bench-model]}
routes:
  - {model: bench-model, targets: [{upstream: $1, model: bench-model}]}
EOF
}
config one >"$TMP/gw.yaml"
RUST_LOG=warn "$BIN/switchyard" serve -c "$TMP/gw.yaml" >"$TMP/gw.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT" || { echo "gateway did not start: $(cat "$TMP/gw.log")" >&2; exit 1; }
wait_port "$ADMIN_PORT" || { echo "no admin listener: $(cat "$TMP/gw.log")" >&2; exit 1; }

# reload_loop: RELOADS reloads spread over LOAD_SECS, after the 1 s warm-up; prints
# how many answered 200.
reload_loop() {
    local ok=0 gap i
    gap=$(awk -v d="$LOAD_SECS" -v n="$RELOADS" 'BEGIN { printf "%.3f", d / (n + 1) }')
    sleep 1
    for i in $(seq 1 "$RELOADS"); do
        sleep "$gap"
        if ((i % 2)); then config two; else config one; fi >"$TMP/gw.yaml.new"
        mv "$TMP/gw.yaml.new" "$TMP/gw.yaml"
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$ADMIN_PORT/admin/reload")
        [[ $code == 200 ]] && ok=$((ok + 1))
    done
    echo "$ok"
}

printf '%-7s %-8s %8s %6s %8s %9s %8s %8s %8s\n' mode reloads requests failed rps p50_ms p99_ms ttfb_p99 reloads_ok
for mode in chat stream; do
    flag=()
    [[ $mode == stream ]] && flag=(--stream)
    for with in none "$RELOADS"; do
        if [[ $with == none ]]; then
            out=$("$BIN/loadgen" --url "http://127.0.0.1:$PORT/v1/chat/completions" "${flag[@]}" \
                --concurrency "$CONC" --duration "$LOAD_SECS" --warmup 1 --threads 2)
            done_ok=-
        else
            reload_loop >"$TMP/reloads" &
            rl=$!
            out=$("$BIN/loadgen" --url "http://127.0.0.1:$PORT/v1/chat/completions" "${flag[@]}" \
                --concurrency "$CONC" --duration "$LOAD_SECS" --warmup 1 --threads 2)
            wait "$rl"
            done_ok=$(cat "$TMP/reloads")
        fi
        failed=$(($(field errors "$out") + $(field non_2xx "$out")))
        printf '%-7s %-8s %8s %6s %8s %9s %8s %8s %8s\n' "$mode" "$with" "$(field requests "$out")" \
            "$failed" "$(field rps "$out")" "$(field p50_ms "$out")" "$(field p99_ms "$out")" \
            "$(field ttfb_p99_ms "$out")" "$done_ok"
    done
done
rejected=$(grep -c 'config reload rejected' "$TMP/gw.log" || true)
echo "reload rejections logged: $rejected"
