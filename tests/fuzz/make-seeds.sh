#!/bin/bash
# make-seeds.sh SRCDIR OUTDIR -- seeds that cannot be committed because
# they need keys, made at fuzz time into OUTDIR (a build directory):
#   OUTDIR/pki        tests/pki/mkpki.sh (the fuzz targets use it through
#                     SMM_FUZZ_PKI, so they hold the keys the seeds are
#                     encrypted to)
#   OUTDIR/inbound    messages signed by alice (detached, opaque, SHA-1,
#                     EC), encrypted to bob (CBC, OAEP, GCM) and to carol
#                     (ECDH), signed then encrypted, in a multipart/mixed,
#                     binary content encrypted to bob
#   OUTDIR/outbound   the plain entity with a message header
#   OUTDIR/cms        the DER of those signatures and enveloped-data, each
#                     after the byte that picks fuzz-cms's wrapping
#   OUTDIR/certblob   the userSMIMECertificate and userCertificate values
#                     of tests/ldap/mkldif.sh (PKCS#7 certs-only, MS TLV,
#                     DER), a PEM certificate and a signed PKCS#7 blob
#                     carrying SMIMECapabilities
#   OUTDIR/config     contrib/smime-milter.conf.sample with every default
#                     uncommented
# Reruns reuse OUTDIR/pki.  Needs openssl and base64.
set -eu
SRC=$1
OUT=$2
. "$SRC/tests/lib/smime-make.sh"

mkdir -p "$OUT"
P=$OUT/pki
if [ ! -s "$P/carol.pem" ] || [ ! -s "$P/trust.pem" ]; then
    sh "$SRC/tests/pki/mkpki.sh" "$P" >"$OUT/mkpki.log" 2>&1 || {
        cat "$OUT/mkpki.log" >&2
        exit 1
    }
fi
W=$OUT/work
rm -rf "$W" "$OUT"/{inbound,outbound,certblob,config,cms}
mkdir -p "$W" "$OUT"/{inbound,outbound,certblob,config,cms}

crlf() { sed -e 's/\r$//' -e 's/$/\r/'; }
printf '%s\n' 'Content-Type: text/plain; charset=utf-8' \
    'Content-Transfer-Encoding: quoted-printable' '' \
    'Gr=C3=BC=C3=9Fe from the fuzz seeds.' '-- ' 'sig' | crlf >"$W/entity"
# msg OUT: a message header + the entity on stdin
msg() {
    {
        printf 'From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: seed\r\n'
        printf 'Message-ID: <seed@fuzz>\r\nMIME-Version: 1.0\r\n'
        crlf
    } >"$1"
}
sign() { # sign IN OUT MD SIGNER [-nodetach]
    openssl cms -sign -binary -crlfeol -md "$3" -in "$1" -signer "$P/$4.crt" \
        -inkey "$P/$4.key" -certfile "$P/chain.pem" ${5:+"$5"} -outform DER -out "$2"
}
encrypt() { # encrypt IN OUT CIPHER CERT [keyopt]
    openssl cms -encrypt -binary -"$3" -in "$1" -outform DER -out "$2" \
        -recip "$P/$4.crt" ${5:+-keyopt "$5"}
}

