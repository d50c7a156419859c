#!/bin/bash
# t-fault-reload: SIGHUP reload storms under load lose nothing and never
# mix two states in one message.  A real private Postfix relays 300
# messages, 8 at a time, from alice to bob (tests/tools/smtp-retry.pl),
# while every 100 ms the test switches the milter between two complete
# generations of configuration, key store, trust anchors and policy map
# and sends SIGHUP:
#   A: signing key alice1 (tests/pki), trust anchors root1 + inter1,
#      PolicyMap "bob@example.net mandatory", Cipher aes-128-cbc,
#      StampHeader yes
#   B: signing key alice2 (a second PKI made here: EC root2 -> inter2 ->
#      alice2), trust anchors root2 + inter2, PolicyMap
#      "bob@example.net never", StampHeader no
# Each key store holds only the user's certificate and key, so the
# intermediate in a signature comes from the trust anchors.  Every
# delivered message must then be wholly A (enveloped-data; decrypts with
# bob's key; signed by alice1 with inter1 and not inter2 in the signature;
# stamped, cipher aes-128-cbc) or wholly B (multipart/signed, not
# encrypted; signed by alice2 with inter2 and not inter1; no stamp), with
# its complete body; and every message arrives exactly once.  Both
# generations must show up.  Meanwhile 40 slow transactions (400 ms
# between RCPT TO and DATA) each span several reloads between MAIL FROM,
# where the milter takes its snapshot, and the end of the message.
# Then a SIGHUP and a SIGUSR1 arrive while the supervisor restarts a
# killed worker: the new worker must take both and live.
#
# How the files change: each generation lives in its own directory, its
# config naming its files by absolute path, and the config file the
# milter was started with is a symbolic link switched with rename(2), as a
# deployment tool would do it.  So whenever the milter reloads, the files
# on disk are one whole generation, and a message that shows parts of
# both can only come from the milter mixing its snapshots.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/faults.sh"

N=${FAULT_MESSAGES:-300}
NSLOW=40
C=8
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki

# the second PKI: EC, so it is quick to make
B=$T/pkib
mkdir -p "$B"
cat >"$B/ext.cnf" <<'EOF'
[ inter ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ user ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation, keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:alice@example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
mkpkib() {
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$B/root.key" -out "$B/root.crt" -days 30 \
        -subj "/CN=t-fault-reload root B" -addext "basicConstraints=critical,CA:true" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" &&
        openssl req -new "${ec[@]}" -keyout "$B/inter.key" -out "$B/inter.csr" \
            -subj "/CN=t-fault-reload intermediate B" &&
        openssl x509 -req -in "$B/inter.csr" -CA "$B/root.crt" -CAkey "$B/root.key" \
            -CAcreateserial -days 30 -extfile "$B/ext.cnf" -extensions inter -out "$B/inter.crt" &&
        openssl req -new "${ec[@]}" -keyout "$B/alice2.key" -out "$B/alice2.csr" \
            -subj "/CN=alice@example.org" &&
        openssl x509 -req -in "$B/alice2.csr" -CA "$B/inter.crt" -CAkey "$B/inter.key" \
            -CAcreateserial -days 30 -extfile "$B/ext.cnf" -extensions user -out "$B/alice2.crt"
} >"$B/log" 2>&1
mkpkib || { cat "$B/log"; echo "Bail out! cannot make the second PKI"; exit 1; }

mkdir -p "$T/genA/keys" "$T/genB/keys" "$T/certs" "$T/tmp"
install -m 600 "$P/alice.crt" "$P/alice.key" "$T/genA/keys/"
install -m 600 "$B/alice2.crt" "$B/alice2.key" "$T/genB/keys/"
cat "$P/root.crt" "$P/inter.crt" >"$T/genA/trust.pem"
cat "$B/root.crt" "$B/inter.crt" >"$T/genB/trust.pem"
echo "bob@example.net mandatory" >"$T/genA/policy.map"
echo "bob@example.net never" >"$T/genB/policy.map"
cp "$P/bob.crt" "$P/inter.crt" "$T/certs/"
gen_conf() { # gen_conf G CIPHER STAMP
    cat >"$T/gen$1/smime-milter.conf" <<EOC
# generation $1 (t-fault-reload)
KeyStore $T/gen$1/keys
TrustAnchors $T/gen$1/trust.pem
PolicyMap $T/gen$1/policy.map
CertificateStore $T/certs
Cipher $2
StampHeader $3
InternalHosts 127.0.0.0/8
TempDirectory $T/tmp
EOC
}
gen_conf A aes-128-cbc yes
gen_conf B aes-256-cbc no
CONF=$T/smime-milter.conf
use_gen() { # use_gen G: point $CONF at generation G, atomically
    ln -sfn "$T/gen$1/smime-milter.conf" "$T/conf.new" && mv -Tf "$T/conf.new" "$CONF"
}
use_gen B
tap_check "generation B: smime-milter -n accepts it" -- "$MILTER" -n -c "$CONF"
use_gen A
tap_check "generation A: smime-milter -n accepts it" -- "$MILTER" -n -c "$CONF"

milter_start "$CONF" || { echo "Bail out! milter"; exit 1; }
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; exit 1; }

