#!/bin/bash
# t-encrypt: outbound encryption offline, through smime-milter-ctl process:
# RSA (PKCS#1 v1.5 and OAEP) and EC (ECDH) recipients, every Cipher
# (CBC -> EnvelopedData, GCM -> AuthEnvelopedData), decryption with
# OpenSSL, NSS cmsutil and gpgsm, the inner signature, EncryptToSelf,
# ArchiveCertificates, opportunistic vs mandatory with every
# MissingCertAction, refusal reasons, PolicyMap precedence and syntax
# errors, SubjectTrigger, and the outer headers.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

# The stamp formats of the specification (one place to change them):
#   not encrypted, opportunistic, a recipient lacks a certificate
NOENC_MISSING='encrypted=no (missing-certificate)'
#   encrypted, but the sender has no signing key
SIGNED_NO='signed=no (no-signing-key)'
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
at_exit 'smime_gpg_cleanup "$P"'

# an extra archive (escrow) certificate, issued by the intermediate
mkcert() { # mkcert NAME EMAIL: $T/NAME.crt/.key, RSA-2048, keyEncipherment
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$T/$1.key" 2>/dev/null &&
        openssl req -new -key "$T/$1.key" -subj "/O=smime-milter Test/CN=$2" \
            -out "$T/$1.csr" 2>/dev/null &&
        printf '%s\n' 'basicConstraints=critical,CA:false' \
            'keyUsage=critical,keyEncipherment' 'extendedKeyUsage=emailProtection' \
            "subjectAltName=email:$2" >"$T/$1.ext" &&
        openssl x509 -req -in "$T/$1.csr" -CA "$P/inter.crt" -CAkey "$P/inter.key" \
            -CAcreateserial -CAserial "$T/$1.srl" -days 30 -sha256 \
            -extfile "$T/$1.ext" -out "$T/$1.crt" 2>/dev/null
}
mkcert archive archive@example.org || { echo "Bail out! archive certificate"; exit 1; }

# key store: alice (PKCS#12 + passphrase file), dave (separate sign/enc)
mkdir -p "$T/keys" "$T/certs"
cp "$P/alice.p12" "$P/dave-sign.pem" "$P/dave-enc.pem" "$T/keys/"
chmod 600 "$T"/keys/*
install -m 600 "$P/passphrase" "$T/keys.pass"
# recipient certificates: bob (RSA), carol (EC), dave-enc, erin (expired)
cp "$P/bob.crt" "$P/carol.crt" "$P/dave-enc.crt" "$P/inter.crt" "$T/certs/"
cp "$P/expired.crt" "$T/certs/erin.crt"
cat "$P/root.crt" "$P/inter.crt" >"$T/anchors.pem"

conf() { # conf NAME [KEY VALUE]...: common lines plus extras; prints path
    local f=$T/$1.conf
    shift
    {
        echo "KeyStore $T/keys"
        echo "KeyStorePassphraseFile $T/keys.pass"
        echo "TrustAnchors $T/anchors.pem"
        echo "CertificateStore $T/certs"
        echo "InternalHosts 127.0.0.0/8"
        echo "TempDirectory $T"
        echo "LogLevel info"
        while [ $# -ge 2 ]; do echo "$1 $2"; shift 2; done
    } >"$f"
    echo "$f"
}
# proc NAME CONF FROM MSG RCPT...: $T/NAME.out / $T/NAME.err, exit status
# in $rc
proc() {
    local name=$1 c=$2 from=$3 msg=$4 r args=()
    shift 4
    for r in "$@"; do args+=(--rcpt "$r"); done
    rc=0
    "$CTL" -c "$c" process --outbound --from "$from" "${args[@]}" \
        <"$msg" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && [ "$rc" -ne 4 ] && [ "$rc" -ne 75 ]; then
        sed 's/^/#   stderr: /' "$T/$name.err" | head -5
    fi
}
headers_of() { sed -e 's/\r$//' -e '/^$/q' "$1"; }
hdr() { headers_of "$2" | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*: *//'; }
# field NAME FILE: the whole header field, continuation lines included
field() {
    headers_of "$2" | awk -v n="$1" '
        /^[^ \t]/ { on = (tolower(substr($0, 1, length(n) + 1)) == tolower(n) ":") }
        on { print }'
}
# the unfolded top-level Content-Type
ctype() { field Content-Type "$1" | tr -d '\n' | tr '\t' ' ' | sed 's/^[^:]*: *//'; }
cms_print() { openssl cms -cmsout -print -in "$1" 2>&1; }
# kek_is MSG ALG: some RecipientInfo uses key encryption algorithm ALG
kek_is() { cms_print "$1" | grep -A1 'keyEncryptionAlgorithm:' | grep -q "algorithm: $2 "; }
# cea_is PRINTFILE ALG: the content encryption algorithm is ALG
cea_is() { grep -A1 'contentEncryptionAlgorithm:' "$1" | grep -q "algorithm: $2 "; }
n_ri() { cms_print "$1" | grep -cE '^ *d\.(ktri|kari):'; }
# is_der MSG: the CMS body is DER (OpenSSL re-encodes it byte for byte),
# although it is written in a stream
is_der() {
    sed -e 's/\r$//' -e '1,/^$/d' "$1" | base64 -d >"$1.der" &&
        openssl cms -cmsout -inform DER -in "$1.der" -outform DER \
            -out "$1.der2" && cmp "$1.der" "$1.der2"
}
is_encrypted() { # is_encrypted FILE: the top level is application/pkcs7-mime
    case $(ctype "$1") in
    application/pkcs7-mime*) return 0 ;;
    *) echo "Content-Type: $(ctype "$1")"; return 1 ;;
    esac
}
is_signed_only() { # multipart/signed at the top, verifies
    case $(ctype "$1") in
    multipart/signed*) smime_verify_openssl "$1" "$P" ;;
    *) echo "Content-Type: $(ctype "$1")"; return 1 ;;
    esac
}
# dec NAME USER: openssl-decrypt $T/NAME.out with PKIDIR/USER.{crt,key}
dec() { smime_decrypt_openssl "$T/$1.out" "$P/$2.crt" "$P/$2.key" "$T/$1.$2.dec"; }

