#!/bin/bash
# t-postfix-sign: the real smime-milter behind a real private Postfix signs
# outbound mail; OpenSSL, NSS cmsutil and gpgsm verify every result; the
# content of every part survives; unsigned cases are stamped with the
# reason; direction rules and SIGHUP reloads work; smime-milter-ctl
# process gives the same verdicts offline.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

DATA=$SRCDIR/tests/data/outbound
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki

# key store: free-form names and folders, as an admin would drop them
mkdir -p "$T/keys/users" "$T/keys/domain"
cp "$P/alice.p12" "$T/keys/users/alice.p12"
cp "$P/carol.pem" "$T/keys/users/"
cp "$P/dave-sign.pem" "$P/dave-enc.pem" "$T/keys/users/"
cp "$P/expired.pem" "$T/keys/users/erin-old.pem"
cp "$P/domain.crt" "$P/domain.key" "$T/keys/domain/"
chmod 600 "$T"/keys/*/*
install -m 600 "$P/passphrase" "$T/keys.pass"
write_conf() { # write_conf INTERNALHOSTS OUTBOUNDDAEMONS
    cat >"$T/smime-milter.conf" <<EOC
# written by t-postfix-sign
KeyStore keys
KeyStorePassphraseFile keys.pass
TrustAnchors pki/trust.pem
SignDomainKeys yes
InternalHosts $1
OutboundDaemons $2
TempDirectory $T
MaxMemoryBody 16k
LogLevel info
EOC
}
write_conf "127.0.0.0/8" ""
tap_check "smime-milter -n accepts the configuration and key store" -- \
    "$MILTER" -n -c "$T/smime-milter.conf"
milter_start "$T/smime-milter.conf" || { echo "Bail out! milter"; exit 1; }

pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT" \
    "non_smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; cat "$(pf_log)"; exit 1; }

sent=0
# send FROM FILE [port]: relay through Postfix, echo the sink file
send() {
    local port_args=()
    [ -n "${3:-}" ] && port_args=(--port "$3")
    if ! pf_send "$1" bob@example.net "$2" "${port_args[@]}" >/dev/null; then
        echo "# pf_send failed: $(cat "$PF_LAST_REPLY")" >&2
        return 1
    fi
    sent=$((sent + 1))
    pf_sink_file_of_last 30
}
headers_of() { sed -e 's/\r$//' -e '/^$/q' "$1"; }
hdr() { headers_of "$2" | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*: *//'; }

