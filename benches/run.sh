#!/usr/bin/env bash
# Switchyard load-test launcher: starts the mock upstream, Switchyard and nginx on
# free loopback ports, runs the load generator against them in interleaved rounds,
# records every result as a JSON line, and has the `report` binary turn those into
# the Markdown report (medians, CPU per request, ratios). Stops everything it
# started on exit. See benches/README.md.
#
#   bash benches/run.sh            # the proxy matrix: direct vs switchyard vs nginx
#   bash benches/run.sh plugins    # plugin cost: no plugins vs rate_limiter +
#                                  # content_filter, and parallel vs sequential http plugins
#   bash benches/run.sh all        # both, one after the other, against the same mockup
#   bash benches/run.sh clients    # upstream clients: switchyard's H1Client vs hyper
#   bash benches/run.sh ab         # two gateway variants, A vs B (binaries, config, RUST_LOG)
#
# Environment knobs:
#   SCENARIO=default    default | plugins | all | clients | ab (the first argument wins)
#   DURATION=5          measured seconds per run        WARMUP=1  unrecorded seconds before
#   ROUNDS=3            interleaved rounds; the report shows medians over them
#   CONCS="1 16 64"     concurrency list                 OUT=FILE  also write the report there
#   PLUGIN_CONCS="1 64" concurrencies of the plugin matrix
#   PLUGIN_MS=50        how long each external (http) plugin call takes
#   CLIENT_CONCS="1 64" concurrencies of the clients scenario
#   AB_CONCS="1 64"     concurrencies of the ab scenario
#   AB_A_BIN, AB_B_BIN  the two gateway binaries (default: both $BIN/switchyard)
#   AB_A_YAML, AB_B_YAML  YAML appended to that variant's config (a literal \n is a line break)
#   AB_A_LABEL=A, AB_B_LABEL=B  their names in the report
#   AB_A_RUST_LOG, AB_B_RUST_LOG  their RUST_LOG (default GW_RUST_LOG; the access log needs info)
#   MOCK_THREADS=1      mockup worker threads            LOADGEN_THREADS=1  loadgen threads
#   PIN=1               pin the proxies (gateways, nginx) to PROXY_CPUS=0 and the mockup
#                       and loadgen to LOAD_CPUS=1 (taskset), nginx with one worker per
#                       proxy CPU and the gateway with GW_WORKERS (default 1) workers
#   GW_WORKERS=N        the gateway's server.workers (default: the config's, one per CPU)
#   GW_RUST_LOG=info    the gateway's RUST_LOG (info: access log on, written to a file)
#   SKIP_BUILD=1        use the binaries already built   KEEP_TMP=1 keep configs and logs
#   RAW=FILE            also keep the recorded JSON lines there
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCENARIO=${1:-${SCENARIO:-default}}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-"1 16 64"}
PLUGIN_CONCS=${PLUGIN_CONCS:-"1 64"}
PLUGIN_MS=${PLUGIN_MS:-50}
CLIENT_CONCS=${CLIENT_CONCS:-"1 64"}
AB_CONCS=${AB_CONCS:-"1 64"}
MOCK_THREADS=${MOCK_THREADS:-1}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
PIN=${PIN:-0}
PROXY_CPUS=${PROXY_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
ON_PROXY=()
ON_LOAD=()
NGX_WORKERS=auto
PIN_JSON=null
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
    ON_PROXY=(taskset -c "$PROXY_CPUS")
    ON_LOAD=(taskset -c "$LOAD_CPUS")
    GW_WORKERS=${GW_WORKERS:-1}
    NGX_WORKERS=$(taskset -c "$PROXY_CPUS" nproc)
    PIN_JSON="{\"proxy_cpus\":\"$PROXY_CPUS\",\"load_cpus\":\"$LOAD_CPUS\",\"workers\":$GW_WORKERS}"
fi
GW_WORKERS=${GW_WORKERS:-}
GW_RUST_LOG=${GW_RUST_LOG:-info}

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

case $SCENARIO in
default | plugins | all | clients | ab) ;;
*) die "unknown scenario '$SCENARIO' (expected default, plugins, all, clients or ab)" ;;
esac
# The knobs go into JSON records as numbers: check their shape here.
for knob in DURATION WARMUP; do
    [[ ${!knob} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$knob must be a number of seconds"
done
for knob in ROUNDS PLUGIN_MS MOCK_THREADS LOADGEN_THREADS; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a whole number"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
for c in $CONCS $PLUGIN_CONCS $CLIENT_CONCS $AB_CONCS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "concurrencies must be positive whole numbers, not '$c'"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers may run as another user when started as root
RAW_FILE=$TMP/raw.jsonl
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
    if [[ -n ${RAW:-} && -f $RAW_FILE ]]; then cp "$RAW_FILE" "$RAW" && log "raw records in $RAW"; fi
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

# A kB field (VmRSS, VmHWM) of /proc/PID/status, or null.
status_kb() { awk -v k="$2:" '$1 == k { v = $2 } END { print (v == "" ? "null" : v) }' "/proc/$1/status" 2>/dev/null || echo null; }

# json_str TEXT: TEXT as a JSON string literal (quotes, backslashes, line breaks, tabs escaped).
json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}

# Appends one JSON record to the raw file (the report's input; see report/raw.rs).
record() { printf '%s\n' "$1" >>"$RAW_FILE"; }

# missing SCENARIO LABEL WHY: a target that was not measured.
missing() { record "{\"kind\":\"missing\",\"scenario\":\"$1\",\"label\":\"$2\",\"why\":\"$3\"}"; }

# Sends the report to stdout, and appends it to $OUT when that is set.
emit() {
    if [[ -n ${OUT:-} ]]; then tee -a "$OUT"; else cat; fi
}
[[ -n ${OUT:-} ]] && : >"$OUT"

# report SCENARIO: the Markdown report of what has been recorded so far.
report() { "$BIN/report" --scenario "$1" "$RAW_FILE" | emit; }

# measure SCENARIO ROUND LABEL URL MODE CONC TICKS_CMD [ARGS…]: one loadgen run
# against URL, recorded with TICKS_CMD's output before and after (the target's CPU
# ticks; not measured when it prints nothing).
measure() {
    local scenario=$1 round=$2 label=$3 url=$4 mode=$5 conc=$6 before after line ticks=null
    shift 6
    local flags=()
    [[ $mode == stream ]] && flags+=(--stream)
    log "round $round/$ROUNDS: $label $mode c=$conc (${WARMUP}s + ${DURATION}s)"
    before=$("$@")
    line=$("${ON_LOAD[@]}" "$BIN/loadgen" --url "$url" --concurrency "$conc" \
        --duration "$DURATION" --warmup "$WARMUP" --threads "$LOADGEN_THREADS" \
        "${flags[@]}") || die "loadgen failed for $label $mode c=$conc"
    after=$("$@")
    [[ -n $before ]] && ticks="[$before,$after]"
    record "{\"kind\":\"run\",\"scenario\":\"$scenario\",\"label\":\"$label\",\"mode\":\"$mode\",\"conc\":$conc,\"round\":$round,\"ticks\":$ticks,\"result\":$line}"
}

# ---- build -------------------------------------------------------------------------

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    if ! (cd "$ROOT" && cargo build --release -p switchyard -p switchyard-benches); then
        log "WARNING: building switchyard failed; building the harness alone (no gateway rows)"
        (cd "$ROOT" && cargo build --release -p switchyard-benches --no-default-features) ||
            die "build failed"
    fi
fi
for b in mockup loadgen report; do [[ -x $BIN/$b ]] || die "no $BIN/$b"; done

# ---- provenance --------------------------------------------------------------------

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown ]] && ! git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then
    COMMIT=$COMMIT-dirty
