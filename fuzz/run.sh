#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time, one after another (one
# target at a time: the machine is shared). Not part of .ci/run.
#
#   fuzz/run.sh                      every target, FUZZ_SECONDS each
#   fuzz/run.sh sse_recut h1_chunked only these
#
# Environment: FUZZ_SECONDS (per target, default 120), FUZZ_RSS_MB (default 2048),
# FUZZ_MAX_LEN (largest input, default 4096; sse_recut at most 1024), FUZZ_SANITIZER
# (address | none; default address), FUZZ_TOOLCHAIN (default nightly).
#
# New corpus entries go to fuzz/corpus-grown/<target>/ (ignored by git); the seeds in
# fuzz/corpus/<target>/ are only read. A crash is written to fuzz/artifacts/<target>/
# and the run goes on with the next target; the exit status is 1 if any target found
# something. Logs: fuzz/target/fuzz-logs/<target>.log.
set -u
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-120}
rss=${FUZZ_RSS_MB:-2048}
max_len=${FUZZ_MAX_LEN:-4096}
sanitizer=${FUZZ_SANITIZER:-address}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
all=(sse_recut h1_response_head h1_chunked request_model_rewrite config_parse)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

# The SSE target checks every push against a whole-buffer rescan (quadratic in an
# unfinished event): shorter inputs keep it fast, and are enough to reach every state.
max_len_for() {
    case $1 in
        sse_recut) echo $((max_len < 1024 ? max_len : 1024)) ;;
        *) echo "$max_len" ;;
    esac
}

dict_for() {
    case $1 in
        sse_recut) echo dict/sse.dict ;;
        h1_response_head | h1_chunked) echo dict/http.dict ;;
        request_model_rewrite) echo dict/json.dict ;;
        config_parse) echo dict/yaml.dict ;;
    esac
}

fuzz=(cargo "+$toolchain" fuzz)
# One build for every target (they share their dependencies).
"${fuzz[@]}" build -s "$sanitizer" || exit 2

mkdir -p target/fuzz-logs
status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus-grown/$t" "artifacts/$t"
    log="target/fuzz-logs/$t.log"
    echo "== $t: ${seconds}s"
    "${fuzz[@]}" run -s "$sanitizer" "$t" "corpus-grown/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss" -max_len="$(max_len_for "$t")" \
        -timeout=10 -dict="$(dict_for "$t")" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    [ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    elapsed=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | tr -dc '0-9')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        line="$t: nothing found; ${runs:-?} runs in ${elapsed:-?}s, ${cov:-cov: ?}"
    else
        status=1
        artifact=$(grep -oE "artifacts/$t/[A-Za-z0-9_.-]+" "$log" | tail -1)
        line="$t: FOUND something (exit $rc) after ${runs:-?} runs: ${artifact:-see $log}"
        grep -m1 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" | sed 's/^/    /'
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