# the input: multipart with 8-bit and binary leaves, and all the outer
# headers an encrypted message must keep
{
    sed -n '1,/^Subject:/p' "$SRCDIR/tests/data/outbound/attachments.eml" |
        sed 's/^Subject: .*/Subject: quarterly numbers (attachments)/'
    echo "Cc: Carol <carol@example.org>"
    echo "Date: Tue, 02 Jan 2024 10:00:00 +0100"
    echo "Message-ID: <t-encrypt.1@example.org>"
    echo "X-Folded: first line"
    echo "	second line"
    sed '1,/^Subject:/d' "$SRCDIR/tests/data/outbound/attachments.eml"
} >"$T/msg.eml"
with_header() { # with_header OUT SED-SCRIPT: a variant of msg.eml
    sed "$2" "$T/msg.eml" >"$T/$1"
}
leaves "$T/msg.eml" >"$T/msg.leaves"

base=$(conf base)
tap_check "smime-milter -n accepts the encryption configuration" -- "$MILTER" -n -c "$base"
full=$(conf full EncryptionPolicy opportunistic MissingCertAction reject \
    DirectoryFailureAction tempfail EncryptToSelf yes Cipher aes-256-cbc \
    RSAPadding pkcs1 SubjectTrigger '[secure]' ArchiveCertificates "$T/archive.crt")
tap_check "smime-milter -n accepts every new key" -- "$MILTER" -n -c "$full"

# ------------------------------------------------------------ bob (RSA)
proc bob "$base" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$rc" 0 "bob: delivered (exit 0)"
ct=$(ctype "$T/bob.out")
case $ct in
*'application/pkcs7-mime;'*'smime-type=enveloped-data'*'name="smime.p7m"'*) tap_ok 0 "bob: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m" ;;
*) tap_ok 1 "bob: application/pkcs7-mime; smime-type=enveloped-data (got: $ct)" ;;
esac
tap_is "$(hdr Content-Transfer-Encoding "$T/bob.out")" "base64" "bob: Content-Transfer-Encoding: base64"
tap_is "$(hdr Content-Disposition "$T/bob.out")" 'attachment; filename="smime.p7m"' "bob: Content-Disposition: attachment; filename=smime.p7m"
tap_is "$(hdr X-SMIME-Milter "$T/bob.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "bob: stamp"
for h in From To Cc Subject Date Message-ID X-Folded; do
    tap_is "$(field "$h" "$T/bob.out")" "$(field "$h" "$T/msg.eml")" "bob: outer $h byte-identical"
done
tap_is "$(headers_of "$T/bob.out" | grep -ci '^content-type:')" 1 "bob: one outer Content-Type"
tap_not "bob: the plaintext is not in the output" -- grep -q 'See the attachments' "$T/bob.out"
tap_check "bob: openssl decrypts with bob's key" -- dec bob bob
tap_check "bob: decrypted entity is the multipart/signed message" -- \
    grep -qi '^Content-Type: multipart/signed' <(headers_of "$T/bob.bob.dec")
