#!/bin/bash
# t-postfix-policy: the real smime-milter behind a real private Postfix
# encrypts outbound mail by recipient policy: opportunistic (all
# recipients have certificates -> encrypted, otherwise signed only),
# mandatory with MissingCertAction reject (5.7.1), tempfail (4.7.1) and
# hold (Postfix hold queue), SubjectTrigger, and a directory (slapd) that
# goes away: DirectoryFailureAction tempfail -> 451 4.4.3 and nothing is
# ever delivered in plaintext; continue -> opportunistic mail goes out
# signed, mandatory mail still tempfails; slapd back -> encrypted.
# Configurations are switched with SIGHUP reloads.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/slapd.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

# The stamp format of the specification for opportunistic mail that goes
# out unencrypted because a recipient lacks a certificate
NOENC_MISSING='encrypted=no (missing-certificate)'
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
at_exit 'smime_gpg_cleanup "$P"'

mkdir -p "$T/keys" "$T/certs"
cp "$P/alice.p12" "$T/keys/"
chmod 600 "$T"/keys/*
install -m 600 "$P/passphrase" "$T/keys.pass"
cp "$P/bob.crt" "$P/carol.crt" "$P/inter.crt" "$T/certs/"
cat "$P/root.crt" "$P/inter.crt" >"$T/anchors.pem"
CONF=$T/smime-milter.conf

write_conf() { # write_conf [KEY VALUE]...: common lines plus extras
    {
        echo "# written by t-postfix-policy"
        echo "KeyStore $T/keys"
        echo "KeyStorePassphraseFile $T/keys.pass"
        echo "TrustAnchors $T/anchors.pem"
        echo "InternalHosts 127.0.0.0/8"
        echo "TempDirectory $T"
        echo "LogLevel info"
        while [ $# -ge 2 ]; do echo "$1 $2"; shift 2; done
    } >"$CONF"
}
reload() { # reload: SIGHUP the milter, wait for its next reload line
    local before
    before=$(grep -c 'reloaded\|reload failed' "$MILTER_LOG")
    kill -HUP "$MILTER_PID"
    for _ in $(seq 1 100); do
        [ "$(grep -c 'reloaded\|reload failed' "$MILTER_LOG")" -gt "$before" ] && break
        sleep 0.1
    done
    grep 'reloaded\|reload failed' "$MILTER_LOG" | tail -n 1 | grep -q "reloaded $CONF"
}

write_conf CertificateStore "$T/certs"
tap_check "smime-milter -n accepts the configuration" -- "$MILTER" -n -c "$CONF"
milter_start "$CONF" || { echo "Bail out! milter"; exit 1; }

pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT" \
    "non_smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; cat "$(pf_log)"; exit 1; }

sent=0
# send FROM RCPTS FILE: relay through Postfix; 0 = accepted and arrived
# at the sink (the sink file in $OUT), else pf_send's status (1/2/3) or
# 9 when nothing arrived
send() {
    local rc=0
    OUT=
    pf_send "$1" "$2" "$3" >/dev/null || rc=$?
    [ "$rc" -eq 0 ] || return "$rc"
    sent=$((sent + 1))
    OUT=$(pf_sink_file_of_last 30) || { sent=$((sent - 1)); return 9; }
}
reply() { tr -d '\r' <"$PF_LAST_REPLY" | tr '\n' ' '; }
headers_of() { sed -e 's/\r$//' -e '/^$/q' "$1"; }
hdr() { headers_of "$2" | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*: *//'; }
ctype() {
    headers_of "$1" | awk '/^[^ \t]/ { on = (tolower(substr($0, 1, 13)) == "content-type:") } on' |
        tr -d '\n' | tr '\t' ' ' | sed 's/^[^:]*: *//'
}
is_encrypted() {
    case $(ctype "$1") in
    'application/pkcs7-mime;'*'smime-type=enveloped-data'*) return 0 ;;
    *) echo "Content-Type: $(ctype "$1")"; return 1 ;;
    esac
}
is_signed_only() {
    case $(ctype "$1") in
    multipart/signed*) smime_verify_openssl "$1" "$P" ;;
    *) echo "Content-Type: $(ctype "$1")"; return 1 ;;
    esac
}
dec() { # dec FILE USER OUT
    smime_decrypt_openssl "$1" "$P/$2.crt" "$P/$2.key" "$3"
}
no_new_sink() { # no_new_sink: nothing arrived beyond $sent (waits 2 s)
    sleep 2
    [ "$(pf_sink_count)" -eq "$sent" ] || { echo "sink has $(pf_sink_count), expected $sent"; return 1; }
}

