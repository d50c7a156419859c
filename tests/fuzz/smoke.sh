#!/bin/bash
# smoke.sh SRCDIR BUILDDIR TARGET... -- `make fuzz-smoke`: run every fuzz
# target for FUZZ_SECONDS (default 60) with libFuzzer, FUZZ_JOBS (default:
# the number of cores) at a time, on
# its committed seeds (tests/fuzz/seeds), the regression inputs
# (tests/fuzz/regress), the test messages in tests/data and the seeds
# make-seeds.sh makes with the test PKI.  Prints one line per target,
#   PASS: fuzz-inbound execs=123456 exec/s=2057 corpus=87
# or FAIL: with the libFuzzer log and the crashing input (under
# BUILDDIR/tests/fuzz/artifacts), and exits non-zero if any target failed.
set -u
SRC=$1
BUILD=$2
shift 2
secs=${FUZZ_SECONDS:-}
secs=${secs:-60}
F=$BUILD/tests/fuzz
GEN=$F/gen
mkdir -p "$F/artifacts" "$F/corpus" "$F/logs"
if ! bash "$SRC/tests/fuzz/make-seeds.sh" "$SRC" "$GEN"; then
    echo "FAIL: fuzz seeds (make-seeds.sh)"
    exit 1
fi
export SMM_FUZZ_PKI=$GEN/pki
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
# run_one BIN: fuzz one target; its verdict goes to $F/logs/TARGET.result
run_one() {
    local bin=$1 name t corpus dirs d log tmp rc execs rate n
    name=$(basename "$bin")
    t=${name#fuzz-}
    corpus=$F/corpus/$t
    mkdir -p "$corpus"
    dirs=("$corpus")
    for d in "$SRC/tests/fuzz/seeds/$t" "$SRC/tests/fuzz/regress/$t" "$GEN/$t"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    case $t in inbound | outbound) dirs+=("$SRC/tests/data/outbound") ;; esac
    log=$F/logs/$t.log
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smm-fuzz-$t.XXXXXX")
    TMPDIR=$tmp "$BUILD/$bin" -max_total_time="$secs" -rss_limit_mb=2048 \
        -timeout=5 -print_final_stats=1 -artifact_prefix="$F/artifacts/$t-" \
        "${dirs[@]}" >"$log" 2>&1
    rc=$?
    rm -rf "$tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    n=$(find "$corpus" -type f | wc -l)
    {
        if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
            echo "PASS: $name execs=$execs exec/s=${rate:-?} corpus=$n seconds=$secs"
        else
            echo "FAIL: $name exit=$rc execs=${execs:-?} exec/s=${rate:-?} (log $log)"
            grep -E -A25 '==ERROR|runtime error|ERROR: libFuzzer|SUMMARY' "$log" | head -60
            grep -E '^(artifact_prefix|Test unit written)' "$log" | head -5
        fi
    } >"$F/logs/$t.result"
}
running=0
for bin in "$@"; do
    rm -f "$F/logs/$(basename "$bin" | sed 's/^fuzz-//').result"
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$bin" &
    running=$((running + 1))
done
wait
failed=0
for bin in "$@"; do
    r=$F/logs/$(basename "$bin" | sed 's/^fuzz-//').result
    if [ -s "$r" ]; then
        cat "$r"
        grep -q '^PASS: ' "$r" || failed=$((failed + 1))
    else
        echo "FAIL: $(basename "$bin") (no result)"
        failed=$((failed + 1))
    fi
done
[ "$failed" -eq 0 ]
