# shellcheck shell=bash
# tests/corpus/profiles.sh -- key/trust profiles for the interop corpus.
# Sourced by tests/t-corpus.sh and tests/corpus/derive.sh; reads only
# files under tests/corpus (CORPUS must point there).
#
#   corpus_profile NAME DIR
#       Materialises profile NAME into the empty directory DIR:
#         DIR/keys/            the milter's KeyStore (PKCS#12 + FILE.pass, or
#                              PEM cert+key), every file mode 0600
#         DIR/pem/*.pem        the same keys as unencrypted PEM cert+key,
#                              for openssl cms -decrypt (mode 0600)
#         DIR/anchors.pem      trust anchors (absent: no TrustAnchors line)
#         DIR/crls.pem         CRLs (absent: no CRLs line)
#         DIR/smime-milter.conf
#       Returns non-zero (message on stderr) when the profile is unknown or
#       a conversion fails.
#   corpus_message FILE FROM TO
#       Prints the message of an expected.tsv row: FILE (relative to
#       CORPUS) as is, except that a leading mbox "From " line (the KDE
#       *.mbox files) is dropped, and *.bin files go through corpus_wrap_bin.
#   corpus_wrap_bin DER FROM TO
#       Prints a minimal MIME message (CRLF) carrying the raw CMS file DER
#       as application/pkcs7-mime, smime-type after the CMS content type
#       (for the RFC 4134 *.bin blobs).
#
# Profiles:
#   tb           Bob.p12 (pw nss); anchor NSS Test CA; LocalDomains example.com
#   tb-sha1      tb + AllowSHA1Signatures yes
#   tb-nokey     Alice.p12 only (no message is encrypted to Alice)
#   tb-noanchor  Bob.p12, no TrustAnchors at all
#   kde          unittest cert+key (PEM); anchor unittest-cert.pem
#   kde-nocert   no keys, no anchors: the KMail signer is known nowhere
#   bc-validator anchor validator.root.crt + CRL validator.revoked.crl
#   bc-validator-legacy  bc-validator + AllowSHA1Signatures yes, MinKeyBits
#                1024 (the 2006 validator certificates are RSA-1024)
#   bc-fakeroot  anchor validator.fakeRoot.crt (same name, other key)
#   bc-test192   key.pem + cert.pem; no anchors
#   bc-none      no keys, no anchors; the recipients' domains are local
#   rfc4134      BobRSA key; anchors CarlRSASelf + CarlDSSSelf
#   mimekit      anchor StartCom Certification Authority (+ intermediate)
#   m2crypto     anchor M2Crypto ca.pem
# Every profile: AuthservID test.example.

: "${CORPUS:?CORPUS must be set to tests/corpus}"

# _cp_p12 DIR SRC PASS [legacy]: PKCS#12 into the key store + PEM copy
_cp_p12() {
    local dir=$1 src=$2 pass=$3 legacy=${4:-} base
    base=$(basename "$src")
    (
        umask 077
        cp "$CORPUS/$src" "$dir/keys/$base" &&
            printf '%s\n' "$pass" >"$dir/keys/$base.pass" &&
            openssl pkcs12 ${legacy:+-legacy} -in "$CORPUS/$src" \
                -passin "pass:$pass" -nodes -clcerts \
                -out "$dir/pem/${base%.*}.pem" 2>/dev/null
    ) && chmod 600 "$dir/keys/$base" "$dir/keys/$base.pass"
}
# _cp_pem DIR NAME CERT KEY: one PEM file with cert then key, both places
_cp_pem() {
    local dir=$1 name=$2 cert=$3 key=$4
    (
        umask 077
        cat "$CORPUS/$cert" "$CORPUS/$key" >"$dir/keys/$name.pem" &&
            cp "$dir/keys/$name.pem" "$dir/pem/$name.pem"
    )
}
_cp_anchor() { # _cp_anchor DIR FILE...: PEM (or DER) certificates
    local dir=$1 f
    shift
    for f in "$@"; do
        openssl x509 -in "$CORPUS/$f" -outform PEM 2>/dev/null ||
            openssl x509 -inform DER -in "$CORPUS/$f" -outform PEM ||
            return 1
    done >>"$dir/anchors.pem"
}
_cp_crl() { # _cp_crl DIR FILE: PEM or DER CRL
    local dir=$1 f=$2
    openssl crl -in "$CORPUS/$f" -outform PEM 2>/dev/null >>"$dir/crls.pem" ||
        openssl crl -inform DER -in "$CORPUS/$f" -outform PEM >>"$dir/crls.pem"
}