fi
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
record "{\"kind\":\"meta\",\"commit\":\"$COMMIT\",\"date\":\"$DATE\",\"cores\":$(nproc),\"clk_tck\":$(getconf CLK_TCK),\"duration_s\":$DURATION,\"warmup_s\":$WARMUP,\"rounds\":$ROUNDS,\"mock_threads\":$MOCK_THREADS,\"loadgen_threads\":$LOADGEN_THREADS,\"plugin_ms\":$PLUGIN_MS,\"pin\":$PIN_JSON}"

# ---- mock upstream -----------------------------------------------------------------

"${ON_LOAD[@]}" "$BIN/mockup" --listen 127.0.0.1:0 --threads "$MOCK_THREADS" >"$TMP/mockup.out" 2>"$TMP/mockup.err" &
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

# gateway_config PORT [EXTRA_YAML [METRICS]]: the Switchyard config, routing
# bench-model to the mockup, with EXTRA_YAML (a `plugins:` section, …) appended when
# given. Each gateway gets its own metrics port (the default, 9464, would let only one
# of them start) unless METRICS is `no` (binaries that predate the `metrics:` section,
# or that get the port with --metrics-listen instead).
gateway_config() {
    local metrics_port
    echo "server:"
    echo "  listen: 127.0.0.1:$1"
    echo "  log_format: text"
    if [[ -n $GW_WORKERS ]]; then echo "  workers: $GW_WORKERS"; fi
    if [[ ${3:-yes} != no ]]; then
        metrics_port=$(free_port) || die "no free port"
        echo "metrics:"
        echo "  listen: 127.0.0.1:$metrics_port"
    fi
    cat <<EOF
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

# start_gateway LABEL PORT CONFIG [BINARY [RUST_LOG [ARGS…]]]: runs Switchyard
# (BINARY, default $BIN/switchyard) with CONFIG (which listens on PORT), RUST_LOG
# (default $GW_RUST_LOG: info, so that the access log is on, as in production)
# and ARGS after `serve -c CONFIG`, its output in $TMP/LABEL.log, and
# probes it with one chat request. Sets STARTED_PID, left empty (with the log shown)
# when the gateway did not come up.
start_gateway() {
    local label=$1 port=$2 config=$3 bin=${4:-$BIN/switchyard} rust_log=${5:-$GW_RUST_LOG} pid status
    shift $(($# < 5 ? $# : 5))
    STARTED_PID=""
    RUST_LOG=$rust_log "${ON_PROXY[@]}" "$bin" serve -c "$config" "$@" >"$TMP/$label.log" 2>&1 &
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

# start_nginx: nginx in front of the mockup on a free port. Sets NGX_PID and
# NGX_PORT, or records why there is no nginx.
start_nginx() {
    NGX_PID=""
    NGX_PORT=""
    local nginx_bin ngx_dir status
    nginx_bin=$(command -v nginx || true)
    [[ -z $nginx_bin && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
    if [[ -z $nginx_bin ]]; then
        log "no nginx on PATH (apt-get install -y nginx for the nginx rows)"
        missing default nginx "no nginx on PATH; apt-get install -y nginx"
        return
    fi
    NGX_PORT=$(free_port) || die "no free port"
    ngx_dir=$TMP/nginx
    mkdir -p "$ngx_dir"
    sed -e "s|@DIR@|$ngx_dir|g" -e "s|@WORKERS@|$NGX_WORKERS|g" -e "s|@MOCK_PORT@|$MOCK_PORT|g" -e "s|@PORT@|$NGX_PORT|g" \
        "$ROOT/benches/nginx.conf.in" >"$ngx_dir/nginx.conf"
    local ngx_args=(-p "$ngx_dir" -c "$ngx_dir/nginx.conf")
    # -e (nginx >= 1.19.5) keeps nginx from opening the packaged error log before the config.
    if "$nginx_bin" -h 2>&1 | grep -q -- '-e filename'; then ngx_args+=(-e "$ngx_dir/error.log"); fi
    "${ON_PROXY[@]}" "$nginx_bin" "${ngx_args[@]}" >"$ngx_dir/stdout.log" 2>&1 &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    if wait_port "$NGX_PORT" "$NGX_PID" 10; then
        status=$(http_post_once "$NGX_PORT" /v1/chat/completions "$PROBE_BODY" || true)
        log "nginx on 127.0.0.1:$NGX_PORT (pid $NGX_PID); probe: ${status:-no answer}"
    else
        log "WARNING: nginx did not come up:"
        cat "$ngx_dir/stdout.log" "$ngx_dir/error.log" >&2 2>/dev/null || true
        NGX_PID=""
        missing default nginx "it did not start"
    fi
}

# ==== scenario "default": direct vs switchyard vs nginx ==============================

run_default() {
    GW_PID=""
    local gw_port="" gw_idle_kb=null
    if [[ -x $BIN/switchyard ]]; then
        gw_port=$(free_port) || die "no free port"
        gateway_config "$gw_port" >"$TMP/gateway.yaml"
        start_gateway switchyard "$gw_port" "$TMP/gateway.yaml"
        GW_PID=$STARTED_PID
        if [[ -n $GW_PID ]]; then
            sleep 0.2
            gw_idle_kb=$(status_kb "$GW_PID" VmRSS)
        else
            missing default switchyard "it did not start"
        fi
    else
        log "WARNING: no $BIN/switchyard; gateway rows skipped"
        missing default switchyard "no $BIN/switchyard"
    fi
    start_nginx

    local targets=(direct)
    [[ -n $GW_PID ]] && targets+=(switchyard)
    [[ -n $NGX_PID ]] && targets+=(nginx)
    local -A url=(
        [direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
        [switchyard]="http://127.0.0.1:$gw_port/v1/chat/completions"
        [nginx]="http://127.0.0.1:$NGX_PORT/v1/chat/completions"
    )
    # Interleaved: every target runs each cell once per round, so drift over the
    # run (thermal, noisy neighbours) spreads over all of them.
    local round mode conc target
    for round in $(seq 1 "$ROUNDS"); do
        for mode in non-stream stream; do
            for conc in $CONCS; do
                for target in "${targets[@]}"; do
                    measure default "$round" "$target" "${url[$target]}" "$mode" "$conc" \
                        target_ticks "$target"
                done
            done
        done
    done
    if [[ -n $GW_PID ]]; then
        record "{\"kind\":\"rss\",\"label\":\"switchyard\",\"idle_kb\":$gw_idle_kb,\"peak_kb\":$(status_kb "$GW_PID" VmHWM)}"
    fi
    report default
}

# ==== scenario "plugins": what plugins cost ==========================================
#
# Four Switchyard processes on their own ports, all in front of the same mockup:
#   none     no plugins
#   filter   rate_limiter (never rejects) + content_filter (pre_request and on_chunk)
#   httppar  two `http` plugins at one priority, parallel: true, each PLUGIN_MS long
#   httpseq  the same two with parallel: false
# none and filter run the non-stream / stream × PLUGIN_CONCS matrix; httppar and
# httpseq (and the plugin service alone) run non-stream at the lowest concurrency.

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
    if [[ ! -x $BIN/switchyard ]]; then
        log "WARNING: no $BIN/switchyard; no plugin rows"
        missing plugins switchyard "no $BIN/switchyard"
        report plugins
        return
    fi
    local status probe low
    low=$(tr ' ' '\n' <<<"$PLUGIN_CONCS" | sort -n | head -n 1)
    status=$(http_post_once "$MOCK_PORT" "/plugin?ms=1" '{"stage":"pre_request"}' || true)
    log "mockup /plugin probe: ${status:-no answer}"
    [[ $status == *" 200"* ]] || log "WARNING: the mockup's /plugin endpoint did not answer 200"

    local -A pid=() port=()
    local label plugins
    for label in none filter httppar httpseq; do
        case $label in
        none) plugins="" ;;
        filter) plugins=$FILTER_PLUGINS ;;
        httppar) plugins=$(http_plugins true) ;;
        httpseq) plugins=$(http_plugins false) ;;
        esac
        port[$label]=$(free_port) || die "no free port"
        gateway_config "${port[$label]}" "$plugins" >"$TMP/gateway-$label.yaml"
        start_gateway "gw-$label" "${port[$label]}" "$TMP/gateway-$label.yaml"
        pid[$label]=$STARTED_PID
        [[ -n $STARTED_PID ]] || missing plugins "$label" "the gateway did not start"
    done
    if [[ -n ${pid[filter]} ]]; then
        probe=$(http_post_once "${port[filter]}" /v1/chat/completions "$BANNED_BODY" || true)
        log "gw-filter banned-content probe: ${probe:-no answer} (expected 400)"
        [[ $probe == *" 400"* ]] || log "WARNING: the content filter did not refuse a banned request"
    fi

    local round mode conc
    for round in $(seq 1 "$ROUNDS"); do
        for mode in non-stream stream; do
            for conc in $PLUGIN_CONCS; do
                for label in none filter; do
                    [[ -n ${pid[$label]} ]] || continue
                    measure plugins "$round" "$label" \
                        "http://127.0.0.1:${port[$label]}/v1/chat/completions" \
                        "$mode" "$conc" proc_ticks "${pid[$label]}"
                done
            done
        done
        # The plugin service alone, straight: the wait as the gateway's calls see it
        # (tokio's timer rounds sleeps up to the next millisecond).
        measure plugins "$round" pluginsvc "http://127.0.0.1:$MOCK_PORT/plugin?ms=$PLUGIN_MS" \
            non-stream "$low" true
        for label in httppar httpseq; do
            [[ -n ${pid[$label]} ]] || continue
            # No CPU column: a few dozen requests are below /proc's 10 ms tick resolution.
            measure plugins "$round" "$label" \
                "http://127.0.0.1:${port[$label]}/v1/chat/completions" non-stream "$low" true
        done
    done
    report plugins
}

# ==== scenario "clients": the gateway's upstream client vs hyper =====================

run_clients() {
    [[ -x $BIN/clientbench ]] || die "no $BIN/clientbench (it needs switchyard to build)"
    log "clientbench: $ROUNDS rounds × 2 modes × ($CLIENT_CONCS) × 3 clients, ${WARMUP}s + ${DURATION}s each"
    "$BIN/clientbench" --url "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" \
        --concs "$CLIENT_CONCS" --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" \
        --commit "$COMMIT" --date "$DATE" | emit
}

# ==== scenario "ab": two gateway variants, A vs B ====================================
#
# Two Switchyard processes in front of the same mockup, each its own binary
# (AB_A_BIN, AB_B_BIN), extra YAML (AB_A_YAML, AB_B_YAML) and RUST_LOG (AB_A_RUST_LOG,
# AB_B_RUST_LOG), measured back to back for every mode and concurrency of every round
# (A then B in odd rounds, B then A in even ones), so that the report can pair them
# round by round.

run_ab() {
    local v up bin yaml name rust_log version tree metrics_flag
    local -A pid=() port=() idle=()
    for v in a b; do
        up=${v^^}
        local bin_var=AB_${up}_BIN yaml_var=AB_${up}_YAML label_var=AB_${up}_LABEL log_var=AB_${up}_RUST_LOG
        bin=${!bin_var:-$BIN/switchyard}
        yaml=${!yaml_var:-}
        yaml=${yaml//\\n/$'\n'} # "a: 1\nb: 2" from a one-line shell string
        name=${!label_var:-$up}
        rust_log=${!log_var:-$GW_RUST_LOG}
        pid[$v]=""
        if [[ ! -x $bin ]]; then
            log "WARNING: $name: no $bin"
            missing ab "$v" "no $bin"
            record "{\"kind\":\"variant\",\"label\":\"$v\",\"name\":$(json_str "$name"),\"bin\":$(json_str "$bin"),\"rust_log\":$(json_str "$rust_log"),\"metrics_flag\":false,\"yaml\":$(json_str "$yaml")}"
            continue
        fi
        version=$("$bin" --version 2>/dev/null | head -n 1 || true)
        tree=$(git -C "$(dirname "$bin")" rev-parse --short HEAD 2>/dev/null || true)
        # Binaries from before the metrics endpoint refuse a `metrics:` section (unknown
        # keys are errors); those that have it get their own port on the command line,
        # which leaves the variant's YAML free to carry a `metrics:` section of its own.
        local args=()
        metrics_flag=false
        if "$bin" serve --help 2>&1 | grep -q -- --metrics-listen; then
            metrics_flag=true
            args=(--metrics-listen "127.0.0.1:$(free_port || die "no free port")")
        fi
        port[$v]=$(free_port) || die "no free port"
        gateway_config "${port[$v]}" "$yaml" no >"$TMP/gateway-ab-$v.yaml"
        log "$name: $bin ${version:+($version) }RUST_LOG=$rust_log metrics-listen=$metrics_flag"
        start_gateway "ab-$v" "${port[$v]}" "$TMP/gateway-ab-$v.yaml" "$bin" "$rust_log" "${args[@]}"
        pid[$v]=$STARTED_PID
        idle[$v]=null
        if [[ -n $STARTED_PID ]]; then
            sleep 0.2
            idle[$v]=$(status_kb "$STARTED_PID" VmRSS)
        else
            missing ab "$v" "the gateway did not start (see its log above)"
        fi
        record "{\"kind\":\"variant\",\"label\":\"$v\",\"name\":$(json_str "$name"),\"bin\":$(json_str "$bin"),\"version\":$(json_str "$version"),\"tree\":$(json_str "$tree"),\"rust_log\":$(json_str "$rust_log"),\"metrics_flag\":$metrics_flag,\"yaml\":$(json_str "$yaml")}"
    done

    # The order alternates by round (A then B, then B then A): whichever runs second
    # has measured several µs/req higher on this VM, and with an even number of rounds
    # each variant takes each place equally often.
    local round mode conc order
    for round in $(seq 1 "$ROUNDS"); do
        order="a b"
        ((round % 2 == 0)) && order="b a"
        for mode in non-stream stream; do
            for conc in $AB_CONCS; do
                for v in $order; do
                    [[ -n ${pid[$v]} ]] || continue
                    measure ab "$round" "$v" "http://127.0.0.1:${port[$v]}/v1/chat/completions" \
                        "$mode" "$conc" proc_ticks "${pid[$v]}"
                done
            done
        done
    done
    # Memory, as in the default scenario: idle after start-up, peak at the end.
    for v in a b; do
        [[ -n ${pid[$v]} ]] || continue
        record "{\"kind\":\"rss\",\"label\":\"ab-$v\",\"idle_kb\":${idle[$v]},\"peak_kb\":$(status_kb "${pid[$v]}" VmHWM)}"
    done
    report ab
}

# ---- dispatch ----------------------------------------------------------------------

case $SCENARIO in
default) run_default ;;
plugins) run_plugins ;;
all)
    run_default
    run_plugins
    ;;
clients) run_clients ;;
ab) run_ab ;;
esac
