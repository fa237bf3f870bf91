#!/usr/bin/env bash
# Switchyard load-test harness: the mock upstream straight, through Switchyard and
# through nginx, non-streaming and streaming, at several concurrencies. Prints a
# Markdown table and the headline comparisons. See benches/README.md.
#
#   bash benches/run.sh            # the proxy matrix: direct vs switchyard vs nginx
#   bash benches/run.sh plugins    # plugin cost: no plugins vs rate_limiter +
#                                  # content_filter, and parallel vs sequential http plugins
#   bash benches/run.sh all        # both, one after the other, against the same mockup
#
# Environment knobs:
#   SCENARIO=default    default | plugins | all (the first argument wins)
#   DURATION=5          measured seconds per run        WARMUP=1  unrecorded seconds before
#   CONCS="1 16 64"     concurrency list                 OUT=FILE  also write the report there
#   PLUGIN_CONCS="1 64" concurrencies of the plugin matrix
#   PLUGIN_MS=50        how long each external (http) plugin call takes
#   MOCK_THREADS=1      mockup worker threads            LOADGEN_THREADS=1  loadgen threads
#   SKIP_BUILD=1        use the binaries already built   KEEP_TMP=1 keep configs and logs
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCENARIO=${1:-${SCENARIO:-default}}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONCS=${CONCS:-"1 16 64"}
PLUGIN_CONCS=${PLUGIN_CONCS:-"1 64"}
PLUGIN_MS=${PLUGIN_MS:-50}
MOCK_THREADS=${MOCK_THREADS:-1}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
CLK_TCK=$(getconf CLK_TCK)

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

case $SCENARIO in
default | plugins | all) ;;
*) die "unknown scenario '$SCENARIO' (expected default, plugins or all)" ;;
esac
[[ $PLUGIN_MS =~ ^[0-9]+$ ]] || die "PLUGIN_MS must be a whole number of milliseconds"

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

# A TCP port on 127.0.0.1 that nothing is listening on right now, below the
# ephemeral range when that leaves room: an outgoing connection's local port (the
# load generator's, a proxy's to the mockup) would make the bind fail.
free_port() {
    local p _ eph span=40000
    read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph=0
    ((eph > 21000)) && span=$((eph - 20000))
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % span))
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

fmt() { # number formatting for the table: "-" for null / n/a
    local v=$1 spec=$2
    if [[ -z $v || $v == null || $v == n/a ]]; then echo "-"; else awk -v v="$v" "BEGIN { printf \"$spec\", v }"; fi
}
signed() {
    if [[ $1 == n/a ]]; then echo n/a; else awk -v v="$1" 'BEGIN { printf "%+.3f", v }'; fi
}
signed1() { # like signed, one decimal (µs figures)
    if [[ $1 == n/a ]]; then echo n/a; else awk -v v="$1" 'BEGIN { printf "%+.1f", v }'; fi
}

# min_max "LIST": prints the smallest and the largest number of a space-separated list.
min_max() {
    local lo hi c list
    read -r -a list <<<"$1"
    lo=${list[0]}
    hi=${list[0]}
    for c in "${list[@]}"; do
        ((c < lo)) && lo=$c
        ((c > hi)) && hi=$c
    done
    echo "$lo $hi"
}

# Sends the report to stdout, and appends it to $OUT when that is set.
emit() {
    if [[ -n ${OUT:-} ]]; then tee -a "$OUT"; else cat; fi
}
[[ -n ${OUT:-} ]] && : >"$OUT"

declare -A RES=() # "label|mode|conc|field" -> value
TROUBLE=()