for f in "$DATA"/*.eml; do
    name=$(basename "$f" .eml)
    out=$(send alice@example.org "$f") || { tap_ok 1 "$name: relayed"; continue; }
    tap_ok 0 "$name: relayed through Postfix with the milter"
    ct=$(hdr Content-Type "$out")
    case $ct in
    multipart/signed*protocol=\"application/pkcs7-signature\"*micalg=sha-256*) tap_ok 0 "$name: multipart/signed, micalg=sha-256" ;;
    *) tap_ok 1 "$name: multipart/signed (got: $ct)" ;;
    esac
    tap_check "$name: openssl cms -verify -purpose smimesign" -- smime_verify_openssl "$out" "$P"
    tap_check "$name: NSS cmsutil verifies" -- smime_verify_nss "$out" "$P"
    tap_check "$name: gpgsm verifies" -- smime_verify_gpgsm "$out" "$P"
    leaves "$f" >"$T/want.leaves"
    leaves "$out" >"$T/got.leaves"
    tap_check "$name: every part's decoded content survived" -- \
        cmp "$T/want.leaves" "$T/got.leaves"
    for h in From To Subject Date Message-ID; do
        want=$(hdr "$h" "$f")
        [ -n "$want" ] || continue
        tap_is "$(hdr "$h" "$out")" "$want" "$name: $h unchanged outside"
    done
    tap_is "$(hdr X-SMIME-Milter "$out")" "signed=alice@example.org; encrypted=no (missing-certificate)" "$name: stamp"
    tap_not "$name: no Content-Transfer-Encoding outside" -- \
        grep -qi '^Content-Transfer-Encoding:' <(headers_of "$out")
    cp "$out" "$T/signed-$name.eml"
done
tap_check "log has one summary line per signed message" -- \
    test "$(grep -c 'outbound (internal-host) .* result=signed signer=alice@example.org' "$MILTER_LOG")" -ge 6

# tampering after signing must be caught by all three engines: the
# first letter of the signed text changes case (whatever its encoding)
perl -0pe 's/(\r?\n--[^\r\n]+\r?\n(?:[^\r\n]+\r?\n)*\r?\n)([A-Za-z])/$1 . ($2 eq uc $2 ? lc $2 : uc $2)/e' \
    "$T/signed-plain-ascii.eml" >"$T/tampered.eml"
tap_not "tampered: the copy differs" -- cmp -s "$T/signed-plain-ascii.eml" "$T/tampered.eml"
tap_not "tampered: openssl rejects" -- smime_verify_openssl "$T/tampered.eml" "$P"
tap_not "tampered: NSS rejects" -- smime_verify_nss "$T/tampered.eml" "$P"
tap_not "tampered: gpgsm rejects" -- smime_verify_gpgsm "$T/tampered.eml" "$P"

# a text line starting with "From " (plain-ascii has one) does not stay
# one: a mailbox writer on the way turns such lines into ">From "
tap_not "no line of the signed message starts with \"From \"" -- \
    grep -q '^From ' <(sed '1,/^\r\?$/d' "$T/signed-plain-ascii.eml")
sed 's/^From />From /' "$T/signed-plain-ascii.eml" >"$T/mboxed.eml"
tap_check "after mbox \">From \" quoting the signature still verifies" -- \
    smime_verify_openssl "$T/mboxed.eml" "$P"

# an already-signed message passes unchanged
printf 'Subject: pre-signed\nContent-Type: text/plain\n\nsigned by carol before\n' >"$T/inner.txt"
openssl cms -sign -in "$T/inner.txt" -signer "$P/carol.crt" -inkey "$P/carol.key" \
    -certfile "$P/inter.crt" -md sha256 -crlfeol \
    -from carol@example.org -to bob@example.net -subject "already signed" >"$T/presigned.eml"
out=$(send carol@example.org "$T/presigned.eml")
tap_is "$(hdr X-SMIME-Milter "$out")" "skipped=already-protected" "already signed: stamped skipped"
sed -e 's/\r$//' -e '1,/^$/d' "$out" >"$T/got.body"
sed -e 's/\r$//' -e '1,/^$/d' "$T/presigned.eml" >"$T/want.body"
tap_check "already signed: body byte-identical" -- cmp "$T/want.body" "$T/got.body"
tap_check "already signed: still verifies" -- smime_verify_openssl "$out" "$P"

# separate signing and encryption certificates: SMIMEEncryptionKeyPreference
sed 's/^From: .*/From: Dave <dave@example.org>/' "$DATA/plain-ascii.eml" >"$T/dave.eml"
out=$(send dave@example.org "$T/dave.eml")
tap_check "dave (signing-only cert): verifies" -- smime_verify_openssl "$out" "$P"
smime_split "$out" "$T/dave.content" "$T/dave.p7s" >/dev/null 2>&1
openssl cms -cmsout -print -inform DER -in "$T/dave.p7s" >"$T/dave.print" 2>&1
tap_check "dave: SMIMEEncryptionKeyPreference attribute present" -- grep -q 'id-smime-aa-encrypKeyPref' "$T/dave.print"
openssl pkcs7 -inform DER -in "$T/dave.p7s" -print_certs 2>/dev/null >"$T/dave.certs"
enc_serial=$(openssl x509 -in "$P/dave-enc.crt" -noout -serial | cut -d= -f2)
tap_check "dave: encryption certificate included for harvesting" -- \
    grep -q "$(openssl x509 -in "$P/dave-enc.crt" -noout -subject | sed 's/^subject=//')" "$T/dave.certs"
tap_check "dave: preference names the encryption cert's serial" -- \
    grep -qi "${enc_serial}" <(tr -d ' :\n' <"$T/dave.print" | tr 'a-f' 'A-F')
tap_check "dave: signer is the signing-only certificate" -- \
    test "$(smime_signer_openssl "$out" "$P")" = "dave@example.org"

# ECDSA P-256 signer
sed 's/^From: .*/From: Carol <carol@example.org>/' "$DATA/utf8-8bit.eml" >"$T/carol.eml"
out=$(send carol@example.org "$T/carol.eml")
tap_check "carol (ECDSA P-256): openssl verifies" -- smime_verify_openssl "$out" "$P"
tap_check "carol (ECDSA P-256): NSS verifies" -- smime_verify_nss "$out" "$P"
tap_check "carol (ECDSA P-256): gpgsm verifies" -- smime_verify_gpgsm "$out" "$P"

# domain key for a sender without a key of their own
sed 's/^From: .*/From: Zed <zed@example.org>/' "$DATA/plain-ascii.eml" >"$T/zed.eml"
out=$(send zed@example.org "$T/zed.eml")
tap_is "$(hdr X-SMIME-Milter "$out")" "signed=zed@example.org (domain key); encrypted=no (missing-certificate)" "zed: signed with the domain key"
tap_check "zed: domain-key signature verifies" -- smime_verify_openssl "$out" "$P"

# no key, expired key: delivered unsigned, with the reason
sed 's/^From: .*/From: Nobody <nobody@example.net>/' "$DATA/plain-ascii.eml" >"$T/nokey.eml"
out=$(send nobody@example.net "$T/nokey.eml")
tap_is "$(hdr X-SMIME-Milter "$out")" "signed=no (no-signing-key); encrypted=no (missing-certificate)" "no key: unsigned, stamped"
tap_check "no key: body unchanged" -- cmp <(sed -e 's/\r$//' -e '1,/^$/d' "$out") <(sed '1,/^$/d' "$T/nokey.eml")
sed 's/^From: .*/From: Erin <erin@example.org>/' "$DATA/plain-ascii.eml" >"$T/erin.eml"
out=$(send erin@example.org "$T/erin.eml")
tap_is "$(hdr X-SMIME-Milter "$out")" "signed=erin@example.org (domain key); encrypted=no (missing-certificate)" "own key expired: the domain key signs instead"
tap_check "expired own key: domain-key signature verifies" -- smime_verify_openssl "$out" "$P"

