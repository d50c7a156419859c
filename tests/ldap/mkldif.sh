#!/bin/sh
# mkldif.sh PKIDIR OUT.ldif -- directory content for the LDAP tests, made
# from the test PKI of tests/pki/mkpki.sh (run that first).  Needs openssl
# and base64.  Load OUT.ldif with `ldap_add` (tests/lib/slapd.sh): the base
# entry dc=example,dc=org must exist; the schema needs inetorgperson and
# tests/ldap/ad-test.ldif.
#
# Extra certificates are issued into PKIDIR (by inter.crt/inter.key, with a
# throwaway `openssl ca` configuration, because OpenSSL 3.0 `x509 -req`
# cannot backdate); they are reused when they already exist:
#   multi1.crt/.key/.pem/.p12   multi@example.org, RSA-2048, notBefore -10 d
#   multi2.crt/.key/.pem/.p12   multi@example.org, RSA-2048, notBefore -2 d
#       (both: KU keyEncipherment, EKU emailProtection,
#        SAN email:multi@example.org, valid until +730 d)
#   aduser.crt/.key/.pem/.p12   ad.user@example.org, RSA-2048, notBefore -1 d,
#       KU digitalSignature+nonRepudiation+keyEncipherment, EKU
#       emailProtection, SAN email:ad.user@example.org
#
# Entries, all under ou=people,dc=example,dc=org, objectClass
# inetOrgPerson (uid, cn, sn, mail):
#   uid=alice   mail alice@example.org
#               userSMIMECertificate: PKCS#7 SignedData certs-only (DER) with
#               alice.crt + inter.crt (openssl crl2pkcs7 -nocrl)
#   uid=bob     mail bob@example.net
#               userSMIMECertificate: Microsoft/Outlook TLV blob (below)
#   uid=carol   mail carol@example.org
#               userCertificate;binary: carol.crt (EC), DER
#   uid=dave    mail dave@example.org
#               userSMIMECertificate: dave-enc.crt as one plain DER cert
#               userCertificate;binary: dave-sign.crt
#   uid=multi   mail multi@example.org, userCertificate;binary, 9 values:
#               expired, notyet, weak (RSA-1024), signonly-eku (clientAuth
#               only), untrusted (other root), revoked (in crl.pem), alice
#               (address mismatch), multi1 and multi2 (the two valid ones,
#               multi2 is the newer)
#   uid=aduser  objectClass adTestUser, mail primary@example.org,
#               proxyAddresses: SMTP:ad.user@example.org and
#               proxyAddresses: smtp:alias@example.org,
#               userSMIMECertificate: PKCS#7 certs-only aduser.crt + inter.crt
#               (the certificate is for ad.user@, not for primary@)
#   uid=nocert  mail nocert@example.org, no certificate attribute
#   uid=erin, nina, walter, sam, ursula, rita: userCertificate;binary with
#               their own expired, notyet, weak, signonly-eku, untrusted,
#               revoked certificate (one refusal reason each)
#
# bob's userSMIMECertificate is in the non-ASN.1 format of the Outlook /
# Exchange PR_USER_X509_CERTIFICATE (PidTagUserX509Certificate, 0x3A70)
# property, as published to the GAL: [MS-OXOABK] section 2.2.4.36 "Non-ASN.1
# Binary Value Format".  A value whose first byte is 0x30 is an ASN.1
# SignedData; anything else is a sequence of security settings, each
#     TAG     2 bytes, unsigned, little-endian
#     LENGTH  2 bytes, unsigned, little-endian: the TOTAL length of the
#             setting, i.e. 4 (TAG+LENGTH) + length of DATA
#     DATA    LENGTH - 4 bytes
# Unknown tags MUST be ignored.  Tags used here ([MS-OXOABK] 2.2.4.36.x;
# cross-checked against the OutlookCertificateTag enum of Exchange's
# X509CertificateCollection.ImportFromContact, which reads the blob with
# BitConverter.ToUInt16, i.e. little-endian, and adds LENGTH to skip a
# setting):
#     0x0001  Property Version (2.2.4.36.1): LENGTH 8, DATA uint32 LE 1;
#             MUST be present
#     0x0003  KeyExchangeCertificate: DATA = DER X.509 certificate used to
#             encrypt to the user
#     0x0004  ChainCertificate (2.2.4.36.10): DER certificate for chain
#             building, may repeat
#     (0x0008 SignCertificate (2.2.4.36.9) and the others are not used.)
# bob's blob is: Version(1) | KeyExchangeCertificate(bob.crt) |
# ChainCertificate(inter.crt).  Its first byte is 0x01, so a reader that
# follows the spec does not take it for ASN.1.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 PKIDIR OUT.ldif" >&2
    exit 2