# the input
{
    echo "From: Alice <alice@example.org>"
    echo "To: Bob <bob@example.net>"
    echo "Subject: quarterly numbers"
    echo "Date: Tue, 02 Jan 2024 10:00:00 +0100"
    echo "Message-ID: <t-postfix-policy.1@example.org>"
    sed '1,/^Subject:/d' "$SRCDIR/tests/data/outbound/attachments.eml"
} >"$T/msg.eml"
leaves "$T/msg.eml" >"$T/msg.leaves"

# ------------------------------------------------------------ opportunistic
send alice@example.org bob@example.net,carol@example.org "$T/msg.eml"
tap_is "$?" 0 "opportunistic, all recipients have certificates: relayed"
tap_check "all have certificates: the relayed copy is encrypted" -- is_encrypted "$OUT"
tap_is "$(hdr X-SMIME-Milter "$OUT")" "signed=alice@example.org; encrypted=2/2; cipher=aes-256-cbc" "all have certificates: stamp"
tap_not "all have certificates: no plaintext in the relayed copy" -- grep -q 'See the attachments' "$OUT"
tap_check "all have certificates: bob decrypts (openssl)" -- dec "$OUT" bob "$T/opp.bob"
tap_check "all have certificates: carol decrypts (openssl, ECDH)" -- dec "$OUT" carol "$T/opp.carol"
tap_check "all have certificates: alice (EncryptToSelf) decrypts" -- dec "$OUT" alice "$T/opp.alice"
tap_not "all have certificates: a non-recipient key (dave-enc) cannot decrypt" -- dec "$OUT" dave-enc "$T/opp.dave"
tap_check "all have certificates: inner signature verifies" -- smime_verify_openssl "$T/opp.bob" "$P"
tap_check "all have certificates: gpgsm decrypts for bob" -- smime_decrypt_gpgsm "$OUT" "$P" "$T/opp.gpgsm"
leaves "$T/opp.bob" >"$T/got.leaves" 2>&1
tap_check "all have certificates: every part's decoded content survived" -- cmp "$T/msg.leaves" "$T/got.leaves"
tap_is "$(hdr Subject "$OUT")" "quarterly numbers" "all have certificates: outer Subject unchanged"
tap_is "$(hdr Message-ID "$OUT")" "<t-postfix-policy.1@example.org>" "all have certificates: outer Message-ID unchanged"
tap_is "$(pf_sink_rcpts "$OUT" | sort | tr '\n' ' ')" "bob@example.net carol@example.org " "all have certificates: both envelope recipients"

send alice@example.org bob@example.net,nocert@example.net "$T/msg.eml"
tap_is "$?" 0 "opportunistic, one recipient without a certificate: relayed"
tap_check "one lacks: signed only, verifies" -- is_signed_only "$OUT"
tap_is "$(hdr X-SMIME-Milter "$OUT")" "signed=alice@example.org; $NOENC_MISSING" "one lacks: stamp reason=missing-certificate"
leaves "$OUT" >"$T/got.leaves" 2>&1
tap_check "one lacks: content survived" -- cmp "$T/msg.leaves" "$T/got.leaves"

