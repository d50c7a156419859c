# shellcheck shell=bash
# smime-check.sh -- S/MIME verification helpers for the test suite.
# Source it from bash:   . "$srcdir/tests/lib/smime-check.sh"
#
# Every check returns 0 when it passes and non-zero otherwise (1 = check
# failed, 2 = usage/setup problem such as a missing tool), printing a
# one-line reason to stderr on failure.  PKIDIR is a directory made by
# tests/pki/mkpki.sh.
#
#   smime_verify_openssl MSG PKIDIR [CONTENT_OUT]
#       openssl cms -verify -purpose smimesign -CAfile PKIDIR/trust.pem
#       (S/MIME input).  Checks the signature, chain, validity *now* and the
#       emailProtection EKU.  Writes the verified content to CONTENT_OUT.
#   smime_verify_nss MSG PKIDIR
#       smime-split + cmsutil -D -u 4 (certUsageEmailSigner) against
#       PKIDIR/nss.  Every signer must report status GoodSignature.  NSS
#       validates the signer certificate at the signingTime attribute (now
#       when there is none).
#   smime_verify_gpgsm MSG PKIDIR
#       smime-split + gpgsm --verify with GNUPGHOME PKIDIR/gnupg.  Needs
#       GOODSIG and VALIDSIG for every signature plus TRUST_FULLY/ULTIMATE,
#       and no BADSIG/ERRSIG/EXPSIG/EXPKEYSIG/REVKEYSIG/TRUST_UNDEFINED/
#       TRUST_NEVER/ERROR/FAILURE.  (gpgsm exits 0 for an expired signer --
#       EXPKEYSIG -- and for a signer without digitalSignature key usage --
#       "ERROR verify.keyusage" but GOODSIG+TRUST_FULLY; it emits
#       GOODSIG+VALIDSIG for an untrusted chain too, so neither the exit
#       code nor GOODSIG alone is enough.)  gpgsm does not enforce the
#       emailProtection EKU.  gpg-agent (needed for trustlist.txt) is killed
#       after each call unless SMIME_GPGSM_KEEP_AGENT=1; calls on the same
#       PKIDIR are serialised with flock(1).
#   smime_signer_openssl MSG PKIDIR
#       Prints the e-mail addresses (rfc822Name SAN / emailAddress) of the
#       signer certificate(s), one per line.  The signature itself must be
#       intact, but the chain is NOT validated (-noverify), so it also
#       identifies untrusted/expired signers.
#   smime_split MSG CONTENT_OUT SIG_OUT
#       Runs $SMIME_SPLIT with the canonicalisation policy below.
#   smime_split_build OUTDIR
#       Compiles tests/tools/smime-split.c into OUTDIR and exports
#       SMIME_SPLIT=OUTDIR/smime-split.
#   smime_gpg_cleanup PKIDIR
#       Kills any gpg-agent/dirmngr started for PKIDIR/gnupg.
#
# Environment:
#   SMIME_SPLIT   path of the smime-split binary
#                 (default: <repo>/tests/tools/smime-split)
#   SMIME_CANON   auto (default) | yes | no -- whether the nss/gpgsm checks
#                 convert bare LF to CRLF in the signed content.  "auto"
#                 canonicalises only when MSG contains no CR at all (i.e. it
#                 was stored with LF line ends, as MTAs usually do); a
#                 message with CRLF line ends is used byte-exact.
#   SMIME_GPGSM_KEEP_AGENT  set to 1 to leave gpg-agent running.

_smime_check_libdir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_smime_check_root=$(cd "$_smime_check_libdir/../.." && pwd)
: "${SMIME_SPLIT:=$_smime_check_root/tests/tools/smime-split}"
: "${SMIME_CANON:=auto}"

_smime_err() {
    printf '%s\n' "smime-check: $*" | head -n 1 >&2
}

# One line out of (possibly multi-line) tool output.
_smime_oneline() {
    tr '\r\n' '  ' <"$1" | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-300
}

_smime_need() {
    local f
    for f in "$@"; do
        if ! command -v "$f" >/dev/null 2>&1; then
            _smime_err "required tool '$f' not found"
            return 2
        fi
    done
}

