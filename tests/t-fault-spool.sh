#!/bin/bash
# t-fault-spool: the TempDirectory becomes unusable while large messages
# spill to disk (MaxMemoryBody 4k, 64 kB bodies, about 90 kB once signed
# and encrypted); those messages are tempfailed, no partial body is ever
# delivered, and mail flows again once the directory is usable.  In each
# phase a real private Postfix relays 40 messages, 4 at a time, from alice
# to bob (mandatory encryption); tests/tools/smtp-retry.pl resends what got
# a 4xx, as an upstream MTA would.  Once the first messages are through,
# the fault starts; it lasts at least 2 s and until the sender has seen 4
# more 451 replies (4.3.0 or 4.7.0), then it is mended.
#
# How the faults are made, so that they work in an unprivileged container
# (no mount(2), no CAP_SYS_RESOURCE), as root:
#   1.  unwritable: the milter runs as UserID nobody and the test chmods
#       the TempDirectory from 1777 to 0555 (EACCES when the spill file is
#       created), then back
#   2.  full: a disk that fills up makes write(2) fail part way through a
#       file.  The test gets the same from RLIMIT_FSIZE: prlimit(1) lowers
#       the running worker's file size limit, so that writes past it fail
#       (EFBIG), then raises it again.  Changing another user's limits
#       needs CAP_SYS_RESOURCE, so from here on the milter runs as root
#       (its log goes through a pipe, which the limit leaves alone).
#   2a. 48000 bytes: the spooled input body breaks off
#   2b. 80000 bytes: the input fits, the signed and encrypted output breaks
#       off
#   3.  full for real: when mount(2) is allowed, a 512 kB tmpfs that a
#       filler file has filled to the last 16 kB (ENOSPC), then emptied;
#       skipped otherwise.
# At the sink: every message exactly once, an enveloped-data that `openssl
# cms -decrypt` opens with bob's key, with the complete body.  The worker
# never dies (a file size limit once killed it with SIGXFSZ) and holds no
# temp file open at the end.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/faults.sh"

N=${FAULT_MESSAGES:-40}
SIZE=65536
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
chmod 711 "$T"
mkdir -p "$T/keys" "$T/certs" "$T/spool"
chmod 1777 "$T/spool"
install -m 600 "$P/alice.pem" "$T/keys/"
cp "$P/bob.crt" "$P/inter.crt" "$T/certs/"
CONF=$T/smime-milter.conf
write_conf() { # write_conf TEMPDIR
    cat >"$CONF" <<EOC
KeyStore $T/keys
TrustAnchors $P/trust.pem
CertificateStore $T/certs
InternalHosts 127.0.0.0/8
EncryptionPolicy mandatory
MissingCertAction reject
MaxMemoryBody 4k
TempDirectory $1
EOC
}
write_conf "$T/spool"
milter_start "$CONF" -u nobody || { echo "Bail out! milter"; exit 1; }
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; exit 1; }
tap_is "$(stat -c %U "/proc/$(fault_worker)")" nobody "phase 1: the worker runs as nobody"

# the replies of a spool failure: 4.3.0 while the message is stored,
# 4.7.0 from the S/MIME processing after it
TMPFAIL='reply=451 4\.(3\.0 temporary local problem|7\.0 S/MIME processing failed temporarily)'
# fault_hold RUN BEFORE: keep the fault up at least 2 s and until the
# sender has 4 tempfails more than BEFORE (30 s at most); HELD is then how
# many more it has
fault_hold() {
    local run=$1 before=$2 t
    t=$(date +%s)
    fault_wait "$run" temp $((before + 4)) 30 "$TMPFAIL" || tap_diag "fewer than 4 tempfails within 30 s"
    while [ $(($(date +%s) - t)) -lt 2 ]; do sleep 0.2; done
    HELD=$(($(fault_count "$run" temp "$TMPFAIL") - before))
}
# phase NAME PREFIX BREAK MEND: send N messages; once the first ones are
# through, run the shell command BREAK, hold the fault (fault_hold), run
# MEND; then every message must have been accepted, and arrive once,
# encrypted and complete
phase() {
    local name=$1 prefix=$2 run=$T/$2 sender v
    # (paced, so that the run cannot be over before the fault starts)
    fault_send "$run" --from alice@example.org --to bob@example.net --size "$SIZE" \
        --count "$N" --concurrency 4 --id "$prefix" --deadline 120 --pace-ms 200 &
    sender=$!
    fault_wait "$run" ok 4 60 || tap_diag "$name: slow start"
    before=$(fault_count "$run" temp "$TMPFAIL")
    eval "$3"
    fault_hold "$run" "$before"
    eval "$4"
    tap_check "$name: $HELD messages tempfailed while it lasted" -- test "$HELD" -ge 4
    wait "$sender"
    tap_is "$?" 0 "$name: every message was accepted once it was over"
    tap_diag "sender: $(cat "$run/summary")"
    tap_is "$(fault_count "$run" perm)" 0 "$name: no message was rejected (5xx)"
    tap_is "$(fault_count "$run" temp)" "$(fault_count "$run" temp "$TMPFAIL")" \
        "$name: every 4xx was 451 4.3.0 or 4.7.0 (a temporary local problem)"
    pf_wait_sink "$(($(cat "$T/sink.base") + N))" 60
    v=$(fault_verify "$prefix" "$N" fault_encrypted_ok ok)
    tap_ok $? "$name: exactly once, encrypted, complete: $(echo "$v" | tail -n 1)"
    echo "$v" | grep '^#' || true
    pf_sink_count >"$T/sink.base"
}
FAULT_CHECK_ARGS="--rcpt $P/bob.crt $P/bob.key"
echo 0 >"$T/sink.base"
t0=$(date +%s)