tap_check "bob: inner signature verifies (openssl)" -- smime_verify_openssl "$T/bob.bob.dec" "$P"
tap_check "bob: inner signature verifies (NSS)" -- smime_verify_nss "$T/bob.bob.dec" "$P"
tap_check "bob: inner signature verifies (gpgsm)" -- smime_verify_gpgsm "$T/bob.bob.dec" "$P"
tap_is "$(smime_signer_openssl "$T/bob.bob.dec" "$P" 2>&1)" "alice@example.org" "bob: inner signer is alice"
leaves "$T/bob.bob.dec" >"$T/got.leaves" 2>&1
tap_check "bob: every part's decoded content survived" -- cmp "$T/msg.leaves" "$T/got.leaves"
tap_check "bob: NSS cmsutil decrypts with bob's key" -- smime_decrypt_nss "$T/bob.out" "$P" bob "$T/bob.nss.dec"
tap_check "bob: NSS gets the same entity as openssl" -- cmp "$T/bob.bob.dec" "$T/bob.nss.dec"
tap_check "bob: gpgsm decrypts" -- smime_decrypt_gpgsm "$T/bob.out" "$P" "$T/bob.gpgsm.dec"
tap_check "bob: gpgsm gets the same entity as openssl" -- cmp "$T/bob.bob.dec" "$T/bob.gpgsm.dec"
cms_print "$T/bob.out" >"$T/bob.print"
tap_check "bob: CMS type EnvelopedData" -- grep -q 'contentType: pkcs7-envelopedData' "$T/bob.print"
tap_check "bob: content encrypted with aes-256-cbc" -- cea_is "$T/bob.print" aes-256-cbc
tap_check "bob: RSA PKCS#1 v1.5 key transport (rsaEncryption)" -- kek_is "$T/bob.out" rsaEncryption
tap_not "bob: no OAEP by default" -- grep -q rsaesOaep "$T/bob.print"
tap_is "$(n_ri "$T/bob.out")" 2 "bob: two RecipientInfos (bob + alice's own, EncryptToSelf default yes)"
tap_check "EncryptToSelf (default yes): alice decrypts her own copy" -- dec bob alice
tap_not "non-recipient: dave-enc's key cannot decrypt" -- dec bob dave-enc
tap_not "non-recipient: carol's key cannot decrypt" -- dec bob carol
tap_not "non-recipient: NSS with dave-enc's key fails" -- smime_decrypt_nss "$T/bob.out" "$P" dave-enc "$T/x.dec"

# the stamp is part of the outer header only (nothing of the inner leaks)
tap_not "bob: inner Content-Type not in the outer header" -- \
    grep -qi '^Content-Type: multipart/' <(headers_of "$T/bob.out")

# ------------------------------------------------------------ carol (EC)
proc carol "$base" alice@example.org "$T/msg.eml" carol@example.org
tap_is "$rc" 0 "carol (EC P-256): delivered"
tap_is "$(hdr X-SMIME-Milter "$T/carol.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "carol: stamp"
tap_check "carol: openssl decrypts with carol's EC key (ECDH)" -- dec carol carol
tap_check "carol: KeyAgreeRecipientInfo (kari) for the EC recipient" -- grep -q 'd.kari:' <(cms_print "$T/carol.out")
tap_check "carol: inner signature verifies" -- smime_verify_openssl "$T/carol.carol.dec" "$P"
leaves "$T/carol.carol.dec" >"$T/got.leaves" 2>&1
tap_check "carol: content survived" -- cmp "$T/msg.leaves" "$T/got.leaves"
tap_not "carol: bob's key cannot decrypt" -- dec carol bob

# ------------------------------------------------------------ bob + carol
proc two "$base" alice@example.org "$T/msg.eml" bob@example.net carol@example.org
tap_is "$rc" 0 "bob+carol: delivered"
tap_is "$(hdr X-SMIME-Milter "$T/two.out")" "signed=alice@example.org; encrypted=2/2; cipher=aes-256-cbc" "bob+carol: stamp encrypted=2/2 (self not counted)"
tap_check "bob+carol: bob decrypts" -- dec two bob
tap_check "bob+carol: carol decrypts" -- dec two carol
tap_check "bob+carol: alice (self) decrypts" -- dec two alice
tap_is "$(n_ri "$T/two.out")" 3 "bob+carol: three RecipientInfos (bob, carol, alice)"
tap_check "bob+carol: bob and carol get the same entity" -- cmp "$T/two.bob.dec" "$T/two.carol.dec"
tap_check "bob+carol: inner signature verifies" -- smime_verify_openssl "$T/two.bob.dec" "$P"
tap_not "bob+carol: dave-enc cannot decrypt" -- dec two dave-enc
tap_check "bob+carol: gpgsm decrypts with bob's key" -- smime_decrypt_gpgsm "$T/two.out" "$P" "$T/two.gpgsm.dec"

# dave: separate signing (key store) and encryption (certificate store)
proc dave "$base" alice@example.org "$T/msg.eml" dave@example.org
tap_is "$(hdr X-SMIME-Milter "$T/dave.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "dave: stamp"
tap_check "dave: the encryption-only certificate's key decrypts" -- dec dave dave-enc

