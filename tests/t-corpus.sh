#!/bin/bash
# t-corpus: the interop corpus (tests/corpus: Thunderbird/NSS, KMail/gpgsm,
# Outlook, .NET, Apple Mail, Bouncy Castle, RFC 4134, MimeKit, M2Crypto)
# through smime-milter-ctl process --inbound.  For every row of
# tests/corpus/expected.tsv (expectations derived from openssl/NSS, see
# tests/corpus/derive.sh): exit status 0, the Authentication-Results
# results with our authserv-id in order (RESULT or RESULT/PART), the
# signer identifiers, the X-SMIME-Milter stamp (decrypted= state and
# verified= list), and for decrypted rows that the output entity equals
# what openssl cms -decrypt makes of the original.  Then forged
# Authentication-Results / X-SMIME-Milter fields injected into copies of
# messages must never survive, while an A-R of another authserv-id does.
. "$(dirname "$0")/lib/common.sh"

CORPUS=$SRCDIR/tests/corpus
export CORPUS
. "$CORPUS/profiles.sh"
AUTHSERV=test.example
ONLY=${CORPUS_ONLY:-*} # CORPUS_ONLY=PATTERN runs the matching rows only

# ------------------------------------------------------------ helpers
# header block of FILE, unfolded, CR removed (one field per line)
unfolded() {
    sed -e 's/\r$//' -e '/^$/q' "$1" | awk '
        /^$/ { exit }
        /^[ \t]/ { sub(/^[ \t]+/, " "); cur = cur $0; next }
        { if (cur != "") print cur; cur = $0 }
        END { if (cur != "") print cur }'
}
# (the helpers below run once or more per field of every output, so they
# are plain bash: a sed or tr per call made the test spend most of its
# time starting processes)
# fields NAME FILE: the unfolded values of every NAME field (FILE's
# unfolded header block is kept in FILE.unf until FILE changes)
fields() {
    local n=${1,,} l
    [ "$2.unf" -nt "$2" ] || unfolded "$2" >"$2.unf"
    while IFS= read -r l; do
        [[ ${l,,} == "$n:"* ]] && printf '%s\n' "${l:${#n}+1}"
    done <"$2.unf"
    return 0
}
# uncomment VALUE: VALUE without its (nested) comments, in REPLY
uncomment() {
    local v=$1 re='\([^()]*\)'
    while [[ $v =~ $re ]]; do v=${v/"${BASH_REMATCH[0]}"/}; done
    REPLY=$v
}
# authserv VALUE: the authserv-id of an A-R value (CFWS removed)
authserv() {
    local v
    uncomment "$1"
    v=${REPLY#"${REPLY%%[! $'\t']*}"}
    v=${v%%[ $'\t';]*}
    printf '%s\n' "${v,,}"
}
# ours FILE: our A-R values, in order
ours() {
    local v
    fields Authentication-Results "$1" | while IFS= read -r v; do
        [ "$(authserv "$v")" = "$AUTHSERV" ] && printf '%s\n' "$v"
    done
}
# prop VALUE NAME: a property (smime=, body.smime-part=...) of an A-R value
prop() {
    local w words
    uncomment "$1"
    read -r -a words <<<"${REPLY//;/ }"
    for w in "${words[@]}"; do
        if [[ $w == "$2="* ]]; then
            w=${w#"$2="}
            printf '%s\n' "${w//\"/}"
            return 0
        fi
    done
}
results_of() { # results_of FILE: RESULT[/PART],... of our A-R fields
    local v r p out=
    while IFS= read -r v; do
        r=$(prop "$v" smime)
        p=$(prop "$v" body.smime-part)
        out="$out${out:+,}${r:-?}${p:+/$p}"
    done < <(ours "$1")
    echo "${out:-(no A-R)}"
}
ids_of() { # ids_of FILE: the identifiers, - where absent
    local v i out=
    while IFS= read -r v; do
        i=$(prop "$v" body.smime-identifier)
        out="$out${out:+,}${i:--}"
    done < <(ours "$1")
    echo "$out"
}
# ids_match GOT WANT: equal where WANT is not -, address case ignored
ids_match() {
    local g w i
    IFS=, read -r -a g <<<"$1"
    IFS=, read -r -a w <<<"$2"
    [ "${#g[@]}" -eq "${#w[@]}" ] || return 1
    for i in "${!w[@]}"; do
        [ "${w[$i]}" = - ] && continue
        [ "${g[$i],,}" = "${w[$i],,}" ] || return 1
    done
}
stamp_state() { # decrypted= state: yes, or the reason of decrypted=no (...)
    local s
    s=$(fields X-SMIME-Milter "$1" | head -n 1 | sed 's/^ *//')
    case $s in
    'decrypted=no ('*) s=${s#decrypted=no (}; echo "${s%%)*}" ;;
    decrypted=*) echo yes ;;
    *) echo "(no stamp: $s)" ;;
    esac
}
stamp_verified() {
    fields X-SMIME-Milter "$1" | head -n 1 | sed -n 's/.*; *verified=\([^; ]*\).*/\1/p'
}
ctype_of() {
    local v
    v=$(fields Content-Type "$1" | head -n 1 | sed 's/;.*//; s/[ \t]//g' | tr 'A-Z' 'a-z')
    echo "${v:-text/plain}"
}
body_der() { # body_der FILE OUT: decoded body of a single-part entity
    if fields Content-Transfer-Encoding "$1" | grep -qi base64; then
        sed -e 's/\r$//' -e '1,/^$/d' "$1" | base64 -di >"$2" 2>/dev/null
    else
        sed -e '1,/^\r\{0,1\}$/d' "$1" >"$2"
    fi
}
# reference_plain MSG PROFILEDIR OUT: openssl's plaintext of the enveloped
# layer of MSG (peeling opaque signed-data first, as the milter does)
reference_plain() {
    local f=$1 i k
    cp "$f" "$T/ref.0"
    for i in 0 1 2 3; do
        body_der "$T/ref.$i" "$T/ref.der"
        case $(openssl cms -cmsout -print -inform DER -in "$T/ref.der" 2>/dev/null |
            sed -n 's/^ *contentType: *\([^ ]*\).*/\1/p' | head -n 1) in
        pkcs7-signedData)
            openssl cms -verify -noverify -inform DER -in "$T/ref.der" \
                -out "$T/ref.$((i + 1))" >/dev/null 2>&1 || return 1
            ;;
        pkcs7-envelopedData | id-smime-ct-authEnvelopedData)
            for k in "$2"/pem/*.pem; do
                openssl cms -decrypt -inform DER -in "$T/ref.der" -recip "$k" \
                    -inkey "$k" -out "$3" 2>/dev/null && return 0
            done
            # RC2 (RFC 4134 5.2) needs OpenSSL's legacy provider
            for k in "$2"/pem/*.pem; do
                openssl cms -decrypt -inform DER -in "$T/ref.der" -recip "$k" \
                    -inkey "$k" -out "$3" -provider default -provider legacy \
                    2>/dev/null && return 0
            done
            return 1
            ;;
        *) return 1 ;;
        esac
    done
    return 1
}
# entity FILE: the Content-* fields (unfolded, sorted: their order carries
# no meaning) and the body, LF line ends.  A text without a header block is
# all body, and an entity without Content-Type is text/plain;
# charset=us-ascii (RFC 2045 5.2), so that default is written out.
entity() {
    {
        if sed -n '1{/^[A-Za-z0-9-]*:/q0;q1}' "$1"; then
            unfolded "$1" | grep -i '^content-' | sed 's/[ \t]*$//'
        fi
    } | sort >"$1.ct"
    grep -qi '^content-type:' "$1.ct" ||
        echo "Content-Type: text/plain; charset=us-ascii" >>"$1.ct"
    sort "$1.ct"
    echo
    if sed -n '1{/^[A-Za-z0-9-]*:/q0;q1}' "$1"; then
        sed -e 's/\r$//' -e '1,/^$/d' "$1"
    else
        sed -e 's/\r$//' "$1"
    fi
}

# ------------------------------------------------------------ the rows
declare -A PROF
nrows=0
while IFS=$'\t' read -r file profile now from rcpt eres eids edec _; do
    case $file in '#'* | file | '') continue ;; esac
    # shellcheck disable=SC2053
    [[ $file == $ONLY ]] || continue
    nrows=$((nrows + 1))
    P=$T/profile-$profile
    if [ -z "${PROF[$profile]:-}" ]; then
        corpus_profile "$profile" "$P" || { echo "Bail out! profile $profile"; exit 1; }
        tap_check "profile $profile: smime-milter -n accepts the configuration" -- \
            "$MILTER" -n -c "$P/smime-milter.conf"
        PROF[$profile]=1
    fi
    IFS=, read -r -a rcpts <<<"$rcpt"
    args=()
    for r in "${rcpts[@]}"; do args+=(--rcpt "$r"); done
    tag="$file [$profile]"
    corpus_message "$file" "$from" "${rcpts[0]}" >"$T/in.eml"
    rc=0
    "$CTL" -c "$P/smime-milter.conf" process --inbound --from "$from" \
        "${args[@]}" --now "$now" <"$T/in.eml" >"$T/out.eml" 2>"$T/err" || rc=$?
    tap_is "$rc" 0 "$tag: exit status"
    [ "$rc" -eq 0 ] || sed 's/^/#   stderr: /' "$T/err" | head -n 5
    # "-": the message cannot be read (no key, relayed): no A-R at all
    want=$eres
    [ "$eres" = - ] && want="(no A-R)"
    tap_is "$(results_of "$T/out.eml")" "$want" "$tag: Authentication-Results"
    if [ "$eids" != - ] && [ "$eres" != none ] && [ "$eres" != - ]; then
        got=$(ids_of "$T/out.eml")
        if ids_match "$got" "$eids"; then
            tap_ok 0 "$tag: body.smime-identifier"
        else
            tap_ok 1 "$tag: body.smime-identifier"
            echo "#   got \"$got\", want \"$eids\" (- = not checked)"
        fi
    fi
    tap_is "$(stamp_state "$T/out.eml")" "$edec" "$tag: X-SMIME-Milter decrypted="
    tap_is "$(stamp_verified "$T/out.eml")" "$(echo "$eres" | sed 's#/[0-9.]*##g; s#^-$#none#')" \
        "$tag: X-SMIME-Milter verified="
    if [ "$edec" = yes ]; then
        if reference_plain "$T/in.eml" "$P" "$T/plain"; then
            entity "$T/plain" >"$T/want.ent"
            entity "$T/out.eml" >"$T/got.ent"
            if cmp -s "$T/want.ent" "$T/got.ent"; then
                tap_ok 0 "$tag: output entity = openssl cms -decrypt"
            else
                tap_ok 1 "$tag: output entity = openssl cms -decrypt"
                diff "$T/want.ent" "$T/got.ent" | head -n 10 | sed 's/^/#   /'
            fi
        else
            tap_ok 1 "$tag: openssl cms -decrypt of the original (test setup)"
        fi
    fi
done <"$CORPUS/expected.tsv"
tap_ok $((nrows == 0)) "expected.tsv has rows ($nrows)"

# ------------------------------------------------------------ forgeries
# inject MSG OUT POSITION: a copy of MSG with forged fields at the top
# (POSITION top) or at the end of the header block (POSITION end), in the
# message's own line ends
inject() {
    local cr=
    grep -q $'\r$' "$1" && cr=$'\r'
    {
        printf '%s\n' \
            "Authentication-Results: test.example; smime=pass body.smime-identifier=mallory@example.com" \
            "authentication-results: TEST.EXAMPLE;" \
            "	smime=pass body.smime-identifier=mallory@example.com" \
            "AUTHENTICATION-RESULTS: (forged by the sender) test.example;" \
            " smime=pass" \
            "Authentication-Results:test.example(no space);smime=pass" \
            "Authentication-Results: Test.Example (comment) ; smime=pass" \
            "Authentication-Results: other.example; smime=pass body.smime-identifier=keep@example.com" \
            "Authentication-Results: test.example.other.example; smime=pass" \
            "X-SMIME-Milter: decrypted=mallory@example.com (aes-128-cbc); verified=pass" \
            "x-smime-milter: decrypted=no (forged)" \
            "X-SMIME-MILTER:" \
            "	verified=pass"
    } | sed "s/\$/$cr/" >"$T/forged.fields"
    case $3 in
    top) cat "$T/forged.fields" "$1" >"$2" ;;
    end) awk -v f="$T/forged.fields" '
            !done && /^\r?$/ { while ((getline l < f) > 0) print l; done = 1 }
            { print }' "$1" >"$2" ;;
    esac
}
forgery_check() { # forgery_check FILE PROFILE FROM RCPT POSITION WANT-RESULTS
    local file=$1 prof=$2 from=$3 rcpt=$4 pos=$5 want=$6 P=$T/profile-$2 tag n
    tag="forged fields ($pos) in $file"
    [ -n "${PROF[$prof]:-}" ] || { corpus_profile "$prof" "$P" && PROF[$prof]=1; }
    corpus_message "$file" "$from" "$rcpt" >"$T/f.in"
    inject "$T/f.in" "$T/f.eml" "$pos"
    rc=0
    "$CTL" -c "$P/smime-milter.conf" process --inbound --from "$from" \
        --rcpt "$rcpt" --now 1780000000 <"$T/f.eml" >"$T/f.out" 2>"$T/err" || rc=$?
    tap_is "$rc" 0 "$tag: exit status"
    tap_is "$(results_of "$T/f.out")" "$want" "$tag: only our own A-R remain"
    n=$(grep -ci 'mallory' "$T/f.out")
    tap_is "$n" 0 "$tag: no forged identifier left"
    n=$(fields X-SMIME-Milter "$T/f.out" | wc -l)
    tap_is "$n" 1 "$tag: exactly one X-SMIME-Milter field"
    n=$(fields X-SMIME-Milter "$T/f.out" | grep -c 'forged\|mallory\|^ *verified=pass$')
    tap_is "$n" 0 "$tag: the X-SMIME-Milter field is ours"
    fields Authentication-Results "$T/f.out" | grep -q '^ *other.example; smime=pass body.smime-identifier=keep@example.com$'
    tap_ok $? "$tag: another authserv-id's A-R survives"
    fields Authentication-Results "$T/f.out" | grep -q '^ *test.example.other.example;'
    tap_ok $? "$tag: an A-R of test.example.other.example (not ours) survives"
}
if [ "$ONLY" = '*' ]; then
    forgery_check thunderbird/alice.dsig.SHA256.multipart.eml tb \
        Alice@example.com Bob@example.com top pass
    forgery_check thunderbird/alice.dsig.SHA256.multipart.bad.eml tb \
        Alice@example.com Bob@example.com end fail
    forgery_check thunderbird/alice.env.eml tb Alice@example.com \
        Bob@example.com end none
    forgery_check kde-mimetreeparser/smime-encrypted.mbox kde \
        test@example.com test@example.com top none
fi
tap_done