_smime_args() {   # FUNC NEEDED GIVEN MSG PKIDIR
    if [ "$3" -lt "$2" ]; then
        _smime_err "$1: usage: $1 MSG PKIDIR"
        return 2
    fi
    if [ ! -r "$4" ]; then
        _smime_err "$1: cannot read message '$4'"
        return 2
    fi
    if [ ! -d "$5" ]; then
        _smime_err "$1: no PKI directory '$5'"
        return 2
    fi
}

smime_split_build() {
    local out=${1:?usage: smime_split_build OUTDIR}
    mkdir -p "$out" || return 2
    if ! ${CC:-gcc} -Wall -Wextra -O2 -o "$out/smime-split" \
            "$_smime_check_root/tests/tools/smime-split.c" 2>"$out/cc.log"; then
        _smime_err "cannot compile smime-split: $(_smime_oneline "$out/cc.log")"
        return 2
    fi
    SMIME_SPLIT=$out/smime-split
    export SMIME_SPLIT
}

smime_split() {
    local msg=$1 canon=
    if [ ! -x "$SMIME_SPLIT" ]; then
        _smime_err "smime-split not found at '$SMIME_SPLIT' (set SMIME_SPLIT)"
        return 127
    fi
    case $SMIME_CANON in
        yes|1) canon=--canon ;;
        no|0)  canon= ;;
        *)     if ! LC_ALL=C grep -q $'\r' "$msg"; then canon=--canon; fi ;;
    esac
    "$SMIME_SPLIT" $canon "$msg" "$2" "$3"
}

smime_gpg_cleanup() {
    local pki=${1:?usage: smime_gpg_cleanup PKIDIR}
    [ -d "$pki/gnupg" ] || return 0
    gpgconf --homedir "$pki/gnupg" --kill all >/dev/null 2>&1 || :
}

smime_verify_openssl() (
    _smime_args smime_verify_openssl 2 $# "${1:-}" "${2:-}" || exit
    _smime_need openssl || exit
    msg=$1 pki=$2 out=${3:-/dev/null}
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    if openssl cms -verify -purpose smimesign -CAfile "$pki/trust.pem" \
            -in "$msg" -out "$out" >"$tmp/log" 2>&1; then
        exit 0
    fi
    _smime_err "openssl: verification failed: $(grep -m1 -E 'Verify error|error:' "$tmp/log" || _smime_oneline "$tmp/log")"
    exit 1
)

smime_verify_nss() (
    _smime_args smime_verify_nss 2 $# "${1:-}" "${2:-}" || exit
    _smime_need cmsutil || exit
    msg=$1 pki=$2
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    smime_split "$msg" "$tmp/content" "$tmp/sig.der" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        _smime_err "nss: cannot split message: $(_smime_oneline "$tmp/err")"
        [ "$rc" -eq 127 ] && exit 2
        exit 1
    fi
    # -u 4 = certUsageEmailSigner.  With -h, cmsutil prints
    # "nsigners=N; signerK.status=..." but exits 0 even for a bad signature
    # (without -h it exits 1 on the first bad signer), so parse the output.
    cmsutil -D -n -h 0 -u 4 -d "sql:$pki/nss" -i "$tmp/sig.der" \
        -c "$tmp/content" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    n=$(sed -n 's/.*nsigners=\([0-9][0-9]*\).*/\1/p' "$tmp/out" | head -n 1)
    good=$(grep -o 'signer[0-9]*\.status=GoodSignature' "$tmp/out" | wc -l)
    if [ "$rc" -ne 0 ]; then
        _smime_err "nss: cmsutil exit $rc: $(_smime_oneline "$tmp/err")"
        exit 1
    fi
    if [ -z "$n" ] || [ "$n" -lt 1 ]; then
        _smime_err "nss: no signers found: $(_smime_oneline "$tmp/out")"
        exit 1
    fi
    if [ "$good" -ne "$n" ]; then
        _smime_err "nss: $(grep -o 'signer[0-9]*\.status=[A-Za-z]*' "$tmp/out" | grep -v GoodSignature | head -n 1) ($good of $n signers good)"
        exit 1
    fi
    exit 0
)