sign "$W/entity" "$W/sig.sha256" sha256 alice
smime_wrap_signed "$W/entity" "$W/sig.sha256" "$W/e" sha-256
msg "$OUT/inbound/signed-detached.eml" <"$W/e"
sign "$W/entity" "$W/sig.sha1" sha1 alice
smime_wrap_signed "$W/entity" "$W/sig.sha1" "$W/e" sha-1
msg "$OUT/inbound/signed-sha1.eml" <"$W/e"
sign "$W/entity" "$W/sig.ec" sha256 carol
smime_wrap_signed "$W/entity" "$W/sig.ec" "$W/e" sha-256
msg "$OUT/inbound/signed-ec.eml" <"$W/e"
sign "$W/entity" "$W/opaque" sha256 alice -nodetach
smime_wrap_p7m "$W/opaque" "$W/e" signed-data
msg "$OUT/inbound/signed-opaque.eml" <"$W/e"
encrypt "$W/entity" "$W/enc.cbc" aes-256-cbc bob
smime_wrap_p7m "$W/enc.cbc" "$W/e" enveloped-data
msg "$OUT/inbound/enveloped-cbc.eml" <"$W/e"
encrypt "$W/entity" "$W/enc.oaep" aes-128-cbc bob rsa_padding_mode:oaep
smime_wrap_p7m "$W/enc.oaep" "$W/e" enveloped-data
msg "$OUT/inbound/enveloped-oaep.eml" <"$W/e"
encrypt "$W/entity" "$W/enc.gcm" aes-256-gcm bob
smime_wrap_p7m "$W/enc.gcm" "$W/e" authEnveloped-data
msg "$OUT/inbound/authenveloped-gcm.eml" <"$W/e"
encrypt "$W/entity" "$W/enc.ec" aes-128-cbc carol
smime_wrap_p7m "$W/enc.ec" "$W/e" enveloped-data
msg "$OUT/inbound/enveloped-ecdh.eml" <"$W/e"
# signed (detached) then encrypted to bob
{
    printf 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s1"\r\n\r\n--s1\r\n'
    cat "$W/entity"
    printf '\r\n--s1\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    base64 -w 76 "$W/sig.sha256" | crlf
    printf '\r\n--s1--\r\n'
} >"$W/signed-entity"
encrypt "$W/signed-entity" "$W/enc.signed" aes-256-cbc bob
smime_wrap_p7m "$W/enc.signed" "$W/e" enveloped-data
msg "$OUT/inbound/signed-then-enveloped.eml" <"$W/e"
# a signed part inside multipart/mixed
{
    printf 'Content-Type: multipart/mixed; boundary="m1"\r\n\r\n--m1\r\n'
    printf 'Content-Type: text/plain\r\n\r\nforwarded:\r\n--m1\r\n'
    smime_wrap_signed "$W/entity" "$W/sig.sha256" "$W/part" sha-256
    cat "$W/part"
    printf '\r\n--m1--\r\n'
} | msg "$OUT/inbound/mixed-with-signed.eml"
# binary inside the encryption (RFC 8551 3.1.2): rebuilt in 7-bit
# encodings after decryption
{
    printf 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    printf 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
    printf 'Gr\303\274\303\237e %01200d\r\n--b1\r\n' 0
    printf 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'
    printf 'a\0b\nc\rd\r\n\377\376\r\n--b1--\r\n'
} >"$W/binary-entity"
encrypt "$W/binary-entity" "$W/enc.binary" aes-256-cbc bob
smime_wrap_p7m "$W/enc.binary" "$W/e" enveloped-data
msg "$OUT/inbound/enveloped-binary.eml" <"$W/e"

msg "$OUT/outbound/plain-entity.eml" <"$W/entity"

# fuzz-cms: wrapping byte (0 enveloped, 1 signed-data, 2 authEnveloped,
# 3 detached signature of the entity above) + DER
der() { { printf "\\$1"; cat "$W/$2"; } >"$OUT/cms/$2"; }
der 000 enc.cbc
der 000 enc.oaep
der 000 enc.ec
der 000 enc.signed
der 000 enc.binary
der 001 opaque
der 002 enc.gcm
der 003 sig.sha256
der 003 sig.sha1
der 003 sig.ec

# certificate blobs: the directory values of the LDAP tests
sh "$SRC/tests/ldap/mkldif.sh" "$P" "$W/dir.ldif" >"$W/mkldif.log" 2>&1 || {
    cat "$W/mkldif.log" >&2
    exit 1
}
awk '/^[A-Za-z]/ {name = ""} /^(userSMIMECertificate|userCertificate;binary)::/ {n++; name = "blob" n; sub(/^[^:]*:: */, ""); print > (dir "/" name ".b64"); next} /^ / && name != "" {sub(/^ /, ""); print >> (dir "/" name ".b64")}' \
    dir="$W" "$W/dir.ldif"
for f in "$W"/blob*.b64; do
    [ -e "$f" ] || continue
    tr -d '\n' <"$f" | base64 -d >"$OUT/certblob/$(basename "$f" .b64)" 2>/dev/null || true
done
openssl x509 -in "$P/alice.crt" -out "$OUT/certblob/alice.pem"
openssl smime -sign -binary -in /dev/null -signer "$P/alice.crt" -inkey "$P/alice.key" \
    -certfile "$P/chain.pem" -outform DER -out "$OUT/certblob/signed-caps.p7"

sed -e 's/^#\([A-Z][A-Za-z0-9]*\)/\1/' "$SRC/contrib/smime-milter.conf.sample" >"$OUT/config/sample.conf"
rm -rf "$W"
echo "make-seeds: $(find "$OUT"/{inbound,outbound,certblob,config,cms} -type f | wc -l) seeds in $OUT"