fi
P=$(cd "$1" && pwd) || exit 2
OUT=$2
BASE=dc=example,dc=org
PEOPLE=ou=people,$BASE

die() { echo "mkldif.sh: $*" >&2; exit 1; }

for f in inter.crt inter.key alice.crt bob.crt carol.crt dave-sign.crt \
    dave-enc.crt expired.crt notyet.crt weak.crt signonly-eku.crt \
    untrusted.crt revoked.crt passphrase; do
    [ -r "$P/$f" ] || die "$P/$f missing (run tests/pki/mkpki.sh $P first)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mkldif.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' HUP INT TERM
umask 077

# ---------------------------------------------------------------- helpers

now=$(date -u +%s)
ts() { date -u -d "@$((now + $1 * 86400))" +%Y%m%d%H%M%SZ; }

# b64 FILE: one-line base64 of FILE
b64() { base64 <"$1" | tr -d '\n'; }

# der CERT.pem OUT.der
der() { openssl x509 -in "$1" -outform DER -out "$2" || die "cannot convert $1"; }

# le16 N: N as two bytes, little-endian
le16() {
    # shellcheck disable=SC2059
    printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $((($1 >> 8) & 255)))"
}

# tlv TAG FILE: one MS-OXOABK security setting with FILE's bytes as DATA
tlv() {
    _len=$(($(wc -c <"$2") + 4))
    [ "$_len" -le 65535 ] || die "$2 too large for a 16-bit TLV length"
    le16 "$1"
    le16 "$_len"
    cat "$2"
}

# p7 OUT.der CERT1 CERT2: PKCS#7 SignedData certs-only (degenerate), DER
p7() {
    openssl crl2pkcs7 -nocrl -certfile "$2" -certfile "$3" -outform DER \
        -out "$1" || die "crl2pkcs7 failed"
}

# ---------------------------------------------------------------- extra certs

cat >"$WORK/ca.cnf" <<'EOF'
[ ca ]
default_ca = inter_ca
[ inter_ca ]
dir             = $ENV::MK_WORK
database        = $dir/index.txt
serial          = $dir/serial
new_certs_dir   = $dir/new
certificate     = $ENV::MK_PKI/inter.crt
private_key     = $ENV::MK_PKI/inter.key
default_md      = sha256
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none
preserve        = yes
[ policy_any ]
organizationName = optional
commonName       = supplied
[ ext_user ]
basicConstraints       = critical, CA:false
keyUsage               = critical, $ENV::MK_KU
extendedKeyUsage       = emailProtection
subjectAltName         = email:$ENV::MK_SAN
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder
EOF
mkdir -p "$WORK/new"
: >"$WORK/index.txt"
MK_WORK=$WORK MK_PKI=$P MK_KU=keyEncipherment MK_SAN=unused@example.invalid
export MK_WORK MK_PKI MK_KU MK_SAN

have() { [ -s "$P/$1.crt" ] && [ -s "$P/$1.key" ]; }

# key generation dominates: do it in parallel
pids=
for n in multi1 multi2 aduser; do
    have "$n" && continue
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$WORK/$n.key" 2>/dev/null &
    pids="$pids $!"
done
for p in $pids; do
    wait "$p" || die "key generation failed"
done