# ------------------------------------------------------------ OAEP
oaep=$(conf oaep RSAPadding oaep)
proc oaep "$oaep" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$rc" 0 "RSAPadding oaep: delivered"
tap_check "RSAPadding oaep: RSAES-OAEP key transport" -- kek_is "$T/oaep.out" rsaesOaep
tap_not "RSAPadding oaep: no PKCS#1 v1.5 RecipientInfo left" -- kek_is "$T/oaep.out" rsaEncryption
tap_check "RSAPadding oaep: openssl decrypts for bob" -- dec oaep bob
tap_check "RSAPadding oaep: openssl decrypts for alice (self)" -- dec oaep alice
tap_check "RSAPadding oaep: inner signature verifies" -- smime_verify_openssl "$T/oaep.bob.dec" "$P"
proc oaepec "$oaep" alice@example.org "$T/msg.eml" bob@example.net carol@example.org
tap_check "RSAPadding oaep + EC recipient: carol still decrypts (ECDH)" -- dec oaepec carol
tap_check "RSAPadding oaep + EC recipient: bob decrypts" -- dec oaepec bob

# ------------------------------------------------------------ ciphers
for c in aes-128-cbc aes-192-cbc aes-256-cbc aes-128-gcm aes-256-gcm; do
    cc=$(conf "c-$c" Cipher "$c" CipherFromCapabilities no)
    proc "c-$c" "$cc" alice@example.org "$T/msg.eml" bob@example.net
    tap_is "$rc" 0 "Cipher $c: delivered"
    tap_is "$(hdr X-SMIME-Milter "$T/c-$c.out")" "signed=alice@example.org; encrypted=1/1; cipher=$c" "Cipher $c: stamp"
    cms_print "$T/c-$c.out" >"$T/c-$c.print"
    tap_check "Cipher $c: contentEncryptionAlgorithm is $c" -- cea_is "$T/c-$c.print" "$c"
    ct=$(ctype "$T/c-$c.out")
    case $c in
    *-gcm)
        tap_check "Cipher $c: CMS type AuthEnvelopedData (RFC 5083)" -- \
            grep -q 'contentType: id-smime-ct-authEnvelopedData' "$T/c-$c.print"
        case $ct in
        *'smime-type=authEnveloped-data'*) tap_ok 0 "Cipher $c: smime-type=authEnveloped-data" ;;
        *) tap_ok 1 "Cipher $c: smime-type=authEnveloped-data (got: $ct)" ;;
        esac ;;
    *)
        tap_check "Cipher $c: CMS type EnvelopedData" -- \
            grep -q 'contentType: pkcs7-envelopedData' "$T/c-$c.print"
        case $ct in
        *'smime-type=enveloped-data'*) tap_ok 0 "Cipher $c: smime-type=enveloped-data" ;;
        *) tap_ok 1 "Cipher $c: smime-type=enveloped-data (got: $ct)" ;;
        esac ;;
    esac
    tap_check "Cipher $c: openssl decrypts for bob" -- dec "c-$c" bob
    tap_check "Cipher $c: the CMS is DER" -- is_der "$T/c-$c.out"
    tap_check "Cipher $c: inner signature verifies" -- smime_verify_openssl "$T/c-$c.bob.dec" "$P"
done
tap_check "aes-128-cbc: NSS decrypts" -- smime_decrypt_nss "$T/c-aes-128-cbc.out" "$P" bob "$T/x.dec"
tap_check "aes-192-cbc: gpgsm decrypts" -- smime_decrypt_gpgsm "$T/c-aes-192-cbc.out" "$P" "$T/x.dec"
# a GCM message with its authentication tag damaged must not decrypt
# (flip one base64 character in the middle of the last body line)
perl -e 'local $/; my $d = <STDIN>; my ($h, $b) = split /\r?\n\r?\n/, $d, 2;
         my @l = split /\n/, $b; my $i = $#l; $i-- while $i > 0 && $l[$i] !~ /[A-Za-z0-9+\/]{8}/;
         my $p = int(length($l[$i]) / 2); my $ch = substr($l[$i], $p, 1);
         substr($l[$i], $p, 1) = ($ch eq "A" ? "B" : "A");
         print "$h\n\n", join("\n", @l), "\n";' <"$T/c-aes-256-gcm.out" >"$T/gcm-bad.out"
