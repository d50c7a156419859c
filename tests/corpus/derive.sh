#!/bin/bash
# tests/corpus/derive.sh -- re-derive the expectations of expected.tsv from
# real S/MIME engines (OpenSSL and NSS), independently of smime-milter.
#
#   tests/corpus/derive.sh [-v] [FILE-PATTERN]
#
# For every row of expected.tsv (or those whose file matches the shell
# pattern), the message is peeled layer by layer the way the inbound
# contract (inbound-spec, issue #5) describes, using only openssl/cmsutil:
#
#   multipart/signed, opaque signed-data
#       math  = openssl cms -verify -noverify            (signature/digest)
#               (-certfile: the anchors and the key store's certificates,
#               so a signer "known here" is found, as gpgsm's keybox does)
#       chain = openssl cms -verify -CAfile ANCHORS -attime NOW
#               -purpose smimesign [-crl_check -CRLfile CRLS]
#       nss   = cmsutil -D (signature status, printed as a second opinion;
#               NSS checks the chain at the signingTime, so only its
#               GoodSignature/DigestMismatch/BadSignature part is used)
#       then the contract's rules:
#         math fails with a digest/content/signature error  -> fail
#         signer certificate not in the message            -> neutral
#         CMS not parseable                                -> permerror
#         chain error: expired, not yet valid, revoked, purpose (KU/EKU),
#           certificate signature failure (anchor with same name, other
#           key)                                            -> fail
#         chain error: unknown issuer / untrusted self-signed, or no
#           anchors at all                                  -> neutral
#         chain good, but SHA-1/MD5 digest (unless the profile allows
#           SHA-1), signer address != From address, RSA key < 2048 bits
#                                                           -> policy
#         otherwise                                         -> pass
#       The verified content is peeled further.
#   application/(x-)pkcs7-mime, application/octet-stream name=*.p7m
#       decided by the CMS content type: signed-data as above,
#       enveloped-data: decrypted (openssl cms -decrypt, and cmsutil -D as a
#       second engine) when every recipient domain is local and a key of
#       the profile matches (-> yes), else no-key / relayed; unparseable
#       CMS -> corrupt (and permerror).  Only at the top level or inside
#       opaque signed-data; encrypted parts inside multipart/* are left
#       alone (contract item 4) and stamped decrypted=no (nested).
#   other multipart/*
#       signed sub-parts are verified as above and reported RESULT/PARTNO.
#   no signature at all -> none.
#
# Each row prints the per-layer evidence, the derived results and whether
# they MATCH the row of expected.tsv.  Exit status 1 when a row differs.
# Needs: openssl, cmsutil/certutil/pk12util (NSS tools; skipped if absent),
# and smime-split (SMIME_SPLIT, default BUILDDIR/tests/tools/smime-split;
# "make check" builds it, or: make tests/tools/smime-split).

set -u
CORPUS=$(cd "$(dirname "$0")" && pwd)
SRCDIR=$(cd "$CORPUS/../.." && pwd)
: "${BUILDDIR:=$SRCDIR/build}"
: "${SMIME_SPLIT:=$BUILDDIR/tests/tools/smime-split}"
export CORPUS
. "$CORPUS/profiles.sh"

VERBOSE=
[ "${1:-}" = -v ] && { VERBOSE=1; shift; }
PATTERN=${1:-*}
W=$(mktemp -d "${TMPDIR:-/tmp}/corpus-derive.XXXXXX")
trap 'rm -rf "$W"' EXIT
HAVE_NSS=
command -v cmsutil >/dev/null && command -v certutil >/dev/null &&
    command -v pk12util >/dev/null && HAVE_NSS=1

say() { printf '  %s\n' "$*"; }