# extra NAME EMAIL KEYUSAGE STARTDAYS
extra() {
    have "$1" && return 0
    MK_KU=$3 MK_SAN=$2
    openssl req -new -config "$WORK/ca.cnf" -key "$WORK/$1.key" \
        -subj "/O=smime-milter Test/CN=$2" -out "$WORK/$1.csr" 2>"$WORK/err" ||
        { cat "$WORK/err" >&2; die "req $1"; }
    openssl ca -config "$WORK/ca.cnf" -batch -notext -rand_serial \
        -extensions ext_user -startdate "$(ts "$4")" -enddate "$(ts 730)" \
        -in "$WORK/$1.csr" -out "$WORK/$1.crt" >"$WORK/err" 2>&1 ||
        { cat "$WORK/err" >&2; die "ca $1"; }
    cp "$WORK/$1.key" "$P/$1.key"
    chmod 0600 "$P/$1.key"
    cp "$WORK/$1.crt" "$P/$1.crt"
    chmod 0644 "$P/$1.crt"
    cat "$P/$1.crt" "$P/$1.key" "$P/inter.crt" >"$P/$1.pem"
    chmod 0600 "$P/$1.pem"
    openssl pkcs12 -export -legacy -inkey "$P/$1.key" -in "$P/$1.crt" \
        -certfile "$P/inter.crt" -name "$2" -passout "file:$P/passphrase" -out "$P/$1.p12" 2>"$WORK/err" ||
        { cat "$WORK/err" >&2; die "pkcs12 $1"; }
    chmod 0600 "$P/$1.p12"
}
extra multi1 multi@example.org keyEncipherment -10
extra multi2 multi@example.org keyEncipherment -2
extra aduser ad.user@example.org \
    "digitalSignature, nonRepudiation, keyEncipherment" -1

# ---------------------------------------------------------------- blobs

for c in alice bob carol dave-sign dave-enc expired notyet weak \
    signonly-eku untrusted revoked multi1 multi2 aduser inter; do
    der "$P/$c.crt" "$WORK/$c.der"
done
p7 "$WORK/alice.p7" "$P/alice.crt" "$P/inter.crt"
p7 "$WORK/aduser.p7" "$P/aduser.crt" "$P/inter.crt"
printf '\001\000\000\000' >"$WORK/version"
{
    tlv 1 "$WORK/version"
    tlv 3 "$WORK/bob.der"
    tlv 4 "$WORK/inter.der"
} >"$WORK/bob.ms"

# ---------------------------------------------------------------- LDIF

# person UID CN SN MAIL: the common part of an entry
person() {
    printf 'dn: uid=%s,%s\n' "$1" "$PEOPLE"
    printf 'objectClass: inetOrgPerson\n'
    printf 'uid: %s\ncn: %s\nsn: %s\nmail: %s\n' "$1" "$2" "$3" "$4"
}
# bin ATTR FILE: a base64 attribute value
bin() { printf '%s:: %s\n' "$1" "$(b64 "$2")"; }

{
    printf '# generated by tests/ldap/mkldif.sh from %s - do not edit\n\n' "$P"
    printf 'dn: %s\nobjectClass: organizationalUnit\nou: people\n\n' "$PEOPLE"

    person alice "Alice Example" Example alice@example.org
    bin userSMIMECertificate "$WORK/alice.p7"
    echo

    person bob "Bob Example" Example bob@example.net
    bin userSMIMECertificate "$WORK/bob.ms"
    echo

    person carol "Carol Example" Example carol@example.org
    bin 'userCertificate;binary' "$WORK/carol.der"
    echo

    person dave "Dave Example" Example dave@example.org
    bin userSMIMECertificate "$WORK/dave-enc.der"
    bin 'userCertificate;binary' "$WORK/dave-sign.der"
    echo

    person multi "Multi Example" Example multi@example.org
    for c in expired notyet weak signonly-eku untrusted revoked alice multi1 multi2; do
        bin 'userCertificate;binary' "$WORK/$c.der"
    done
    echo

    person aduser "AD User" User primary@example.org
    printf 'objectClass: adTestUser\n'
    printf 'proxyAddresses: SMTP:ad.user@example.org\n'
    printf 'proxyAddresses: smtp:alias@example.org\n'
    bin userSMIMECertificate "$WORK/aduser.p7"
    echo

    person nocert "Nocert Example" Example nocert@example.org
    echo

    # one entry per refusal reason, each holding its owner's certificate
    for pair in expired:erin notyet:nina weak:walter signonly-eku:sam \
        untrusted:ursula revoked:rita; do
        c=${pair%%:*}
        u=${pair#*:}
        person "$u" "$u Example" Example "$u@example.org"
        bin 'userCertificate;binary' "$WORK/$c.der"
        echo
    done
} >"$WORK/out.ldif"
mv -f "$WORK/out.ldif" "$OUT" 2>/dev/null || cp "$WORK/out.ldif" "$OUT"
chmod 0644 "$OUT"
exit 0
