#!/bin/bash
# t-injection: attacker-controlled text through the real smime-milter over
# the milter protocol (tests/tools/milter-client), run with -v so that the
# debug lines are written too:
#   - envelope addresses and From/Subject fields with CR, LF, other
#     control characters, DEL, 8-bit bytes, '%' and 10,000-character
#     values: the log stays one line per event with them escaped (\r \n
#     \xNN), the SMTP reply stays one line with '%' doubled (libmilter
#     hands the text to a printf-style formatter: Sendmail drops a reply
#     with a lone '%', Postfix removes it);
#   - the modifications touch only our fields, the Content-* fields and
#     the tagged Subject, and no value we write starts a new header line;
#   - forged Authentication-Results (our authserv-id in any case, folded,
#     with comments, quoted, with a version) and X-SMIME-Milter fields (any
#     case, folded) are removed on the wire, in both directions, with the
#     right libmilter indexes when they are mixed with other fields.
# (t-inbound.sh checks the forgery removal offline, through
# smime-milter-ctl; here it is the milter's own changes.)
. "$(dirname "$0")/lib/common.sh"
CLIENT=$BUILDDIR/tests/tools/milter-client
ID=mx.test.example

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
keystore_init "$P" alice.pem bob.pem || { echo "Bail out! key store"; exit 1; }
mkdir -p "$T/certs" && cp "$P/bob.crt" "$P/inter.crt" "$T/certs/"
echo "@secure.example mandatory" >"$T/policy.map"
cat >>"$T/smime-milter.conf" <<EOC
CertificateStore $T/certs
PolicyMap $T/policy.map
InternalHosts 127.0.0.1/32
AuthservID $ID
SubjectTrigger [secure]
StatsFile $T/stats
EOC
milter_start "$T/smime-milter.conf" -v || { echo "Bail out! milter"; exit 1; }

# run NAME DIR FROM RCPT... < message: $T/NAME.out, $T/NAME.mods, $rc
# ($HDR, when set, is one more field for milter-client -H)
run() {
    local name=$1 dir=$2 from=$3 ip=127.0.0.1 r args=()
    shift 3
    [ -n "${HDR:-}" ] && args+=(-H "$HDR")
    [ "$dir" = in ] && ip=198.51.100.7
    for r in "$@"; do args+=(-r "$r"); done
    rc=0
    "$CLIENT" -s "inet:$MILTER_PORT@127.0.0.1" -i "$ip" -f "$from" \
        -E "i=Q$name" "${args[@]}" >"$T/$name.out" 2>"$T/$name.mods" || rc=$?
}
msg() { # msg FROM-FIELD SUBJECT|"" [extra fields...]: a message on stdout
    local from=$1 subj=$2 h
    shift 2
    printf 'From: %s\r\nTo: <bob@example.net>\r\n' "$from"
    [ -n "$subj" ] && printf 'Subject: %s\r\n' "$subj"
    for h in "$@"; do printf '%s\r\n' "$h"; done
    printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nbody\r\n'
}
# touched MODS: names of the fields added, inserted, changed or deleted
touched() {
    sed -n -E 's/^(add|insert\[[0-9]+\]|change|delete) ([^:[]+).*/\2/p' "$1" |
        sort -u | paste -sd' ' -
}
# headers_of FILE: the header block of a result, one field per line
headers_of() {
    sed -e '/^\r\{0,1\}$/q' "$1" | tr -d '\r' |
        awk '/^[ \t]/ {h = h " " $0; next} {if (h != "") print h; h = $0} END {if (h != "") print h}'
}

CR=$'\r' LF=$'\n'
EVIL="${CR}${LF}12:00:00.000 smime-milter[1]: info: FORGED result=signed"
CTL=$'\x01\x07\x08\x0b\x0c\x1b[31m\x7f'
LONG=$(printf 'x%.0s' $(seq 1 10000))