# with CipherFromCapabilities (the default) GCM needs published support:
# a local store publishes none, so the message falls back to AES-256-CBC
cc=$(conf "c-caps" Cipher aes-256-gcm)
proc c-caps "$cc" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$(hdr X-SMIME-Milter "$T/c-caps.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "GCM without known support: falls back to aes-256-cbc"
tap_not "aes-256-gcm: a damaged message does not decrypt" -- \
    smime_decrypt_openssl "$T/gcm-bad.out" "$P/bob.crt" "$P/bob.key" "$T/x.dec"

# ------------------------------------------------------------ EncryptToSelf no
noself=$(conf noself EncryptToSelf no)
proc noself "$noself" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$(hdr X-SMIME-Milter "$T/noself.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "EncryptToSelf no: stamp"
tap_check "EncryptToSelf no: bob decrypts" -- dec noself bob
tap_not "EncryptToSelf no: alice cannot decrypt" -- dec noself alice
tap_is "$(n_ri "$T/noself.out")" 1 "EncryptToSelf no: one RecipientInfo"

# ------------------------------------------------------------ ArchiveCertificates
arch=$(conf arch ArchiveCertificates "$T/archive.crt")
proc arch "$arch" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$rc" 0 "ArchiveCertificates: delivered"
tap_is "$(hdr X-SMIME-Milter "$T/arch.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "ArchiveCertificates: stamp counts envelope recipients only"
tap_check "ArchiveCertificates: the archive key decrypts" -- \
    smime_decrypt_openssl "$T/arch.out" "$T/archive.crt" "$T/archive.key" "$T/arch.archive.dec"
tap_check "ArchiveCertificates: bob decrypts" -- dec arch bob
tap_check "ArchiveCertificates: alice (self) decrypts" -- dec arch alice
tap_is "$(n_ri "$T/arch.out")" 3 "ArchiveCertificates: three RecipientInfos (bob, alice, archive)"
tap_not "without ArchiveCertificates the archive key cannot decrypt" -- \
    smime_decrypt_openssl "$T/bob.out" "$T/archive.crt" "$T/archive.key" "$T/x.dec"

# ------------------------------------------------------------ no signing key
sed -e 's/^From: .*/From: Nobody <nobody@example.org>/' "$T/msg.eml" >"$T/nokey.eml"
nokey=$(conf nokey RequireFromMatch yes)
proc nokey "$nokey" nobody@example.org "$T/nokey.eml" bob@example.net
tap_is "$rc" 0 "sender without a key: delivered"
tap_is "$(hdr X-SMIME-Milter "$T/nokey.out")" "$SIGNED_NO; encrypted=1/1; cipher=aes-256-cbc" "sender without a key: stamp signed=no; encrypted=1/1"
tap_check "sender without a key: still encrypted" -- is_encrypted "$T/nokey.out"
tap_check "sender without a key: bob decrypts" -- dec nokey bob
tap_not "sender without a key: decrypted content is not signed" -- \
    grep -qi '^Content-Type: multipart/signed' <(headers_of "$T/nokey.bob.dec")
tap_check "sender without a key: decrypted content is the original multipart/mixed" -- \
    grep -qi '^Content-Type: multipart/mixed' <(headers_of "$T/nokey.bob.dec")
leaves "$T/nokey.bob.dec" >"$T/got.leaves" 2>&1
tap_check "sender without a key: content survived" -- cmp "$T/msg.leaves" "$T/got.leaves"

# ------------------------------------------------------------ opportunistic, one lacks
proc opp "$base" alice@example.org "$T/msg.eml" bob@example.net nocert@example.net
tap_is "$rc" 0 "opportunistic, one recipient without a certificate: delivered"
tap_is "$(hdr X-SMIME-Milter "$T/opp.out")" "signed=alice@example.org; $NOENC_MISSING" "opportunistic, one lacks: stamp reason=missing-certificate"
tap_check "opportunistic, one lacks: signed only, verifies" -- is_signed_only "$T/opp.out"
leaves "$T/opp.out" >"$T/got.leaves" 2>&1
tap_check "opportunistic, one lacks: content survived" -- cmp "$T/msg.leaves" "$T/got.leaves"
# an expired certificate is no certificate
proc opperin "$base" alice@example.org "$T/msg.eml" erin@example.org
tap_check "opportunistic, only an expired certificate: signed only" -- is_signed_only "$T/opperin.out"
tap_is "$(hdr X-SMIME-Milter "$T/opperin.out")" "signed=alice@example.org; $NOENC_MISSING" "opportunistic, only an expired certificate: stamp reason=missing-certificate"

# ------------------------------------------------------------ mandatory
mand=$(conf mand EncryptionPolicy mandatory)
proc mand-ok "$mand" alice@example.org "$T/msg.eml" bob@example.net carol@example.org
tap_is "$rc" 0 "mandatory, all have certificates: delivered"
tap_is "$(hdr X-SMIME-Milter "$T/mand-ok.out")" "signed=alice@example.org; encrypted=2/2; cipher=aes-256-cbc" "mandatory, all have certificates: encrypted=2/2"
proc mand "$mand" alice@example.org "$T/msg.eml" bob@example.net nocert@example.net
tap_is "$rc" 3 "mandatory, one lacks (MissingCertAction reject by default): rejected (exit 3)"
tap_check "mandatory reject: 550 5.7.1 naming the address and 'no certificate found'" -- \
    grep -qF '550 5.7.1 no valid S/MIME certificate for nocert@example.net: no certificate found' "$T/mand.err"
tap_not "mandatory reject: the reply does not blame bob" -- grep -q 'certificate for bob@example.net' "$T/mand.err"
tap_is "$(wc -c <"$T/mand.out")" 0 "mandatory reject: nothing written to stdout"
proc mand-erin "$mand" alice@example.org "$T/msg.eml" erin@example.org
tap_is "$rc" 3 "mandatory, expired certificate: rejected"
tap_check "mandatory, expired certificate: reason 'expired'" -- \
    grep -qF '550 5.7.1 no valid S/MIME certificate for erin@example.org: expired' "$T/mand-erin.err"
mtemp=$(conf mtemp EncryptionPolicy mandatory MissingCertAction tempfail)
proc mtemp "$mtemp" alice@example.org "$T/msg.eml" nocert@example.net
tap_is "$rc" 75 "MissingCertAction tempfail: exit 75"
tap_check "MissingCertAction tempfail: 451 4.7.1 with the same text" -- \
    grep -qF '451 4.7.1 no valid S/MIME certificate for nocert@example.net: no certificate found' "$T/mtemp.err"
tap_is "$(wc -c <"$T/mtemp.out")" 0 "MissingCertAction tempfail: nothing written to stdout"
mhold=$(conf mhold EncryptionPolicy mandatory MissingCertAction hold)
proc mhold "$mhold" alice@example.org "$T/msg.eml" nocert@example.net
tap_is "$rc" 4 "MissingCertAction hold: exit 4 (held)"
tap_check "MissingCertAction hold: the hold reason names the address" -- \
    grep -q 'hold:.*nocert@example.net' "$T/mhold.err"
proc mhold-ok "$mhold" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$rc" 0 "MissingCertAction hold, certificate present: delivered, not held"
tap_check "MissingCertAction hold, certificate present: encrypted" -- is_encrypted "$T/mhold-ok.out"

# ------------------------------------------------------------ never
never=$(conf never EncryptionPolicy never)
proc never "$never" alice@example.org "$T/msg.eml" bob@example.net
tap_is "$rc" 0 "EncryptionPolicy never: delivered"
tap_check "EncryptionPolicy never: not encrypted although bob has a certificate" -- is_signed_only "$T/never.out"

# ------------------------------------------------------------ PolicyMap
cat >"$T/policy.map" <<'EOM'
# t-encrypt policy map: exact > @domain > longest .domain > default

@example.net            mandatory
bob@example.net         never
dave@example.org	mandatory
.example.com            mandatory
.deep.example.com       opportunistic
EOM
pmap=$(conf pmap EncryptionPolicy never PolicyMap "$T/policy.map")
tap_check "smime-milter -n accepts the policy map" -- "$MILTER" -n -c "$pmap"
# RCPT  EXPECTED(rc:encrypted?)  WHY
while IFS='|' read -r r want why; do
    [ -n "$r" ] || continue
    proc "pm-$r" "$pmap" alice@example.org "$T/msg.eml" "$r"
    case $want in
    reject)  tap_is "$rc" 3 "PolicyMap $r: rejected ($why)" ;;
    enc)     tap_is "$rc:$(is_encrypted "$T/pm-$r.out" >/dev/null && echo enc)" "0:enc" "PolicyMap $r: encrypted ($why)" ;;
    plain)   tap_is "$rc:$(is_signed_only "$T/pm-$r.out" >/dev/null 2>&1 && echo plain)" "0:plain" "PolicyMap $r: not encrypted ($why)" ;;
    esac