# a Bcc header never shows outside the encryption (Postfix's cleanup
# removes it before the milter; checked end to end)
sed '/^To: /a Bcc: Hidden <hidden@example.com>' "$T/msg.eml" >"$T/bcc.eml"
send alice@example.org bob@example.net "$T/bcc.eml"
tap_is "$?" 0 "Bcc header, only bob in the envelope: relayed"
tap_check "Bcc: encrypted" -- is_encrypted "$OUT"
tap_not "Bcc: no Bcc header in the relayed copy" -- grep -qi '^Bcc:' <(headers_of "$OUT")
tap_not "Bcc: the Bcc address is nowhere in clear" -- grep -q 'hidden@example.com' "$OUT"

# PolicyMap is re-read with the configuration
printf '# t-postfix-policy
@example.net mandatory
' >"$T/policy.map"
write_conf CertificateStore "$T/certs" PolicyMap "$T/policy.map"
tap_check "SIGHUP reload: PolicyMap @example.net mandatory" -- reload
send alice@example.org nocert@example.net "$T/msg.eml"
tap_is "$?" 2 "PolicyMap @example.net mandatory: recipient without a certificate rejected"
send alice@example.org nocert@example.org "$T/msg.eml"
tap_is "$?" 0 "PolicyMap: other domains stay opportunistic"
printf '# t-postfix-policy
@example.net mandatory
nocert@example.net opportunistic
' >"$T/policy.map"
tap_check "SIGHUP reload: PolicyMap changed" -- reload
send alice@example.org nocert@example.net "$T/msg.eml"
tap_is "$?" 0 "after the reload the new PolicyMap entry (exact, opportunistic) applies"
printf '@example.net mandatory
nocert@example.net whenever
' >"$T/policy.map"
kill -HUP "$MILTER_PID"
for _ in $(seq 1 50); do grep -q 'reload failed' "$MILTER_LOG" && break; sleep 0.1; done
tap_check "a bad PolicyMap line makes the reload fail, naming file:line" -- \
    grep -qF "$T/policy.map:2" <(grep 'reload failed' "$MILTER_LOG")
send alice@example.org nocert@example.net "$T/msg.eml"
tap_is "$?" 0 "after the failed reload the previous policy still applies"

# ------------------------------------------------------------ mandatory: reject
write_conf CertificateStore "$T/certs" EncryptionPolicy mandatory MissingCertAction reject
tap_check "SIGHUP reload: mandatory/reject" -- reload
send alice@example.org bob@example.net,nocert@example.net "$T/msg.eml"
tap_is "$?" 2 "mandatory + reject, one lacks: 5xx at end of DATA"
tap_check "mandatory + reject: reply is 550 5.7.1 no valid S/MIME certificate for nocert@example.net" -- \
    grep -qF '550 5.7.1 no valid S/MIME certificate for nocert@example.net: no certificate found' <(reply)
tap_check "mandatory + reject: the reply text contains 5.7.1 no valid S/MIME certificate for" -- \
    grep -qF '5.7.1 no valid S/MIME certificate for' "$PF_LAST_REPLY"
tap_check "mandatory + reject: nothing relayed" -- no_new_sink
tap_is "$(pf_queue_count)" 0 "mandatory + reject: nothing queued"
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 0 "mandatory, certificate present: relayed"
tap_check "mandatory, certificate present: encrypted" -- is_encrypted "$OUT"
tap_check "mandatory, certificate present: bob decrypts" -- dec "$OUT" bob "$T/mand.bob"

# ------------------------------------------------------------ mandatory: tempfail
write_conf CertificateStore "$T/certs" EncryptionPolicy mandatory MissingCertAction tempfail
tap_check "SIGHUP reload: mandatory/tempfail" -- reload
send alice@example.org nocert@example.net "$T/msg.eml"
tap_is "$?" 1 "mandatory + tempfail: 4xx at end of DATA"
tap_check "mandatory + tempfail: reply is 451 4.7.1 no valid S/MIME certificate for nocert@example.net" -- \
    grep -qF '451 4.7.1 no valid S/MIME certificate for nocert@example.net: no certificate found' <(reply)