# 1. envelope sender and recipients (inbound and outbound; the outbound
#    recipients are prefetched and logged by -v)
msg '<alice@example.org>' 'plain' | run env-in in "mallory${EVIL}@example.org" \
    "bob${CTL}@example.net" "${LONG}@example.net"
tap_is "$(sed -n 's/^reply=//p' "$T/env-in.mods")" "continue" "inbound, hostile envelope: delivered"
msg '<alice@example.org>' 'plain' | run env-out sign "alice${EVIL}@example.org" \
    "carl${EVIL}@elsewhere.example" "x${CTL}y@elsewhere.example" "${LONG}@elsewhere.example" \
    "pct%cent%s%n@elsewhere.example"
tap_is "$(sed -n 's/^reply=//p' "$T/env-out.mods")" "continue" "outbound, hostile envelope: delivered"
# 2. a mandatory recipient without a certificate: refused with the
#    address in the reply
msg '<alice@example.org>' 'plain' | run refuse sign alice@example.org \
    "user%relay${CR}${LF}X-Evil: 1${CTL}@secure.example"
reply=$(sed -n 's/^reply=//p' "$T/refuse.mods")
tap_check "mandatory recipient without a certificate: 550 5.7.1" -- \
    grep -q '^reply=reject 550 5.7.1 no valid S/MIME certificate for user%%relay' "$T/refuse.mods"
tap_is "$(grep -c '' <<<"$reply")" 1 "the SMTP reply is one line"
tap_check "the reply has the control characters escaped" -- \
    grep -qF 'user%%relay\r\nX-Evil: 1\x01\x07\x08\x0b\x0c\x1b[31m\x7f@secure.example' <<<"$reply"
tap_not "the reply has no lone '%' (libmilter formats it)" -- \
    grep -qE '(^|[^%])%([^%]|$)' <<<"$(sed 's/%%//g' <<<"$reply")"
# 3. From and Subject fields, and the subject tag that rewrites Subject
msg "\"Mallory${CTL}\" <\"a${CTL}b\"@example.org>" "hi${CTL}" |
    run from-field sign "a@example.org" carl@elsewhere.example
tap_is "$(touched "$T/from-field.mods")" "X-SMIME-Milter" \
    "From and Subject with control characters: only our stamp is added"
# a bare LF inside the value (a file cannot hold it: milter-client -H)
msg '<alice@example.org>' '' |
    HDR='Subject: [secure] report\nBcc: evil@attacker.example\rX-Evil: 1\x01\n\n' \
        run subject sign alice@example.org bob@example.net
tap_check "tagged Subject to bob: signed and encrypted" -- \
    grep -q '^add X-SMIME-Milter: signed=alice@example.org; encrypted=1/1' "$T/subject.mods"
tap_is "$(touched "$T/subject.mods")" "Content-Description Content-Disposition Content-Transfer-Encoding Content-Type MIME-Version Subject X-SMIME-Milter" \
    "tagged Subject: only the MIME fields, Subject and our stamp are touched"
tap_not "the new Subject value does not start a field of its own" -- \
    grep -qi '^Bcc:' "$T/subject.mods"
tap_is "$(headers_of "$T/subject.out" | grep -ci '^bcc:')" 0 "no Bcc field in the delivered message"
tap_check "the tag is gone, the rest of the Subject kept" -- \
    grep -q '^change Subject\[1\]: report' "$T/subject.mods"

