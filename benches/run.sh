#!/usr/bin/env bash
# Switchyard load-test harness: the mock upstream straight, through Switchyard and
# through nginx, non-streaming and streaming, at several concurrencies. Prints a
# Markdown table and the headline comparisons. See benches/README.md.
#
#   bash benches/run.sh
#
# Environment knobs:
#   DURATION=5          measured seconds per run        WARMUP=1  unrecorded seconds before
#   CONCS="1 16 64"     concurrency list                 OUT=FILE  also write the report there
#   MOCK_THREADS=1      mockup worker threads            LOADGEN_THREADS=1  loadgen threads
#   SKIP_BUILD=1        use the binaries already built   KEEP_TMP=1 keep configs and logs
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONCS=${CONCS:-"1 16 64"}
MOCK_THREADS=${MOCK_THREADS:-1}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
CLK_TCK=$(getconf CLK_TCK)

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers may run as another user when started as root
PIDS=()

cleanup() {
    local pid _
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "configs and logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ---------------------------------------------------------------------

# A TCP port on 127.0.0.1 that nothing is listening on right now.
free_port() {
    local p _
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# wait_port PORT PID SECS: until PORT accepts connections; fails if PID dies first.
wait_port() {
    local port=$1 pid=$2 tries=$(($3 * 20)) _
    for _ in $(seq 1 "$tries"); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# One POST over a fresh connection, with bash's /dev/tcp; prints the status line.
http_post_once() {
    local port=$1 path=$2 body=$3 status
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$path" "$port" "${#body}" "$body" >&3
    timeout 5 cat <&3 >"$TMP/probe.out" || true
    exec 3<&- 3>&-
    status=$(head -n 1 "$TMP/probe.out" | tr -d '\r')
    echo "$status"
}

# utime+stime in clock ticks of one process (all its threads), 0 if it is gone.
proc_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) } # drop "pid (comm) ": comm may hold spaces
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13})) # fields 14 and 15 of the full line
}