# measure LABEL URL MODE CONC TICKS_CMD [ARGS…]: one loadgen run against URL; the
# results go to RES[LABEL|MODE|CONC|…], CPU per request from TICKS_CMD's output
# before and after (not measured when it prints nothing).
measure() {
    local label=$1 url=$2 mode=$3 conc=$4 before after line k f
    shift 4
    local flags=()
    [[ $mode == stream ]] && flags+=(--stream)
    log "$label $mode c=$conc (${WARMUP}s + ${DURATION}s)"
    before=$("$@")
    line=$("$BIN/loadgen" --url "$url" --concurrency "$conc" \
        --duration "$DURATION" --warmup "$WARMUP" --threads "$LOADGEN_THREADS" \
        "${flags[@]}") || die "loadgen failed for $label $mode c=$conc"
    after=$("$@")
    echo "$label $mode $conc $line" >>"$TMP/raw.jsonl"
    k="$label|$mode|$conc"
    for f in rps p50_ms p99_ms ttfb_p50_ms ttfb_p99_ms errors non_2xx total_requests; do
        RES[$k|$f]=$(jfield "$line" "$f")
    done
    RES[$k|cpu]=n/a
    if [[ -n $before ]]; then
        RES[$k|cpu]=$(calc '(b - a) * 1000000 / c / d' "$before" "$after" \
            "$CLK_TCK" "${RES[$k|total_requests]}")
    fi
    if [[ ${RES[$k|errors]} != 0 || ${RES[$k|non_2xx]} != 0 ]]; then
        TROUBLE+=("$label $mode c=$conc: ${RES[$k|errors]} errors, ${RES[$k|non_2xx]} non-2xx")
    fi
}

# table_row DISPLAY_NAME LABEL MODE CONC: one row of the results table.
table_row() {
    local k="$2|$3|$4"
    echo "| $1 | $3 | $4 | $(fmt "${RES[$k|rps]:-}" %.0f)" \
        "| $(fmt "${RES[$k|p50_ms]:-}" %.3f) | $(fmt "${RES[$k|p99_ms]:-}" %.3f)" \
        "| $(fmt "${RES[$k|ttfb_p50_ms]:-}" %.3f) | $(fmt "${RES[$k|ttfb_p99_ms]:-}" %.3f)" \
        "| $(fmt "${RES[$k|cpu]:-}" %.1f) |"
}