# 4. forged stamps, mixed with other fields, in both directions
forged() {
    printf 'Authentication-Results: other.example; dkim=pass header.d=example.org\r\n'
    printf 'Authentication-Results: %s; smime=pass body.smime-identifier=ceo@example.org\r\n' "$ID"
    printf 'Received: from a by b; Sun, 22 Nov 2026 10:00:00 +0000\r\n'
    printf 'AUTHENTICATION-RESULTS:\r\n\t(forged (nested) comment)\r\n MX.Test.Example ;\r\n\tsmime=pass\r\n'
    printf 'Authentication-Results: other.example; spf=pass\r\n'
    printf 'authentication-results: "%s"; smime=pass\r\n' "$ID"
    printf 'Authentication-Results: %s 1; smime=pass\r\n' "$ID"
    printf 'Authentication-Results: %s; none\r\n' "$ID"
    printf 'Authentication-Results: (c)%s(c); smime=pass\r\n' "$ID"
    printf 'X-SMIME-Milter: decrypted=ceo@example.org; verified=pass\r\n'
    printf 'x-smime-milter:\r\n\tsigned=ceo@example.org\r\n'
    printf 'X-Smime-Milter: forged\r\n'
    printf 'Authentication-Results: mx.test.example.attacker.example; smime=pass\r\n'
    msg '<alice@example.org>' 'forged stamps'
}
forged | run forged-in in alice@example.org bob@example.net
forged | run forged-out sign alice@example.org carl@elsewhere.example
for d in in out; do
    h=$(headers_of "$T/forged-$d.out")
    tap_is "$(grep -ci '^x-smime-milter:' <<<"$h")" 1 "$d: one X-SMIME-Milter left"
    tap_not "$d: no forged X-SMIME-Milter value left" -- grep -qi 'ceo@example\|forged$' <<<"$(grep -i '^x-smime-milter:' <<<"$h")"
    tap_is "$(grep -i '^authentication-results:' <<<"$h" | grep -v '^Authentication-Results: mx.test.example; smime=none$' | tr -s ' \t' ' ' | paste -sd'|' -)" \
        "Authentication-Results: other.example; dkim=pass header.d=example.org|Authentication-Results: other.example; spf=pass|Authentication-Results: mx.test.example.attacker.example; smime=pass" \
        "$d: every Authentication-Results with our authserv-id is gone, the others kept in order"
    tap_not "$d: no trace of the forged identity" -- grep -q 'ceo@example.org' "$T/forged-$d.out"
    tap_is "$(grep -c '^delete X-SMIME-Milter\[' "$T/forged-$d.mods")" 3 "$d: three X-SMIME-Milter deletions on the wire"
done
tap_is "$(grep -c '^delete Authentication-Results\[' "$T/forged-in.mods")" 6 "inbound: six Authentication-Results deletions on the wire"
first_is_ours() { headers_of "$1" | head -n 1 | grep -q "^Authentication-Results: $ID; smime=none"; }
tap_check "inbound: our own smime=none at the top" -- first_is_ours "$T/forged-in.out"

# 5. the log: one line per event, nothing raw
milter_stop
tap_is "$(grep -cvE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} smime-milter\[[0-9]+\]: (debug|info|notice|warning|error): ' "$MILTER_LOG")" 0 \
    "every log line starts with time, program and level"
tap_not "no raw control character or DEL in the log" -- grep -qP '[\x00-\x09\x0b-\x1f\x7f]' "$MILTER_LOG"
tap_not "no forged log line" -- grep -q '^12:00:00.000' "$MILTER_LOG"
tap_check "the envelope sender is logged escaped" -- \
    grep -qF 'from=<mallory\r\n12:00:00.000 smime-milter[1]: info: FORGED result=signed@example.org>' "$MILTER_LOG"
tap_check "a prefetched recipient is logged escaped (debug)" -- \
    grep -qF 'prefetch x\x01\x07\x08\x0b\x0c\x1b[31m\x7fy@elsewhere.example' "$MILTER_LOG"
tap_check "the refused recipient is logged escaped" -- \
    grep -qF 'rcpt=<user%relay\r\nX-Evil: 1\x01' "$MILTER_LOG"
tap_check "a 10,000-character address is logged shortened (...)" -- \
    grep -qE 'prefetch x{100,}\.\.\.' "$MILTER_LOG"
tap_is "$(awk '{ if (length($0) > m) m = length($0) } END { print (m <= 2200) }' "$MILTER_LOG")" 1 \
    "no log line over 2,200 bytes"
tap_is "$(grep -c ': Q[a-z-]*: \(inbound\|outbound\) (' "$MILTER_LOG")" 7 "one summary line per message"
tap_done
