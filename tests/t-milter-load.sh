#!/bin/bash
# t-milter-load: the benchmark's load generator (tests/bench/milter-load)
# against the real smime-milter, briefly, in every mode -- and proof that
# it notices a wrong answer: the do-nothing null-milter (body returned
# unsigned), a trust store the signatures do not chain to, a key that
# cannot decrypt, a milter that is not there.
. "$(dirname "$0")/lib/common.sh"
LOAD=$BUILDDIR/tests/bench/milter-load
NULL=$BUILDDIR/tests/bench/null-milter

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
mkdir -p "$T/keys" "$T/certs"
install -m 600 "$T/pki/alice.pem" "$T/pki/bob.pem" "$T/keys/"
cp "$T/pki/bob.crt" "$T/pki/dave-enc.crt" "$T/pki/inter.crt" "$T/certs/"
cat >"$T/c.conf" <<EOC
KeyStore $T/keys
TrustAnchors $T/pki/trust.pem
CertificateStore $T/certs
EncryptToSelf no
OutboundDaemons ORIGINATING
EOC
milter_start "$T/c.conf" || { echo "Bail out! milter"; exit 1; }
SOCK=inet:$MILTER_PORT@127.0.0.1

# load NAME [milter-load args...]: run it, keep stdout/stderr/exit status
load() {
    local name=$1
    shift
    "$LOAD" -K "$T/pki" "$@" >"$T/$name.out" 2>"$T/$name.err"
    echo $? >"$T/$name.rc"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$T/$1.out"; }
rc() { cat "$T/$1.rc"; }

load sign -s "$SOCK" -m outbound-sign -n 12 -c 3 -S 3000 -p "$MILTER_PID"
tap_is "$(rc sign)" 0 "outbound-sign: exit 0"
tap_is "$(field sign ok)/$(field sign failures)" "12/0" "outbound-sign: 12 signed messages verified, no failure"
tap_check "outbound-sign: rate, latency and the milter's peak RSS are reported" -- \
    grep -Eq 'msgs_per_s=[0-9.]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+ peak_rss_kb=[1-9][0-9]*$' "$T/sign.out"
tap_is "$(grep -c 'outbound (daemon).*result=signed ' "$MILTER_LOG")" 12 \
    "the milter saw {daemon_name} and signed all 12"

load enc -s "$SOCK" -m outbound-encrypt -n 10 -c 2 -S 70000 -R 2 -k 3
tap_is "$(rc enc)" 0 "outbound-encrypt (2 recipients, 70 kB: two body chunks, 3 messages per connection): exit 0"
tap_is "$(field enc ok)/$(field enc rcpts)" "10/2" "outbound-encrypt: bob's key decrypts all 10, the signature inside verifies"

load in -s "$SOCK" -m inbound -n 8 -c 2 -S 5000
if [ "$(rc in)" != 0 ] && grep -q 'no Authentication-Results with smime=' "$T/in.err" &&
    ! grep -q 'decrypted' "$MILTER_LOG"; then
    tap_ok 0 "inbound # SKIP inbound not in this build"
else
    tap_is "$(rc in)/$(field in ok)" "0/8" "inbound: decrypted entity equals the original, smime=pass stamped"
fi

# the cryptographic check is real: another trust anchor, another key
cp -r "$T/pki" "$T/wrong"
cp "$T/pki/untrusted-root.crt" "$T/wrong/trust.pem"
cp "$T/pki/alice.key" "$T/wrong/bob.key"
cp "$T/pki/alice.crt" "$T/wrong/bob.crt"
"$LOAD" -K "$T/wrong" -s "$SOCK" -m outbound-sign -n 4 -V 2 >"$T/wsign.out" 2>"$T/wsign.err"
tap_is "$? $(sed -n 's/.* failures=\([0-9]*\).*/\1/p' "$T/wsign.out")" "1 2" \
    "signature that does not chain to the trust store: the 2 sampled messages (-V 2) fail"
tap_check "  ... and say why" -- grep -q 'signature does not verify' "$T/wsign.err"
"$LOAD" -K "$T/wrong" -s "$SOCK" -m outbound-encrypt -n 3 >"$T/wenc.out" 2>"$T/wenc.err"
tap_is "$? $(sed -n 's/.* failures=\([0-9]*\).*/\1/p' "$T/wenc.out")" "1 3" \
    "a key the message is not encrypted to: every message fails"
"$LOAD" -K "$T/wrong" -s "$SOCK" -m outbound-sign -n 3 -V 0 >/dev/null 2>&1
tap_is "$?" 0 "with -V 0 only the structure is checked"

# a milter that returns the body unchanged: every mode notices
NPORT=$(free_port)
"$NULL" -p "inet:$NPORT@127.0.0.1" >"$T/null.log" 2>&1 &
NULL_PID=$!
at_exit 'kill $NULL_PID 2>/dev/null; wait $NULL_PID 2>/dev/null'
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NPORT") 2>/dev/null && break
    sleep 0.1
done
NSOCK=inet:$NPORT@127.0.0.1
load nsign -s "$NSOCK" -m outbound-sign -n 6 -c 2
tap_is "$(rc nsign) $(field nsign failures) $(field nsign ok)" "1 6 0" \
    "null-milter, outbound-sign: exit 1, all 6 counted as failures"
tap_check "  ... because the body came back unsigned" -- \
    grep -q 'Content-Type is "text/plain.*want multipart/signed' "$T/nsign.err"
load nenc -s "$NSOCK" -m outbound-encrypt -n 4
tap_is "$(rc nenc) $(field nenc failures)" "1 4" "null-milter, outbound-encrypt: all 4 fail"
load nin -s "$NSOCK" -m inbound -n 4
tap_is "$(rc nin) $(field nin failures)" "1 4" "null-milter, inbound: all 4 fail (still encrypted, no smime=pass)"

# nobody listening
load gone -s "inet:$(free_port)@127.0.0.1" -m outbound-sign -n 2
tap_is "$(rc gone) $(field gone failures)" "1 2" "no milter: the messages count as failures"
load usage -s "$SOCK" -m sideways
tap_is "$(rc usage)" 2 "unknown mode: usage error (exit 2)"

# it sends what Postfix sends: a milter that writes down every packet
# hears a real Postfix relay two messages in one SMTP session, then
# milter-load send two over one connection (runs of header fields, whose
# number differs, are made one; so is the end of the session)
. "$SRCDIR/tests/lib/postfix.sh"
norm() { # a run of header fields (each with its macros or not) becomes HDRS
    awk '{ o = ""; i = 1
        while (i <= NF) {
            if ($i == "L" || ($i == "DL" && $(i + 1) == "L")) {
                while ($i == "L" || ($i == "DL" && $(i + 1) == "L")) i += $i == "L" ? 1 : 2
                o = o " HDRS"; continue
            }
            o = o " " $i; i++
        }
        sub(/^ /, "", o); sub(/( A)* Q$/, "", o); print o }' "$1"
}
record() { # record NAME: the recorder, as postfix, on $T/pf/run/m/NAME.sock
    touch "$T/$1.rec"
    chown postfix "$T/$1.rec"
    setpriv --reuid=postfix --regid=postfix --clear-groups \
        perl "$SRCDIR/tests/tools/milter-record.pl" "$T/pf/run/m/$1.sock" "$T/$1.rec" &
    at_exit "kill $! 2>/dev/null"
    for _ in $(seq 1 50); do [ -S "$T/pf/run/m/$1.sock" ] && break; sleep 0.1; done
}
wait_rec() { for _ in $(seq 1 100); do [ -s "$T/$1.rec" ] && return 0; sleep 0.1; done; return 1; }
if pf_init "$T/pf" >"$T/pf-init.log" 2>&1; then
    at_exit 'pf_stop >/dev/null 2>&1'
    mkdir -p "$T/pf/run/m"
    chown postfix "$T/pf/run/m"
    record pf
    record load
    record lean
    pf_conf "smtpd_milters = unix:$T/pf/run/m/pf.sock"
    printf '%s\n' 'From: <alice@example.org>' 'To: <bob@example.net>' 'Subject: s' \
        'MIME-Version: 1.0' 'Content-Type: text/plain' '' 'text' >"$T/rec.eml"
    pf_start >/dev/null &&
        smtp-source -d -m 2 -f alice@example.org -t bob@example.net -F "$T/rec.eml" \
            "127.0.0.1:$PF_PORT" >"$T/source.out" 2>&1
    wait_rec pf
    "$LOAD" -K "$T/pki" -s "unix:$T/pf/run/m/load.sock" -m outbound-sign -n 2 -c 1 \
        >/dev/null 2>&1
    wait_rec load
    "$LOAD" -K "$T/pki" -s "unix:$T/pf/run/m/lean.sock" -m outbound-sign -n 2 -c 1 -L \
        >/dev/null 2>&1
    wait_rec lean
    tap_diag "Postfix:     $(cat "$T/pf.rec")"
    tap_diag "milter-load: $(cat "$T/load.rec")"
    tap_check "Postfix's packets were recorded (macros before every header field)" -- \
        grep -q '^O DC C .*DM M DR R DT DL L DL L .*DE E A DM M' "$T/pf.rec"
    tap_is "$(norm "$T/load.rec")" "$(norm "$T/pf.rec")" \
        "milter-load sends the packets Postfix sends, in the same order"
    tap_is "$(norm "$T/lean.rec")" "O DC C DM M R HDRS B DE E DM M R HDRS B DE E" \
        "with -L: macros only at connect, MAIL and end of message, no abort"
else
    tap_ok 0 "milter-load sends what Postfix sends # SKIP no private Postfix here"
fi
tap_done