table_head() {
    echo "| target | mode | conc | rps | p50 ms | p99 ms | TTFB p50 | TTFB p99 | CPU µs/req |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
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

# gateway_config PORT [PLUGINS_YAML]: the Switchyard config, routing bench-model to
# the mockup, with a `plugins:` section appended when given.
gateway_config() {
    cat <<EOF
server:
  listen: 127.0.0.1:$1
  log_format: text
catalogue:
  fetch_timeout: 2s
upstreams:
  - name: bench
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    auth: { type: none }
    models: [bench-model]
EOF
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2"; fi
}

# start_gateway LABEL PORT CONFIG: runs Switchyard with CONFIG (which listens on
# PORT) and probes it with one chat request. Sets STARTED_PID, left empty (with the
# log shown) when the gateway did not come up.
start_gateway() {
    local label=$1 port=$2 config=$3 pid status
    STARTED_PID=""
    RUST_LOG=warn "$BIN/switchyard" serve -c "$config" >"$TMP/$label.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if wait_port "$port" "$pid" 15; then
        status=$(http_post_once "$port" /v1/chat/completions "$PROBE_BODY" || true)
        log "$label on 127.0.0.1:$port (pid $pid); probe: ${status:-no answer}"
        [[ $status == *" 200"* ]] || log "WARNING: $label probe was not 200"
        STARTED_PID=$pid
    else
        log "WARNING: $label did not come up; its log:"
        tail -n 20 "$TMP/$label.log" >&2 || true
        kill "$pid" 2>/dev/null || true
    fi
}

# ==== scenario "default": direct vs switchyard vs nginx ==============================

run_default() {
    GW_PID=""
    GW_PORT=""
    GW_IDLE_KB=""
    if [[ -x $BIN/switchyard ]]; then
        GW_PORT=$(free_port) || die "no free port"
        gateway_config "$GW_PORT" >"$TMP/gateway.yaml"
        start_gateway switchyard "$GW_PORT" "$TMP/gateway.yaml"
        GW_PID=$STARTED_PID
        if [[ -n $GW_PID ]]; then
            sleep 0.2
            GW_IDLE_KB=$(status_kb "$GW_PID" VmRSS)
        fi
    else
        log "WARNING: no $BIN/switchyard; gateway rows skipped"
    fi

    # ---- nginx ---------------------------------------------------------------------

    NGX_PID=""
    NGX_PORT=""
    local NGINX_BIN NGX_DIR status
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
        local ngx_args=(-p "$NGX_DIR" -c "$NGX_DIR/nginx.conf")
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

    # ---- runs ----------------------------------------------------------------------

    TARGETS=(direct)
    [[ -n $GW_PID ]] && TARGETS+=(switchyard)
    [[ -n $NGX_PID ]] && TARGETS+=(nginx)

    local -A url=(
        [direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
        [switchyard]="http://127.0.0.1:$GW_PORT/v1/chat/completions"
        [nginx]="http://127.0.0.1:$NGX_PORT/v1/chat/completions"
    )
    local target mode conc
    for target in "${TARGETS[@]}"; do
        for mode in non-stream stream; do
            for conc in $CONCS; do
                measure "$target" "${url[$target]}" "$mode" "$conc" target_ticks "$target"
            done
        done
    done

    GW_PEAK_KB=""
    [[ -n $GW_PID ]] && GW_PEAK_KB=$(status_kb "$GW_PID" VmHWM)

    read -r LOW HIGH <<<"$(min_max "$CONCS")"
    report_default | emit
}

report_default() {
    echo "Switchyard benchmark: ${DURATION}s per run after ${WARMUP}s warm-up, $(nproc) cores," \
        "mockup threads $MOCK_THREADS, loadgen threads $LOADGEN_THREADS."
    echo
    table_head
    local target mode conc
    for target in "${TARGETS[@]}"; do
        for mode in non-stream stream; do
            for conc in $CONCS; do
                table_row "$target" "$target" "$mode" "$conc"
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

# ==== scenario "plugins": what plugins cost ==========================================
#
# Four Switchyard processes on their own ports, all in front of the same mockup:
#   none     no plugins
#   filter   rate_limiter (never rejects) + content_filter (pre_request and on_chunk)
#   httppar  two `http` plugins at one priority, parallel: true, each PLUGIN_MS long
#   httpseq  the same two with parallel: false
# none and filter run the non-stream / stream × PLUGIN_CONCS matrix; httppar and
# httpseq run non-stream at the lowest concurrency.

# The SSE chunks of a streamed mockup answer (the per-chunk cost divides by this).
STREAM_CHUNKS=20

FILTER_PLUGINS=$(
    cat <<'EOF'
plugins:
  - name: rate_limiter
    id: limiter
    config: { limit: 100000000, window: 1m, key: api_key }
  - name: content_filter
    id: filter
    stage: [pre_request, on_chunk]
    config:
      action: reject
      banned_patterns:
        - '(?i)password\s*='
        - '\b\d{3}-\d{2}-\d{4}\b'
        - '(?i)api[_-]?key'
EOF
)

# A request the content filter must refuse (400): proves the plugins are live.
BANNED_BODY='{"model":"bench-model","messages":[{"role":"user","content":"my password = hunter2"}]}'

# http_plugins true|false: two external plugins at the same priority pointing at the
# mockup's slow /plugin endpoint. fail_closed, so a broken service shows as 500s
# instead of a suspiciously fast run.
http_plugins() {
    local parallel=$1 id
    echo "plugins:"
    for id in ext-a ext-b; do
        cat <<EOF
  - name: http
    id: $id
    priority: 10
    parallel: $parallel
    on_error: fail_closed
    timeout: 5s
    config: { url: "http://127.0.0.1:$MOCK_PORT/plugin?ms=$PLUGIN_MS" }
EOF
    done
}

run_plugins() {
    TROUBLE=()
    read -r P_LOW P_HIGH <<<"$(min_max "$PLUGIN_CONCS")"
    if [[ ! -x $BIN/switchyard ]]; then
        log "WARNING: no $BIN/switchyard; no plugin rows"
        echo "- plugins: not measured (no $BIN/switchyard)" | emit
        return
    fi
    local status probe
    status=$(http_post_once "$MOCK_PORT" "/plugin?ms=1" '{"stage":"pre_request"}' || true)
    log "mockup /plugin probe: ${status:-no answer}"
    [[ $status == *" 200"* ]] || log "WARNING: the mockup's /plugin endpoint did not answer 200"

    declare -gA P_PID=() P_PORT=()
    local label plugins
    for label in none filter httppar httpseq; do
        case $label in
        none) plugins="" ;;
        filter) plugins=$FILTER_PLUGINS ;;
        httppar) plugins=$(http_plugins true) ;;
        httpseq) plugins=$(http_plugins false) ;;
        esac
        P_PORT[$label]=$(free_port) || die "no free port"
        gateway_config "${P_PORT[$label]}" "$plugins" >"$TMP/gateway-$label.yaml"
        start_gateway "gw-$label" "${P_PORT[$label]}" "$TMP/gateway-$label.yaml"
        P_PID[$label]=$STARTED_PID
    done
    if [[ -n ${P_PID[filter]} ]]; then
        probe=$(http_post_once "${P_PORT[filter]}" /v1/chat/completions "$BANNED_BODY" || true)
        log "gw-filter banned-content probe: ${probe:-no answer} (expected 400)"
        [[ $probe == *" 400"* ]] || log "WARNING: the content filter did not refuse a banned request"
    fi

    local mode conc
    for label in none filter; do
        [[ -n ${P_PID[$label]} ]] || continue
        for mode in non-stream stream; do
            for conc in $PLUGIN_CONCS; do
                measure "$label" "http://127.0.0.1:${P_PORT[$label]}/v1/chat/completions" \
                    "$mode" "$conc" proc_ticks "${P_PID[$label]}"
            done
        done
    done
    # The plugin service alone, straight: the wait as the gateway's calls see it
    # (tokio's timer rounds sleeps up to the next millisecond).
    measure pluginsvc "http://127.0.0.1:$MOCK_PORT/plugin?ms=$PLUGIN_MS" non-stream "$P_LOW" true
    for label in httppar httpseq; do
        [[ -n ${P_PID[$label]} ]] || continue
        # No CPU column: a few dozen requests are below /proc's 10 ms tick resolution.
        measure "$label" "http://127.0.0.1:${P_PORT[$label]}/v1/chat/completions" \
            non-stream "$P_LOW" true
    done
    report_plugins | emit
}