done <<'EOM'
bob@example.net|plain|exact never beats @example.net mandatory
nocert@example.net|reject|@example.net mandatory
dave@example.org|enc|exact mandatory, certificate present, default never
carol@example.org|plain|no entry: default never
nocert@x.example.net|plain|@example.net is that domain only: default never
nocert@a.example.com|reject|.example.com mandatory for a subdomain
nocert@b.deep.example.com|plain|longest .deep.example.com (opportunistic) beats .example.com
nocert@example.com|plain|.example.com does not cover example.com itself: default never
BOB@Example.NET|plain|exact never for bob@example.net, compared without regard to case
DAVE@example.org|enc|exact mandatory for dave@example.org, compared without regard to case
EOM
tap_check "PolicyMap: reject names the address" -- \
    grep -qF '550 5.7.1 no valid S/MIME certificate for nocert@a.example.com: no certificate found' "$T/pm-nocert@a.example.com.err"
tap_is "$(hdr X-SMIME-Milter "$T/pm-nocert@b.deep.example.com.out")" "signed=alice@example.org; $NOENC_MISSING" \
    "PolicyMap opportunistic subdomain without certificate: reason=missing-certificate"
# several recipients: one mandatory recipient without a certificate rejects
proc pm-mixed "$pmap" alice@example.org "$T/msg.eml" carol@example.org nocert@example.net
tap_is "$rc" 3 "PolicyMap: a mandatory recipient without a certificate rejects the whole message"
# the default policy from EncryptionPolicy applies to unlisted domains
pmap2=$(conf pmap2 EncryptionPolicy mandatory PolicyMap "$T/policy.map")
proc pm2 "$pmap2" alice@example.org "$T/msg.eml" nocert@example.org
tap_is "$rc" 3 "PolicyMap: unlisted address falls back to EncryptionPolicy mandatory"