smime_verify_gpgsm() (
    _smime_args smime_verify_gpgsm 2 $# "${1:-}" "${2:-}" || exit
    _smime_need gpgsm gpgconf || exit
    msg=$1 pki=$2 home=$2/gnupg
    if [ ! -d "$home" ]; then
        _smime_err "gpgsm: no GNUPGHOME '$home'"
        exit 2
    fi
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    smime_split "$msg" "$tmp/content" "$tmp/sig.der" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        _smime_err "gpgsm: cannot split message: $(_smime_oneline "$tmp/err")"
        [ "$rc" -eq 127 ] && exit 2
        exit 1
    fi
    run() {
        gpgsm --homedir "$home" --batch --no-tty --status-fd 3 \
            --verify "$tmp/sig.der" "$tmp/content" \
            3>"$tmp/status" >"$tmp/out" 2>"$tmp/err" </dev/null
        if [ "${SMIME_GPGSM_KEEP_AGENT:-0}" != 1 ]; then
            gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || :
        fi
    }
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$home/.smime-check.lock"
        flock 9
        run
        exec 9>&-
    else
        run
    fi
    st() { grep -c "^\[GNUPG:\] $1\( \|$\)" "$tmp/status"; }
    bad=$(grep -m1 -E '^\[GNUPG:\] (BADSIG|ERRSIG|EXPSIG|EXPKEYSIG|REVKEYSIG|TRUST_UNDEFINED|TRUST_NEVER|ERROR|FAILURE)( |$)' "$tmp/status")
    if [ -n "$bad" ]; then
        _smime_err "gpgsm: ${bad#\[GNUPG:\] } ($(grep -m1 -E 'invalid|expired|not trusted|error' "$tmp/err" | tr -d '\r'))"
        exit 1
    fi
    nsig=$(st NEWSIG)
    if [ "$nsig" -lt 1 ]; then
        _smime_err "gpgsm: no signature found: $(_smime_oneline "$tmp/err")"
        exit 1
    fi
    if [ "$(st GOODSIG)" -ne "$nsig" ] || [ "$(st VALIDSIG)" -ne "$nsig" ]; then
        _smime_err "gpgsm: not every signature has GOODSIG+VALIDSIG: $(_smime_oneline "$tmp/status")"
        exit 1
    fi
    if [ $(( $(st TRUST_FULLY) + $(st TRUST_ULTIMATE) )) -lt "$nsig" ]; then
        _smime_err "gpgsm: signer not fully trusted: $(_smime_oneline "$tmp/status")"
        exit 1
    fi
    exit 0
)

smime_signer_openssl() (
    _smime_args smime_signer_openssl 2 $# "${1:-}" "${2:-}" || exit
    _smime_need openssl || exit
    msg=$1
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    if ! openssl cms -verify -noverify -in "$msg" -signer "$tmp/signer.pem" \
            -out /dev/null >"$tmp/log" 2>&1; then
        _smime_err "openssl: cannot extract signer: $(grep -m1 -E 'error:' "$tmp/log" || _smime_oneline "$tmp/log")"
        exit 1
    fi
    # one file per certificate (several signers are possible)
    awk -v d="$tmp" '/-----BEGIN CERTIFICATE-----/ {n++; f=d "/c" n ".pem"}
                     f {print > f} /-----END CERTIFICATE-----/ {close(f); f=""}' \
        "$tmp/signer.pem"
    found=0
    for c in "$tmp"/c*.pem; do
        [ -f "$c" ] || continue
        if openssl x509 -in "$c" -noout -email >"$tmp/email" 2>/dev/null &&
                [ -s "$tmp/email" ]; then
            sort -u "$tmp/email"
            found=1
        fi
    done
    if [ "$found" -ne 1 ]; then
        _smime_err "openssl: signer certificate has no e-mail address"
        exit 1
    fi
    exit 0
)

