#!/bin/bash
# t-fault-kill: no mail is lost when the milter is killed with SIGKILL in
# the middle of a run.  A real private Postfix (milter_default_action =
# tempfail) relays 500 messages, 8 at a time, from alice to bob, whose
# policy is mandatory encryption.  While mail flows, twice:
#   t-fault-kill         the worker is SIGKILLed; the supervisor restarts it
#   t-fault-kill-daemon  (this script with FAULT_KILL=daemon) supervisor and
#                        worker are SIGKILLed together; the test starts the
#                        daemon again on the same socket.  Later in the run
#                        it is also stopped with SIGTERM (it drains) and
#                        started again, as a package upgrade does.
#
# Why a resending sender: with the milter in smtpd, a message whose
# milter dies (or cannot be reached) gets a 4xx at the SMTP level and
# never enters the Postfix queue, so it is the client that must try
# again, as an upstream MTA would.  smtp-source and swaks send once, so
# tests/tools/smtp-retry.pl sends every message until it is accepted
# (4xx, refused or dropped connections: again after a short back-off;
# 5xx: counted as a failure; all of it bounded by a deadline).
#
# Then, at the sink, by the unique id every message carries (Message-ID):
# every message arrived exactly once (nothing missing, no duplicates), and
# every copy is an S/MIME enveloped-data that `openssl cms -decrypt`
# opens with bob's key, holding the complete body of that very message
# (nothing in plaintext, nothing truncated, nothing swapped).
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/faults.sh"

WHAT=${FAULT_KILL:-worker}
N=${FAULT_MESSAGES:-500}
C=8
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
mkdir -p "$T/keys" "$T/certs" "$T/tmp"
install -m 600 "$P/alice.pem" "$T/keys/"
cp "$P/bob.crt" "$P/inter.crt" "$T/certs/"
cat >"$T/smime-milter.conf" <<EOC
KeyStore $T/keys
TrustAnchors $P/trust.pem
CertificateStore $T/certs
InternalHosts 127.0.0.0/8
EncryptionPolicy mandatory
MissingCertAction tempfail
TempDirectory $T/tmp
EOC
FAULT_CHECK_ARGS="--rcpt $P/bob.crt $P/bob.key"

milter_start "$T/smime-milter.conf" || { echo "Bail out! milter"; exit 1; }
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; exit 1; }
tap_is "$(postconf -c "$PF_CONFDIR" -h milter_default_action)" tempfail \
    "Postfix runs with milter_default_action = tempfail"

t0=$(date +%s)
fault_send "$T/run" --from alice@example.org --to bob@example.net \
    --count "$N" --concurrency "$C" --id "kill$WHAT" --deadline 150 &
sender=$!
kills=0
# kill_daemon: SIGKILL supervisor and worker at once, start it again
kill_daemon() {
    local sup=$MILTER_PID w
    w=$(fault_worker)
    kill -KILL "$sup" $w || return 1
    for _ in $(seq 1 100); do
        alive "$sup" || { [ -n "$w" ] && alive "$w"; } || break
        sleep 0.1
    done
    wait "$sup" 2>/dev/null
    tap_diag "SIGKILL to supervisor $sup and worker $w after $(fault_count "$T/run" ok) accepted"
    milter_restart "$T/smime-milter.conf"
}
for at in $((N / 4)) $((N * 3 / 5)); do
    if ! fault_wait "$T/run" ok "$at" 120; then
        tap_diag "only $(fault_count "$T/run" ok) accepted, waiting for $at"
        break
    fi
    if [ "$WHAT" = daemon ]; then
        kill_daemon || { tap_diag "the daemon did not start again"; break; }
        kills=$((kills + 1))
        continue
    fi
    w=$(fault_worker)
    [ -n "$w" ] || break
    kill -KILL "$w" && kills=$((kills + 1))
    tap_diag "SIGKILL to worker $w after $(fault_count "$T/run" ok) accepted"
    fault_wait_worker "$w" 30 || { tap_diag "no new worker"; break; }
done
tap_is "$kills" 2 "the $WHAT was SIGKILLed twice while mail flowed"
starts=$kills
if [ "$WHAT" = daemon ]; then
    # and once the way a package upgrade does it: SIGTERM, start again.
    # The worker finishes the messages in flight and refuses new ones.
    if fault_wait "$T/run" ok $((N * 17 / 20)) 120; then
        tap_diag "SIGTERM to supervisor $MILTER_PID after $(fault_count "$T/run" ok) accepted"
        milter_stop
        milter_restart "$T/smime-milter.conf" && starts=$((starts + 1))
        tap_check "a graceful restart in the run (SIGTERM): the worker drained its messages" -- \
            grep -q 'stopping: finishing the messages in flight' "$MILTER_LOG"
        tap_not "  ... and none was left in flight" -- grep -q 'still in flight after' "$MILTER_LOG"
    else
        tap_ok 1 "a graceful restart in the run (SIGTERM): the run ended too early"
    fi
fi
wait "$sender"
tap_is "$?" 0 "the sender had every message accepted in the end"
t1=$(date +%s)
tap_diag "sender: $(cat "$T/run/summary")"
tap_diag "4xx by stage: $(cat "$T/run"/log.* | sed -n 's/^temp .* stage=\([a-z]*\) .*/\1/p' | sort | uniq -c | tr -s ' \n' ' ')"
tap_check "the kills hit the run: some attempts got a 4xx or a dropped connection" -- \
    test "$(($(fault_field "$T/run" tempfails) + $(fault_field "$T/run" neterrs)))" -gt 0
tap_is "$(fault_count "$T/run" perm)" 0 "no message was rejected (5xx)"
if [ "$WHAT" = worker ]; then
    tap_is "$(grep -c 'worker died (signal 9); restarting' "$MILTER_LOG")" 2 \
        "the supervisor restarted the worker after each SIGKILL"
fi
tap_check "the worker came back every time: $((starts + 1)) listening lines" -- \
    test "$(grep -c 'listening on' "$MILTER_LOG")" -eq $((starts + 1))

pf_wait_sink "$N" 60
t2=$(date +%s)
tap_is "$(pf_queue_count)" 0 "the Postfix queue is empty (everything accepted was delivered)"
v=$(fault_verify "kill$WHAT" "$N" fault_encrypted_ok ok)
tap_ok $? "exactly once, all encrypted to bob, complete: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
tap_diag "$((t1 - t0)) s sending, $((t2 - t1)) s more until all was delivered, $(($(date +%s) - t2)) s checking"
fault_sanitizer_check
tap_done
