#!/bin/bash
# t-postfix-inbound: the real smime-milter behind a real private Postfix
# (port 25, not an internal client: inbound) decrypts and verifies mail:
# sign-then-encrypt by OpenSSL arrives decrypted, byte for byte, with
# Authentication-Results at the top and a signature that still verifies
# with OpenSSL and NSS; a large message spills to disk and survives; a
# relayed recipient keeps it encrypted, and so does a local recipient it
# was not encrypted to; a protected Subject comes back; forged
# Authentication-Results and X-SMIME-Milter fields never reach the
# mailbox; a verified signature from
# a new correspondent is harvested and the milter's next outbound message
# to them (through the submission port) is encrypted.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/smime-check.sh"
. "$SRCDIR/tests/lib/smime-make.sh"

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
ID=mx.test.example
mkdir -p "$T/keys" "$T/harvest"
cp "$P/bob.p12" "$P/alice.p12" "$T/keys/"
chmod 600 "$T"/keys/*
install -m 600 "$P/passphrase" "$T/keys.pass"
cat >"$T/smime-milter.conf" <<EOC
KeyStore keys
KeyStorePassphraseFile keys.pass
TrustAnchors pki/trust.pem
AuthservID $ID
InternalHosts 192.0.2.0/24
OutboundDaemons ORIGINATING
LocalDomains example.net example.org
Harvest yes
HarvestStore harvest
TempDirectory $T
MaxMemoryBody 16k
PidFile $T/milter.pid
StatsFile $T/stats
StatsInterval 1
EOC
tap_check "smime-milter -n accepts the configuration" -- "$MILTER" -n -c "$T/smime-milter.conf"
milter_start "$T/smime-milter.conf" || { echo "Bail out! milter"; exit 1; }
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT" "milter_default_action=tempfail"
pf_start >/dev/null || { echo "Bail out! pf_start"; cat "$(pf_log)"; exit 1; }

crlf() { sed -e 's/\r$//' -e 's/$/\r/'; }
body_of() { sed -e '1,/^\r\{0,1\}$/d' "$1" | crlf; }
hdr() { sed -e '/^\r\{0,1\}$/q' "$2" | grep -i "^$1:" | head -n 1 | sed -e 's/^[^:]*: *//' -e 's/\r$//'; }
first_field() { pf_strip_received "$1" | sed -n '1s/:.*//p'; }
ar() { # the smime= results of our A-R fields, in order
    sed -e '/^\r\{0,1\}$/q' -e 's/\r$//' "$1" |
        awk '/^[^ \t]/ {if (h != "") print h; h = $0; next} {h = h " " $0} END {if (h != "") print h}' |
        grep -i "^Authentication-Results: *$ID;" | sed -n 's/.*smime=\([a-z]*\).*/\1/p' | paste -sd, -
}
msg() { # msg OUT FROM TO: header + entity (stdin), CRLF
    {
        printf 'From: <%s>\r\nTo: <%s>\r\nSubject: inbound through Postfix\r\n' "$2" "$3"
        printf 'Message-ID: <%s@test>\r\n' "$RANDOM$RANDOM"
        crlf
    } >"$1"
}
send() { # send FROM RCPT FILE [swaks args]: relay, print the sink file
    if ! pf_send "$1" "$2" "$3" "${@:4}" >/dev/null; then
        echo "# pf_send failed: $(cat "$PF_LAST_REPLY")" >&2
        return 1
    fi
    pf_sink_file_of_last 30
}

# the entity: text and a 200 KB attachment (past MaxMemoryBody)
{
    printf 'Content-Type: multipart/mixed; boundary="xyz"\r\n\r\n--xyz\r\n'
    printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nHello Bob.\r\n--xyz\r\n'
    printf 'Content-Type: application/octet-stream; name="data.bin"\r\n'
    printf 'Content-Transfer-Encoding: base64\r\n\r\n'
    head -c 150000 /dev/urandom | base64 -w 76 | crlf
    printf '\r\n--xyz--\r\n'
} >"$T/entity"
openssl cms -sign -binary -md sha256 -in "$T/entity" -signer "$P/alice.crt" -inkey "$P/alice.key" \
    -certfile "$P/chain.pem" -out "$T/signed" 2>/dev/null
crlf <"$T/signed" >"$T/signed.crlf"
openssl cms -encrypt -binary -aes-256-cbc -in "$T/signed.crlf" -out "$T/enc" -recip "$P/bob.crt" 2>/dev/null
msg "$T/m1" alice@example.org bob@example.net <"$T/enc"