# ------------------------------------------------------------ decryption
#   smime_decrypt_openssl MSG CERT KEY OUT
#       openssl cms -decrypt -recip CERT -inkey KEY on the S/MIME message
#       MSG (application/pkcs7-mime, enveloped-data or authEnveloped-data);
#       the decrypted MIME entity goes to OUT.  Fails when CERT is not one
#       of the recipients (-recip makes openssl pick the RecipientInfo by
#       issuer+serial / key identifier, so a wrong key cannot "succeed"
#       with garbage as RSA's MMA countermeasure would without it), when
#       the content cannot be decrypted or when OUT would be empty.
#   smime_decrypt_nss MSG PKIDIR NAME OUT
#       Imports PKIDIR/NAME.p12 (passphrase test-pass) into a private copy
#       of PKIDIR/nss, takes the base64 body of MSG and decrypts it with
#       cmsutil -D.  The CMS content type must be envelopedData.  NSS 3.87
#       has no RSA-OAEP, AES-GCM (AuthEnvelopedData) or ECDH decryption:
#       use it for RSA PKCS#1 v1.5 + CBC only.  cmsutil also cannot parse
#       (SEC_ERROR_BAD_DER) an EnvelopedData that has any
#       KeyAgreeRecipientInfo (an EC recipient) next to the RSA one.
#   smime_decrypt_gpgsm MSG PKIDIR OUT
#       gpgsm --decrypt with GNUPGHOME PKIDIR/gnupg (alice, bob and dave-enc
#       secret keys), loopback pinentry with PKIDIR/passphrase.  Needs
#       DECRYPTION_OKAY and no DECRYPTION_FAILED/ERROR on the status fd.
#       The content type must be envelopedData.  gpgsm 2.2 has no OAEP,
#       GCM or ECDH either.  Calls on the same PKIDIR are serialised with
#       flock(1); gpg-agent is killed afterwards unless
#       SMIME_GPGSM_KEEP_AGENT=1.
#   smime_p7m_der MSG DER_OUT
#       The base64 body of an application/pkcs7-mime message, decoded
#       (CR/LF line ends both accepted).
#   smime_cms_type DER
#       Prints the outer CMS content type as openssl names it
#       (pkcs7-envelopedData, id-smime-ct-authEnvelopedData, pkcs7-signedData).

smime_p7m_der() {
    local msg=${1:?usage: smime_p7m_der MSG DER_OUT} out=${2:?usage: smime_p7m_der MSG DER_OUT}
    # body = everything after the first empty line; headers may be folded
    tr -d '\r' <"$msg" | sed '1,/^$/d' | tr -d ' \t' | base64 -d >"$out" 2>/dev/null
    [ -s "$out" ]
}

smime_cms_type() {
    openssl asn1parse -inform DER -in "${1:?usage: smime_cms_type DER}" 2>/dev/null |
        awk -F: '/OBJECT/ {print $NF; exit}' | sed 's/[[:space:]]*$//'
}

