#!/bin/bash
# t-fault-reload-broken: a reload with a broken configuration keeps the
# running one, under load.  While a real private Postfix relays 160
# messages, 4 at a time, from alice to bob (tests/tools/smtp-retry.pl),
# the test replaces the configuration (rename(2), so the milter never
# reads half a file) with one broken version after another and sends
# SIGHUP: an unknown key, a bad value, a duplicate key, a missing
# KeyStore, a missing KeyStorePassphraseFile, a missing TrustAnchors file,
# a missing PolicyMap, a PolicyMap with a bad line.  Each broken version
# also says Cipher aes-256-cbc and StampHeader no, so a configuration that
# was applied even in part would show in the output.
#
# Every reload must fail with a log line naming the file and the line of
# the problem (the configuration file and the line of the key for a
# missing file), and every message must go out as before: exactly once,
# enveloped-data to bob, signed by alice, stamped cipher=aes-128-cbc, with
# its complete body, and without a single 4xx.  Then a good new
# configuration (aes-256-cbc) is loaded and the next 20 messages use it.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/faults.sh"

N=${FAULT_MESSAGES:-160}
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
mkdir -p "$T/keys" "$T/certs" "$T/tmp"
install -m 600 "$P/alice.p12" "$T/keys/"
install -m 600 "$P/passphrase" "$T/keys.pass"
cp "$P/bob.crt" "$P/inter.crt" "$T/certs/"
echo "bob@example.net mandatory" >"$T/policy.map"
printf '# t-fault-reload-broken\nbob@example.net sometimes\n' >"$T/bad.map"
CONF=$T/smime-milter.conf
# write_conf CIPHER STAMP [SED [LINE...]]: the configuration, with LINEs
# appended and the sed(1) expression SED applied, written to a temporary
# file and renamed into place.  The appended lines start on line 11.
write_conf() {
    local cipher=$1 stamp=$2 sed=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    {
        echo "# t-fault-reload-broken"
        echo "KeyStore $T/keys"
        echo "KeyStorePassphraseFile $T/keys.pass"
        echo "TrustAnchors $P/trust.pem"
        echo "CertificateStore $T/certs"
        echo "PolicyMap $T/policy.map"
        echo "InternalHosts 127.0.0.0/8"
        echo "TempDirectory $T/tmp"
        echo "Cipher $cipher"
        echo "StampHeader $stamp"
        for l in "$@"; do echo "$l"; done
    } | sed -e "${sed:-p;d}" >"$CONF.new" && mv -f "$CONF.new" "$CONF"
}
write_conf aes-128-cbc yes
milter_start "$CONF" || { echo "Bail out! milter"; exit 1; }
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; exit 1; }

# reload_result: SIGHUP, then the milter's next reload line (10 s at most)
reload_result() {
    local before
    before=$(grep -c 'reloaded \|reload failed' "$MILTER_LOG")
    kill -HUP "$MILTER_PID"
    for _ in $(seq 1 100); do
        [ "$(grep -c 'reloaded \|reload failed' "$MILTER_LOG")" -gt "$before" ] && break
        sleep 0.1
    done
    grep 'reloaded \|reload failed' "$MILTER_LOG" | tail -n "+$((before + 1))" | head -n 1
}
# broken WHAT WANT [SED [LINE...]]: write_conf aes-256-cbc no SED LINE...;
# the reload must fail with a log line that contains WANT (fixed string)
broken() {
    local what=$1 want=$2 got
    shift 2
    write_conf aes-256-cbc no "$@"
    got=$(reload_result)
    case $got in
    *"reload failed, keeping the running configuration: "*"$want"*)
        tap_ok 0 "$what: the reload fails, the log says where: ${got#*configuration: }" ;;
    *)
        tap_ok 1 "$what: the reload fails, the log says where"
        tap_diag "got \"$got\", want \"reload failed ... $want\"" ;;
    esac
    sleep 0.3 # let some mail through between two reloads
}

t0=$(date +%s)
fault_send "$T/run" --from alice@example.org --to bob@example.net \
    --count "$N" --concurrency 4 --id broken --deadline 150 &
sender=$!
fault_wait "$T/run" ok 10 60 || tap_diag "the first messages are slow to come"
broken "unknown key" "$CONF:11: unknown key \"Cihper\"" "" "Cihper aes-256-cbc"
broken "bad value" "$CONF:9: bad value \"rot13\" for Cipher" 's/^Cipher .*/Cipher rot13/'
broken "duplicate key" "$CONF:11: duplicate key StampHeader (first set on line 10)" "" "StampHeader yes"
broken "missing KeyStore" "$CONF:2: KeyStore $T/no-such-keys: " \
    "s|^KeyStore .*|KeyStore $T/no-such-keys|"
broken "missing KeyStorePassphraseFile" "$CONF:3: KeyStorePassphraseFile $T/no-such.pass: " \
    "s|^KeyStorePassphraseFile .*|KeyStorePassphraseFile $T/no-such.pass|"
broken "missing TrustAnchors" "$CONF:4: TrustAnchors $T/no-such.pem: " \
    "s|^TrustAnchors .*|TrustAnchors $T/no-such.pem|"
broken "missing PolicyMap" "$CONF:6: PolicyMap $T/no-such.map: " \
    "s|^PolicyMap .*|PolicyMap $T/no-such.map|"
broken "PolicyMap with a bad line" "$T/bad.map:2: expected" "s|^PolicyMap .*|PolicyMap $T/bad.map|"

wait "$sender"
tap_is "$?" 0 "every message sent during the broken reloads was accepted"
tap_diag "sender: $(cat "$T/run/summary")"
tap_is "$(fault_field "$T/run" tempfails)/$(fault_field "$T/run" neterrs)" 0/0 \
    "mail flowed as before: no 4xx, no dropped connection"
tap_is "$(grep -c ': reloaded ' "$MILTER_LOG")" 0 "no broken configuration was loaded"

# a good configuration still loads, and applies
write_conf aes-256-cbc yes
got=$(reload_result)
tap_check "a good configuration loads afterwards: $got" -- grep -q ": reloaded $CONF" <<<"$got"
fault_send "$T/after" --from alice@example.org --to bob@example.net \
    --count 20 --concurrency 2 --id after --deadline 60
tap_is "$?" 0 "the 20 messages after the good reload were accepted"

pf_wait_sink $((N + 20)) 60
# old: wholly the configuration of the start; new: the good reload's
old_conf() { # ID KIND DEC SIGNER CERTS BODY LEAK STAMP
    fault_encrypted_ok "$@"
    [ "$VERDICT" = ok ] || return 0
    VERDICT=new-or-mixed
    [ "$8" = "signed=alice@example.org;_encrypted=1/1;_cipher=aes-128-cbc" ] && VERDICT=old
}
new_conf() {
    fault_encrypted_ok "$@"
    [ "$VERDICT" = ok ] || return 0
    VERDICT=old-or-mixed
    [ "$8" = "signed=alice@example.org;_encrypted=1/1;_cipher=aes-256-cbc" ] && VERDICT=new
}
FAULT_CHECK_ARGS="--rcpt $P/bob.crt $P/bob.key"
v=$(fault_verify broken "$N" old_conf old)
tap_ok $? "during the broken reloads: exactly once, encrypted, complete, the running configuration: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
v=$(fault_verify after 20 new_conf new)
tap_ok $? "after the good reload: exactly once, encrypted, the new configuration: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
tap_diag "$(($(date +%s) - t0)) s for the run and the check"
fault_sanitizer_check
tap_done