out=$(send alice@example.org bob@example.net "$T/m1")
tap_ok $? "sign-then-encrypt mail relayed through Postfix with the milter"
tap_is "$(hdr X-SMIME-Milter "$out")" "decrypted=bob@example.net (aes-256-cbc); verified=pass" "stamp: decrypted and verified"
tap_is "$(ar "$out")" "pass" "Authentication-Results: smime=pass"
tap_is "$(first_field "$out")" "Authentication-Results" "the A-R field is at the top of the header"
tap_check "the decrypted signed entity arrives byte for byte" -- \
    cmp -s <(body_of "$out") <(body_of "$T/signed.crlf")
tap_is "$(hdr Content-Type "$out" | cut -d';' -f1)" "multipart/signed" "the Content-Type is the decrypted entity's"
tap_check "the delivered signature verifies with OpenSSL" -- smime_verify_openssl "$out" "$P"
tap_check "the delivered signature verifies with NSS" -- smime_verify_nss "$out" "$P"
tap_check "the milter logs the decryption key and verdict" -- \
    grep -q 'decrypted=bob@example.net .*sig1=pass signer1=alice@example.org' "$MILTER_LOG"

# the same through Thunderbird's and KMail's engines
nick=$(smime_nss_db "$P" "$T/nssdb")
smime_nss_sign_encrypt "$T/entity" "$T/nssdb" "$nick" "$T/nss.e" &&
    msg "$T/m.nss" alice@example.org bob@example.net <"$T/nss.e"
out=$(send alice@example.org bob@example.net "$T/m.nss")
tap_is "$(hdr X-SMIME-Milter "$out" | cut -d' ' -f1)" "decrypted=bob@example.net" "NSS cmsutil sign-then-encrypt: decrypted"
tap_is "$(ar "$out")" "pass" "NSS cmsutil opaque SHA-512 inside: pass"
smime_gpgsm_sign "$T/entity" "$P" "$T/g.s" && smime_gpgsm_encrypt "$T/g.s" "$P" "$T/g.e" &&
    msg "$T/m.gpgsm" alice@example.org bob@example.net <"$T/g.e"
smime_gpg_cleanup "$P"
out=$(send alice@example.org bob@example.net "$T/m.gpgsm")
tap_is "$(ar "$out")" "pass" "gpgsm sign-then-encrypt: decrypted, pass"
tap_check "gpgsm: the signed entity arrives byte for byte" -- cmp -s <(body_of "$out") <(body_of "$T/g.s")

# relayed: one recipient elsewhere
out=$(send alice@example.org "bob@example.net,carl@elsewhere.example" "$T/m1")
tap_ok $? "mail with a non-local recipient relayed"
tap_is "$(hdr X-SMIME-Milter "$out")" "decrypted=no (relayed); verified=none" "a non-local recipient keeps it encrypted"
tap_check "relayed: the encrypted body is untouched" -- cmp -s <(body_of "$out") <(body_of "$T/m1")

# not for every recipient: carol is local but was not encrypted to
out=$(send alice@example.org "bob@example.net,carol@example.org" "$T/m1")
tap_is "$(hdr X-SMIME-Milter "$out")" "decrypted=no (not-for-recipient); verified=none" \
    "a local recipient it was not encrypted to: it stays encrypted (no decryption oracle)"
tap_check "not for every recipient: the encrypted body is untouched" -- cmp -s <(body_of "$out") <(body_of "$T/m1")

# header protection: the real Subject comes back in place of "[...]"
printf '%s\r\n' 'Content-Type: text/plain; charset=utf-8; protected-headers="v1"' \
    'Subject: Quarterly numbers' 'From: <alice@example.org>' '' 'protected' >"$T/hp.ent"
openssl cms -encrypt -binary -aes-256-cbc -in "$T/hp.ent" -out "$T/hp.enc" -recip "$P/bob.crt" 2>/dev/null
msg "$T/m.hp" alice@example.org bob@example.net <"$T/hp.enc"
sed -i 's/^Subject: inbound through Postfix/Subject: [...]/' "$T/m.hp"
out=$(send alice@example.org bob@example.net "$T/m.hp")
tap_is "$(hdr Subject "$out")" "Quarterly numbers" "a protected Subject replaces the placeholder through Postfix"
tap_is "$(sed -e '/^\r\{0,1\}$/q' "$out" | grep -ci '^Subject:')" "1" "... in the one Subject field"

# binary inside the encryption (RFC 8551 3.1.2), past MaxMemoryBody: it
# arrives in base64, every byte as sent, and the message can go on by SMTP
{
    printf '%s\r\n' 'Content-Type: application/octet-stream; name="raw.bin"' \
        'Content-Transfer-Encoding: binary' ''
    head -c 300000 /dev/urandom >"$T/raw.bin"
    cat "$T/raw.bin"
} >"$T/bin.ent"
openssl cms -encrypt -binary -aes-256-cbc -in "$T/bin.ent" -out "$T/bin.enc" -recip "$P/bob.crt" 2>/dev/null
msg "$T/m.bin" alice@example.org bob@example.net <"$T/bin.enc"
out=$(send alice@example.org bob@example.net "$T/m.bin")
tap_is "$(hdr X-SMIME-Milter "$out"):$(hdr Content-Transfer-Encoding "$out")" \
    "decrypted=bob@example.net (aes-256-cbc); verified=none:base64" "binary content inside: decrypted, delivered in base64"
