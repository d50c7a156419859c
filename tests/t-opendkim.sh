#!/bin/bash
# t-opendkim: smime-milter next to Debian's OpenDKIM in one private
# Postfix, configured as docs/admin-guide.md ("Deployment topologies")
# and contrib/postfix/main.cf.snippet say:
#   - outbound (submission service, ORIGINATING): smtpd_milters =
#     smime-milter, then the OpenDKIM signer.  The delivered message is
#     S/MIME signed (openssl cms -verify) and its DKIM signature verifies
#     (a second OpenDKIM, in verify mode, "opendkim -t" with the public key
#     from a TestPublicKeys file: there is no DNS);
#   - local submission with sendmail(1): non_smtpd_milters, same order,
#     same result;
#   - the wrong order (DKIM first) gives a DKIM signature that fails,
#     which is why the order matters;
#   - inbound (an MX listener, the client made external with XCLIENT):
#     the OpenDKIM verifier, then smime-milter; the DKIM result is stamped
#     and smime-milter treats the mail as inbound.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

for tool in opendkim opendkim-genkey openssl; do
    command -v "$tool" >/dev/null ||
        { echo "Bail out! $tool not found: run contrib/install-deps.sh (opendkim, opendkim-tools)"; exit 1; }
done

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
keystore_init "$P" alice.p12 || { echo "Bail out! key store"; exit 1; }
# InternalHosts keeps its default (loopback): local submission is outbound
echo "OutboundDaemons ORIGINATING" >>"$T/smime-milter.conf"
milter_start "$T/smime-milter.conf" || { echo "Bail out! smime-milter did not start"; exit 1; }

# ---------------------------------------------------------------- OpenDKIM
D=$T/dkim
mkdir -p "$D"
opendkim-genkey -b 2048 -d example.org -s smm -D "$D" >"$D/genkey.log" 2>&1 ||
    { echo "Bail out! opendkim-genkey: $(cat "$D/genkey.log")"; exit 1; }
# the TXT record a DNS zone would publish, as opendkim's test key file
echo "smm._domainkey.example.org v=DKIM1; k=rsa; p=$(openssl rsa -in "$D/smm.private" \
    -pubout -outform DER 2>/dev/null | base64 -w0)" >"$D/public-keys"
# RequireSafeKeys no: the key lives below /tmp, which others can write
cat >"$D/sign.conf" <<EOF
Mode s
RequireSafeKeys no
MTA ORIGINATING
Domain example.org
Selector smm
KeyFile $D/smm.private
Canonicalization relaxed/simple
SignatureAlgorithm rsa-sha256
InternalHosts 127.0.0.1
PidFile $D/sign.pid
Syslog no
EOF
cat >"$D/verify.conf" <<EOF
Mode v
TestPublicKeys $D/public-keys
AuthservID dkim-verifier.test
PidFile $D/verify.pid
Syslog no
EOF
# dkim_start NAME: OpenDKIM in the foreground with NAME.conf on a free
# port, $DKIM_PORT_NAME (a new port if another process took it first)
dkim_start() {
    local port
    at_exit "dkim_stop $1"
    for _ in 1 2 3; do
        port=$(free_port)
        opendkim -f -x "$D/$1.conf" -p "inet:$port@127.0.0.1" >>"$D/$1.log" 2>&1 &
        eval "DKIM_PID_$1=\$! DKIM_PORT_$1=$port"
        for _ in $(seq 1 100); do
            _pf_listening "$port" && return 0
            kill -0 "$!" 2>/dev/null || break
            sleep 0.1
        done
        dkim_stop "$1"
    done
    cat "$D/$1.log" >&2
    return 1
}
dkim_stop() {
    local var=DKIM_PID_$1
    [ -n "${!var:-}" ] || return 0
    kill -TERM "${!var}" 2>/dev/null
    wait "${!var}" 2>/dev/null
    eval "DKIM_PID_$1="
}
dkim_start sign || { echo "Bail out! opendkim (signer) did not start"; exit 1; }
dkim_start verify || { echo "Bail out! opendkim (verifier) did not start"; exit 1; }
# dkim_result FILE: dkim=pass|fail|... as the verifier sees FILE
dkim_result() {
    opendkim -x "$D/verify.conf" -t "$1" -vvv 2>&1 |
        sed -n 's/.*dkim=\([a-z]*\).*/\1/p' | head -n 1
}

# ---------------------------------------------------------------- Postfix
SMIME=inet:127.0.0.1:$MILTER_PORT
DKIM_SIGN=inet:127.0.0.1:$DKIM_PORT_sign
DKIM_VERIFY=inet:127.0.0.1:$DKIM_PORT_verify
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=$SMIME, $DKIM_SIGN" "non_smtpd_milters=\$smtpd_milters" \
    "smtpd_authorized_xclient_hosts=127.0.0.0/8" "relay_domains=example.net" \
    "smtpd_relay_restrictions=permit_mynetworks, permit_auth_destination, reject"
pf_master_conf mx -o "smtpd_milters=$DKIM_VERIFY,$SMIME"
pf_start >/dev/null || { echo "Bail out! pf_start"; cat "$(pf_log)"; exit 1; }