# CPU ticks of a target: the gateway's process, or nginx's master plus its workers.
target_ticks() {
    local pid total child
    case $1 in
    switchyard) proc_ticks "$GW_PID" ;;
    nginx)
        total=$(proc_ticks "$NGX_PID")
        # shellcheck disable=SC2013 # the file is a space-separated pid list
        for child in $(cat /proc/"$NGX_PID"/task/*/children 2>/dev/null); do
            total=$((total + $(proc_ticks "$child")))
        done
        echo "$total"
        ;;
    *) echo "" ;;
    esac
}

# A kB field (VmRSS, VmHWM) of /proc/PID/status.
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# A scalar field of loadgen's one-line JSON ("null" stays "null").
jfield() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"; }

# Float arithmetic: calc EXPR [a b ...] with the values as a, b, c, d; prints "n/a"
# if any value is empty or null.
calc() {
    local expr=$1 v
    shift
    for v in "$@"; do [[ -z $v || $v == null || $v == n/a ]] && { echo "n/a"; return; }; done
    awk -v a="${1:-0}" -v b="${2:-0}" -v c="${3:-0}" -v d="${4:-0}" "BEGIN { print $expr }"
}

# verdict VALUE OP LIMIT: "ok" or "MISS" against a target, "" if unknown.
verdict() {
    [[ $1 == n/a ]] && return
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
        ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "ok" : "MISS" }'
}

# ---- build -------------------------------------------------------------------------

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    if ! (cd "$ROOT" && cargo build --release -p switchyard -p switchyard-benches); then
        log "WARNING: building switchyard failed; building the harness alone (no gateway rows)"
        (cd "$ROOT" && cargo build --release -p switchyard-benches) || die "build failed"
    fi
fi
[[ -x $BIN/mockup && -x $BIN/loadgen ]] || die "no $BIN/mockup or $BIN/loadgen"

# ---- mock upstream -----------------------------------------------------------------

"$BIN/mockup" --listen 127.0.0.1:0 --threads "$MOCK_THREADS" >"$TMP/mockup.out" 2>"$TMP/mockup.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_ADDR=""
for _ in $(seq 1 100); do
    MOCK_ADDR=$(sed -n 's/^listening on //p' "$TMP/mockup.out")
    [[ -n $MOCK_ADDR ]] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
done
[[ -n $MOCK_ADDR ]] || die "mockup did not start: $(cat "$TMP/mockup.err")"
MOCK_PORT=${MOCK_ADDR##*:}
log "mockup on $MOCK_ADDR (pid $MOCK_PID)"

PROBE_BODY='{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}]}'

# ---- switchyard --------------------------------------------------------------------

GW_PID=""
GW_PORT=""
GW_IDLE_KB=""
if [[ -x $BIN/switchyard ]]; then
    GW_PORT=$(free_port) || die "no free port"
    cat >"$TMP/gateway.yaml" <<EOF
server:
  listen: 127.0.0.1:$GW_PORT
  log_format: text
catalogue:
  fetch_timeout: 2s
upstreams:
  - name: bench
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    auth: { type: none }
    models: [bench-model]
EOF
    RUST_LOG=warn "$BIN/switchyard" serve -c "$TMP/gateway.yaml" >"$TMP/switchyard.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    if wait_port "$GW_PORT" "$GW_PID" 15; then
        status=$(http_post_once "$GW_PORT" /v1/chat/completions "$PROBE_BODY" || true)
        log "switchyard on 127.0.0.1:$GW_PORT (pid $GW_PID); probe: ${status:-no answer}"
        [[ $status == *" 200"* ]] || log "WARNING: switchyard probe was not 200"
        sleep 0.2
        GW_IDLE_KB=$(status_kb "$GW_PID" VmRSS)
    else
        log "WARNING: switchyard did not come up; its log:"
        tail -n 20 "$TMP/switchyard.log" >&2 || true
        kill "$GW_PID" 2>/dev/null || true
        GW_PID=""
    fi
else
    log "WARNING: no $BIN/switchyard; gateway rows skipped"
fi

# ---- nginx -------------------------------------------------------------------------

NGX_PID=""
NGX_PORT=""
NGINX_BIN=$(command -v nginx || true)
[[ -z $NGINX_BIN && -x /usr/sbin/nginx ]] && NGINX_BIN=/usr/sbin/nginx
if [[ -n $NGINX_BIN ]]; then
    NGX_PORT=$(free_port) || die "no free port"
    NGX_DIR=$TMP/nginx
    mkdir -p "$NGX_DIR"
    cat >"$NGX_DIR/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path $NGX_DIR/client_body;
    proxy_temp_path $NGX_DIR/proxy;
    fastcgi_temp_path $NGX_DIR/fastcgi;
    uwsgi_temp_path $NGX_DIR/uwsgi;
    scgi_temp_path $NGX_DIR/scgi;
    keepalive_requests 1000000;

    upstream upstream {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    ngx_args=(-p "$NGX_DIR" -c "$NGX_DIR/nginx.conf")
    # -e (nginx >= 1.19.5) keeps nginx from opening the packaged error log before the config.
    if "$NGINX_BIN" -h 2>&1 | grep -q -- '-e filename'; then ngx_args+=(-e "$NGX_DIR/error.log"); fi
    "$NGINX_BIN" "${ngx_args[@]}" >"$NGX_DIR/stdout.log" 2>&1 &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    if wait_port "$NGX_PORT" "$NGX_PID" 10; then
        status=$(http_post_once "$NGX_PORT" /v1/chat/completions "$PROBE_BODY" || true)
        log "nginx on 127.0.0.1:$NGX_PORT (pid $NGX_PID); probe: ${status:-no answer}"
    else
        log "WARNING: nginx did not come up:"
        cat "$NGX_DIR/stdout.log" "$NGX_DIR/error.log" >&2 2>/dev/null || true
        NGX_PID=""
    fi
else
    log "no nginx on PATH (apt-get install -y nginx for the nginx rows)"
fi

# ---- runs --------------------------------------------------------------------------

TARGETS=(direct)
[[ -n $GW_PID ]] && TARGETS+=(switchyard)
[[ -n $NGX_PID ]] && TARGETS+=(nginx)

declare -A URL=(
    [direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
    [switchyard]="http://127.0.0.1:$GW_PORT/v1/chat/completions"
    [nginx]="http://127.0.0.1:$NGX_PORT/v1/chat/completions"
)
declare -A RES=() # "target|mode|conc|field" -> value
TROUBLE=()

for target in "${TARGETS[@]}"; do
    for mode in non-stream stream; do
        for conc in $CONCS; do
            flags=()
            [[ $mode == stream ]] && flags+=(--stream)
            log "$target $mode c=$conc (${WARMUP}s + ${DURATION}s)"
            before=$(target_ticks "$target")
            line=$("$BIN/loadgen" --url "${URL[$target]}" --concurrency "$conc" \
                --duration "$DURATION" --warmup "$WARMUP" --threads "$LOADGEN_THREADS" \
                "${flags[@]}") || die "loadgen failed for $target $mode c=$conc"
            after=$(target_ticks "$target")
            echo "$target $mode $conc $line" >>"$TMP/raw.jsonl"
            k="$target|$mode|$conc"
            for f in rps p50_ms p99_ms ttfb_p50_ms ttfb_p99_ms errors non_2xx total_requests; do
                RES[$k|$f]=$(jfield "$line" "$f")
            done
            RES[$k|cpu]=n/a
            if [[ -n $before ]]; then
                RES[$k|cpu]=$(calc '(b - a) * 1000000 / c / d' "$before" "$after" \
                    "$CLK_TCK" "${RES[$k|total_requests]}")
            fi
            if [[ ${RES[$k|errors]} != 0 || ${RES[$k|non_2xx]} != 0 ]]; then
                TROUBLE+=("$target $mode c=$conc: ${RES[$k|errors]} errors, ${RES[$k|non_2xx]} non-2xx")
            fi
        done
    done
done

GW_PEAK_KB=""
[[ -n $GW_PID ]] && GW_PEAK_KB=$(status_kb "$GW_PID" VmHWM)

# ---- report ------------------------------------------------------------------------

fmt() { # number formatting for the table: "-" for null / n/a
    local v=$1 spec=$2
    if [[ -z $v || $v == null || $v == n/a ]]; then echo "-"; else awk -v v="$v" "BEGIN { printf \"$spec\", v }"; fi
}
signed() {
    if [[ $1 == n/a ]]; then echo n/a; else awk -v v="$1" 'BEGIN { printf "%+.3f", v }'; fi
}

read -r -a conc_list <<<"$CONCS"
LOW=${conc_list[0]}
HIGH=${conc_list[0]}
for c in "${conc_list[@]}"; do
    ((c < LOW)) && LOW=$c
    ((c > HIGH)) && HIGH=$c
done

report() {
    echo "Switchyard benchmark: ${DURATION}s per run after ${WARMUP}s warm-up, $(nproc) cores," \
        "mockup threads $MOCK_THREADS, loadgen threads $LOADGEN_THREADS."
    echo
    echo "| target | mode | conc | rps | p50 ms | p99 ms | TTFB p50 | TTFB p99 | CPU µs/req |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    local target mode conc k
    for target in "${TARGETS[@]}"; do
        for mode in non-stream stream; do
            for conc in $CONCS; do
                k="$target|$mode|$conc"
                echo "| $target | $mode | $conc | $(fmt "${RES[$k|rps]}" %.0f)" \
                    "| $(fmt "${RES[$k|p50_ms]}" %.3f) | $(fmt "${RES[$k|p99_ms]}" %.3f)" \
                    "| $(fmt "${RES[$k|ttfb_p50_ms]}" %.3f) | $(fmt "${RES[$k|ttfb_p99_ms]}" %.3f)" \
                    "| $(fmt "${RES[$k|cpu]}" %.1f) |"
            done
        done
    done
    echo
    local t
    for t in "${TROUBLE[@]}"; do echo "- WARNING: $t"; done

    if [[ -z $GW_PID ]]; then
        echo "- switchyard: not measured (no binary, or it did not start)"
        return
    fi
    local d s n p50 p99 tp50 tp99 rr cr
    d="direct|non-stream|$LOW"
    s="switchyard|non-stream|$LOW"
    p50=$(calc 'b - a' "${RES[$d|p50_ms]:-}" "${RES[$s|p50_ms]:-}")
    p99=$(calc 'b - a' "${RES[$d|p99_ms]:-}" "${RES[$s|p99_ms]:-}")
    echo "- Added latency at c=$LOW, non-stream: p50 $(signed "$p50") ms" \
        "(target ≤ 0.1: $(verdict "$p50" '<=' 0.1)), p99 $(signed "$p99") ms" \
        "(target ≤ 0.5: $(verdict "$p99" '<=' 0.5))"
    d="direct|stream|$LOW"
    s="switchyard|stream|$LOW"
    p50=$(calc 'b - a' "${RES[$d|p50_ms]:-}" "${RES[$s|p50_ms]:-}")
    p99=$(calc 'b - a' "${RES[$d|p99_ms]:-}" "${RES[$s|p99_ms]:-}")
    tp50=$(calc 'b - a' "${RES[$d|ttfb_p50_ms]:-}" "${RES[$s|ttfb_p50_ms]:-}")
    tp99=$(calc 'b - a' "${RES[$d|ttfb_p99_ms]:-}" "${RES[$s|ttfb_p99_ms]:-}")
    echo "- Added latency at c=$LOW, stream: p50 $(signed "$p50") ms" \
        "(target ≤ 0.1: $(verdict "$p50" '<=' 0.1)), p99 $(signed "$p99") ms" \
        "(target ≤ 0.5: $(verdict "$p99" '<=' 0.5)); TTFB p50 $(signed "$tp50") ms" \
        "(target ≤ 0.2: $(verdict "$tp50" '<=' 0.2)), TTFB p99 $(signed "$tp99") ms"
    if [[ -n $NGX_PID ]]; then
        for mode in non-stream stream; do
            s="switchyard|$mode|$HIGH"
            n="nginx|$mode|$HIGH"
            rr=$(calc 'b / a' "${RES[$n|rps]:-}" "${RES[$s|rps]:-}")
            cr=$(calc 'b / a' "${RES[$n|cpu]:-}" "${RES[$s|cpu]:-}")
            echo "- $mode at c=$HIGH: rps switchyard/nginx $(fmt "$rr" %.2f)×" \
                "(target ≥ 0.8: $(verdict "$rr" '>=' 0.8)); CPU/request switchyard/nginx" \
                "$(fmt "$cr" %.2f)× (target ≤ 1.5: $(verdict "$cr" '<=' 1.5))"
        done
    else
        echo "- nginx: not measured (install it: apt-get install -y nginx)"
    fi
    local idle peak
    idle=$(calc 'a / 1024' "$GW_IDLE_KB")
    peak=$(calc 'a / 1024' "$GW_PEAK_KB")
    echo "- Switchyard RSS: idle $(fmt "$idle" %.1f) MB (target ≤ 20: $(verdict "$idle" '<=' 20))," \
        "peak $(fmt "$peak" %.1f) MB"
}

if [[ -n ${OUT:-} ]]; then
    report | tee "$OUT"
else
    report
fi