# ------------------------------------------------------------ 1. unwritable
phase "1. TempDirectory not writable for the worker" spoolperm \
    'chmod 0555 "$T/spool"' 'chmod 1777 "$T/spool"'
tap_check "1. the milter logged why" -- grep -q 'reason=spool error="cannot create temp file in' "$MILTER_LOG"

# ------------------------------------------------------------ 2. full (RLIMIT_FSIZE)
milter_stop
MILTER_LOG_PIPE=1 milter_restart "$CONF" || { echo "Bail out! milter restart"; exit 1; }
w=$(fault_worker)
fsize() { prlimit --pid "$w" --fsize="$1": >/dev/null; }
if fsize unlimited; then
    phase "2a. writes past 48000 bytes fail (RLIMIT_FSIZE)" spoolfsize48 \
        'fsize 48000' 'fsize unlimited'
    tap_check "2a. the spooled input broke off" -- \
        grep -q 'reason=spool error="write to temp file: File too large"' "$MILTER_LOG"
    phase "2b. writes past 80000 bytes fail (RLIMIT_FSIZE)" spoolfsize80 \
        'fsize 80000' 'fsize unlimited'
    tap_check "2b. the input fit, the S/MIME output broke off" -- \
        grep -q 'reason=crypto-or-io error="write to temp file: File too large"' "$MILTER_LOG"
else
    tap_ok 0 "2. full # SKIP prlimit cannot change the worker's limits here"
fi

# ------------------------------------------------------------ 3. full tmpfs
mkdir -p "$T/small"
if mount -t tmpfs -o size=512k,mode=1777 smm-fault-spool "$T/small" 2>/dev/null; then
    at_exit "milter_stop; umount '$T/small' 2>/dev/null"
    write_conf "$T/small"
    kill -HUP "$MILTER_PID"
    for _ in $(seq 1 50); do [ "$(grep -c ': reloaded ' "$MILTER_LOG")" -ge 1 ] && break; sleep 0.1; done
    # keep it full up to the last 16 kB: the temp files of the messages in
    # flight when it is filled free their room when they end, so a single
    # fill would leave room for the next messages
    fill_tmpfs() {
        local a
        while [ ! -e "$T/fill.stop" ]; do
            a=$(df -B1 --output=avail "$T/small" | tail -n 1)
            [ "$a" -gt 16384 ] && head -c $((a - 16384)) /dev/zero >>"$T/small/filler" 2>/dev/null
            sleep 0.1
        done
    }
    phase "3. TempDirectory on a full tmpfs (ENOSPC)" spooltmpfs \
        'rm -f "$T/fill.stop"; fill_tmpfs & FILLER=$!' \
        'touch "$T/fill.stop"; wait "$FILLER"; rm -f "$T/small/filler"'
    tap_check "3. the milter logged the failed write" -- grep -q 'No space left on device' "$MILTER_LOG"
else
    tap_ok 0 "3. full tmpfs # SKIP mount(2) is not permitted here"
fi

tap_is "$(grep -c 'worker died' "$MILTER_LOG")" 0 "the worker never died"
w=$(fault_worker)
tap_is "$(find "/proc/$w/fd" -lname "$T/*smime-milter.*" 2>/dev/null | wc -l)" 0 \
    "the worker holds no temp file open after the runs"
for f in $(find "/proc/$w/fd" -lname "$T/*smime-milter.*" 2>/dev/null); do
    tap_diag "open: $f -> $(readlink "$f") $(stat -L -c %s "$f") bytes: $(head -c 300 "$f" | tr -c '[:print:]' '.')"
done
tap_diag "$(($(date +%s) - t0)) s for the runs and the checks"
fault_sanitizer_check
tap_done