# ------------------------------------------------------------ MIME helpers
# headers FILE: the unfolded header block, CR removed
headers() {
    sed -e 's/\r$//' -e '/^$/q' "$1" | awk '
        /^[ \t]/ { sub(/^[ \t]+/, " "); cur = cur $0; next }
        { if (cur != "") print cur; cur = $0 }
        END { if (cur != "") print cur }'
}
hfield() { headers "$2" | grep -ai "^$1:" | head -n 1 | sed 's/^[^:]*:[ ]*//'; }
ctype_of() { # lower-case type/subtype; text/plain when absent
    local v
    v=$(hfield Content-Type "$1" | sed 's/;.*//; s/[ ]//g' | tr 'A-Z' 'a-z')
    echo "${v:-text/plain}"
}
param() { # param FILE HEADER NAME
    hfield "$2" "$1" | tr ';' '\n' | sed 's/^[ ]*//' |
        awk -v n="$3" 'BEGIN { IGNORECASE = 1 }
            tolower(substr($0, 1, length(n) + 1)) == tolower(n) "=" {
                v = substr($0, length(n) + 2); gsub(/^"|"$/, "", v); print v; exit }'
}
addr_of() { # the addr-spec of a From: value
    local v=$1
    case $v in
    *'<'*'>'*) v=${v##*<}; v=${v%%>*} ;;
    esac
    echo "$v" | sed 's/^[ ]*//; s/[ ]*$//'
}
body_der() { # body_der FILE OUT: the decoded body of a single part
    local cte
    cte=$(hfield Content-Transfer-Encoding "$1" | tr 'A-Z' 'a-z' | tr -d ' ')
    if [ "$cte" = base64 ]; then
        sed -e 's/\r$//' -e '1,/^$/d' "$1" | base64 -di >"$2" 2>/dev/null
    else
        sed -e '1,/^\r\{0,1\}$/d' "$1" >"$2"
    fi
}
# subparts FILE BOUNDARY OUTPREFIX: writes OUTPREFIX.1, .2 ... (exact lines)
subparts() {
    sed -e '1,/^\r\{0,1\}$/d' "$1" | awk -v b="--$2" -v p="$3" '
        { l = $0; sub(/\r$/, "", l) }
        l == b "--" { exit }
        l == b { n++; f = p "." n; printf "" > f; next }
        n > 0 { print >> f }'
}
cms_type() { # contentType of a DER CMS, or "unparseable"
    openssl cms -cmsout -print -inform DER -in "$1" 2>/dev/null |
        sed -n 's/^ *contentType: *\([^ ]*\).*/\1/p' | head -n 1 |
        grep . || echo unparseable
}