# bad lines are errors naming file:line
printf '# ok\n@example.net mandatory\nbob@example.net sometimes\n' >"$T/bad1.map"
bad1=$(conf bad1 PolicyMap "$T/bad1.map")
"$MILTER" -n -c "$bad1" >"$T/bad1.n" 2>&1
tap_is "$?" 1 "PolicyMap with an unknown policy: smime-milter -n exits 1"
tap_check "PolicyMap unknown policy: error names $T/bad1.map:3" -- grep -qF "$T/bad1.map:3" "$T/bad1.n"
printf '@example.net mandatory\n\n# fine\njustakey\n' >"$T/bad2.map"
bad2=$(conf bad2 PolicyMap "$T/bad2.map")
"$MILTER" -n -c "$bad2" >"$T/bad2.n" 2>&1
tap_is "$?" 1 "PolicyMap line without a policy: smime-milter -n exits 1"
tap_check "PolicyMap missing policy: error names $T/bad2.map:4" -- grep -qF "$T/bad2.map:4" "$T/bad2.n"
printf 'example.net mandatory\n' >"$T/bad3.map"
bad3=$(conf bad3 PolicyMap "$T/bad3.map")
"$MILTER" -n -c "$bad3" >"$T/bad3.n" 2>&1
tap_is "$?" 1 "PolicyMap key that is neither address, @domain nor .domain: smime-milter -n exits 1"
tap_check "PolicyMap bad key: error names $T/bad3.map:1" -- grep -qF "$T/bad3.map:1" "$T/bad3.n"
printf '@example.net mandatory\nbob@example.net never\n@EXAMPLE.NET never\n' >"$T/bad4.map"
bad4=$(conf bad4 PolicyMap "$T/bad4.map")
"$MILTER" -n -c "$bad4" >"$T/bad4.n" 2>&1
tap_is "$?" 1 "PolicyMap with a key listed twice: smime-milter -n exits 1 (no guessing which wins)"
tap_check "PolicyMap duplicate: error names $T/bad4.map:3 and line 1" -- grep -qF "$T/bad4.map:3: @example.net is listed twice (also on line 1)" "$T/bad4.n"
nomap=$(conf nomap PolicyMap "$T/no-such.map")
tap_not "PolicyMap that does not exist: smime-milter -n fails" -- "$MILTER" -n -c "$nomap"

# ------------------------------------------------------------ SubjectTrigger
trig=$(conf trig SubjectTrigger '[secure]')
with_header trig.eml 's/^Subject: .*/Subject: [secure] quarterly numbers/'
proc trig-no "$trig" alice@example.org "$T/trig.eml" nocert@example.net
tap_is "$rc" 3 "SubjectTrigger: the tagged message is mandatory (recipient without certificate rejected)"
tap_check "SubjectTrigger reject: 550 5.7.1 text" -- \
    grep -qF '550 5.7.1 no valid S/MIME certificate for nocert@example.net: no certificate found' "$T/trig-no.err"
proc trig-plain "$trig" alice@example.org "$T/msg.eml" nocert@example.net
tap_is "$rc" 0 "SubjectTrigger: an untagged message stays opportunistic"
proc trig "$trig" alice@example.org "$T/trig.eml" bob@example.net
tap_is "$rc" 0 "SubjectTrigger, certificate present: delivered"
tap_check "SubjectTrigger: encrypted" -- is_encrypted "$T/trig.out"
subj=$(hdr Subject "$T/trig.out")
tap_not "SubjectTrigger: tag removed from the outer Subject ($subj)" -- grep -qF '[secure]' <<<"$subj"
tap_is "$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$subj")" "quarterly numbers" "SubjectTrigger: rest of the Subject kept"
tap_is "$(hdr X-SMIME-Milter "$T/trig.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "SubjectTrigger: stamp"
tap_check "SubjectTrigger: bob decrypts" -- dec trig bob
tap_check "SubjectTrigger: inner signature verifies" -- smime_verify_openssl "$T/trig.bob.dec" "$P"
with_header trig2.eml 's/^Subject: .*/Subject: Re: quarterly numbers [secure]/'
trign=$(conf trign EncryptionPolicy never SubjectTrigger '[secure]')
proc trig2 "$trign" alice@example.org "$T/trig2.eml" bob@example.net
tap_check "SubjectTrigger overrides EncryptionPolicy never (tag at the end)" -- is_encrypted "$T/trig2.out"
subj=$(hdr Subject "$T/trig2.out")
tap_is "$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$subj")" "Re: quarterly numbers" "SubjectTrigger at the end: removed"
proc trig2-no "$trign" alice@example.org "$T/trig2.eml" nocert@example.net
tap_is "$rc" 3 "SubjectTrigger overrides EncryptionPolicy never: recipient without certificate rejected"

