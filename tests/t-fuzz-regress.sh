#!/bin/bash
# t-fuzz-regress: every committed fuzz seed and every regression input
# (tests/fuzz/seeds/TARGET, tests/fuzz/regress/TARGET, and for the
# pipeline targets the messages in tests/data) goes once through its fuzz
# target.  In a normal build the targets replay files (tests/fuzz/replay.c);
# in a fuzzing or sanitizer build the same run also checks for ASan/UBSan
# reports.  An input that crashes, hangs (> 60 s) or trips a sanitizer
# fails the test.  See docs/FUZZING.md.
. "$(dirname "$0")/lib/common.sh"

FUZZ=$BUILDDIR/tests/fuzz
export TMPDIR=$T # the targets' private temp dirs go away with $T
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1

for t in inbound outbound certblob config policymap authres prescan cms; do
    dirs=("$SRCDIR/tests/fuzz/seeds/$t" "$SRCDIR/tests/fuzz/regress/$t")
    case $t in inbound | outbound) dirs+=("$SRCDIR/tests/data/outbound") ;; esac
    files=()
    for d in "${dirs[@]}"; do
        [ -d "$d" ] || continue
        while IFS= read -r f; do files+=("$f"); done < <(find "$d" -type f ! -name '.*' ! -name README | sort)
    done
    if [ "${#files[@]}" -eq 0 ]; then
        tap_ok 1 "fuzz-$t: no seeds or regression inputs found"
        continue
    fi
    # libFuzzer's main() and replay.c both run each FILE argument once
    tap_check "fuzz-$t replays ${#files[@]} seeds and regression inputs" -- \
        timeout 600 "$FUZZ/fuzz-$t" -timeout=60 -rss_limit_mb=2048 "${files[@]}"
done
tap_done