tap_check "mandatory + tempfail: nothing relayed" -- no_new_sink
tap_is "$(pf_queue_count)" 0 "mandatory + tempfail: nothing queued"

# ------------------------------------------------------------ mandatory: hold
write_conf CertificateStore "$T/certs" EncryptionPolicy mandatory MissingCertAction hold
tap_check "SIGHUP reload: mandatory/hold" -- reload
sed 's/^Subject: .*/Subject: hold me/' "$T/msg.eml" >"$T/hold.eml"
pf_send alice@example.org nocert@example.net "$T/hold.eml" >/dev/null
tap_is "$?" 0 "mandatory + hold: accepted (2xx)"
for _ in $(seq 1 50); do [ "$(pf_queue_count hold)" -ge 1 ] && break; sleep 0.1; done
tap_is "$(pf_queue_count hold)" 1 "mandatory + hold: one message in Postfix's hold queue"
postqueue -c "$PF_CONFDIR" -p >"$T/postqueue.out" 2>&1
tap_check "mandatory + hold: postqueue -p lists it as held (!)" -- grep -qE '^[0-9A-F]+!' "$T/postqueue.out"
tap_check "mandatory + hold: postqueue -p names the recipient" -- grep -q 'nocert@example.net' "$T/postqueue.out"
tap_check "mandatory + hold: nothing relayed" -- no_new_sink
tap_check "mandatory + hold: Postfix logs the milter hold" -- pf_wait_log 'milter-hold' 5

# ------------------------------------------------------------ SubjectTrigger
write_conf CertificateStore "$T/certs" SubjectTrigger '[secure]'
tap_check "SIGHUP reload: opportunistic + SubjectTrigger" -- reload
sed 's/^Subject: .*/Subject: [secure] quarterly numbers/' "$T/msg.eml" >"$T/trig.eml"
send alice@example.org nocert@example.net "$T/trig.eml"
tap_is "$?" 2 "SubjectTrigger: tagged message to a recipient without a certificate is rejected"
tap_check "SubjectTrigger: 550 5.7.1 reply" -- \
    grep -qF '550 5.7.1 no valid S/MIME certificate for nocert@example.net' <(reply)
send alice@example.org nocert@example.net "$T/msg.eml"
tap_is "$?" 0 "SubjectTrigger: an untagged message to the same recipient goes out (opportunistic)"
tap_check "SubjectTrigger: untagged message signed only" -- is_signed_only "$OUT"
send alice@example.org bob@example.net "$T/trig.eml"
tap_is "$?" 0 "SubjectTrigger: tagged message to bob relayed"
tap_check "SubjectTrigger: encrypted" -- is_encrypted "$OUT"
subj=$(hdr Subject "$OUT")
tap_is "$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$subj")" "quarterly numbers" "SubjectTrigger: tag removed from the relayed Subject"
tap_check "SubjectTrigger: bob decrypts" -- dec "$OUT" bob "$T/trig.bob"
tap_check "SubjectTrigger: inner signature verifies" -- smime_verify_openssl "$T/trig.bob" "$P"

# ------------------------------------------------------------ directory down
sh "$SRCDIR/tests/ldap/mkldif.sh" "$P" "$T/people.ldif" >"$T/mkldif.log" 2>&1 ||
    { cat "$T/mkldif.log"; echo "Bail out! mkldif"; exit 1; }
at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_init "$T/ldap" >/dev/null && ldap_start >/dev/null && ldap_add "$T/people.ldif" >/dev/null ||
    { echo "Bail out! slapd"; exit 1; }