# not a signing oracle: a client cannot get someone else's From signed
sed 's/^From: .*/From: CEO <alice@example.org>/' "$DATA/plain-ascii.eml" >"$T/spoof.eml"
out=$(send mallory@example.net "$T/spoof.eml")
tap_is "$(hdr X-SMIME-Milter "$out")" "signed=no (from-mismatch); encrypted=no (missing-certificate)" "From != envelope sender: not signed"
tap_not "From != envelope sender: body not signed" -- grep -qi '^Content-Type: multipart/signed' <(headers_of "$out")

# a forged stamp never survives
{ echo "X-SMIME-Milter: signed=ceo@example.org"; echo "x-smime-milter: signed=forged"; cat "$DATA/plain-ascii.eml"; } >"$T/forged.eml"
out=$(send alice@example.org "$T/forged.eml")
tap_is "$(headers_of "$out" | grep -ci '^x-smime-milter:')" "1" "forged stamps removed, ours added"
tap_is "$(hdr X-SMIME-Milter "$out")" "signed=alice@example.org; encrypted=no (missing-certificate)" "the remaining stamp is ours"

# direction: only trusted clients get signed; reload with SIGHUP
write_conf "192.0.2.0/24" "ORIGINATING"
kill -HUP "$MILTER_PID"
for _ in $(seq 1 50); do grep -q 'reloaded' "$MILTER_LOG" && break; sleep 0.1; done
tap_check "SIGHUP reloads the configuration" -- grep -q "reloaded $T/smime-milter.conf" "$MILTER_LOG"
out=$(send alice@example.org "$T/forged.eml")
tap_is "$(headers_of "$out" | grep -i '^x-smime-milter:')" "X-SMIME-Milter: decrypted=no (not-encrypted); verified=none" "inbound (external client): forged stamps removed, only the inbound stamp added"
tap_not "inbound: not signed" -- grep -qi '^Content-Type: multipart/signed' <(headers_of "$out")
out=$(send alice@example.org "$DATA/plain-ascii.eml" "$PF_SUB_PORT")
tap_is "$(hdr X-SMIME-Milter "$out")" "signed=alice@example.org; encrypted=no (missing-certificate)" "submission service (ORIGINATING): outbound, signed"
tap_check "log names the reasons" -- grep -q 'outbound (daemon)' "$MILTER_LOG"
tap_check "log names inbound/external" -- grep -q 'inbound (external)' "$MILTER_LOG"

# a broken reload keeps the running configuration
echo "NoSuchKey yes" >>"$T/smime-milter.conf"
kill -HUP "$MILTER_PID"
for _ in $(seq 1 50); do grep -q 'reload failed' "$MILTER_LOG" && break; sleep 0.1; done
tap_check "broken reload is refused with file:line" -- grep -q "reload failed, keeping the running configuration: $T/smime-milter.conf:11: unknown key \"NoSuchKey\"" "$MILTER_LOG"
out=$(send alice@example.org "$DATA/plain-ascii.eml" "$PF_SUB_PORT")
tap_check "after a broken reload the old configuration still signs" -- smime_verify_openssl "$out" "$P"

# the offline pipeline gives the same verdicts
write_conf "127.0.0.0/8" ""
for f in "$DATA"/*.eml; do
    name=$(basename "$f" .eml)
    "$CTL" -c "$T/smime-milter.conf" process --outbound --from alice@example.org \
        --rcpt bob@example.net <"$f" >"$T/ctl-$name.eml" 2>"$T/ctl.err"
    tap_check "ctl process $name: signed and verifies" -- smime_verify_openssl "$T/ctl-$name.eml" "$P"
    leaves "$T/ctl-$name.eml" >"$T/got.leaves"
    leaves "$f" >"$T/want.leaves"
    tap_check "ctl process $name: content survived" -- cmp "$T/want.leaves" "$T/got.leaves"
done
"$CTL" -c "$T/smime-milter.conf" process --outbound --from nobody@example.net \
    --rcpt bob@example.net <"$T/nokey.eml" >/dev/null 2>"$T/ctl.err"
tap_check "ctl process: no-key verdict matches the milter" -- grep -q 'result=unsigned.*reason=no-signing-key' "$T/ctl.err"
"$CTL" -c "$T/smime-milter.conf" process --outbound --from carol@example.org \
    --rcpt bob@example.net <"$T/presigned.eml" >/dev/null 2>"$T/ctl.err"
tap_check "ctl process: already-signed verdict matches the milter" -- grep -q 'result=skipped.*already-protected' "$T/ctl.err"

tap_check "no worker crash or restart in the milter log" -- bash -c "! grep -q 'worker died' '$MILTER_LOG'"
tap_done
