#!/bin/bash
# shellcheck disable=SC2317  # helpers are called indirectly via pass/fail/is
# t-smime-check.sh -- self-test of tests/pki/mkpki.sh, tests/tools/smime-split
# and tests/lib/smime-check.sh.  Prints TAP.
#
# Builds smime-split into a temp dir unless $SMIME_SPLIT is set, creates a
# fresh PKI in a temp dir, signs real RFC 5322 messages with openssl and
# checks that the openssl, NSS and gpgsm verifiers accept/reject them as
# expected.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

user_split=${SMIME_SPLIT:-}
# shellcheck source=lib/smime-check.sh
. "$root/tests/lib/smime-check.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/t-smime-check.XXXXXX")
P=$T/pki
cleanup() {
    smime_gpg_cleanup "$P"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

n=0
results=()

_report() {   # STATUS DESC ERRFILE
    n=$((n + 1))
    if [ "$1" = ok ]; then
        results+=("ok $n - $2")
    else
        results+=("not ok $n - $2")
        if [ -s "$3" ]; then
            while IFS= read -r l; do results+=("# $l"); done <"$3"
        fi
    fi
}

# pass DESC CMD... : CMD must succeed
pass() {
    local d=$1; shift
    if "$@" 2>"$T/err" >"$T/out"; then _report ok "$d" "$T/err"
    else _report fail "$d" "$T/err"; fi
}
# fail DESC CMD... : CMD must fail
fail() {
    local d=$1; shift
    if "$@" 2>"$T/err" >"$T/out"; then
        echo "command unexpectedly succeeded: $*" >"$T/err"
        _report fail "$d" "$T/err"
    else
        _report ok "$d" "$T/err"
    fi
}
# is DESC EXPECTED CMD... : CMD's stdout must equal EXPECTED
is() {
    local d=$1 want=$2 got; shift 2
    got=$("$@" 2>"$T/err")
    if [ "$got" = "$want" ]; then _report ok "$d" "$T/err"
    else
        printf 'expected: %s\ngot: %s\n' "$want" "$got" >>"$T/err"
        _report fail "$d" "$T/err"
    fi
}

finish() {
    echo "1..$n"
    printf '%s\n' "${results[@]}"
    exit 0
}

# ------------------------------------------------------------ setup

if [ -z "$user_split" ]; then
    # shellcheck disable=SC2016
    pass "smime-split compiles with -Wall -Wextra -O2 -Werror" \
        env CC="${CC:-gcc} -Werror" bash -c '. "$1"; smime_split_build "$2"' _ \
        "$root/tests/lib/smime-check.sh" "$T/bin"
    SMIME_SPLIT=$T/bin/smime-split
    export SMIME_SPLIT
fi

start=$(date +%s)
if ! sh "$root/tests/pki/mkpki.sh" "$P" >"$T/mkpki.log" 2>&1; then
    _report fail "mkpki.sh creates the PKI" "$T/mkpki.log"
    finish
fi
_report ok "mkpki.sh creates the PKI in $(( $(date +%s) - start ))s" /dev/null

# idempotent: a second run into the same dir works and wipes stale files
touch "$P/stale-file"
start=$(date +%s)
pass "mkpki.sh is idempotent" sh "$root/tests/pki/mkpki.sh" "$P"
fail "mkpki.sh wipes OUTDIR" test -e "$P/stale-file"
elapsed=$(( $(date +%s) - start ))
# a bound against hangs, not a speed target (this machine is shared)
pass "mkpki.sh finishes within 120 s (took ${elapsed}s)" test "$elapsed" -lt 120

missing=
for f in root.crt root.key inter.crt inter.key untrusted-root.crt \
        untrusted-root.key trust.pem chain.pem passphrase crl.pem \
        nss/cert9.db gnupg/gpgsm.conf gnupg/gpg-agent.conf gnupg/trustlist.txt; do
    [ -s "$P/$f" ] || missing="$missing $f"
done
USERS="alice bob carol dave-sign dave-enc domain expired notyet weak untrusted signonly-eku revoked"
for u in $USERS; do
    for e in crt key pem p12; do
        [ -s "$P/$u.$e" ] || missing="$missing $u.$e"
    done
    for e in key pem p12; do
        [ "$(stat -c %a "$P/$u.$e" 2>/dev/null)" = 600 ] || missing="$missing $u.$e(mode)"
    done
done
pass "all PKI files present with the right modes${missing:+ (missing:$missing)}" test -z "$missing"
is "passphrase file holds test-pass" test-pass cat "$P/passphrase"
is "gnupg/ is mode 0700" 700 stat -c %a "$P/gnupg"
pass "alice.p12 opens with test-pass (legacy)" \
    openssl pkcs12 -legacy -in "$P/alice.p12" -passin pass:test-pass -noout
no_agent() {   # no gpg-agent/dirmngr process for PKIDIR/gnupg
    # an agent that was just told to exit may need a moment: poll up to 5 s
    local _
    for _ in $(seq 50); do
        pgrep -f -- "(gpg-agent|dirmngr) --homedir $P/gnupg( |\$)" \
            >/dev/null || return 0
        sleep 0.1
    done
    echo "agent still running for $P/gnupg" >&2
    return 1
}
pass "no gpg-agent left running after mkpki.sh" no_agent

# ------------------------------------------------------------ certificates

ossl_verify() { openssl verify -CAfile "$P/root.crt" -untrusted "$P/inter.crt" "$@"; }
for u in alice bob carol dave-sign dave-enc domain weak signonly-eku revoked; do
    pass "openssl verify accepts $u.crt" ossl_verify "$P/$u.crt"
done
for u in expired notyet untrusted; do
    fail "openssl verify rejects $u.crt" ossl_verify "$P/$u.crt"
done
fail "openssl verify -crl_check rejects revoked.crt" \
    ossl_verify -crl_check -CRLfile "$P/crl.pem" "$P/revoked.crt"
pass "openssl verify -crl_check accepts alice.crt" \
    ossl_verify -crl_check -CRLfile "$P/crl.pem" "$P/alice.crt"
pass "openssl verify -purpose smimesign accepts alice.crt" \
    ossl_verify -purpose smimesign "$P/alice.crt"
fail "openssl verify -purpose smimesign rejects signonly-eku.crt" \
    ossl_verify -purpose smimesign "$P/signonly-eku.crt"
is "domain.crt SAN is email:example.org" "email:example.org" \
    bash -c "openssl x509 -in '$P/domain.crt' -noout -ext subjectAltName | sed -n '2{s/^ *//;p}'"
is "root is CA:TRUE, keyCertSign+cRLSign" \
    "X509v3 Basic Constraints: critical|CA:TRUE|X509v3 Key Usage: critical|Certificate Sign, CRL Sign" \
    bash -c "openssl x509 -in '$P/root.crt' -noout -ext basicConstraints,keyUsage | sed 's/^ *//' | paste -sd'|'"
is "inter has pathlen:0" "CA:TRUE, pathlen:0" \
    bash -c "openssl x509 -in '$P/inter.crt' -noout -ext basicConstraints | sed -n '2{s/^ *//;p}'"
is "carol has a P-256 key" "ASN1 OID: prime256v1" \
    bash -c "openssl x509 -in '$P/carol.crt' -noout -text | grep -m1 'ASN1 OID' | sed 's/^ *//'"
is "weak has a 1024 bit key" "Public-Key: (1024 bit)" \
    bash -c "openssl x509 -in '$P/weak.crt' -noout -text | grep -m1 'Public-Key' | sed 's/^ *//'"
is "dave-enc is keyEncipherment only" "Key Encipherment" \
    bash -c "openssl x509 -in '$P/dave-enc.crt' -noout -ext keyUsage | sed -n '2{s/^ *//;p}'"

# ------------------------------------------------------------ messages

crlf() { sed 's/$/\r/'; }

# sign_msg SIGNER CONTENTFILE OUT [CERTFILE]
sign_msg() {
    local s=$1 in=$2 out=$3 cf=${4:-$P/inter.crt}
    {
        printf 'From: %s\r\n' "$(openssl x509 -in "$P/$s.crt" -noout -email | head -n 1)"
        printf 'To: bob@example.net\r\n'
        printf 'Subject: smime-check self-test (%s)\r\n' "$s"
        printf 'Date: %s\r\n' "$(LC_ALL=C date -R)"
        printf 'Message-ID: <%s.%s@example.org>\r\n' "$s" "$$"
        openssl cms -sign -signer "$P/$s.crt" -inkey "$P/$s.key" \
            -certfile "$cf" -md sha256 -crlfeol -in "$in" || return 1
    } >"$out"
}

crlf >"$T/plain.txt" <<'EOF'
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Hello world,

this is a signed test message.
-- 
alice
EOF

head -c 3000 /dev/urandom >"$T/attach.bin"
{
    cat <<'EOF'
Content-Type: multipart/mixed; boundary="=_mixed_0001"

This is a multi-part message in MIME format.

--=_mixed_0001
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello world, see the attachment.

--=_mixed_0001
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"

EOF
    base64 <"$T/attach.bin"
    printf '\n--=_mixed_0001--\n'
} | crlf >"$T/mixed.txt"

pass "sign plain message (alice)" sign_msg alice "$T/plain.txt" "$T/good.eml"
pass "sign multipart/mixed message (alice)" sign_msg alice "$T/mixed.txt" "$T/mixed.eml"
pass "sign message (untrusted)" sign_msg untrusted "$T/plain.txt" "$T/untrusted.eml" "$P/untrusted-root.crt"
pass "sign message (carol, ECDSA)" sign_msg carol "$T/plain.txt" "$T/carol.eml"
pass "sign message (expired)" sign_msg expired "$T/plain.txt" "$T/expired.eml"
pass "sign message (signonly-eku)" sign_msg signonly-eku "$T/plain.txt" "$T/eku.eml"
pass "sign message (domain)" sign_msg domain "$T/plain.txt" "$T/domain.eml"
pass "sign message (notyet)" sign_msg notyet "$T/plain.txt" "$T/notyet.eml"
pass "sign message (dave-sign)" sign_msg dave-sign "$T/plain.txt" "$T/dave-sign.eml"
pass "sign message (dave-enc, keyEncipherment only)" sign_msg dave-enc "$T/plain.txt" "$T/dave-enc.eml"

sed 's/Hello world/Hello World/' "$T/good.eml" >"$T/tampered.eml"
sed 's/Hello world/Hello World/' "$T/mixed.eml" >"$T/mixed-tampered.eml"
sed 's/\r$//' "$T/good.eml" >"$T/good-lf.eml"
sed 's/\r$//' "$T/tampered.eml" >"$T/tampered-lf.eml"
pass "tampered copy differs" bash -c "! cmp -s '$T/good.eml' '$T/tampered.eml'"

# ------------------------------------------------------------ smime-split

pass "smime-split: content is byte-exact" bash -c \
    "'$SMIME_SPLIT' '$T/good.eml' '$T/c' '$T/s' && cmp '$T/c' '$T/plain.txt'"
pass "smime-split: signature is valid DER CMS" \
    openssl cms -cmsout -inform DER -in "$T/s" -noout
pass "smime-split: multipart/mixed content is byte-exact" bash -c \
    "'$SMIME_SPLIT' '$T/mixed.eml' '$T/c' '$T/s' && cmp '$T/c' '$T/mixed.txt'"
pass "smime-split --canon: LF message gives CRLF content" bash -c \
    "'$SMIME_SPLIT' --canon '$T/good-lf.eml' '$T/c' '$T/s' && cmp '$T/c' '$T/plain.txt'"
pass "smime-split: LF message without --canon keeps LF" bash -c \
    "'$SMIME_SPLIT' '$T/good-lf.eml' '$T/c' '$T/s' && sed 's/\$/\r/' '$T/c' | cmp - '$T/plain.txt'"

# folded header, unquoted boundary, odd case, preamble, transport padding
b=$(sed -n 's/.*boundary="\([^"]*\)".*/\1/p' "$T/good.eml" | head -n 1)
awk -v b="$b" 'BEGIN{h=1}
    h && /^Content-Type: multipart\/signed/ {
        printf "content-TYPE: Multipart/Signed;\r\n\tprotocol=\"application/pkcs7-signature\";\r\n micalg=sha-256; BOUNDARY=%s\r\n", b; next }
    h && /^\r$/ { h=0 }
    { print }' "$T/good.eml" | sed "s/^--$b\r\$/--$b  \r/" >"$T/folded.eml"
pass "smime-split: folded header, unquoted boundary, padding" bash -c \
    "'$SMIME_SPLIT' '$T/folded.eml' '$T/c' '$T/s' && cmp '$T/c' '$T/plain.txt'"
pass "openssl accepts the folded variant" smime_verify_openssl "$T/folded.eml" "$P"
is "smime-split: not multipart/signed -> exit 2" 2 \
    bash -c "'$SMIME_SPLIT' '$T/plain.txt' '$T/c' '$T/s' 2>/dev/null; echo \$?"
sed 's/; boundary="[^"]*"//' "$T/good.eml" >"$T/nob.eml"
is "smime-split: no boundary -> exit 2" 2 \
    bash -c "'$SMIME_SPLIT' '$T/nob.eml' '$T/c' '$T/s' 2>/dev/null; echo \$?"
awk -v b="--$b" '{ if (index($0, b) == 1) c++; if (c >= 2) exit; print }' \
    "$T/good.eml" >"$T/trunc.eml"
is "smime-split: missing signature part -> exit 2" 2 \
    bash -c "'$SMIME_SPLIT' '$T/trunc.eml' '$T/c' '$T/s' 2>/dev/null; echo \$?"

# ------------------------------------------------------------ verifiers

for v in openssl nss gpgsm; do
    pass "$v: good message verifies" "smime_verify_$v" "$T/good.eml" "$P"
    pass "$v: good multipart/mixed message verifies" "smime_verify_$v" "$T/mixed.eml" "$P"
    pass "$v: good message stored with LF verifies" "smime_verify_$v" "$T/good-lf.eml" "$P"
    fail "$v: tampered message fails" "smime_verify_$v" "$T/tampered.eml" "$P"
    fail "$v: tampered multipart/mixed message fails" "smime_verify_$v" "$T/mixed-tampered.eml" "$P"
    fail "$v: tampered LF message fails" "smime_verify_$v" "$T/tampered-lf.eml" "$P"
    fail "$v: untrusted signer fails" "smime_verify_$v" "$T/untrusted.eml" "$P"
    fail "$v: expired signer fails" "smime_verify_$v" "$T/expired.eml" "$P"
    fail "$v: not-yet-valid signer fails" "smime_verify_$v" "$T/notyet.eml" "$P"
    fail "$v: signer without digitalSignature (dave-enc) fails" "smime_verify_$v" "$T/dave-enc.eml" "$P"
    pass "$v: signing-only cert (dave-sign) verifies" "smime_verify_$v" "$T/dave-sign.eml" "$P"
    pass "$v: ECDSA signer (carol) verifies" "smime_verify_$v" "$T/carol.eml" "$P"
    pass "$v: domain-key signature verifies" "smime_verify_$v" "$T/domain.eml" "$P"
done
# EKU: openssl (-purpose smimesign) and NSS (certUsageEmailSigner) enforce
# emailProtection; gpgsm 2.2 does not look at the EKU, so it is not tested.
fail "openssl: clientAuth-only EKU fails" smime_verify_openssl "$T/eku.eml" "$P"
fail "nss: clientAuth-only EKU fails" smime_verify_nss "$T/eku.eml" "$P"

pass "openssl: verified content is written" bash -c \
    ". '$root/tests/lib/smime-check.sh'; smime_verify_openssl '$T/good.eml' '$P' '$T/vc' && grep -q 'Hello world' '$T/vc'"
is "signer of alice's message" alice@example.org smime_signer_openssl "$T/good.eml" "$P"
is "signer of carol's message" carol@example.org smime_signer_openssl "$T/carol.eml" "$P"
is "signer of domain-signed message" example.org smime_signer_openssl "$T/domain.eml" "$P"
is "signer of untrusted message (chain not checked)" ursula@example.org \
    smime_signer_openssl "$T/untrusted.eml" "$P"
fail "signer of tampered message fails" smime_signer_openssl "$T/tampered.eml" "$P"
fail "verify of a missing file fails" smime_verify_openssl "$T/nonexistent" "$P"

# ------------------------------------------------------------ gpgsm decrypt
# The keys imported from the .p12 files are usable (passphrase test-pass).
gpgsm_decrypt() {   # USER
    local cert=$P/$1.crt
    printf 'Content-Type: text/plain\r\n\r\nsecret for %s\r\n' "$1" >"$T/clear"
    openssl cms -encrypt -aes256 -outform DER -in "$T/clear" -out "$T/enc.der" "$cert" || return 1
    gpgsm --homedir "$P/gnupg" --batch --status-fd 3 --pinentry-mode loopback \
        --passphrase-fd 0 --output "$T/dec" --decrypt "$T/enc.der" \
        <"$P/passphrase" 3>"$T/dstatus" >/dev/null || :
    smime_gpg_cleanup "$P"
    grep -q '^\[GNUPG:\] DECRYPTION_OKAY' "$T/dstatus" && cmp -s "$T/dec" "$T/clear"
}
for u in alice bob dave-enc; do
    pass "gpgsm decrypts for $u (key from $u.p12)" gpgsm_decrypt "$u"
done

smime_gpg_cleanup "$P"
pass "no gpg-agent left running" no_agent

finish