ldap_conf() { # ldap_conf [KEY VALUE]...: certificates from slapd only
    write_conf LDAPURI "$LDAP_URI" LDAPBase dc=example,dc=org LDAPTimeout 2 "$@"
}
ldap_conf EncryptionPolicy mandatory DirectoryFailureAction tempfail
"$CTL" -c "$CONF" lookup bob@example.net >"$T/lookup.out" 2>&1
tap_check "fixture: bob's certificate comes from slapd" -- grep -q 'bob@example.net: 1 usable certificate (source: ldap)' "$T/lookup.out"
ldap_stop >/dev/null
tap_not "slapd is stopped" -- ldap_running
tap_check "SIGHUP reload: LDAP, mandatory, DirectoryFailureAction tempfail" -- reload
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 1 "directory down, mandatory: 4xx at end of DATA"
tap_check "directory down: reply is 451 4.4.3 directory lookup failed for bob@example.net, try again later" -- \
    grep -qF '451 4.4.3 directory lookup failed for bob@example.net, try again later' <(reply)
tap_check "directory down: NOTHING relayed (never plaintext)" -- no_new_sink
tap_is "$(pf_queue_count deferred active incoming maildrop)" 0 "directory down: nothing queued for later delivery"
# opportunistic with tempfail: a directory failure is not "no certificate"
ldap_conf EncryptionPolicy opportunistic DirectoryFailureAction tempfail
tap_check "SIGHUP reload: LDAP, opportunistic, DirectoryFailureAction tempfail" -- reload
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 1 "directory down, opportunistic + tempfail: 4xx (not sent unencrypted)"
tap_check "directory down, opportunistic + tempfail: 451 4.4.3" -- \
    grep -qF '451 4.4.3 directory lookup failed for bob@example.net, try again later' <(reply)
# continue: opportunistic goes out signed, mandatory still tempfails
ldap_conf EncryptionPolicy opportunistic DirectoryFailureAction continue
tap_check "SIGHUP reload: LDAP, opportunistic, DirectoryFailureAction continue" -- reload
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 0 "directory down, opportunistic + continue: relayed"
tap_check "directory down, opportunistic + continue: signed only" -- is_signed_only "$OUT"
tap_is "$(hdr X-SMIME-Milter "$OUT")" "signed=alice@example.org; $NOENC_MISSING" \
    "directory down, opportunistic + continue: treated as no certificate"
ldap_conf EncryptionPolicy mandatory DirectoryFailureAction continue
tap_check "SIGHUP reload: LDAP, mandatory, DirectoryFailureAction continue" -- reload
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 1 "directory down, mandatory + continue: still 4xx"
tap_check "directory down, mandatory + continue: 451 4.4.3" -- \
    grep -qF '451 4.4.3 directory lookup failed for bob@example.net, try again later' <(reply)
tap_check "directory down, mandatory + continue: nothing relayed" -- no_new_sink
# back to mandatory + tempfail, then slapd returns
ldap_conf EncryptionPolicy mandatory DirectoryFailureAction tempfail
tap_check "SIGHUP reload: LDAP, mandatory, tempfail again" -- reload
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 1 "directory still down: 4xx"
uri=$LDAP_URI
ldap_start >/dev/null || { echo "Bail out! slapd restart"; exit 1; }
if [ "$LDAP_URI" != "$uri" ]; then   # slapd lost its port to a race
    tap_diag "slapd moved to $LDAP_URI; reloading"
    ldap_conf EncryptionPolicy mandatory DirectoryFailureAction tempfail
    reload
fi
send alice@example.org bob@example.net "$T/msg.eml"
tap_is "$?" 0 "slapd back: the retried message is relayed"
tap_check "slapd back: encrypted" -- is_encrypted "$OUT"
tap_is "$(hdr X-SMIME-Milter "$OUT")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "slapd back: stamp"
tap_check "slapd back: bob decrypts (certificate from LDAP)" -- dec "$OUT" bob "$T/ldap.bob"
tap_check "slapd back: inner signature verifies" -- smime_verify_openssl "$T/ldap.bob" "$P"

tap_check "no worker crash or restart in the milter log" -- bash -c "! grep -q 'worker died' '$MILTER_LOG'"
tap_done