corpus_profile() {
    local name=$1 dir=$2 local_domains extra=()
    mkdir -p "$dir/keys" "$dir/pem" || return 1
    chmod 700 "$dir/keys" "$dir/pem"
    case $name in
    tb | tb-sha1 | tb-noanchor)
        _cp_p12 "$dir" thunderbird/Bob.p12 nss || return 1
        [ "$name" = tb-noanchor ] ||
            _cp_anchor "$dir" thunderbird/TestCA.pem || return 1
        [ "$name" = tb-sha1 ] && extra+=("AllowSHA1Signatures yes")
        local_domains=example.com
        ;;
    tb-nokey)
        _cp_p12 "$dir" thunderbird/Alice.p12 nss || return 1
        _cp_anchor "$dir" thunderbird/TestCA.pem || return 1
        local_domains=example.com
        ;;
    kde)
        _cp_pem "$dir" unittest kde-mimetreeparser/unittest-cert.pem \
            kde-mimetreeparser/unittest-key.pem || return 1
        _cp_anchor "$dir" kde-mimetreeparser/unittest-cert.pem || return 1
        local_domains=example.com
        ;;
    kde-nocert)
        local_domains=example.com
        ;;
    bc-validator | bc-validator-legacy)
        [ "$name" = bc-validator-legacy ] &&
            extra+=("AllowSHA1Signatures yes" "MinKeyBits 1024")
        _cp_anchor "$dir" bouncycastle/validator.root.crt || return 1
        _cp_crl "$dir" bouncycastle/validator.revoked.crl || return 1
        local_domains=bouncycastle.org
        ;;
    bc-fakeroot)
        _cp_anchor "$dir" bouncycastle/validator.fakeRoot.crt || return 1
        local_domains=bouncycastle.org
        ;;
    bc-test192)
        _cp_pem "$dir" test192 bouncycastle/cert.pem bouncycastle/key.pem ||
            return 1
        local_domains=direct.tiani-spirit.net
        ;;
    bc-none)
        local_domains="example.net fred.com example.com example.org"
        ;;
    rfc4134)
        _cp_pem "$dir" bobrsa rfc4134/BobRSASignByCarl.pem \
            rfc4134/BobPrivRSAEncrypt.pem || return 1
        _cp_anchor "$dir" rfc4134/CarlRSASelf.pem rfc4134/CarlDSSSelf.pem ||
            return 1
        local_domains="example.com examples.com"
        ;;
    mimekit)
        _cp_anchor "$dir" mimekit/StartComCertificationAuthority.crt ||
            return 1
        local_domains=example.com
        ;;
    m2crypto)
        _cp_anchor "$dir" m2crypto/ca.pem || return 1
        local_domains=example.com
        ;;
    *)
        echo "corpus_profile: unknown profile \"$name\"" >&2
        return 1
        ;;
    esac
    {
        echo "KeyStore $dir/keys"
        [ -s "$dir/anchors.pem" ] && echo "TrustAnchors $dir/anchors.pem"
        [ -s "$dir/crls.pem" ] && echo "CRLs $dir/crls.pem"
        echo "LocalDomains $local_domains"
        echo "AuthservID test.example"
        echo "TempDirectory $dir"
        echo "LogLevel info"
        for l in "${extra[@]}"; do echo "$l"; done
    } >"$dir/smime-milter.conf"
}

corpus_wrap_bin() {
    local st=
    case $(openssl cms -cmsout -print -inform DER -in "$1" 2>/dev/null |
        sed -n 's/^ *contentType: *//p' | head -n 1) in
    pkcs7-signedData*) st='; smime-type=signed-data' ;;
    pkcs7-envelopedData*) st='; smime-type=enveloped-data' ;;
    esac
    printf '%s\r\n' "From: $2" "To: $3" "Subject: RFC 4134 $(basename "$1")" \
        "MIME-Version: 1.0" \
        "Content-Type: application/pkcs7-mime$st; name=\"smime.p7m\"" \
        "Content-Transfer-Encoding: base64" \
        'Content-Disposition: attachment; filename="smime.p7m"' ""
    base64 -w 76 "$1" | sed 's/$/\r/'
}

corpus_message() {
    case $1 in
    *.bin) corpus_wrap_bin "$CORPUS/$1" "$2" "$3" ;;
    *) sed '1{/^From /d}' "$CORPUS/$1" ;;
    esac
}
