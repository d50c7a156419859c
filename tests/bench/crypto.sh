#!/bin/bash
# tests/bench/crypto.sh -- sign+encrypt throughput: smime-milter's pipeline
# vs OpenSSL alone, same bytes, same run (not a test: prints figures).
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