report_plugins() {
    local -A name=(
        [none]="no plugins"
        [filter]="rate_limiter + content_filter"
        [httppar]="2× http, parallel"
        [httpseq]="2× http, sequential"
        [pluginsvc]="plugin service alone (direct)"
    )
    echo
    echo "Plugin cost: ${DURATION}s per run after ${WARMUP}s warm-up, $(nproc) cores," \
        "mockup threads $MOCK_THREADS, loadgen threads $LOADGEN_THREADS; each row is its" \
        "own Switchyard process in front of the same mockup; http plugins wait ${PLUGIN_MS} ms."
    echo
    table_head
    local label mode conc
    for label in none filter; do
        [[ -n ${P_PID[$label]} ]] || continue
        for mode in non-stream stream; do
            for conc in $PLUGIN_CONCS; do
                table_row "${name[$label]}" "$label" "$mode" "$conc"
            done
        done
    done
    table_row "${name[pluginsvc]}" pluginsvc non-stream "$P_LOW"
    for label in httppar httpseq; do
        [[ -n ${P_PID[$label]} ]] || continue
        table_row "${name[$label]}" "$label" non-stream "$P_LOW"
    done
    echo
    local t
    for t in "${TROUBLE[@]}"; do echo "- WARNING: $t"; done
    for label in none filter httppar httpseq; do
        [[ -n ${P_PID[$label]} ]] || echo "- ${name[$label]}: not measured (the gateway did not start)"
    done

    local b f p50 p99 rr cpu_b cpu_f dc
    if [[ -n ${P_PID[none]} && -n ${P_PID[filter]} ]]; then
        for mode in non-stream stream; do
            b="none|$mode"
            f="filter|$mode"
            p50=$(calc 'b - a' "${RES[$b|$P_LOW|p50_ms]:-}" "${RES[$f|$P_LOW|p50_ms]:-}")
            p99=$(calc 'b - a' "${RES[$b|$P_LOW|p99_ms]:-}" "${RES[$f|$P_LOW|p99_ms]:-}")
            rr=$(calc 'b / a' "${RES[$b|$P_HIGH|rps]:-}" "${RES[$f|$P_HIGH|rps]:-}")
            cpu_b=${RES[$b|$P_HIGH|cpu]:-}
            cpu_f=${RES[$f|$P_HIGH|cpu]:-}
            dc=$(calc 'b - a' "$cpu_b" "$cpu_f")
            echo "- rate_limiter + content_filter, $mode: c=$P_LOW p50 $(signed "$p50") ms," \
                "p99 $(signed "$p99") ms; c=$P_HIGH rps $(fmt "$rr" %.2f)× of no plugins," \
                "CPU $(signed1 "$dc") µs/req ($(fmt "$cpu_b" %.1f) → $(fmt "$cpu_f" %.1f))"
        done

        # Per chunk: the stream difference over the chunk count; "net" also takes off
        # the non-stream difference, i.e. the pre_request share (rate_limiter and the
        # request-side content_filter), leaving what on_chunk filtering adds.
        local c ds dn per net
        local parts=()
        for c in $P_HIGH $P_LOW; do
            ds=$(calc 'b - a' "${RES[none|stream|$c|cpu]:-}" "${RES[filter|stream|$c|cpu]:-}")
            dn=$(calc 'b - a' "${RES[none|non-stream|$c|cpu]:-}" "${RES[filter|non-stream|$c|cpu]:-}")
            per=$(calc 'a / b' "$ds" "$STREAM_CHUNKS")
            net=$(calc '(a - b) / c' "$ds" "$dn" "$STREAM_CHUNKS")
            parts+=("c=$c: $(fmt "$per" %.2f) µs/chunk ($(fmt "$net" %.2f) net of the non-stream difference)")
            [[ $P_LOW == "$P_HIGH" ]] && break
        done
        echo "- content_filter per chunk, from CPU: (CPU/req with − without) / $STREAM_CHUNKS chunks:" \
            "${parts[0]}${parts[1]:+; ${parts[1]}}"
        ds=$(calc 'b - a' "${RES[none|stream|$P_LOW|p50_ms]:-}" "${RES[filter|stream|$P_LOW|p50_ms]:-}")
        dn=$(calc 'b - a' "${RES[none|non-stream|$P_LOW|p50_ms]:-}" "${RES[filter|non-stream|$P_LOW|p50_ms]:-}")
        per=$(calc 'a * 1000 / b' "$ds" "$STREAM_CHUNKS")
        net=$(calc '(a - b) * 1000 / c' "$ds" "$dn" "$STREAM_CHUNKS")
        echo "- content_filter per chunk, from latency: (stream p50 with − without) / $STREAM_CHUNKS" \
            "at c=$P_LOW: $(fmt "$per" %.2f) µs/chunk ($(fmt "$net" %.2f) net of the non-stream difference)"
    fi

    if [[ -n ${P_PID[httppar]} && -n ${P_PID[httpseq]} ]]; then
        local base svc par par99 seq seq99
        base=${RES[none|non-stream|$P_LOW|p50_ms]:-}
        svc=${RES[pluginsvc|non-stream|$P_LOW|p50_ms]:-}
        par=${RES[httppar|non-stream|$P_LOW|p50_ms]:-}
        par99=${RES[httppar|non-stream|$P_LOW|p99_ms]:-}
        seq=${RES[httpseq|non-stream|$P_LOW|p50_ms]:-}
        seq99=${RES[httpseq|non-stream|$P_LOW|p99_ms]:-}
        echo "- 2 http plugins (${PLUGIN_MS} ms each) at c=$P_LOW: parallel p50 $(fmt "$par" %.2f) ms /" \
            "p99 $(fmt "$par99" %.2f) ms (expect ≈ $PLUGIN_MS), sequential p50 $(fmt "$seq" %.2f) ms /" \
            "p99 $(fmt "$seq99" %.2f) ms (expect ≈ $((2 * PLUGIN_MS))); no plugins p50 $(fmt "$base" %.3f) ms"
        local opar oseq
        opar=$(calc 'b - a - c' "$base" "$par" "$svc")
        oseq=$(calc 'b - a - 2 * c' "$base" "$seq" "$svc")
        echo "- http plugins' own cost, beyond the service's latency (direct p50 $(fmt "$svc" %.3f) ms)" \
            "and the no-plugin p50: parallel $(signed "$opar") ms (p50 − no-plugin − 1 × service)," \
            "sequential $(signed "$oseq") ms (− 2 × service);" \
            "parallel/sequential p50 $(fmt "$(calc 'a / b' "$par" "$seq")" %.2f)×"
    fi
}

# ---- dispatch ----------------------------------------------------------------------

case $SCENARIO in
default) run_default ;;
plugins) run_plugins ;;
all)
    run_default
    run_plugins
    ;;
esac