# storm: every 100 ms the other generation and a SIGHUP, until $T/storm.stop
# appears (at most 1500 times); the number of SIGHUPs in $T/storm.count
storm() {
    local g=A i=0 next now
    next=$(ms_now)
    while [ ! -e "$T/storm.stop" ] && [ "$i" -lt 1500 ]; do
        if [ "$g" = A ]; then g=B; else g=A; fi
        use_gen "$g"
        kill -HUP "$MILTER_PID" || break
        i=$((i + 1))
        next=$((next + 100))
        now=$(ms_now)
        if [ "$now" -lt "$next" ]; then
            sleep "$(printf '0.%03d' $((next - now)))"
        else
            next=$now
        fi
    done
    echo "$i" >"$T/storm.count"
}
ms_now() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

t0=$(date +%s)
storm &
storm_pid=$!
at_exit "touch '$T/storm.stop'; wait $storm_pid 2>/dev/null"
# meanwhile, slow transactions: 400 ms between RCPT TO and DATA, so that
# each spans several reloads between MAIL FROM and the end of the message
fault_send "$T/slow" --from alice@example.org --to bob@example.net \
    --count "$NSLOW" --concurrency 4 --id slowreload --slow-ms 400 --deadline 150 &
slow_pid=$!
fault_send "$T/run" --from alice@example.org --to bob@example.net \
    --count "$N" --concurrency "$C" --id reload --deadline 150
tap_is "$?" 0 "every message was accepted during the storm"
wait "$slow_pid"
tap_is "$?" 0 "every slow message was accepted during the storm"
touch "$T/storm.stop"
wait "$storm_pid"
tap_diag "sender: $(cat "$T/run/summary")"
tap_diag "slow sender: $(cat "$T/slow/summary")"
tap_diag "$(cat "$T/storm.count") SIGHUPs, $(grep -c ': reloaded ' "$MILTER_LOG") reloads in $(($(date +%s) - t0)) s"
tap_is "$(($(fault_field "$T/run" tempfails) + $(fault_field "$T/slow" tempfails)))/$(($(fault_field "$T/run" neterrs) + $(fault_field "$T/slow" neterrs)))" 0/0 \
    "no message was even delayed: no 4xx, no dropped connection"
tap_check "the milter reloaded at least 20 times while mail flowed" -- \
    test "$(grep -c ': reloaded ' "$MILTER_LOG")" -ge 20
tap_is "$(grep -c 'reload failed' "$MILTER_LOG")" 0 "no reload failed"
tap_is "$(grep -c 'worker died' "$MILTER_LOG")" 0 "the worker never died during the storm"

