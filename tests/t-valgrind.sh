#!/bin/bash
# t-valgrind: valgrind memcheck on the real daemon under load: no memory
# error, and no leak that grows with the number of messages.  The worker
# runs N1 and then, in a second run, N2 messages of every kind (sign,
# sign+encrypt to 2 recipients, decrypt+verify; bodies past MaxMemoryBody
# spill to disk); "definitely" and "indirectly lost" must be the same
# for both runs (a per-message leak of even one byte would differ by
# (N2-N1) x its size).  VALGRIND_N1/VALGRIND_N2 (default 10/60 in make check; the
# issue's figure is 1000) set the counts.
. "$(dirname "$0")/lib/common.sh"
LOAD=$BUILDDIR/tests/bench/milter-load
command -v valgrind >/dev/null || { echo "1..0 # SKIP valgrind not installed"; exit 0; }
if grep -q -- '-fsanitize' "$BUILDDIR/Makefile" 2>/dev/null; then
    echo "1..0 # SKIP sanitizer build (valgrind and ASan do not mix)"
    exit 0
fi
N1=${VALGRIND_N1:-10}
N2=${VALGRIND_N2:-60}

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
mkdir -p "$T/keys" "$T/certs" "$T/tmp"
install -m 600 "$T/pki/alice.pem" "$T/pki/bob.pem" "$T/keys/"
cp "$T/pki/bob.crt" "$T/pki/dave-enc.crt" "$T/pki/inter.crt" "$T/certs/"
cat >"$T/c.conf" <<EOC
KeyStore $T/keys
TrustAnchors $T/pki/trust.pem
CertificateStore $T/certs
EncryptToSelf no
OutboundDaemons ORIGINATING
Decrypt yes
Verify yes
MaxMemoryBody 16k
TempDirectory $T/tmp
EOC

# run N: the daemon under valgrind, N messages of each kind, SIGTERM;
# leaves $T/vg.N.* (one file per process) and $T/load.N
run() {
    local n=$1 port sup pid
    port=$(free_port)
    # shellcheck disable=SC2086
    valgrind --tool=memcheck --trace-children=yes --child-silent-after-fork=no \
        --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
        --num-callers=30 --log-file="$T/vg.$n.%p" \
        "$MILTER" -f -c "$T/c.conf" -p "inet:$port@127.0.0.1" $AS_ROOT \
        >"$T/milter.$n.log" 2>&1 &
    sup=$!
    for _ in $(seq 1 600); do
        grep -q listening "$T/milter.$n.log" && break
        sleep 0.1
    done
    : >"$T/load.$n"
    # (inbound mail is encrypted to bob alone: sent to him alone, or
    # DecryptForRecipientsOnly would rightly leave it encrypted)
    for m in outbound-sign:2 outbound-encrypt:2 inbound:1; do
        "$LOAD" -K "$T/pki" -s "inet:$port@127.0.0.1" -m "${m%:*}" -n "$n" -c 2 \
            -S 20000 -R "${m#*:}" -V 3 >>"$T/load.$n" 2>&1 || echo "FAILED $m" >>"$T/load.$n"
    done
    kill -TERM "$sup"
    for _ in $(seq 1 900); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
    wait "$sup" 2>/dev/null
}
# lost N KIND: bytes "KIND lost" summed over the run's processes
lost() {
    cat "$T"/vg."$1".* | sed -n "s/.*$2 lost: \([0-9,]*\) bytes.*/\1/p" | tr -d , |
        awk '{s += $1} END {print s + 0}'
}
errors() { cat "$T"/vg."$1".* | sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' | awk '{s += $1} END {print s + 0}'; }

run "$N1"
run "$N2"
for n in "$N1" "$N2"; do
    tap_check "$n messages of each kind under valgrind: all answered and checked" -- \
        test "$(grep -c ' ok=' "$T/load.$n")" = 3 -a "$(grep -c FAILED "$T/load.$n")" = 0
    tap_check "$n: the worker stopped cleanly (its leak report is complete)" -- \
        grep -q ': stopped' "$T/milter.$n.log"
    tap_check "$n: valgrind watched supervisor and worker (2 heap summaries)" -- \
        test "$(cat "$T"/vg."$n".* | grep -c 'HEAP SUMMARY')" -ge 2
    tap_is "$(errors "$n")" 0 "$n: no memory error (invalid read/write, uninitialised use, definite leak)"
done
d1=$(lost "$N1" definitely) d2=$(lost "$N2" definitely)
i1=$(lost "$N1" indirectly) i2=$(lost "$N2" indirectly)
p1=$(lost "$N1" possibly) p2=$(lost "$N2" possibly)
echo "# lost bytes: definitely $d1 -> $d2, indirectly $i1 -> $i2, possibly $p1 -> $p2 ($N1 -> $N2 messages of each kind)"
tap_is "$d2" "$d1" "definitely lost does not grow with the messages ($N1 -> $N2 each)"
tap_is "$i2" "$i1" "indirectly lost does not grow with the messages"
tap_check "possibly lost does not grow with the messages ($p1 -> $p2)" -- test "$p2" -le "$((p1 + 4096))"
if [ "$(errors "$N2")" != 0 ]; then
    grep -h -B2 -A25 'definitely lost in\|Invalid \|uninitialised' "$T"/vg."$N2".* | head -80 | sed 's/^/# /'
fi
tap_done
