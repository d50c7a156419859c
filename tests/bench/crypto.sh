#!/bin/bash
# tests/bench/crypto.sh -- sign+encrypt and decrypt+verify throughput:
# smime-milter's pipeline vs OpenSSL alone, same bytes, same run (not a
# test: prints figures).
. "$(dirname "$0")/../lib/common.sh"
make_pki "$T/pki" || exit 1
mkdir -p "$T/keys" "$T/certs"
install -m 600 "$T/pki/alice.pem" "$T/keys/"
cp "$T/pki/bob.crt" "$T/pki/dave-enc.crt" "$T/pki/inter.crt" "$T/certs/"
cat >"$T/bench.conf" <<EOC
KeyStore $T/keys
TrustAnchors $T/pki/trust.pem
CertificateStore $T/certs
EncryptToSelf no
EOC
for size in ${SIZES:-2048 20480 204800}; do
    "$BUILDDIR/tests/bench/crypto-bench" "$T/bench.conf" alice@example.org \
        bob@example.net dave@example.org "$size" "${SECONDS_PER:-3}"
done

# inbound: alice signs, encrypts to bob; bob's key is in the key store
P=$T/pki
mkdir -p "$T/inkeys"
install -m 600 "$P/bob.pem" "$T/inkeys/"
cat >"$T/in.conf" <<EOC
KeyStore $T/inkeys
TrustAnchors $P/trust.pem
EOC
for size in ${SIZES:-2048 20480 204800}; do
    {
        printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\n'
        yes 'The quick brown fox jumps over the lazy dog, again and again.' |
            head -n $((size / 64)) | sed 's/$/\r/'
    } >"$T/entity"
    openssl cms -sign -binary -md sha256 -in "$T/entity" -signer "$P/alice.crt" \
        -inkey "$P/alice.key" -certfile "$P/chain.pem" 2>/dev/null |
        sed -e 's/\r$//' -e 's/$/\r/' >"$T/signed"
    openssl cms -encrypt -binary -aes-256-cbc -in "$T/signed" -recip "$P/bob.crt" \
        -outform DER -out "$T/enc.der" 2>/dev/null
    { printf 'From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: bench\r\n'
      printf 'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n'
      printf 'Content-Transfer-Encoding: base64\r\n\r\n'
      base64 -w 76 "$T/enc.der" | sed 's/$/\r/'; } >"$T/in.eml"
    openssl cms -sign -binary -md sha256 -in "$T/entity" -signer "$P/alice.crt" \
        -inkey "$P/alice.key" -certfile "$P/chain.pem" -outform DER -out "$T/sig.der" 2>/dev/null
    "$BUILDDIR/tests/bench/crypto-bench" inbound "$T/in.conf" "$T/in.eml" \
        "$T/enc.der" "$T/entity" "$T/sig.der" "${SECONDS_PER:-3}"
done