# ------------------------------------------------------------ outer headers
# (Postfix removes Bcc before the milter sees it: t-postfix-policy checks
# that end to end; here only the other headers are compared)
with_header bcc.eml '/^Cc: /a Bcc: Hidden <hidden@example.com>'
proc bcc "$base" alice@example.org "$T/bcc.eml" bob@example.net
tap_is "$rc" 0 "Bcc in the input: delivered"
tap_check "Bcc in the input: encrypted" -- is_encrypted "$T/bcc.out"
for h in From To Cc Subject Date Message-ID; do
    tap_is "$(field "$h" "$T/bcc.out")" "$(field "$h" "$T/bcc.eml")" "Bcc input: outer $h byte-identical"
done
tap_not "Bcc never appears in the output" -- grep -qi '^Bcc:' "$T/bcc.out"
# a forged stamp is replaced by ours
{ echo "X-SMIME-Milter: signed=ceo@example.org; encrypted=9/9; cipher=none"; cat "$T/msg.eml"; } >"$T/forged.eml"
proc forged "$base" alice@example.org "$T/forged.eml" bob@example.net
tap_is "$(headers_of "$T/forged.out" | grep -ci '^x-smime-milter:')" 1 "forged stamp removed, one stamp"
tap_is "$(hdr X-SMIME-Milter "$T/forged.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" "the stamp is ours"

# ------------------------------------------------ signed by the client itself
# not signed a second time, but encrypted as it is when policy says so:
# its own signature still verifies inside; real EnvelopedData is left
# alone; a mandatory recipient without a certificate is still refused
openssl cms -sign -signer "$P/alice.crt" -inkey "$P/alice.key" -certfile "$P/inter.crt" \
    -in "$T/msg.eml" -out "$T/clientsigned.body" 2>/dev/null
{ printf 'From: alice@example.org\nTo: bob@example.net\nSubject: signed by the client\n'; cat "$T/clientsigned.body"; } >"$T/clientsigned.eml"
proc clientsigned "$base" alice@example.org "$T/clientsigned.eml" bob@example.net
tap_check "client-signed, bob has a certificate: encrypted" -- is_encrypted "$T/clientsigned.out"
tap_is "$(hdr X-SMIME-Milter "$T/clientsigned.out")" "signed=no (already-signed); encrypted=1/1; cipher=aes-256-cbc" "client-signed: stamp says not signed again, encrypted"
tap_check "client-signed: bob decrypts it" -- dec clientsigned bob
tap_check "client-signed: inside, the client's signature verifies (openssl)" -- \
    smime_verify_openssl "$T/clientsigned.bob.dec" "$P"
tap_is "$(grep -c 'application/pkcs7-signature' "$T/clientsigned.bob.dec")" 2 "client-signed: exactly one signature inside (no second one)"
proc alreadyenc "$base" alice@example.org "$T/clientsigned.out" bob@example.net
tap_is "$(hdr X-SMIME-Milter "$T/alreadyenc.out")" "skipped=already-protected" "already encrypted (EnvelopedData): skipped"
mand=$(conf mand EncryptionPolicy mandatory MissingCertAction reject)
proc clientsigned-nocert "$mand" alice@example.org "$T/clientsigned.eml" carl@elsewhere.example
tap_is "$rc" 3 "client-signed to a mandatory recipient without a certificate: rejected, never plaintext"

# ------------------------------------------------ addresses and letter case
# Compared without regard to case, the local part too: a certificate that
# spells its address in capitals serves a lower-case recipient, and the
# sender's key serves a From in capitals.
mkcert frank Frank.Mixed@Example.ORG || { echo "Bail out! frank's certificate"; exit 1; }
cp "$T/frank.crt" "$T/certs/"
proc case-rcpt "$base" alice@example.org "$T/msg.eml" frank.mixed@example.org
tap_is "$rc:$(hdr X-SMIME-Milter "$T/case-rcpt.out")" "0:signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" \
    "certificate naming Frank.Mixed@Example.ORG: frank.mixed@example.org is encrypted to"
tap_check "address case: frank decrypts it with his key" -- \
    smime_decrypt_openssl "$T/case-rcpt.out" "$T/frank.crt" "$T/frank.key" "$T/case-rcpt.dec"
proc case-rcpt2 "$base" alice@example.org "$T/msg.eml" BOB@EXAMPLE.NET
tap_is "$rc:$(hdr X-SMIME-Milter "$T/case-rcpt2.out")" "0:signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" \
    "recipient BOB@EXAMPLE.NET: bob's certificate is found"
sed 's/^From: .*/From: Alice <Alice@Example.org>/' "$T/msg.eml" >"$T/case-from.eml"
proc case-from "$base" Alice@Example.org "$T/case-from.eml" bob@example.net
tap_is "$rc:$(hdr X-SMIME-Milter "$T/case-from.out" | sed 's/;.*//')" "0:signed=Alice@Example.org" \
    "From Alice@Example.org: signed with alice@example.org's key"
tap_check "address case: the signature inside verifies" -- dec case-from bob
tap_check "address case: signature verifies (openssl)" -- smime_verify_openssl "$T/case-from.bob.dec" "$P"

tap_done