# ------------------------------------------------------------ verification
# classify_chain ERRTEXT: fail or neutral for an openssl verify error
classify_chain() {
    case $1 in
    *'certificate has expired'* | *'not yet valid'* | *'certificate revoked'* | \
        *'unsupported certificate purpose'* | *'unsuitable certificate purpose'* | \
        *'certificate signature failure'* | \
        *'key usage does not include'*)
        echo fail ;;
    *'unable to get local issuer'* | *'self-signed certificate'* | \
        *'self signed certificate'* | *'unable to get issuer'*)
        echo neutral ;;
    *) echo "unclassified($1)" ;;
    esac
}
nss_db() { # nss_db PROFILEDIR: an NSS db with the anchors (trusted) + keys
    local d=$1/nss i=0 c
    [ -d "$d" ] && return 0
    mkdir -p "$d"
    certutil -N -d "sql:$d" --empty-password >/dev/null 2>&1
    if [ -s "$1/anchors.pem" ]; then
        awk -v p="$d/anchor" '/BEGIN CERT/ { n++ } { print > (p n ".pem") }' \
            "$1/anchors.pem"
        for c in "$d"/anchor*.pem; do
            i=$((i + 1))
            certutil -A -d "sql:$d" -n "anchor$i" -t "C,C,C" -i "$c" >/dev/null 2>&1
        done
    fi
    for c in "$1"/pem/*.pem; do
        [ -e "$c" ] || continue
        openssl pkcs12 -export -in "$c" -passout pass:x -out "$d/k.p12" 2>/dev/null &&
            pk12util -i "$d/k.p12" -d "sql:$d" -W x -K "" >/dev/null 2>&1
    done
}
nss_status() { # nss_status PROFILEDIR CMSDER [CONTENT]
    [ -n "$HAVE_NSS" ] || { echo skipped; return; }
    nss_db "$1"
    # -h 0 prints "nsigners=N; signerK.status=..." (exit 0 even when bad)
    cmsutil -D -n -h 0 -d "sql:$1/nss" -u 4 -i "$2" ${3:+-c "$3"} 2>&1 |
        grep -o 'signer[0-9]*\.status=[A-Za-z]*' | sed 's/.*=//' |
        tr '\n' ' ' | sed 's/ $//' | grep . || echo "no-status"
}

# verify_layer KIND IN OUT PFX: KIND smime (multipart/signed) or der;
# sets RES, SIGNER_ADDR; writes the signed content to OUT
verify_layer() {
    local kind=$1 in=$2 out=$3 pfx=$4 inf=() err math chain nss digest bits
    local emails sig content
    [ "$kind" = der ] && inf=(-inform DER)
    SIGNER_ADDR=-
    rm -f "$pfx.signer"
    [ -s "$PDIR/known.pem" ] && inf+=(-certfile "$PDIR/known.pem")
    if ! openssl cms -verify -noverify "${inf[@]}" -in "$in" -out "$out" \
        -signer "$pfx.signer" 2>"$pfx.matherr" >/dev/null; then
        err=$(grep -o 'routines:[^:]*:[^:]*' "$pfx.matherr" | cut -d: -f3 |
            sort -u | tr '\n' ';')
        [ -n "$err" ] || err=$(grep -v '^CMS Verification' "$pfx.matherr" |
            head -n 2 | tr '\n' ' ')
        case $err in
        *'signer certificate not found'* | *'no signer certificate'*) RES=neutral ;;
        *'verification failure'* | *'content verify error'* | *'signature failure'* | \
            *'digest failure'* | *'no content'*) RES=fail ;;
        *'Error reading'* | *asn1* | *'decode error'*) RES=permerror ;;
        *) RES="unclassified-math" ;;
        esac
        math="BAD: $err"
    else
        math=ok
    fi
    # the signer certificate, also when the signature itself is bad
    [ -s "$pfx.signer" ] ||
        openssl cms -verify -noverify -no_attr_verify -no_content_verify \
            "${inf[@]}" -in "$in" -out /dev/null -signer "$pfx.signer" \
            >/dev/null 2>&1
    if [ -s "$pfx.signer" ]; then
        emails=$(openssl x509 -in "$pfx.signer" -noout -ext subjectAltName 2>/dev/null |
            grep -o 'email:[^, ]*' | sed 's/^email://')
        [ -n "$emails" ] || emails=$(openssl x509 -in "$pfx.signer" -noout \
            -subject -nameopt multiline 2>/dev/null | sed -n 's/^ *emailAddress *= *//p')
        # the address that matches From when the certificate has several
        SIGNER_ADDR=$(echo "$emails" | grep -ixF "$FROM_ADDR" | head -n 1)
        [ -n "$SIGNER_ADDR" ] || SIGNER_ADDR=$(echo "$emails" | head -n 1)
        [ -n "$SIGNER_ADDR" ] || SIGNER_ADDR=-
        bits=$(openssl x509 -in "$pfx.signer" -noout -text | sed -n 's/.*Public-Key: (\([0-9]*\) bit).*/\1/p' | head -n 1)
    fi
    # digest algorithm(s) of the signerInfos
    if [ "$kind" = der ]; then sig=$in; else
        local canon=()
        grep -q $'\r' "$in" || canon=(--canon)
        if "$SMIME_SPLIT" "${canon[@]}" "$in" \
            "$pfx.content" "$pfx.sig" 2>/dev/null; then
            sig=$pfx.sig
            content=$pfx.content
        else
            sig=
        fi
    fi
    digest=$( [ -n "$sig" ] && openssl cms -cmsout -print -inform DER -in "$sig" 2>/dev/null |
        awk '/signerInfos:/ { s = 1 } s && /digestAlgorithm:/ { getline; print $2 }' |
        sort -u | tr '\n' ' ' | sed 's/ $//')
    nss=$( [ -n "$sig" ] && nss_status "$PDIR" "$sig" ${content:+"$content"})
    # NSS checks the certificate before the digest and stops at an
    # untrusted one: a second run with the signer certificate as a trusted
    # peer shows the digest/signature status itself
    if [ -n "$HAVE_NSS" ] && [ -n "$sig" ] && [ -s "$pfx.signer" ]; then
        rm -rf "$pfx.nssdb" && mkdir "$pfx.nssdb" &&
            certutil -N -d "sql:$pfx.nssdb" --empty-password >/dev/null 2>&1 &&
            certutil -A -d "sql:$pfx.nssdb" -n signer -t P,P,P \
                -i "$pfx.signer" >/dev/null 2>&1
        nss="$nss, signer-as-peer: $(cmsutil -D -n -h 0 -d "sql:$pfx.nssdb" -u 4 \
            -i "$sig" ${content:+-c "$content"} 2>&1 |
            grep -o 'signer[0-9]*\.status=[A-Za-z]*' | sed 's/.*=//' |
            tr '\n' ' ' | sed 's/ $//')"
    fi
    # NSS checks a detached signature's own eContent when it has one and
    # ignores the -c content: say so, since that is the mismatch case
    [ -n "$sig" ] && [ "$kind" = smime ] &&
        openssl cms -cmsout -print -inform DER -in "$sig" 2>/dev/null |
        grep -A1 'eContent:' | grep -q '0000 - ' && nss="$nss (NSS used the SignedData's own eContent)"
    if [ "$math" = ok ]; then
        if [ ! -s "$PDIR/anchors.pem" ]; then
            chain="no anchors"
            RES=neutral
        else
            # openssl cms has no -CRLfile: the CRLs go into the CAfile
            local crl=() cafile=$PDIR/anchors.pem
            if [ -s "$PDIR/crls.pem" ]; then
                cat "$PDIR/anchors.pem" "$PDIR/crls.pem" >"$PDIR/anchors+crls.pem"
                cafile=$PDIR/anchors+crls.pem
                crl=(-crl_check)
            fi
            if openssl cms -verify "${inf[@]}" -in "$in" -out /dev/null \
                -CAfile "$cafile" -attime "$NOW" -purpose smimesign \
                "${crl[@]}" 2>"$pfx.chainerr" >/dev/null; then
                chain=ok
                RES=pass
                local why=
                case " $digest " in
                *' sha1 '* | *' md5 '*)
                    [ "$ALLOW_SHA1" = yes ] || why="$why digest=$digest" ;;
                esac
                if [ "$(echo "$SIGNER_ADDR" | tr 'A-Z' 'a-z')" != "$(echo "$FROM_ADDR" | tr 'A-Z' 'a-z')" ]; then
                    why="$why signer($SIGNER_ADDR)!=From($FROM_ADDR)"
                fi
                [ -n "$bits" ] && [ "$bits" -lt "$MINBITS" ] && why="$why key=${bits}bit"
                [ -n "$why" ] && RES=policy && chain="ok, policy:$why"
            else
                chain=$(sed -n 's/.*Verify error: *//p' "$pfx.chainerr" | head -n 1)
                [ -n "$chain" ] || chain=$(head -n 2 "$pfx.chainerr" | tr '\n' ' ')
                RES=$(classify_chain "$chain")
                # the signature may carry the real root while the anchor
                # is another key under the same name: check the signer
                # against the anchors alone
                if [ "$RES" = neutral ] && [ -s "$pfx.signer" ]; then
                    local alone
                    alone=$(openssl verify -CAfile "$cafile" "${crl[@]}" \
                        -attime "$NOW" -purpose smimesign "$pfx.signer" 2>&1 |
                        sed -n 's/^error [0-9]* at [0-9]* depth lookup: *//p' | head -n 1)
                    case $alone in
                    *'certificate signature failure'*)
                        chain="$chain; signer against the anchors alone: $alone"
                        RES=fail ;;
                    esac
                fi
                # contract: an anchor with the issuer's name but another key
                # is fail (OpenSSL never tries it: the AKI names the other
                # key), so compare names and key identifiers directly
                if [ "$RES" = neutral ] && [ -s "$pfx.signer" ] &&
                    same_name_other_key "$pfx.signer" "$PDIR/anchors.pem"; then
                    chain="$chain; an anchor has the issuer's name but another key"
                    RES=fail
                fi
            fi
        fi
    else
        chain=-
    fi
    say "$LAYERNAME: math=$math | chain@$NOW=$chain | nss=$nss | digest=$digest | signer=$SIGNER_ADDR${bits:+ ($bits bit)} => $RES"
}

