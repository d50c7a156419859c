#!/bin/bash
# t-fault-ldap: the directory fails in the middle of a run and comes back;
# mail that must be encrypted is tempfailed meanwhile, never sent in
# plaintext, never rejected, and is delivered encrypted once the
# directory answers again.  A real private Postfix relays 150 messages, 4
# at a time (tests/tools/smtp-retry.pl resends what got a 4xx, as an
# upstream MTA would), from alice to bob@example.net and carol@example.org,
# whose certificates are only in a real slapd; EncryptionPolicy
# mandatory, MissingCertAction reject (so a directory failure mistaken
# for "no certificate" would show as a 5xx, a lost message),
# DirectoryFailureAction tempfail, CacheTTL 1 and NegativeCacheTTL 1 (so
# that the outages are really met, not hidden by the cache), LDAPTimeout 2.
# Two faults, each at least 3 s long and until the sender has seen several
# 451 4.4.3 replies:
#   1. slapd is stopped (connections refused), then started again
#   2. slapd is frozen with SIGSTOP (connections hang: the lookups must time
#      out, not hang the milter), then continued with SIGCONT
# At the sink: every message exactly once, every copy an enveloped-data
# that `openssl cms -decrypt` opens with bob's key, with the complete body.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/slapd.sh"
. "$SRCDIR/tests/lib/faults.sh"

N=${FAULT_MESSAGES:-150}
make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
sh "$SRCDIR/tests/ldap/mkldif.sh" "$P" "$T/people.ldif" >"$T/mkldif.log" 2>&1 ||
    { cat "$T/mkldif.log"; echo "Bail out! mkldif"; exit 1; }
at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_init "$T/ldap" >/dev/null && ldap_start >/dev/null && ldap_add "$T/people.ldif" >/dev/null ||
    { echo "Bail out! slapd"; exit 1; }

mkdir -p "$T/keys" "$T/tmp"
install -m 600 "$P/alice.pem" "$T/keys/"
cat "$P/root.crt" "$P/inter.crt" >"$T/anchors.pem"
CONF=$T/smime-milter.conf
write_conf() {
    cat >"$CONF" <<EOC
KeyStore $T/keys
TrustAnchors $T/anchors.pem
LDAPURI $LDAP_URI
LDAPBase dc=example,dc=org
LDAPTimeout 2
CacheTTL 1
NegativeCacheTTL 1
EncryptionPolicy mandatory
MissingCertAction reject
DirectoryFailureAction tempfail
InternalHosts 127.0.0.0/8
TempDirectory $T/tmp
EOC
}
write_conf
"$CTL" -c "$CONF" lookup bob@example.net carol@example.org >"$T/lookup.out" 2>&1
tap_check "bob's and carol's certificates come from slapd" -- \
    grep -q 'carol@example.org: 1 usable certificate (source: ldap)' "$T/lookup.out"
milter_start "$CONF" || { echo "Bail out! milter"; exit 1; }
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'
pf_conf "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
pf_start >/dev/null || { echo "Bail out! pf_start"; exit 1; }

DIRFAIL='reply=451 4.4.3 directory lookup failed'
# outage WHAT: keep the fault up at least 3 s and until 4 more directory
# tempfails were seen (30 s at most); print how many were seen
outage() {
    local before=$1 t
    t=$(date +%s)
    if ! fault_wait "$T/run" temp $((before + 4)) 30 "$DIRFAIL"; then
        # what to look at when this happens: the sender, slapd, the milter
        tap_diag "$2: fewer than 4 directory tempfails within 30 s"
        tap_diag "sender: $(fault_count "$T/run" ok) accepted, $(fault_count "$T/run" temp) tempfailed"
        tap_diag "slapd: $(ps -o pid=,stat= -p "$(ldap_pids | tr '\n' ',' | sed 's/,$//')" 2>&1 | tr '\n' ' ')"
        tail -n 15 "$MILTER_LOG" | cut -c1-200 | sed 's/^/# milter: /'
    fi
    while [ $(($(date +%s) - t)) -lt 3 ]; do sleep 0.2; done
}

t0=$(date +%s)
# (paced, so that the messages left when a fault starts cannot all go
# through before it bites, on certificates still in the 1 s cache)
fault_send "$T/run" --from alice@example.org --to bob@example.net,carol@example.org \
    --count "$N" --concurrency 4 --id ldap --deadline 150 --pace-ms 200 &
sender=$!

# 1. slapd stopped
fault_wait "$T/run" ok $((N / 5)) 60 || tap_diag "slow start: $(fault_count "$T/run" ok) accepted"
before=$(fault_count "$T/run" temp "$DIRFAIL")
ldap_stop >/dev/null
tap_not "fault 1: slapd stopped after $(fault_count "$T/run" ok) messages" -- ldap_running
outage "$before" "fault 1"
d1=$(($(fault_count "$T/run" temp "$DIRFAIL") - before))
uri=$LDAP_URI
ldap_start >/dev/null || { echo "Bail out! slapd restart"; exit 1; }
if [ "$LDAP_URI" != "$uri" ]; then # slapd lost its port to a race
    tap_diag "slapd moved to $LDAP_URI; reloading"
    write_conf
    kill -HUP "$MILTER_PID"
fi
tap_check "fault 1: the directory was down long enough to tempfail mail ($d1 times 451 4.4.3)" -- \
    test "$d1" -ge 4

# 2. slapd frozen
fault_wait "$T/run" ok $((N * 3 / 5)) 90 || tap_diag "slow recovery: $(fault_count "$T/run" ok) accepted"
before=$(fault_count "$T/run" temp "$DIRFAIL")
pids=$(ldap_pids)
at_exit "kill -CONT $pids 2>/dev/null"
# shellcheck disable=SC2086
kill -STOP $pids
tap_diag "fault 2: slapd ($pids) frozen after $(fault_count "$T/run" ok) messages"
outage "$before" "fault 2"
d2=$(($(fault_count "$T/run" temp "$DIRFAIL") - before))
# shellcheck disable=SC2086
kill -CONT $pids
tap_check "fault 2: lookups to the frozen directory timed out and tempfailed mail ($d2 times 451 4.4.3)" -- \
    test "$d2" -ge 4
tap_check "fault 2: the hung server was held down (LDAPRetryAfterTimeout), not waited for on every lookup" -- \
    grep -q 'took [0-9.]* s to fail; not asking it again for 10 s' "$MILTER_LOG"

wait "$sender"
tap_is "$?" 0 "the sender had every message accepted in the end"
tap_diag "sender: $(cat "$T/run/summary")"
tap_is "$(fault_count "$T/run" perm)" 0 "no message was rejected (5xx): a directory failure is never \"no certificate\""
tap_is "$(fault_count "$T/run" temp)" "$(fault_count "$T/run" temp "$DIRFAIL")" \
    "every 4xx was 451 4.4.3 directory lookup failed"
tap_is "$(grep -c 'worker died' "$MILTER_LOG")" 0 "the worker never died"

pf_wait_sink "$N" 60
FAULT_CHECK_ARGS="--rcpt $P/bob.crt $P/bob.key"
v=$(fault_verify ldap "$N" fault_encrypted_ok ok)
tap_ok $? "exactly once, all encrypted, complete: $(echo "$v" | tail -n 1)"
echo "$v" | grep '^#' || true
tap_diag "$(($(date +%s) - t0)) s for the run and the check"
fault_sanitizer_check
tap_done
