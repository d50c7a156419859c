#!/bin/bash
# run-all.sh -- build and run the whole test suite, the way CI does.
#
#   1. out-of-tree build with -Werror, make check (unit + integration:
#      real Postfix, real smime-milter, OpenSSL/NSS/gpgsm verifiers)
#   2. a second build with ASan+UBSan and the whole make check again under
#      the sanitizers (the daemon, the tools and the unit tests are all
#      instrumented; t-valgrind skips itself there), and a third with
#      --enable-fuzzing: make fuzz-smoke runs every libFuzzer target for
#      FUZZ_SECONDS (default 20) seconds
#   3. make format-check
#   4. tests/t-deb.sh: the Debian package builds, installs, starts, purges
#   5. make distcheck (the tarball builds and its unit tests pass)
#
# Ends with one line "N passed, N failed" and exits non-zero on any
# failure.  Run as root after contrib/install-deps.sh.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
logdir=$top/test-logs
rm -rf "$logdir"
mkdir -p "$logdir"

count() { # count LOGFILE: add automake's "# PASS:/# FAIL:/# ERROR:" totals
    local p f e x
    p=$(sed -n 's/^# PASS: *\([0-9]*\).*/\1/p' "$1" | tail -n 1)
    f=$(sed -n 's/^# FAIL: *\([0-9]*\).*/\1/p' "$1" | tail -n 1)
    e=$(sed -n 's/^# ERROR: *\([0-9]*\).*/\1/p' "$1" | tail -n 1)
    x=$(sed -n 's/^# XPASS: *\([0-9]*\).*/\1/p' "$1" | tail -n 1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0} + ${x:-0}))
}
step_fail() { echo "run-all: $1 failed (see $2)"; tail -n 40 "$2"; failed=$((failed + 1)); }

echo "run-all: bootstrapping"
autoreconf -fi >"$logdir/autoreconf.log" 2>&1 || { step_fail autoreconf "$logdir/autoreconf.log"; echo "$passed passed, $failed failed"; exit 1; }

# 1. normal build, all tests
rm -rf build && mkdir build
(cd build && ../configure --enable-werror) >"$logdir/configure.log" 2>&1 &&
    make -C build -j"$jobs" >"$logdir/build.log" 2>&1
if [ $? -ne 0 ]; then
    step_fail build "$logdir/build.log"
else
    echo "run-all: make check"
    make -C build -j"$jobs" check >"$logdir/check.log" 2>&1
    grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP):' "$logdir/check.log" | grep -v '^PASS' || true
    grep -E '^# (TOTAL|PASS|FAIL|ERROR|SKIP):' "$logdir/check.log"
    count "$logdir/check.log"
    if grep -qE '^# (FAIL|ERROR): *[1-9]' "$logdir/check.log"; then
        for f in build/tests/*.log build/tests/unit/*.log; do
            grep -qE '^(not ok|ERROR|Bail out)' "$f" 2>/dev/null || continue
            echo "---- $f"
            grep -E '^(not ok|#|Bail out)' "$f" | head -40
        done
    fi
    grep -q '^# TOTAL: *[1-9]' "$logdir/check.log" || step_fail "make check (no tests ran)" "$logdir/check.log"
fi

# 2. sanitizers: the whole make check under ASan+UBSan
rm -rf build-san && mkdir build-san
(cd build-san && ../configure --enable-werror --enable-sanitizers) >"$logdir/configure-san.log" 2>&1 &&
    make -C build-san -j"$jobs" >"$logdir/build-san.log" 2>&1
if [ $? -ne 0 ]; then
    step_fail "sanitizer build" "$logdir/build-san.log"
else
    echo "run-all: make check under ASan+UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        make -C build-san -j"$jobs" check >"$logdir/check-san.log" 2>&1
    grep -E '^(FAIL|ERROR|XPASS):' "$logdir/check-san.log" || true
    grep -E '^# (TOTAL|PASS|FAIL|ERROR|SKIP):' "$logdir/check-san.log"
    count "$logdir/check-san.log"
    grep -q '^# TOTAL: *[1-9]' "$logdir/check-san.log" || step_fail "sanitizer check (no tests ran)" "$logdir/check-san.log"
    if grep -qE '^# (FAIL|ERROR): *[1-9]' "$logdir/check-san.log"; then
        for f in build-san/tests/*.log build-san/tests/unit/*.log; do
            grep -qE '^(not ok|ERROR|Bail out)' "$f" 2>/dev/null || continue
            echo "---- $f"
            grep -E '^(not ok|#|Bail out)' "$f" | head -40
        done
        grep -rh -E -A30 'ERROR: (Address|Leak)Sanitizer|runtime error' build-san/tests 2>/dev/null | head -80
    fi
fi

# 2b. fuzzing: every libFuzzer target for FUZZ_SECONDS (default 20 here,
#     60 for a plain `make fuzz-smoke`); each target's run counts as one test
rm -rf build-fuzz && mkdir build-fuzz
fuzz_secs=${FUZZ_SECONDS:-20}
echo "run-all: fuzz-smoke (${fuzz_secs}s per target)"
if (cd build-fuzz && ../configure --enable-fuzzing CC=clang) >"$logdir/configure-fuzz.log" 2>&1; then
    make -C build-fuzz -j"$jobs" fuzz-smoke FUZZ_SECONDS="$fuzz_secs" >"$logdir/fuzz-smoke.log" 2>&1
    grep -E '^(PASS|FAIL): fuzz-' "$logdir/fuzz-smoke.log"
    p=$(grep -c '^PASS: fuzz-' "$logdir/fuzz-smoke.log")
    f=$(grep -c '^FAIL: fuzz-' "$logdir/fuzz-smoke.log")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        grep -E -A25 '==ERROR|runtime error|ERROR: libFuzzer' "$logdir/fuzz-smoke.log" | head -60
    elif [ "$p" -eq 0 ]; then
        step_fail "fuzz-smoke (no target ran)" "$logdir/fuzz-smoke.log"
    fi
else
    step_fail "fuzzing configure" "$logdir/configure-fuzz.log"
fi

# 3. formatting (.clang-format, as STYLE.md asks)
if make -C build format-check >"$logdir/format.log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS: make format-check"
else
    step_fail "make format-check" "$logdir/format.log"
fi

# 4. the Debian package: build, install, start, purge (tests/t-deb.sh;
#    not in make check because it installs a package system-wide)
echo "run-all: Debian package (tests/t-deb.sh)"
# (nocheck: steps 1 and 2 ran the unit tests the package build would run)
DEB_BUILD_OPTIONS=nocheck bash tests/t-deb.sh >"$logdir/deb.log" 2>&1
deb_rc=$?
grep -E '^(not ok|Bail out)' "$logdir/deb.log" || true
p=$(grep -c '^ok ' "$logdir/deb.log")
f=$(grep -c '^not ok ' "$logdir/deb.log")
passed=$((passed + p))
failed=$((failed + f))
echo "t-deb: $p passed, $f failed"
if [ "$deb_rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    step_fail "tests/t-deb.sh (exit $deb_rc)" "$logdir/deb.log"
fi

# 5. distcheck (unit tests inside the unpacked tarball)
echo "run-all: make distcheck"
# shellcheck disable=SC2016
if make -C build distcheck TESTS='$(UNIT_TESTS)' >"$logdir/distcheck.log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS: make distcheck"
else
    step_fail "make distcheck" "$logdir/distcheck.log"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