# same_name_other_key CERT ANCHORS: an anchor's subject is CERT's issuer
# and its subjectKeyIdentifier differs from CERT's authorityKeyIdentifier
same_name_other_key() {
    local iss aki a sub ski rc=1
    iss=$(openssl x509 -in "$1" -noout -issuer -nameopt RFC2253)
    iss=${iss#issuer=}
    aki=$(openssl x509 -in "$1" -noout -ext authorityKeyIdentifier 2>/dev/null |
        sed -n 's/^ *\(keyid:\)\{0,1\}\([0-9A-F:]\{20,\}\)$/\2/p' | head -n 1)
    awk -v p="$W/anc" '/BEGIN CERT/ { n++ } { print > (p n ".pem") }' "$2"
    for a in "$W"/anc*.pem; do
        sub=$(openssl x509 -in "$a" -noout -subject -nameopt RFC2253)
        ski=$(openssl x509 -in "$a" -noout -ext subjectKeyIdentifier 2>/dev/null |
            tail -n 1 | tr -d ' ')
        [ "${sub#subject=}" = "$iss" ] && [ -n "$aki" ] && [ "$ski" != "$aki" ] && rc=0
    done
    rm -f "$W"/anc*.pem
    return $rc
}

# ri_match KEYPEM DER: a RecipientInfo names the certificate of KEYPEM
# (issuer+serial or subjectKeyIdentifier)
ri_match() {
    local serial ski issuer
    # serial in decimal (what openssl cms -print shows up to 64 bits) and hex
    serial=$(openssl x509 -in "$1" -noout -serial | sed 's/.*=//; s/^0*//')
    serial="$serial $(echo "ibase=16; ${serial:-0}" | BC_LINE_LENGTH=0 bc)"
    ski=$(openssl x509 -in "$1" -noout -ext subjectKeyIdentifier 2>/dev/null |
        tail -n 1 | tr -d ' :' | tr 'a-f' 'A-F')
    issuer=$(openssl x509 -in "$1" -noout -issuer -nameopt sep_comma_plus_space | sed 's/^issuer=//')
    openssl cms -cmsout -print -inform DER -in "$2" 2>/dev/null | awk \
        -v serial="$serial" -v ski="$ski" -v issuer="$issuer" '
        function nm(v) { gsub(/[ ,\/]/, "", v); return v }
        function sn(v) { if (v ~ /^0x/) v = toupper(substr(v, 3)); sub(/^0+/, "", v); return v }
        BEGIN { split(serial, S, " ") }
        /issuer: / { iss = $0; sub(/^ *issuer: /, "", iss) }
        /serialNumber: / && iss != "" {
            if (nm(iss) == nm(issuer) && (sn($2) == S[1] || $2 == S[2])) found = 1 }
        /d.subjectKeyIdentifier:/ { k = 1; kv = ""; next }
        k && /^ *[0-9a-f]+ - / {
            l = $0; sub(/^ *[0-9a-f]+ - /, "", l); l = substr(l, 1, 48)
            gsub(/[ -]/, "", l); kv = kv toupper(l); next }
        k { if (ski != "" && kv == ski) found = 1; k = 0 }
        END { exit !found }'
}

# ------------------------------------------------------------ the walker
# walk FILE DEPTH CANDECRYPT: peels one entity; appends to RESULTS/IDS
walk() {
    local f=$1 depth=$2 candec=$3 ct next="$W/l$2" der typ k
    [ "$depth" -gt 8 ] && { say "too deep"; return; }
    ct=$(ctype_of "$f")
    case $ct in
    multipart/signed)
        LAYERNAME="L$depth multipart/signed"
        verify_layer smime "$f" "$next" "$W/v$depth"
        RESULTS+=("$RES"); IDS+=("$SIGNER_ADDR")
        # a bad signature still has readable content: peel on
        [ -s "$next" ] || cp "$W/v$depth.content" "$next" 2>/dev/null
        [ -s "$next" ] && walk "$next" $((depth + 1)) no
        ;;
    application/pkcs7-mime | application/x-pkcs7-mime | application/octet-stream)
        if [ "$ct" = application/octet-stream ]; then
            case "$(param "$f" Content-Type name)$(param "$f" Content-Disposition filename)" in
            *.p7m | *.P7M) ;;
            *) say "L$depth $ct (not *.p7m)"; return ;;
            esac
        fi
        der=$W/d$depth.der
        body_der "$f" "$der"
        typ=$(cms_type "$der")
        case $typ in
        pkcs7-signedData)
            if ! openssl cms -cmsout -print -inform DER -in "$der" | grep -q 'signerInfos:' ||
                openssl cms -cmsout -print -inform DER -in "$der" | grep -q 'signerInfos:.*<EMPTY>'; then
                say "L$depth $ct signed-data without signers (certs-only)"
                return
            fi
            LAYERNAME="L$depth $ct signed-data"
            verify_layer der "$der" "$next" "$W/v$depth"
            RESULTS+=("$RES"); IDS+=("$SIGNER_ADDR")
            [ -s "$next" ] && walk "$next" $((depth + 1)) "$candec"
            ;;
        pkcs7-envelopedData | id-smime-ct-authEnvelopedData)
            if [ "$candec" != yes ]; then
                say "L$depth $ct $typ: nested, left alone"
                [ "$DEC" = not-encrypted ] && DEC=nested
                return
            fi
            for r in "${RCPTS[@]}"; do
                case " $LOCAL " in
                *" ${r##*@} "*) ;;
                *) DEC=relayed; say "L$depth $typ: $r not local => relayed"; return ;;
                esac
            done
            DEC=no-key
            for k in "$PDIR"/pem/*.pem; do
                [ -e "$k" ] || continue
                if ! ri_match "$k" "$der"; then
                    say "L$depth $typ: no RecipientInfo for $(basename "$k")"
                    continue
                fi
                # the default provider first, then with OpenSSL's legacy
                # provider (RC2, as in RFC 4134 5.2)
                if openssl cms -decrypt -inform DER -in "$der" -recip "$k" \
                    -inkey "$k" -out "$next" 2>"$W/decerr" ||
                    { openssl cms -decrypt -inform DER -in "$der" -recip "$k" \
                        -inkey "$k" -out "$next" -provider default \
                        -provider legacy 2>"$W/decerr" &&
                        say "L$depth (decrypted with the legacy provider only)"; }; then
                    DEC=yes
                    say "L$depth $typ: openssl decrypts with $(basename "$k"); nss: $(
                        [ -n "$HAVE_NSS" ] && { nss_db "$PDIR"; cmsutil -D -d "sql:$PDIR/nss" \
                            -i "$der" -o "$W/nssdec" >/dev/null 2>&1 &&
                            cmp -s "$W/nssdec" "$next" && echo same plaintext || echo FAILS; } ||
                        echo skipped)"
                    cp "$next" "$DECRYPTED"
                    walk "$next" $((depth + 1)) yes
                    return
                fi
                DEC=corrupt
                say "decrypt error with $(basename "$k"): $(head -n 2 "$W/decerr" | tr '\n' ' ')"
            done
            say "L$depth $typ: $DEC ($(openssl cms -cmsout -print -inform DER -in "$der" |
                grep -cE 'd\.(ktri|kari|kekri):') recipient infos)"
            [ "$DEC" = corrupt ] && { RESULTS+=(permerror); IDS+=(-); }
            ;;
        unparseable)
            DEC=corrupt
            RESULTS+=(permerror); IDS+=(-)
            say "L$depth $ct: CMS unparseable => corrupt, permerror"
            ;;
        *) say "L$depth $ct: CMS $typ (not S/MIME)" ;;
        esac
        ;;
    multipart/*)
        walk_parts "$f" "$depth" ""
        ;;
    *) [ "$VERBOSE" ] && say "L$depth $ct (leaf)" ;;
    esac
}
# walk_parts FILE DEPTH PARTPREFIX: signed sub-parts of a multipart
walk_parts() {
    local f=$1 depth=$2 pp=$3 b p n=0 ct
    b=$(param "$f" Content-Type boundary)
    subparts "$f" "$b" "$W/p$depth${pp//./_}"
    for p in "$W/p$depth${pp//./_}".*; do
        [ -e "$p" ] || continue
        n=$((n + 1))
        ct=$(ctype_of "$p")
        case $ct in
        multipart/signed)
            LAYERNAME="part ${pp}$n multipart/signed"
            verify_layer smime "$p" "$W/pc" "$W/pv"
            RESULTS+=("$RES/${pp}$n"); IDS+=("$SIGNER_ADDR")
            ;;
        application/pkcs7-mime | application/x-pkcs7-mime)
            body_der "$p" "$W/pd.der"
            if [ "$(cms_type "$W/pd.der")" = pkcs7-signedData ]; then
                LAYERNAME="part ${pp}$n opaque signed-data"
                verify_layer der "$W/pd.der" "$W/pc" "$W/pv"
                RESULTS+=("$RES/${pp}$n"); IDS+=("$SIGNER_ADDR")
            else
                say "part ${pp}$n $ct $(cms_type "$W/pd.der"): nested, left alone"
                case $(cms_type "$W/pd.der") in
                pkcs7-envelopedData | id-smime-ct-authEnvelopedData)
                    [ "$DEC" = not-encrypted ] && DEC=nested ;;
                esac
            fi
            ;;
        multipart/*) walk_parts "$p" "$depth" "${pp}$n." ;;
        esac
    done
}

# ------------------------------------------------------------ the rows
rc=0
declare -A MADE
while IFS=$'\t' read -r file profile NOW from rcpt eres eids edec _; do
    case $file in '#'* | file | '') continue ;; esac
    # shellcheck disable=SC2053
    [[ $file == $PATTERN ]] || continue
    PDIR=$W/profile-$profile
    if [ -z "${MADE[$profile]:-}" ]; then
        corpus_profile "$profile" "$PDIR" || exit 2
        # certificates "known here" besides the signature's own: the
        # anchors and the key store's certificates (the man page's
        # neutral: "neither in the signature nor known here")
        {
            cat "$PDIR/anchors.pem" 2>/dev/null
            for k in "$PDIR"/pem/*.pem; do
                [ -e "$k" ] && openssl x509 -in "$k"
            done
        } >"$PDIR/known.pem"
        MADE[$profile]=1
    fi
    LOCAL=$(sed -n 's/^LocalDomains //p' "$PDIR/smime-milter.conf")
    ALLOW_SHA1=$(sed -n 's/^AllowSHA1Signatures //p' "$PDIR/smime-milter.conf")
    MINBITS=$(sed -n 's/^MinKeyBits //p' "$PDIR/smime-milter.conf")
    : "${MINBITS:=2048}"
    IFS=, read -r -a RCPTS <<<"$rcpt"
    msg=$W/msg
    corpus_message "$file" "$from" "${RCPTS[0]}" >"$msg"
    FROM_ADDR=$(addr_of "$(hfield From "$msg")")
    echo "== $file [$profile, now=$NOW, From=$FROM_ADDR, rcpt=$rcpt]"
    RESULTS=() IDS=() DEC=not-encrypted DECRYPTED=$W/decrypted
    walk "$msg" 1 yes
    res=$(IFS=,; echo "${RESULTS[*]:-none}")
    # a message that cannot be read (no key, relayed) gets no A-R at all
    # (contract: smime=none only for a readable message)
    case $DEC in no-key | relayed) [ "$res" = none ] && res=- ;; esac
    ids=$(IFS=,; echo "${IDS[*]:--}")
    # an identifier of - in expected.tsv is not checked
    ids_cmp=$(paste -d' ' <(tr ',' '\n' <<<"$ids") <(tr ',' '\n' <<<"$eids") |
        awk '$2 != "-" && $1 != $2 { bad = 1 } END { print bad ? "differ" : "same" }')
    [ "$(tr -cd , <<<"$ids")" = "$(tr -cd , <<<"$eids")" ] || ids_cmp=differ
    if [ "$res" = "$eres" ] && [ "$ids_cmp" = same ] && [ "$DEC" = "$edec" ]; then
        echo "  MATCH results=$res ids=$ids decrypted=$DEC"
    else
        echo "  DIFFER derived results=$res ids=$ids decrypted=$DEC;" \
            "expected.tsv results=$eres ids=$eids decrypted=$edec"
        rc=1
    fi
done <"$CORPUS/expected.tsv"
exit $rc