headers_of() { sed -e 's/\r$//' -e '/^$/q' "$1"; }
hdr() { headers_of "$2" | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*: *//'; }
# message ID: a test message with that Message-ID
message() {
    cat <<EOF
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: S/MIME and DKIM ($1)
Date: Mon, 1 Jan 2024 10:00:00 +0000
Message-ID: <$1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Bob,
signed twice: S/MIME for you, DKIM for your mail server.
EOF
}
# sink_file ID: the sink message with Message-ID <ID@example.org>
sink_file() {
    local f
    for _ in $(seq 1 300); do
        f=$(grep -l "^Message-ID: <$1@example.org>" "$PF_SINKDIR"/*.eml 2>/dev/null | tail -n 1)
        [ -n "$f" ] && { echo "$f"; return 0; }
        sleep 0.1
    done
    return 1
}
# both_signed NAME FILE: S/MIME signed by alice and DKIM signed, both verify
both_signed() {
    local name=$1 f=$2
    case $(hdr Content-Type "$f") in
    multipart/signed*) tap_ok 0 "$name: S/MIME multipart/signed" ;;
    *) tap_ok 1 "$name: S/MIME multipart/signed (got: $(hdr Content-Type "$f"))" ;;
    esac
    tap_check "$name: openssl cms -verify passes" -- smime_verify_openssl "$f" "$P"
    tap_check "$name: DKIM-Signature by example.org, selector smm" -- \
        grep -Eq '^DKIM-Signature: .*d=example\.org; s=smm' "$f"
    tap_is "$(dkim_result "$f")" pass "$name: the DKIM signature verifies"
}

# 1. submission -> smime-milter -> OpenDKIM signer
message submission >"$T/submission.eml"
pf_send alice@example.org bob@example.net "$T/submission.eml" --port "$PF_SUB_PORT" \
    --xclient-addr 198.51.100.8 >/dev/null
tap_is "$?" 0 "submission (external client via XCLIENT): accepted"
out=$(sink_file submission) || out=/dev/null
both_signed submission "$out"
cp "$out" "$T/outbound.eml"
sed '0,/^Hello Bob,/s//Hello Rob,/' "$out" >"$T/tampered.eml"
tap_is "$(dkim_result "$T/tampered.eml")" fail "the verifier catches a changed body"
tap_check "milter log: outbound because of {daemon_name} ORIGINATING" -- \
    grep -q 'outbound (daemon) client=198.51.100.8 .*result=signed' "$MILTER_LOG"

# 2. local submission with sendmail(1): non_smtpd_milters
message local >"$T/local.eml"
tap_check "sendmail(1) accepts the message" -- \
    sh -c "sendmail -C '$PF_CONFDIR' -f alice@example.org bob@example.net <'$T/local.eml'"
out=$(sink_file local) || out=/dev/null
both_signed "sendmail(1)" "$out"
tap_check "milter log: sendmail(1) mail comes from 127.0.0.1, outbound" -- \
    grep -q 'outbound (internal-host) client=127.0.0.1 ' "$MILTER_LOG"

# 3. the wrong order: DKIM signs, then smime-milter rewrites the body
pf_conf "smtpd_milters=$DKIM_SIGN, $SMIME"
pf_reload >/dev/null
message wrong-order >"$T/wrong.eml"
pf_send alice@example.org bob@example.net "$T/wrong.eml" --port "$PF_SUB_PORT" \
    --xclient-addr 198.51.100.8 >/dev/null
out=$(sink_file wrong-order) || out=/dev/null
tap_check "wrong order: still S/MIME signed" -- smime_verify_openssl "$out" "$P"
tap_is "$(dkim_result "$out")" fail "wrong order (DKIM before S/MIME): the DKIM signature breaks"

# 4. inbound: the MX listener runs the verifier, then smime-milter
# (the message of step 1 as it left: found in the sink by arrival, since
# its Message-ID is that of step 1)
n=$(pf_sink_count)
pf_send alice@example.org bob@example.net "$T/outbound.eml" --port "$(pf_port mx)" \
    --xclient-addr 198.51.100.7 >/dev/null
tap_is "$?" 0 "MX (external client via XCLIENT): accepted"
pf_wait_sink $((n + 1)) 30
out=$(pf_sink_files | tail -n 1)
tap_check "MX: the verifier stamped dkim=pass" -- \
    grep -Eq '^Authentication-Results: dkim-verifier\.test;' "$out"
tap_is "$(sed -e 's/\r$//' "$out" | sed -n '/^Authentication-Results: dkim-verifier/,/dkim=/p' |
    sed -n 's/.*dkim=\([a-z]*\).*/\1/p' | head -n 1)" pass "MX: dkim=pass after our outbound rewrite"
tap_check "milter log: inbound (external), from 198.51.100.7" -- \
    grep -q 'inbound (external) client=198.51.100.7' "$MILTER_LOG"
tap_check "MX: the S/MIME signature still verifies" -- smime_verify_openssl "$out" "$P"
tap_done