pf_wait_sink $((N + NSLOW)) 60
# classify: wholly A, wholly B, or not
gen_of() { # ID KIND DEC SIGNER CERTS BODY LEAK STAMP
    VERDICT=mixed
    if [ "$6" != complete ]; then
        VERDICT=incomplete
    elif [ "$2/$3/$4" = enveloped/ok/alice1 ] && [[ ,$5, == *,inter1,* && ,$5, != *,inter2,* ]] &&
        [[ $8 == signed=alice@example.org\;_encrypted=1/1\;_cipher=aes-128-cbc ]]; then
        VERDICT=A
    elif [ "$2/$3/$4/$8" = signed/-/alice2/- ] && [[ ,$5, == *,inter2,* && ,$5, != *,inter1,* ]]; then
        VERDICT=B
    fi
}
FAULT_CHECK_ARGS="--rcpt $P/bob.crt $P/bob.key --cert alice1=$P/alice.crt
    --cert inter1=$P/inter.crt --cert alice2=$B/alice2.crt --cert inter2=$B/inter.crt"
v=$(fault_verify reload "$N" gen_of A B)
tap_ok $? "exactly once, each message wholly A or wholly B: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
v=$(fault_verify slowreload "$NSLOW" gen_of A B)
tap_ok $? "slow transactions: exactly once, each wholly A or wholly B: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
na=$(cat "$T/verify.reload" "$T/verify.slowreload" | grep -c '^A ')
nb=$(cat "$T/verify.reload" "$T/verify.slowreload" | grep -c '^B ')
tap_diag "generation A: $na messages, generation B: $nb messages"
tap_check "both generations were delivered (A: $na, B: $nb)" -- test "$na" -gt 0 -a "$nb" -gt 0

# ------------------------------------------------------------ signals during a restart
# The supervisor waits a second before it starts a new worker; a SIGHUP and
# a SIGUSR1 (statistics) that arrive meanwhile are passed on the moment the
# new worker is forked.  It must take both (once they killed it: signal 35)
# and then relay mail with the generation it reloaded.
w=$(fault_worker)
died=$(grep -c 'worker died' "$MILTER_LOG")
reloads=$(grep -c ': reloaded ' "$MILTER_LOG")
stats=$(grep -c ': stats: ' "$MILTER_LOG")
kill -KILL "$w"
for _ in $(seq 1 100); do
    [ "$(grep -c 'worker died' "$MILTER_LOG")" -gt "$died" ] && break
    sleep 0.02
done
use_gen B
kill -HUP "$MILTER_PID"
kill -USR1 "$MILTER_PID"
fault_wait_worker "$w" 30 || tap_diag "no new worker"
for _ in $(seq 1 100); do
    [ "$(grep -c ': reloaded ' "$MILTER_LOG")" -gt "$reloads" ] &&
        [ "$(grep -c ': stats: ' "$MILTER_LOG")" -gt "$stats" ] && break
    sleep 0.1
done
tap_is "$(grep 'worker died' "$MILTER_LOG" | tail -n +$((died + 1)) | sed 's/.*worker died/worker died/' | tr '\n' ' ')" \
    "worker died (signal 9); restarting " "signals during a restart: the new worker survives them"
tap_check "signals during a restart: the new worker reloaded" -- \
    test "$(grep -c ': reloaded ' "$MILTER_LOG")" -gt "$reloads"
tap_check "signals during a restart: the new worker logged its statistics" -- \
    test "$(grep -c ': stats: ' "$MILTER_LOG")" -gt "$stats"
fault_send "$T/after" --from alice@example.org --to bob@example.net \
    --count 20 --concurrency 2 --id afterrestart --deadline 60
tap_is "$?" 0 "signals during a restart: 20 more messages accepted"
pf_wait_sink $((N + NSLOW + 20)) 60
v=$(fault_verify afterrestart 20 gen_of B)
tap_ok $? "signals during a restart: then every message is generation B: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
tap_diag "$(($(date +%s) - t0)) s for the runs and the checks"
fault_sanitizer_check
tap_done
