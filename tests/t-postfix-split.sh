#!/bin/bash
# t-postfix-split: SplitRecipients behind a relay.  Postfix A (no milter)
# relays to Postfix B (smime-milter, SplitRecipients yes), which relays to
# the sink.  A message to two recipients with certificates and one without
# ends as two deliveries: one encrypted to the certificate holders, one
# signed only; no recipient is lost.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
mkdir -p "$T/keys" "$T/certs"
install -m 600 "$P/alice.pem" "$T/keys/alice.pem"
cp "$P/bob.crt" "$P/carol.crt" "$P/inter.crt" "$T/certs/"
cat >"$T/c.conf" <<EOC
KeyStore keys
TrustAnchors pki/trust.pem
CertificateStore certs
InternalHosts 127.0.0.0/8
SplitRecipients yes
EOC
milter_start "$T/c.conf" || { echo "Bail out! milter"; exit 1; }

at_exit 'pf_use "$T/pfB" >/dev/null 2>&1; pf_stop >/dev/null 2>&1; pf_use "$T/pfA" >/dev/null 2>&1; pf_stop >/dev/null 2>&1'
pf_init "$T/pfB" >/dev/null || { echo "Bail out! pf_init B"; exit 1; }
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start B"; exit 1; }
B_PORT=$PF_PORT
pf_init "$T/pfA" >/dev/null || { echo "Bail out! pf_init A"; exit 1; }
pf_conf "relayhost=[127.0.0.1]:$B_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start A"; exit 1; }

printf 'From: Alice <alice@example.org>\nTo: bob@example.net, nocert@example.org, carol@example.org\nSubject: split me\n\nTo three people.\n' >"$T/m.eml"
pf_send alice@example.org bob@example.net,nocert@example.org,carol@example.org "$T/m.eml" >/dev/null
tap_is "$?" "0" "relay A accepts the message for three recipients"
pf_use "$T/pfB" >/dev/null
pf_wait_sink 1 30
tap_ok $? "the first transaction arrives"
tap_check "relay A was told 452 4.5.3 for the odd recipient" -- \
    bash -c "grep -q 'nocert@example.org.*452 4.5.3' '$T/pfA/log/maillog' || { sleep 1; grep -q 'nocert@example.org.*452 4.5.3' '$T/pfA/log/maillog'; }"
pf_use "$T/pfA" >/dev/null
for _ in $(seq 1 30); do
    pf_flush >/dev/null 2>&1
    pf_use "$T/pfB" >/dev/null
    [ "$(pf_sink_count)" -ge 2 ] && break
    pf_use "$T/pfA" >/dev/null
    sleep 1
done
pf_use "$T/pfB" >/dev/null
tap_is "$(pf_sink_count)" "2" "two deliveries at the sink"
enc=
plain=
for f in $(pf_sink_files); do
    if grep -qi '^Content-Type: application/pkcs7-mime' "$f"; then enc=$f; else plain=$f; fi
done
tap_is "$(pf_sink_rcpts "$enc" | sort | tr '\n' ' ')" "bob@example.net carol@example.org " "encrypted copy: the certificate holders"
tap_check "bob decrypts his copy and the signature inside verifies" -- \
    bash -c "openssl cms -decrypt -recip '$P/bob.crt' -inkey '$P/bob.key' -in '$enc' -out '$T/dec' && openssl cms -verify -CAfile '$P/trust.pem' -in '$T/dec' -out /dev/null"
tap_check "carol (EC) decrypts hers" -- openssl cms -decrypt -recip "$P/carol.crt" -inkey "$P/carol.key" -in "$enc" -out /dev/null
tap_is "$(pf_sink_rcpts "$plain" | tr '\n' ' ')" "nocert@example.org " "the other copy: the recipient without certificate"
tap_check "that copy is signed, not encrypted, and verifies" -- smime_verify_openssl "$plain" "$P"
tap_check "the milter logged the split" -- grep -q 'split=deferred-some' "$MILTER_LOG"
tap_done