tap_check "binary content inside: every byte arrives as sent" -- \
    cmp "$T/raw.bin" <(sed -e '1,/^\r\{0,1\}$/d' "$out" | tr -d '\r' | base64 -d)
tap_check "binary content inside: no line over 998 bytes, no NUL" -- \
    perl -0777 -ne 'exit(/\0/ || /[^\r\n]{999}/ ? 1 : 0)' "$out"

# forgeries
{
    printf 'Authentication-Results: %s; smime=pass body.smime-identifier=ceo@example.org\r\n' "$ID"
    printf 'Authentication-results:\r\n (forged) %s;\r\n\tsmime=pass\r\n' "MX.TEST.EXAMPLE"
    printf 'X-SMIME-Milter: decrypted=ceo@example.org; verified=pass\r\n'
    printf 'X-Smime-Milter: verified=pass\r\n'
    printf 'Authentication-Results: upstream.example; spf=pass smtp.mailfrom=example.org\r\n'
    cat "$T/m1"
} >"$T/m2"
out=$(send alice@example.org bob@example.net "$T/m2")
tap_ok $? "mail with forged fields relayed"
tap_is "$(ar "$out")" "pass" "only our own A-R field remains (forged ones removed)"
tap_is "$(sed -e '/^\r\{0,1\}$/q' "$out" | grep -ci '^x-smime-milter:')" "1" "only our own X-SMIME-Milter field remains"
tap_check "an upstream server's A-R is kept" -- grep -q '^Authentication-Results: upstream.example; spf=pass' "$out"
tap_not "the forged identity is gone" -- grep -q 'ceo@example.org' "$out"

# harvest: carol (new correspondent) signs; her certificate serves replies
openssl cms -sign -binary -md sha256 -in "$T/entity" -signer "$P/carol.crt" -inkey "$P/carol.key" \
    -certfile "$P/chain.pem" 2>/dev/null | msg "$T/m3" carol@example.org bob@example.net
"$CTL" -c "$T/smime-milter.conf" lookup carol@example.org >/dev/null 2>&1
tap_is "$?" "1" "before: no certificate for carol"
out=$(send carol@example.org bob@example.net "$T/m3")
tap_is "$(ar "$out")" "pass" "carol's signed mail: pass"
"$CTL" -c "$T/smime-milter.conf" lookup carol@example.org >"$T/lookup" 2>&1
tap_is "$?" "0" "after: smime-milter-ctl lookup finds carol's certificate (harvested)"
printf 'From: <bob@example.net>\r\nTo: <carol@example.org>\r\nSubject: re\r\n\r\nthanks\r\n' >"$T/reply"
out=$(send bob@example.net carol@example.org "$T/reply" --port "$PF_SUB_PORT")
tap_ok $? "bob's reply relayed through the submission port"
tap_check "the running milter encrypts the reply to the harvested certificate (no reload)" -- \
    smime_decrypt_openssl "$out" "$P/carol.crt" "$P/carol.key" "$T/reply.dec"
# counters since start: written every StatsInterval, and on request
for _ in $(seq 1 30); do [ -s "$T/stats" ] && break; sleep 0.1; done
tap_check "StatsInterval: the daemon writes StatsFile by itself" -- grep -q '^messages.inbound [0-9]' "$T/stats"
# smime-milter-ctl stats signals the daemon (PidFile)
"$CTL" -c "$T/smime-milter.conf" stats >"$T/stats.out" 2>"$T/stats.err"
tap_is "$?" "0" "smime-milter-ctl stats: exit 0"
stat_of() { sed -n "s/^$1 //p" "$T/stats.out"; }
tap_is "$(stat_of messages.inbound)" "9" "stats: 9 inbound messages"
tap_is "$(stat_of messages.outbound)" "1" "stats: 1 outbound message"
tap_is "$(stat_of result.inbound.decrypted+verified)" "4" "stats: 4 decrypted and verified"
tap_is "$(stat_of decrypt.no.relayed)" "1" "stats: 1 not decrypted (relayed)"
tap_is "$(stat_of decrypt.no.not-for-recipient)" "1" "stats: 1 not decrypted (not for every recipient)"
tap_is "$(stat_of harvested)" "1" "stats: 1 certificate harvested"
tap_check "stats: signature verdicts and cache figures are there" -- \
    grep -q "^signature.pass [0-9]" "$T/stats.out" && grep -q "^cache.misses [0-9]" "$T/stats.out"
tap_check "the counters are logged too" -- grep -q 'stats: uptime=[0-9]* .*messages.inbound=9' "$MILTER_LOG"
tap_done
