#!/bin/bash
# t-inbound: inbound mail offline, through smime-milter-ctl process
# --inbound.  Messages are made at test time by three engines (OpenSSL
# cms, NSS cmsutil, gpgsm): RSA and ECDSA signers, SHA-1/256/512,
# detached and opaque, sign-then-encrypt, OAEP, GCM (AuthEnvelopedData),
# ECDH, an old expired key.  Checks: the decrypted entity equals the
# original byte for byte; Authentication-Results per layer; relay safety;
# forged A-R / X-SMIME-Milter removed in every spelling; tampering, an
# untrusted or revoked signer, a From mismatch; UnwrapOpaqueSigned,
# StripSignatures; harvesting for replies (and never from bad signatures).
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/smime-check.sh"
. "$SRCDIR/tests/lib/smime-make.sh"

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
at_exit 'smime_gpg_cleanup "$P"'
ID=mx.test.example

# bob (RSA, PKCS#12), carol (EC) and erin (expired) can decrypt here
mkdir -p "$T/keys" "$T/harvest"
cp "$P/bob.p12" "$P/carol.pem" "$T/keys/"
cp "$P/expired.pem" "$T/keys/erin-2024.pem"
chmod 600 "$T"/keys/*
install -m 600 "$P/passphrase" "$T/keys.pass"
conf() { # conf NAME [KEY VALUE]...: defaults unless given; prints the path
    local f=$T/$1.conf k
    shift
    declare -A v=([KeyStore]="$T/keys" [KeyStorePassphraseFile]="$T/keys.pass"
        [TrustAnchors]="$P/trust.pem" [CRLs]="$P/crl.pem" [AuthservID]="$ID"
        [TempDirectory]="$T")
    while [ $# -ge 2 ]; do v[$1]=$2; shift 2; done
    for k in "${!v[@]}"; do echo "$k ${v[$k]}"; done >"$f"
    echo "$f"
}
BASE=$(conf base)
tap_check "smime-milter -n accepts the inbound configuration" -- "$MILTER" -n -c "$BASE"

# the entity every message carries (CRLF, 8-bit text made 7-bit)
crlf() { sed 's/$/\r/'; }
printf '%s\n' 'Content-Type: text/plain; charset=utf-8' \
    'Content-Transfer-Encoding: quoted-printable' '' \
    'Gr=C3=BC=C3=9Fe from the inbound test.' 'Line two, with trailing space: ' \
    '-- ' 'sig' | crlf >"$T/entity"
# msg OUT FROM: outer header + a MIME entity (stdin) -> OUT
msg() {
    {
        printf 'From: <%s>\r\nTo: <bob@example.net>\r\nSubject: inbound test\r\n' "$2"
        printf 'Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n' "$RANDOM$RANDOM"
        sed 's/\r$//' | crlf # as SMTP carries it: CRLF throughout
    } >"$1"
}
# body_of FILE: everything after the header (line ends as on the wire)
body_of() { sed -e '1,/^\r\{0,1\}$/d' -e 's/\r$//' -e 's/$/\r/' "$1"; }
hdr() { sed -e '/^\r\{0,1\}$/q' "$2" | grep -i "^$1:" | head -n 1 | sed -e 's/^[^:]*: *//' -e 's/\r$//'; }
# process OUT IN [CONF] [RCPT...]: run the inbound pipeline
process() {
    local out=$1 in=$2 cf=${3:-$BASE}
    shift 3 2>/dev/null || shift $#
    local r=(--rcpt bob@example.net)
    [ $# -gt 0 ] && r=() && for a in "$@"; do r+=(--rcpt "$a"); done
    "$CTL" -c "$cf" process --inbound --from sender@example.org "${r[@]}" \
        <"$in" >"$out" 2>"$out.log"
}
# ar FILE: the smime= results of our Authentication-Results, in order
ar() {
    sed -e '/^\r\{0,1\}$/q' -e 's/\r$//' "$1" |
        awk '/^[^ \t]/ {if (h != "") print h; h = $0; next} {h = h " " $0} END {if (h != "") print h}' |
        grep -i "^Authentication-Results: *$ID;" | sed -n 's/.*smime=\([a-z]*\).*/\1/p' | paste -sd, -
}
stamp() { hdr X-SMIME-Milter "$1"; }
# same_entity OUT WANT: OUT's Content-* + body equal the entity WANT
same_entity() {
    [ "$(hdr Content-Type "$1")" = "$(hdr Content-Type "$2")" ] &&
        [ "$(hdr Content-Transfer-Encoding "$1")" = "$(hdr Content-Transfer-Encoding "$2")" ] &&
        cmp -s <(body_of "$1") <(body_of "$2")
}

# ---------------------------------------------------------------- OpenSSL
# openssl writes its base64 with bare LF: make it CRLF like SMTP
norm() { smime_norm "$1"; }
# ossl_sign IN OUT MD SIGNER [-nodetach]: S/MIME entity signed by SIGNER
ossl_sign() {
    openssl cms -sign -binary -crlfeol -md "$3" -in "$1" -signer "$P/$4.crt" \
        -inkey "$P/$4.key" -certfile "$P/chain.pem" ${5:+"$5"} -out "$2" 2>/dev/null &&
        norm "$2"
}
# ossl_encrypt IN OUT CIPHER CERT [keyopt]
ossl_encrypt() {
    openssl cms -encrypt -binary -crlfeol "-$3" -in "$1" -out "$2" \
        -recip "$4" ${5:+-keyopt "$5"} 2>/dev/null && norm "$2"
}
# the entity with the header of the message the signer signs
for md in sha1 sha256 sha512; do
    ossl_sign "$T/entity" "$T/s.$md" "$md" alice && msg "$T/m.dsig.$md" alice@example.org <"$T/s.$md"
    ossl_sign "$T/entity" "$T/o.$md" "$md" alice -nodetach && msg "$T/m.sig.$md" alice@example.org <"$T/o.$md"
done
ossl_sign "$T/entity" "$T/s.ec" sha256 carol && msg "$T/m.dsig.ec" carol@example.org <"$T/s.ec"

process "$T/r" "$T/m.dsig.sha256"
tap_is "$(ar "$T/r")" "pass" "openssl detached SHA-256 RSA: smime=pass"
tap_check "A-R names the signer, serial and issuer" -- bash -c \
    "grep -q 'body.smime-identifier=alice@example.org' '$T/r' && grep -q 'body.smime-serial=$(openssl x509 -in "$P/alice.crt" -noout -serial | sed 's/.*=//')' '$T/r' && grep -q 'body.smime-issuer=\"' '$T/r'"
tap_is "$(stamp "$T/r")" "decrypted=no (not-encrypted); verified=pass" "stamp of a signed message"
tap_check "the log line names verdict, signer and signing time" -- \
    grep -q 'sig1=pass signer1=alice@example.org serial1=[0-9A-F]* signed1=20[0-9-]*T[0-9:]*Z' "$T/r.log"
tap_check "the signed message is left byte for byte" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.dsig.sha256")
process "$T/r" "$T/m.dsig.sha512"
tap_is "$(ar "$T/r")" "pass" "openssl detached SHA-512: pass"
process "$T/r" "$T/m.dsig.sha1"
tap_is "$(ar "$T/r")" "policy" "SHA-1 signature: policy by default"
tap_check "SHA-1: the reason is given" -- grep -q 'reason="weak digest' "$T/r"
process "$T/r" "$T/m.dsig.sha1" "$(conf sha1 AllowSHA1Signatures yes)"
tap_is "$(ar "$T/r")" "pass" "SHA-1 signature with AllowSHA1Signatures yes: pass"
process "$T/r" "$T/m.sig.sha256"
tap_is "$(ar "$T/r")" "pass" "openssl opaque signed-data: pass"
tap_is "$(hdr Content-Type "$T/r" | cut -d';' -f1)" "application/pkcs7-mime" "opaque signed-data is kept by default"
process "$T/r" "$T/m.sig.sha256" "$(conf unwrap UnwrapOpaqueSigned yes)"
tap_is "$(ar "$T/r")" "pass" "UnwrapOpaqueSigned: still verified first"
tap_check "UnwrapOpaqueSigned: the entity replaces the signed-data" -- same_entity "$T/r" "$T/entity"
process "$T/r" "$T/m.dsig.sha256" "$(conf strip StripSignatures yes)"
tap_check "StripSignatures: a passing multipart/signed is unwrapped" -- same_entity "$T/r" "$T/entity"
tap_is "$(ar "$T/r")" "pass" "StripSignatures: the result is still recorded"
process "$T/r" "$T/m.dsig.sha256" "$(conf nover Verify no)"
tap_is "$(ar "$T/r"):$(stamp "$T/r")" ":decrypted=no (not-encrypted); verified=none" \
    "Verify no: signatures are not looked at, no Authentication-Results"
process "$T/r" "$T/m.dsig.ec"
tap_is "$(ar "$T/r")" "pass" "ECDSA P-256 signer: pass"

# tampering, untrusted, revoked, From mismatch, unparseable
sed 's/inbound test\./inbound TEST./' "$T/m.dsig.sha256" >"$T/m.bad"
process "$T/r" "$T/m.bad"
tap_is "$(ar "$T/r")" "fail" "altered signed content: fail"
# RFC 1847: exactly two parts; a third, unsigned one must not pass as signed
perl -0pe 's/(\r\n--([^\r\n]+)--\r\n)(?![\s\S]*\r\n--[^\r\n]+--\r\n)/\r\n--$2\r\nContent-Type: text\/plain\r\n\r\nunsigned\r\n--$2--\r\n/' \
    "$T/m.dsig.sha256" >"$T/m.third"
tap_check "(a third part was added)" -- grep -q '^unsigned' "$T/m.third"
process "$T/r" "$T/m.third"
tap_is "$(ar "$T/r")" "permerror" "multipart/signed with a third, unsigned part: permerror"
# RFC 5322: one From field, here with one mailbox; a reader might show
# the other address next to a pass
sed '0,/^From: /s//From: <carol@example.org>\r\nFrom: /' "$T/m.dsig.sha256" >"$T/m.2from"
process "$T/r" "$T/m.2from"
tap_is "$(ar "$T/r")" "policy" "a second From field: policy, not pass"
tap_check "(its reason)" -- grep -q 'reason="more than one From field"' "$T/r"
sed '0,/^From: <alice@example.org>/s//From: <alice@example.org>, <carol@example.org>/' "$T/m.dsig.sha256" >"$T/m.2addr"
process "$T/r" "$T/m.2addr"
tap_is "$(ar "$T/r")" "policy" "two mailboxes in From: policy, not pass"
ossl_sign "$T/entity" "$T/s.u" sha256 untrusted && msg "$T/m.untrusted" ursula@example.org <"$T/s.u"
process "$T/r" "$T/m.untrusted"
tap_is "$(ar "$T/r")" "neutral" "signer from an unknown root: neutral"
ossl_sign "$T/entity" "$T/s.rev" sha256 revoked && msg "$T/m.revoked" rita@example.org <"$T/s.rev"
process "$T/r" "$T/m.revoked"
tap_is "$(ar "$T/r")" "fail" "revoked signer (CRLs): fail"
# UnwrapOpaqueSigned leaves a failed signature around its content (the
# client shows the failure), and unwraps a neutral one
ossl_sign "$T/entity" "$T/o.rev" sha256 revoked -nodetach && msg "$T/m.orev" rita@example.org <"$T/o.rev"
process "$T/r" "$T/m.orev" "$(conf unwrap UnwrapOpaqueSigned yes)"
tap_is "$(ar "$T/r"):$(hdr Content-Type "$T/r" | cut -d';' -f1)" "fail:application/pkcs7-mime" \
    "UnwrapOpaqueSigned, revoked signer (fail): kept as opaque signed-data"
ossl_sign "$T/entity" "$T/o.u" sha256 untrusted -nodetach && msg "$T/m.ou" ursula@example.org <"$T/o.u"
process "$T/r" "$T/m.ou" "$(conf unwrap UnwrapOpaqueSigned yes)"
tap_is "$(ar "$T/r")" "neutral" "UnwrapOpaqueSigned, untrusted signer: neutral"
tap_check "UnwrapOpaqueSigned, neutral: unwrapped" -- same_entity "$T/r" "$T/entity"
msg "$T/m.forged-from" mallory@example.org <"$T/s.sha256"
process "$T/r" "$T/m.forged-from"
tap_is "$(ar "$T/r")" "policy" "signer is not the From address: policy"
msg "$T/m.case-from" Alice@EXAMPLE.org <"$T/s.sha256"
process "$T/r" "$T/m.case-from"
tap_is "$(ar "$T/r")" "pass" "From Alice@EXAMPLE.org, certificate alice@example.org: pass (case is no mismatch)"
ossl_sign "$T/entity" "$T/s.sam" sha256 signonly-eku && msg "$T/m.eku" sam@example.org <"$T/s.sam"
process "$T/r" "$T/m.eku"
tap_is "$(ar "$T/r")" "fail" "signer without emailProtection EKU: fail"
ossl_sign "$T/entity" "$T/s.weak" sha256 weak && msg "$T/m.weak" walter@example.org <"$T/s.weak"
process "$T/r" "$T/m.weak"
tap_is "$(ar "$T/r")" "policy" "1024-bit signer (MinKeyBits 2048): policy"
sed -e '/^MII/,$ s/^MII.*/MIIgarbage/' "$T/m.dsig.sha256" >"$T/m.garbage"
process "$T/r" "$T/m.garbage"
tap_ok $? "unparseable signature: processed, exit 0"
tap_is "$(ar "$T/r")" "permerror" "unparseable signature: permerror"
msg "$T/m.plain" alice@example.org <"$T/entity"
process "$T/r" "$T/m.plain"
tap_is "$(ar "$T/r")" "none" "no signature: smime=none"
tap_is "$(stamp "$T/r")" "decrypted=no (not-encrypted); verified=none" "stamp of plain mail"
# a signer that sends only its own certificate: the intermediate comes
# from the CertificateStore (or nowhere)
openssl cms -sign -binary -crlfeol -md sha256 -in "$T/entity" -signer "$P/alice.crt" \
    -inkey "$P/alice.key" -out "$T/s.alone" 2>/dev/null && norm "$T/s.alone" &&
    msg "$T/m.alone" alice@example.org <"$T/s.alone"
process "$T/r" "$T/m.alone"
tap_is "$(ar "$T/r")" "neutral" "signer certificate alone, intermediate unknown: neutral"
mkdir -p "$T/cs-inter"
cp "$P/inter.crt" "$T/cs-inter/"
process "$T/r" "$T/m.alone" "$(conf csinter CertificateStore "$T/cs-inter")"
tap_is "$(ar "$T/r")" "pass" "signer certificate alone, intermediate in the CertificateStore: pass"

# ---------------------------------------------------------- decryption
for c in aes-128-cbc aes-256-cbc aes-256-gcm; do
    ossl_encrypt "$T/entity" "$T/e.$c" "$c" "$P/bob.crt" && msg "$T/m.env.$c" alice@example.org <"$T/e.$c"
    process "$T/r" "$T/m.env.$c"
    tap_check "openssl $c to bob: decrypted entity equals the original" -- same_entity "$T/r" "$T/entity"
    tap_is "$(stamp "$T/r")" "decrypted=bob@example.net ($c); verified=none" "openssl $c: stamp"
done
tap_check "GCM arrives as AuthEnvelopedData" -- grep -q 'smime-type=authEnveloped-data' "$T/m.env.aes-256-gcm"
ossl_encrypt "$T/entity" "$T/e.oaep" aes-256-cbc "$P/bob.crt" rsa_padding_mode:oaep && msg "$T/m.oaep" alice@example.org <"$T/e.oaep"
process "$T/r" "$T/m.oaep"
tap_check "RSA-OAEP key transport: decrypted" -- same_entity "$T/r" "$T/entity"
ossl_encrypt "$T/entity" "$T/e.ecdh" aes-128-cbc "$P/carol.crt" && msg "$T/m.ecdh" alice@example.org <"$T/e.ecdh"
process "$T/r" "$T/m.ecdh" "$BASE" carol@example.org
tap_check "ECDH (carol, P-256): decrypted" -- same_entity "$T/r" "$T/entity"
ossl_encrypt "$T/entity" "$T/e.old" aes-256-cbc "$P/expired.crt" && msg "$T/m.old" alice@example.org <"$T/e.old"
process "$T/r" "$T/m.old" "$BASE" erin@example.org
tap_check "key history: mail to an expired key still decrypts" -- same_entity "$T/r" "$T/entity"
openssl cms -encrypt -binary -crlfeol -aes-256-cbc -in "$T/entity" -out "$T/e.ski" \
    -recip "$P/bob.crt" -keyid 2>/dev/null && msg "$T/m.ski" alice@example.org <"$T/e.ski"
process "$T/r" "$T/m.ski"
tap_check "RecipientInfo by subject key identifier (as Outlook): decrypted" -- same_entity "$T/r" "$T/entity"
openssl cms -encrypt -binary -aes-256-cbc -in "$T/entity" -out "$T/e.two" \
    -recip "$P/carol.crt" -recip "$P/bob.crt" 2>/dev/null && norm "$T/e.two" &&
    msg "$T/m.two" alice@example.org <"$T/e.two"
process "$T/r" "$T/m.two"
tap_is "$(stamp "$T/r")" "decrypted=bob@example.net (aes-256-cbc); verified=none" \
    "two keys of the store fit: the envelope recipient's is used"
ossl_encrypt "$T/entity" "$T/e.dave" aes-256-cbc "$P/dave-enc.crt" && msg "$T/m.nokey" alice@example.org <"$T/e.dave"
process "$T/r" "$T/m.nokey" "$BASE" dave@example.org
tap_is "$(stamp "$T/r")" "decrypted=no (no-key); verified=none" "no key for it: stamped no-key"
tap_check "no key: the message is left as it came" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.nokey")
tap_is "$(ar "$T/r")" "" "no key: no verdict about signatures inside"
# DecryptForRecipientsOnly (default yes): no decryption oracle.  carol is
# local and has a key here, but the message is encrypted to bob only.
process "$T/r" "$T/m.env.aes-256-cbc" "$BASE" carol@example.org
tap_is "$(stamp "$T/r")" "decrypted=no (not-for-recipient); verified=none" \
    "encrypted to bob, sent to carol: not decrypted for her"
tap_check "not for the recipient: body untouched" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.env.aes-256-cbc")
tap_check "not for the recipient: the log names her" -- \
    grep -q 'carol@example.org has no key it was encrypted to' "$T/r.log"
process "$T/r" "$T/m.env.aes-256-cbc" "$BASE" bob@example.net carol@example.org
tap_is "$(stamp "$T/r")" "decrypted=no (not-for-recipient); verified=none" \
    "encrypted to bob, sent to bob and carol: not decrypted (carol would read it)"
process "$T/r" "$T/m.two" "$BASE" bob@example.net carol@example.org
tap_check "encrypted to bob and carol, sent to both: decrypted" -- same_entity "$T/r" "$T/entity"
process "$T/r" "$T/m.env.aes-256-cbc" "$(conf anykey DecryptForRecipientsOnly no)" carol@example.org
tap_is "$(stamp "$T/r")" "decrypted=bob@example.net (aes-256-cbc); verified=none" \
    "DecryptForRecipientsOnly no: any key of the store decrypts for any local recipient"
# RecipientDelimiter: bob+lists@ is bob's; without it the address is taken
# as it is; carol+x@ is still not served by bob's key
process "$T/r" "$T/m.env.aes-256-cbc" "$BASE" bob+lists@example.net
tap_is "$(stamp "$T/r")" "decrypted=no (not-for-recipient); verified=none" \
    "bob+lists@, no RecipientDelimiter: not decrypted"
DELIM=$(conf delim RecipientDelimiter +-)
tap_check "smime-milter -n accepts RecipientDelimiter" -- "$MILTER" -n -c "$DELIM"
process "$T/r" "$T/m.env.aes-256-cbc" "$DELIM" bob+lists@example.net
tap_is "$(stamp "$T/r")" "decrypted=bob@example.net (aes-256-cbc); verified=none" \
    "RecipientDelimiter +-: bob+lists@example.net is served by bob's key"
tap_check "RecipientDelimiter: the entity is delivered" -- same_entity "$T/r" "$T/entity"
process "$T/r" "$T/m.env.aes-256-cbc" "$DELIM" bob-x@example.net carol+x@example.org
tap_is "$(stamp "$T/r")" "decrypted=no (not-for-recipient); verified=none" \
    "RecipientDelimiter: carol+x@example.org is still not served by bob's key"
tap_check "RecipientDelimiter: the log names the address as it came" -- \
    grep -q 'carol+x@example.org has no key it was encrypted to' "$T/r.log"
mkdir -p "$T/domkeys"
install -m 600 "$P/domain.pem" "$T/domkeys/"
ossl_encrypt "$T/entity" "$T/e.dom" aes-256-cbc "$P/domain.crt" && msg "$T/m.dom" alice@example.org <"$T/e.dom"
process "$T/r" "$T/m.dom" "$(conf dom KeyStore "$T/domkeys")" anyone@example.org frank@example.org
tap_check "encrypted to the domain key: decrypted for every recipient of the domain" -- same_entity "$T/r" "$T/entity"
process "$T/r" "$T/m.env.aes-256-cbc" "$BASE" bob@example.net someone@elsewhere.example
tap_is "$(stamp "$T/r")" "decrypted=no (relayed); verified=none" "a non-local recipient: never decrypted"
tap_check "relayed: body untouched" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.env.aes-256-cbc")
process "$T/r" "$T/m.env.aes-256-cbc" "$(conf local LocalDomains "example.org other.example")"
tap_is "$(stamp "$T/r")" "decrypted=no (relayed); verified=none" "LocalDomains without the recipient's domain: not decrypted"
process "$T/r" "$T/m.env.aes-256-cbc" "$(conf local2 LocalDomains "example.org example.net")"
tap_check "LocalDomains naming it: decrypted" -- same_entity "$T/r" "$T/entity"
process "$T/r" "$T/m.env.aes-256-cbc" "$(conf nodec Decrypt no)"
tap_is "$(stamp "$T/r")" "decrypted=no (disabled); verified=none" "Decrypt no: stamped disabled"
# corrupt: cut the base64 in half
awk 'BEGIN{n=0} /^$|^\r$/ {b=1} {print; if (b && ++n > 12) exit}' "$T/m.env.aes-256-cbc" >"$T/m.corrupt"
process "$T/r" "$T/m.corrupt"
tap_ok $? "truncated EnvelopedData: processed, exit 0"
tap_is "$(stamp "$T/r")" "decrypted=no (corrupt); verified=permerror" "truncated EnvelopedData: corrupt, permerror"
tap_check "corrupt: delivered as it came" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.corrupt")
# header protection: the real Subject is inside the encryption, the outer
# one a placeholder (Thunderbird's protected-headers="v1", RFC 9788's hp=)
for hp in 'protected-headers="v1"' 'hp="cipher"'; do
    printf '%s\r\n' "Content-Type: text/plain; charset=utf-8; $hp" \
        'Subject: =?utf-8?q?The_real_subject_=E2=9C=93?=' ' folded on' 'From: <alice@example.org>' \
        'To: <bob@example.net>' '' 'protected text' >"$T/hp.ent"
    ossl_encrypt "$T/hp.ent" "$T/e.hp" aes-256-cbc "$P/bob.crt" &&
        msg "$T/m.hp" alice@example.org <"$T/e.hp"
    sed -i 's/^Subject: inbound test/Subject: [...]/' "$T/m.hp"
    process "$T/r" "$T/m.hp"
    tap_is "$(hdr Subject "$T/r")" "=?utf-8?q?The_real_subject_=E2=9C=93?= folded on" \
        "$hp: the protected Subject replaces the placeholder"
    tap_is "$(sed -e '/^\r\{0,1\}$/q' "$T/r" | grep -c -i '^Subject:')" "1" "$hp: one Subject field"
done
printf '%s\r\n' 'Content-Type: text/plain' 'Subject: not protected' '' 'text' >"$T/nohp.ent"
ossl_encrypt "$T/nohp.ent" "$T/e.nohp" aes-256-cbc "$P/bob.crt" && msg "$T/m.nohp" alice@example.org <"$T/e.nohp"
process "$T/r" "$T/m.nohp"
tap_is "$(hdr Subject "$T/r")" "inbound test" "a Subject inside without header protection: the outer one stays"
# Inside the encryption a sender may use binary (RFC 8551 3.1.2): no
# transport sees it there.  After decryption such content must not get CRLF
# line ends nor go on by SMTP as it is: it is rebuilt in 7-bit encodings.
perl -e 'srand(7); print map { chr(int(rand(256))) } 1 .. 6000; print "\n\r\0a\nb\r"' >"$T/blob.bin"
{
    printf '%s\r\n' 'Content-Type: application/octet-stream' 'Content-Transfer-Encoding: binary' \
        'Content-Disposition: attachment; filename="blob.bin"' ''
    cat "$T/blob.bin"
} >"$T/bin.ent"
# enc_raw IN NAME: encrypted to bob, the plaintext bytes as they are
enc_raw() {
    openssl cms -encrypt -binary -aes-256-cbc -in "$1" -recip "$P/bob.crt" -out "$T/e.$2" 2>/dev/null &&
        norm "$T/e.$2" && msg "$T/m.$2" alice@example.org <"$T/e.$2"
}
# smtp_ok FILE: no NUL, no bare CR or LF, no line over 998 bytes
smtp_ok() {
    perl -0777 -ne 'exit(/\0/ || /\r(?!\n)/ || /(?<!\r)\n/ || /[^\r\n]{999}/ ? 1 : 0)' "$1"
}
enc_raw "$T/bin.ent" bin
process "$T/r" "$T/m.bin"
tap_is "$(stamp "$T/r")" "decrypted=bob@example.net (aes-256-cbc); verified=none" "binary entity inside: decrypted"
tap_is "$(hdr Content-Transfer-Encoding "$T/r"):$(hdr Content-Type "$T/r")" "base64:application/octet-stream" \
    "binary entity inside: delivered in base64"
tap_check "binary entity inside: every byte as the sender had it" -- cmp "$T/blob.bin" <(body_of "$T/r" | tr -d '\r' | base64 -d)
tap_check "binary entity inside: the message can go on by SMTP" -- smtp_ok "$T/r"
tap_check "binary entity inside: the log says it was re-encoded" -- grep -q ' reencoded=7bit' "$T/r.log"
tap_is "$(hdr Content-Disposition "$T/r")" 'attachment; filename="blob.bin"' "binary entity inside: its disposition kept"
# a multipart: a binary image, a text part with a 2,000-byte 8-bit line
{
    printf '%s\r\n' 'Content-Type: multipart/mixed; boundary="b1"' '' '--b1' \
        'Content-Type: text/plain; charset=utf-8' 'Content-Transfer-Encoding: 8bit' ''
    printf 'Gr\303\274\303\237e %02000d\r\nshort line\r\n' 0
    printf '%s\r\n' '--b1' 'Content-Type: image/png' 'Content-Transfer-Encoding: binary' ''
    cat "$T/blob.bin"
    printf '\r\n--b1--\r\n'
} >"$T/mp.ent"
enc_raw "$T/mp.ent" mp
process "$T/r" "$T/m.mp"
tap_is "$(hdr Content-Type "$T/r")" 'multipart/mixed; boundary="b1"' "binary part inside a multipart: structure kept"
tap_check "binary part inside a multipart: the message can go on by SMTP" -- smtp_ok "$T/r"
# part N of the output, decoded
part() {
    perl -0777 -MMIME::Base64 -MMIME::QuotedPrint -ne '
        my @p = split /\r\n--b1(?:--)?\r\n/, $_; my $x = $p['"$1"'];
        my ($h, $b) = split /\r\n\r\n/, $x, 2;
        print $h =~ /transfer-encoding:\s*base64/i ? decode_base64($b)
            : $h =~ /transfer-encoding:\s*quoted-printable/i ? decode_qp($b) : $b' "$T/r"
}
tap_check "binary part inside a multipart: the image's bytes unchanged" -- cmp "$T/blob.bin" <(part 2)
# (decode_qp gives LF line ends)
tap_check "binary part inside a multipart: the text, 2,000-byte line and all, decodes to what was sent" -- \
    cmp <(part 1) <(printf 'Gr\303\274\303\237e %02000d\nshort line' 0)
# labelled binary, but plain ASCII text with LF line ends: still base64,
# not 7bit, so the LFs stay LFs
{
    printf '%s\r\n' 'Content-Type: application/x-sh; name="run.sh"' 'Content-Transfer-Encoding: binary' ''
    printf '#!/bin/sh\necho one\necho two\n'
} >"$T/sh.ent"
enc_raw "$T/sh.ent" sh
process "$T/r" "$T/m.sh"
tap_is "$(hdr Content-Transfer-Encoding "$T/r")" "base64" "ASCII labelled binary inside: base64"
tap_check "ASCII labelled binary inside: its LF line ends unchanged" -- \
    cmp <(printf '#!/bin/sh\necho one\necho two\n') <(body_of "$T/r" | tr -d '\r' | base64 -d)
# opaque signed-data as raw DER (binary) inside the encryption: it goes on
# in base64, and its signature still verifies
openssl cms -sign -binary -md sha256 -in "$T/entity" -signer "$P/alice.crt" -inkey "$P/alice.key" \
    -certfile "$P/chain.pem" -nodetach -outform DER -out "$T/o.der" 2>/dev/null
{
    printf '%s\r\n' 'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"' \
        'Content-Transfer-Encoding: binary' ''
    cat "$T/o.der"
} >"$T/der.ent"
enc_raw "$T/der.ent" der
process "$T/r" "$T/m.der"
tap_is "$(ar "$T/r"):$(hdr Content-Transfer-Encoding "$T/r")" "pass:base64" \
    "binary signed-data DER inside the encryption: pass, delivered in base64"
tap_check "binary signed-data DER inside: the DER unchanged" -- \
    cmp "$T/o.der" <(body_of "$T/r" | tr -d '\r' | base64 -d)
# the same for opaque signed content that UnwrapOpaqueSigned delivers
ossl_sign "$T/bin.ent" "$T/o.bin" sha256 alice -nodetach && msg "$T/m.obin" alice@example.org <"$T/o.bin"
process "$T/r" "$T/m.obin" "$(conf unwrap UnwrapOpaqueSigned yes)"
tap_is "$(ar "$T/r"):$(hdr Content-Transfer-Encoding "$T/r")" "pass:base64" \
    "UnwrapOpaqueSigned, binary content: pass, delivered in base64"
tap_check "UnwrapOpaqueSigned, binary content: every byte as signed" -- \
    cmp "$T/blob.bin" <(body_of "$T/r" | tr -d '\r' | base64 -d)
# 8-bit text with short lines can go on as it is: left byte for byte
printf '%s\r\n' 'Content-Type: text/plain; charset=utf-8' 'Content-Transfer-Encoding: 8bit' '' \
    "Gr$(printf '\303\274\303\237')e, 8 bit" >"$T/8bit.ent"
enc_raw "$T/8bit.ent" 8bit
process "$T/r" "$T/m.8bit"
tap_check "8-bit text inside: delivered byte for byte" -- same_entity "$T/r" "$T/8bit.ent"
tap_not "8-bit text inside: not re-encoded" -- grep -q reencoded "$T/r.log"
# well-formed, but it does not decrypt: the last byte of the next-to-last
# CBC block flipped (the padding byte becomes > 16), the last GCM
# ciphertext byte flipped (before the 16-byte tag and its 2-byte header:
# the tag fails)
for c in aes-256-cbc:-17 aes-256-gcm:-19; do
    at=${c#*:} c=${c%:*}
    openssl cms -encrypt -binary -"$c" -in "$T/entity" -outform DER -out "$T/e.der" \
        -recip "$P/bob.crt" 2>/dev/null
    AT=$at perl -0777 -pe 'substr($_, $ENV{AT}, 1) ^= "\x80"' "$T/e.der" >"$T/e.bad.der"
    smime_wrap_p7m "$T/e.bad.der" "$T/w" enveloped-data
    msg "$T/m.baddec" alice@example.org <"$T/w"
    process "$T/r" "$T/m.baddec"
    tap_is "$(stamp "$T/r")" "decrypted=no (corrupt); verified=none" \
        "$c, damaged ciphertext: not decrypted, no signature verdict"
    tap_is "$(ar "$T/r")" "" "$c, damaged ciphertext: no smime= result (nothing was seen to verify)"
    tap_check "$c, damaged ciphertext: delivered as it came" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.baddec")
    tap_check "$c, damaged ciphertext: the log says why" -- grep -q 'decryption with the matching key failed' "$T/r.log"
done
# the type is read from the CMS data, not from smime-type
sed 's/smime-type=enveloped-data/smime-type=signed-data/' "$T/m.env.aes-256-cbc" >"$T/m.lie"
process "$T/r" "$T/m.lie"
tap_check "smime-type says signed-data, data is enveloped: decrypted" -- same_entity "$T/r" "$T/entity"
sed -e 's|^Content-Type: application/pkcs7-mime.*|Content-Type: application/octet-stream; name="smime.p7m"|' \
    "$T/m.env.aes-256-cbc" >"$T/m.octet"
process "$T/r" "$T/m.octet"
tap_check "application/octet-stream named smime.p7m: decrypted" -- same_entity "$T/r" "$T/entity"

# sign-then-encrypt, both forms; triple wrap
ossl_encrypt "$T/s.sha256" "$T/e.se" aes-256-cbc "$P/bob.crt" && msg "$T/m.se" alice@example.org <"$T/e.se"
process "$T/r" "$T/m.se"
tap_is "$(ar "$T/r")" "pass" "sign-then-encrypt (detached inside): decrypted, then pass"
tap_check "sign-then-encrypt: the decrypted signed entity is byte-exact" -- same_entity "$T/r" "$T/s.sha256"
tap_check "the decrypted, signed result still verifies with OpenSSL" -- smime_verify_openssl "$T/r" "$P"
ossl_encrypt "$T/o.sha256" "$T/e.oe" aes-128-cbc "$P/bob.crt" && msg "$T/m.oe" alice@example.org <"$T/e.oe"
process "$T/r" "$T/m.oe"
tap_is "$(ar "$T/r")" "pass" "opaque-signed then encrypted: pass"
tap_is "$(stamp "$T/r")" "decrypted=bob@example.net (aes-128-cbc); verified=pass" "sign-then-encrypt: stamp"
ossl_sign "$T/e.se" "$T/t.se" sha256 alice && msg "$T/m.triple" alice@example.org <"$T/t.se"
process "$T/r" "$T/m.triple"
tap_is "$(ar "$T/r")" "pass" "signed(encrypted(signed)): the outer layer passes, the inner stays encrypted"
tap_check "triple wrap: the outer signature's bytes are not touched" -- cmp -s <(body_of "$T/r") <(body_of "$T/m.triple")
ossl_sign "$T/e.se" "$T/t.op" sha256 alice -nodetach && msg "$T/m.triple2" alice@example.org <"$T/t.op"
process "$T/r" "$T/m.triple2"
tap_is "$(ar "$T/r")" "pass,pass" "opaque(encrypted(signed)): both layers, outermost first"
tap_check "opaque around encrypted: unwrapped and decrypted" -- same_entity "$T/r" "$T/s.sha256"

# --------------------------------------------------------- NSS cmsutil
nick=$(smime_nss_db "$P" "$T/nssdb")
if smime_nss_sign "$T/entity" "$T/nssdb" "$nick" "$T/nss.s"; then
    msg "$T/m.nss" alice@example.org <"$T/nss.s"
    process "$T/r" "$T/m.nss"
    tap_is "$(ar "$T/r")" "pass" "NSS cmsutil detached SHA-256 (Thunderbird's engine): pass"
else
    tap_ok 1 "NSS cmsutil signs ($nick)"
fi
if smime_nss_sign_encrypt "$T/entity" "$T/nssdb" "$nick" "$T/nss.e"; then
    msg "$T/m.nss.e" alice@example.org <"$T/nss.e"
    process "$T/r" "$T/m.nss.e"
    tap_is "$(stamp "$T/r" | cut -d' ' -f1)" "decrypted=bob@example.net" "NSS cmsutil enveloped data: decrypted"
    tap_is "$(ar "$T/r")" "pass" "NSS opaque SHA-512 inside NSS enveloped data: pass"
else
    tap_ok 1 "NSS cmsutil signs and encrypts"
fi

# ---------------------------------------------------------------- gpgsm
if smime_gpgsm_sign "$T/entity" "$P" "$T/g.s"; then
    msg "$T/m.gpgsm" alice@example.org <"$T/g.s"
    process "$T/r" "$T/m.gpgsm"
    tap_is "$(ar "$T/r")" "pass" "gpgsm (KMail's engine) detached signature: pass"
else
    tap_ok 1 "gpgsm signs"
fi
if smime_gpgsm_encrypt "$T/g.s" "$P" "$T/g.e"; then
    msg "$T/m.gpgsm.e" alice@example.org <"$T/g.e"
    process "$T/r" "$T/m.gpgsm.e"
    tap_check "gpgsm sign-then-encrypt: the signed entity comes out byte-exact" -- same_entity "$T/r" "$T/g.s"
    tap_is "$(ar "$T/r")" "pass" "gpgsm sign-then-encrypt: pass"
else
    tap_ok 1 "gpgsm encrypts"
fi
smime_gpg_cleanup "$P"

# ------------------------------------------ large messages (on disk)
# Past MaxMemoryBody the body is in a temp file, and an EnvelopedData is
# decrypted from there without being read whole: every encrypted message
# above (OpenSSL, NSS, gpgsm; CBC, GCM, OAEP, ECDH, damaged) must come out
# exactly as when it is handled in memory.
SMALL=$(conf small MaxMemoryBody 64)
n=0
bad=0
for m in m.env.aes-128-cbc m.env.aes-256-cbc m.env.aes-256-gcm m.oaep m.ski \
    m.two m.nokey m.corrupt m.lie m.octet m.se m.oe m.triple m.triple2 \
    m.nss.e m.gpgsm.e "m.ecdh carol@example.org" "m.old erin@example.org" \
    m.bin m.mp m.8bit m.sh m.der; do
    set -- $m
    [ -f "$T/$1" ] || continue
    process "$T/r1" "$T/$1" "$BASE" "${@:2}"
    process "$T/r2" "$T/$1" "$SMALL" "${@:2}"
    n=$((n + 1))
    cmp -s "$T/r1" "$T/r2" || { bad=$((bad + 1)); echo "# $1: differs on disk"; }
done
tap_is "$bad" 0 "$n encrypted messages, body on disk: the same result as in memory"

# -------------------------------------------------------------- forgeries
{
    printf 'Authentication-Results: %s; smime=pass body.smime-identifier=ceo@example.org\r\n' "$ID"
    printf 'authentication-results:\r\n\t(comment) MX.TEST.EXAMPLE;\r\n smime=pass\r\n'
    printf 'AUTHENTICATION-RESULTS: "%s"; smime=pass\r\n' "$ID"
    printf 'Authentication-Results: other.example; dkim=pass header.d=example.org\r\n'
    printf 'X-SMIME-Milter: decrypted=ceo@example.org; verified=pass\r\n'
    printf 'x-smime-milter:\r\n decrypted=yes\r\n'
    cat "$T/m.plain"
} >"$T/m.forged"
process "$T/r" "$T/m.forged"
tap_is "$(ar "$T/r")" "none" "forged A-R with our authserv-id (any case, folded, commented, quoted) are gone"
tap_is "$(sed -e '/^\r\{0,1\}$/q' "$T/r" | grep -ci '^x-smime-milter:')" "1" "only our own X-SMIME-Milter survives"
tap_check "another server's A-R is kept" -- grep -q '^Authentication-Results: other.example; dkim=pass' "$T/r"
tap_not "no trace of the forged identity" -- grep -q 'ceo@example.org' "$T/r"

# ------------------------------------------------------------ limits
nest() { # nest DEPTH: a multipart nested DEPTH deep
    local i
    printf 'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    for ((i = 0; i < $1; i++)); do
        printf -- '--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' "$i" "$((i + 1))"
    done
    printf -- '--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b%d--\r\n' "$1" "$1"
}
nest 100 | msg "$T/m.deep" bob@example.net
process "$T/r" "$T/m.deep"
tap_is "$(ar "$T/r")" "permerror" "inbound, nested past MaxMimeDepth: permerror, not a crash"
tap_check "the log says the limits were reached" -- grep -q 'limits=exceeded' "$T/r.log"
process "$T/r" "$T/m.deep" "$(conf deep MaxMimeDepth 200)"
tap_is "$(ar "$T/r")" "none" "with MaxMimeDepth 200 the same message is looked at fully"
"$CTL" -c "$BASE" process --outbound --from bob@example.net --rcpt x@example.com <"$T/m.deep" >"$T/r" 2>"$T/r.log"
tap_is "$(stamp "$T/r")" "signed=no (unparseable); encrypted=no (unparseable)" "outbound, nested past MaxMimeDepth: passed unsigned"
{
    printf 'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
    for ((i = 0; i < 30; i++)); do printf -- '--p\r\nContent-Type: text/plain\r\n\r\n%d\r\n' "$i"; done
    printf -- '--p--\r\n'
} | msg "$T/m.many" bob@example.net
"$CTL" -c "$(conf few MaxMimeParts 10)" process --outbound --from bob@example.net --rcpt x@example.com <"$T/m.many" >"$T/r" 2>"$T/r.log"
tap_is "$(stamp "$T/r")" "signed=no (unparseable); encrypted=no (unparseable)" "outbound, more parts than MaxMimeParts: passed unsigned"
process "$T/r" "$T/m.many" "$(conf few2 MaxMimeParts 10)"
tap_is "$(ar "$T/r")" "permerror" "inbound, more parts than MaxMimeParts: permerror"

# ------------------------------------------------------------ harvesting
H=$(conf harvest Harvest yes HarvestStore "$T/harvest")
lookup() { "$CTL" -c "$H" lookup "$1" >"$T/lookup.out" 2>&1; }
lookup alice@example.org
tap_is "$?" "1" "before: no certificate for alice"
process "$T/r" "$T/m.bad" "$H"
lookup alice@example.org
tap_is "$?" "1" "a failing signature harvests nothing"
process "$T/r" "$T/m.forged-from" "$H"
tap_is "$(ls "$T/harvest" | wc -l)" "0" "a From-mismatched signature harvests nothing"
process "$T/r" "$T/m.untrusted" "$H"
"$CTL" -c "$H" lookup ursula@example.org >/dev/null 2>&1
tap_is "$?" "1" "an untrusted signer is not harvested"
process "$T/r" "$T/m.dsig.sha256" "$H"
tap_check "a good signature is harvested (logged)" -- grep -q 'harvested=alice@example.org' "$T/r.log"
lookup alice@example.org
tap_is "$?" "0" "after: smime-milter-ctl lookup finds alice's certificate"
tap_check "lookup says it came from the harvested store" -- grep -q 'source: harvested' "$T/lookup.out"
tap_check "the harvested file records the capabilities" -- grep -q '^# capabilities: known' "$T"/harvest/alice@example.org.pem
# the file: alice's certificate, then her issuers up to the root, each once
# (the signature carries the intermediate, the trust anchors the root)
fps() { openssl crl2pkcs7 -nocrl -certfile "$1" | openssl pkcs7 -print_certs 2>/dev/null |
    awk '/BEGIN/ {c = ""} {c = c $0 "\n"} /END/ {printf "%s", c | "openssl x509 -noout -fingerprint -sha256"; close("openssl x509 -noout -fingerprint -sha256")}'; }
tap_is "$(fps "$T/harvest/alice@example.org.pem" | wc -l):$(fps "$T/harvest/alice@example.org.pem" | sort -u | wc -l)" "3:3" \
    "the harvested file holds alice, her intermediate and the root, none twice"
# a later signature without SMIMECapabilities (same certificate) keeps them
openssl cms -sign -binary -crlfeol -md sha256 -nosmimecap -in "$T/entity" -signer "$P/alice.crt" \
    -inkey "$P/alice.key" -certfile "$P/chain.pem" -out "$T/s.nocap" 2>/dev/null && norm "$T/s.nocap" &&
    msg "$T/m.nocap" alice@example.org <"$T/s.nocap"
process "$T/r" "$T/m.nocap" "$H"
tap_is "$(ar "$T/r")" "pass" "a signature without SMIMECapabilities: pass"
tap_check "... and the capabilities harvested before are kept" -- \
    grep -q '^# capabilities: known' "$T"/harvest/alice@example.org.pem
# a HarvestStore directory that does not exist yet is made
process "$T/r" "$T/m.dsig.sha256" "$(conf harvest2 Harvest yes HarvestStore "$T/harvest-new")"
tap_check "a HarvestStore not made yet is made at the first harvest" -- test -s "$T/harvest-new/alice@example.org.pem"
# the next outbound message to alice is encrypted with the harvested certificate
printf 'From: <bob@example.net>\r\nTo: <alice@example.org>\r\nSubject: reply\r\n\r\nreply text\r\n' >"$T/reply"
"$CTL" -c "$H" process --outbound --from bob@example.net --rcpt alice@example.org <"$T/reply" >"$T/reply.out" 2>/dev/null
tap_check "a reply to the correspondent is encrypted to the harvested certificate" -- \
    smime_decrypt_openssl "$T/reply.out" "$P/alice.crt" "$P/alice.key" "$T/reply.dec"
# dave signs with one key and names his encryption certificate
# (SMIMEEncryptionKeyPreference): our own outbound signing makes such mail
mkdir -p "$T/davekeys"
cp "$P/dave-sign.pem" "$P/dave-enc.pem" "$T/davekeys/" && chmod 600 "$T"/davekeys/*
printf 'From: <dave@example.org>\r\nTo: <bob@example.net>\r\nSubject: hi\r\n\r\nhello\r\n' >"$T/dave.in"
"$CTL" -c "$(conf daveout KeyStore "$T/davekeys")" process --outbound --from dave@example.org \
    --rcpt bob@example.net <"$T/dave.in" >"$T/m.dave" 2>/dev/null
process "$T/r" "$T/m.dave" "$H"
tap_is "$(ar "$T/r")" "pass" "dave's signature (signing-only key) passes"
"$CTL" -c "$H" lookup dave@example.org >"$T/lookup.out" 2>&1
tap_is "$?" "0" "harvest honours SMIMEEncryptionKeyPreference: dave has a certificate"
tap_check "the harvested certificate is dave's encryption one" -- \
    grep -qi "$(openssl x509 -in "$P/dave-enc.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | cut -c1-16)" "$T/lookup.out"
tap_done