smime_decrypt_openssl() (
    if [ $# -lt 4 ]; then
        _smime_err "smime_decrypt_openssl: usage: smime_decrypt_openssl MSG CERT KEY OUT"
        exit 2
    fi
    _smime_need openssl || exit
    msg=$1 cert=$2 key=$3 out=$4
    for f in "$msg" "$cert" "$key"; do
        [ -r "$f" ] || { _smime_err "smime_decrypt_openssl: cannot read '$f'"; exit 2; }
    done
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    rm -f "$out"
    if ! openssl cms -decrypt -in "$msg" -recip "$cert" -inkey "$key" \
            -out "$out" >"$tmp/log" 2>&1; then
        rm -f "$out"
        _smime_err "openssl: decryption failed: $(grep -m1 -E 'error:' "$tmp/log" || _smime_oneline "$tmp/log")"
        exit 1
    fi
    if [ ! -s "$out" ]; then
        _smime_err "openssl: decryption produced no content"
        exit 1
    fi
    exit 0
)

smime_decrypt_nss() (
    if [ $# -lt 4 ]; then
        _smime_err "smime_decrypt_nss: usage: smime_decrypt_nss MSG PKIDIR NAME OUT"
        exit 2
    fi
    _smime_need cmsutil pk12util openssl base64 || exit
    msg=$1 pki=$2 name=$3 out=$4
    [ -r "$msg" ] || { _smime_err "nss: cannot read message '$msg'"; exit 2; }
    [ -d "$pki/nss" ] || { _smime_err "nss: no NSS database '$pki/nss'"; exit 2; }
    [ -r "$pki/$name.p12" ] || { _smime_err "nss: no PKCS#12 file '$pki/$name.p12'"; exit 2; }
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    rm -f "$out"
    cp -r "$pki/nss" "$tmp/db" || exit 2
    if ! pk12util -i "$pki/$name.p12" -d "sql:$tmp/db" -W test-pass -K '' \
            >"$tmp/log" 2>&1; then
        _smime_err "nss: pk12util import of $name.p12 failed: $(_smime_oneline "$tmp/log")"
        exit 2
    fi
    if ! smime_p7m_der "$msg" "$tmp/msg.der"; then
        _smime_err "nss: no base64 CMS body in '$msg'"
        exit 1
    fi
    type=$(smime_cms_type "$tmp/msg.der")
    if [ "$type" != pkcs7-envelopedData ]; then
        _smime_err "nss: CMS content type is '$type', not pkcs7-envelopedData"
        exit 1
    fi
    if ! cmsutil -D -i "$tmp/msg.der" -d "sql:$tmp/db" -o "$out" -p '' \
            >"$tmp/log" 2>&1; then
        rm -f "$out"
        _smime_err "nss: cmsutil -D failed: $(_smime_oneline "$tmp/log")"
        exit 1
    fi
    if [ ! -s "$out" ]; then
        _smime_err "nss: decryption produced no content: $(_smime_oneline "$tmp/log")"
        exit 1
    fi
    exit 0
)

smime_decrypt_gpgsm() (
    if [ $# -lt 3 ]; then
        _smime_err "smime_decrypt_gpgsm: usage: smime_decrypt_gpgsm MSG PKIDIR OUT"
        exit 2
    fi
    _smime_need gpgsm gpgconf openssl base64 || exit
    msg=$1 pki=$2 out=$3 home=$2/gnupg
    [ -r "$msg" ] || { _smime_err "gpgsm: cannot read message '$msg'"; exit 2; }
    [ -d "$home" ] || { _smime_err "gpgsm: no GNUPGHOME '$home'"; exit 2; }
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/smime-check.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
    rm -f "$out"
    if ! smime_p7m_der "$msg" "$tmp/msg.der"; then
        _smime_err "gpgsm: no base64 CMS body in '$msg'"
        exit 1
    fi
    type=$(smime_cms_type "$tmp/msg.der")
    if [ "$type" != pkcs7-envelopedData ]; then
        _smime_err "gpgsm: CMS content type is '$type', not pkcs7-envelopedData"
        exit 1
    fi
    run() {
        gpgsm --homedir "$home" --batch --no-tty --status-fd 3 \
            --pinentry-mode loopback --passphrase-fd 4 \
            --output "$tmp/dec" --decrypt "$tmp/msg.der" \
            3>"$tmp/status" 4<"$pki/passphrase" >"$tmp/out" 2>"$tmp/err" </dev/null
        if [ "${SMIME_GPGSM_KEEP_AGENT:-0}" != 1 ]; then
            gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || :
        fi
    }
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$home/.smime-check.lock"
        flock 9
        run
        exec 9>&-
    else
        run
    fi
    bad=$(grep -m1 -E '^\[GNUPG:\] (DECRYPTION_FAILED|ERROR|FAILURE|NO_SECKEY)( |$)' "$tmp/status")
    if ! grep -q '^\[GNUPG:\] DECRYPTION_OKAY' "$tmp/status"; then
        _smime_err "gpgsm: no DECRYPTION_OKAY (${bad#\[GNUPG:\] }): $(_smime_oneline "$tmp/err")"
        exit 1
    fi
    if grep -q -E '^\[GNUPG:\] (DECRYPTION_FAILED|ERROR|FAILURE)( |$)' "$tmp/status"; then
        _smime_err "gpgsm: ${bad#\[GNUPG:\] }"
        exit 1
    fi
    if [ ! -s "$tmp/dec" ]; then
        _smime_err "gpgsm: decryption produced no content"
        exit 1
    fi
    mv "$tmp/dec" "$out" || exit 2
    exit 0
)
