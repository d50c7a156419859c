#!/bin/bash
# t-ldap: recipient certificates from a real OpenLDAP slapd (ldap://,
# ldaps://, StartTLS, ldapi:// with SASL EXTERNAL, simple bind), in every
# attribute format (PKCS#7 certs-only, Microsoft TLV, DER), selection with
# every refusal reason, Active Directory-style proxyAddresses, filter
# injection, failover across a syncrepl provider/consumer pair, temporary
# errors, the local and harvested stores, and the daemon's cache and
# RCPT-time prefetch.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/slapd.sh"
CLIENT=$BUILDDIR/tests/tools/milter-client

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_people_pair "$P" "$T" || { echo "Bail out! provider/consumer slapd"; exit 1; }
CA=$PROV_CA

cat "$P/root.crt" "$P/inter.crt" >"$T/anchors.pem"
mkdir -p "$T/keys" "$T/local" "$T/harvest"
printf 'readerpw' >"$T/reader.pass"
printf 'wrong' >"$T/wrong.pass"
chmod 600 "$T/reader.pass" "$T/wrong.pass"
conf() { # conf NAME KEY VALUE ...: a config with the common lines plus extras
    local f=$T/$1.conf
    shift
    {
        echo "KeyStore $T/keys"
        echo "TrustAnchors $T/anchors.pem"
        echo "CRLs $P/crl.pem"
        echo "LDAPBase dc=example,dc=org"
        echo "LDAPTimeout 2"
        while [ $# -ge 2 ]; do echo "$1 $2"; shift 2; done
    } >"$f"
    echo "$f"
}
lookup() { # lookup CONF ADDR...: output in $T/out, status returned
    "$CTL" -c "$1" lookup "${@:2}" >"$T/out" 2>&1
}
plain=$(conf plain LDAPURI "$PROV_URI")

lookup "$plain" alice@example.org
tap_is "$?" "0" "alice: found (exit 0)"
tap_check "alice: userSMIMECertificate PKCS#7 certs-only with chain, taken" -- grep -q 'alice@example.org ldap taken' "$T/out"
tap_check "alice: origin names the attribute and format" -- grep -q 'userSMIMECertificate (PKCS#7)' "$T/out"
lookup "$plain" bob@example.net
tap_check "bob: Microsoft TLV userSMIMECertificate, taken" -- grep -q 'bob@example.net ldap taken' "$T/out"
tap_check "bob: format named MS-TLV" -- grep -q '(MS-TLV)' "$T/out"
tap_not "bob: the chain certificate in the blob is not a candidate" -- grep -q 'bob@example.net ldap refused' "$T/out"
lookup "$plain" carol@example.org
tap_check "carol: userCertificate;binary DER (EC P-256), taken" -- grep -q 'carol@example.org ldap taken' "$T/out"
lookup "$plain" dave@example.org
tap_check "dave: the encryption certificate (userSMIMECertificate DER) taken" -- grep -q "dave@example.org ldap taken" "$T/out"
tap_check "dave: the signing-only certificate refused for key usage" -- grep -q "dave@example.org ldap refused: wrong key usage" "$T/out"
tap_check "dave: one usable" -- grep -q 'dave@example.org: 1 usable certificate (source: ldap)' "$T/out"

lookup "$plain" multi@example.org
tap_is "$?" "0" "multi: has usable certificates"
tap_check "multi: both valid certificates returned" -- grep -q 'multi@example.org: 2 usable certificates (source: ldap)' "$T/out"
tap_is "$(grep -c '^multi@example.org ldap refused: address mismatch' "$T/out")" "7" "multi: the seven other users' certificates refused for address mismatch"
for pair in "erin:expired" "nina:not yet valid" "walter:weak key (RSA 1024 bits < MinKeyBits 2048)" \
    "sam:wrong EKU (no emailProtection)" "ursula:untrusted (" "rita:revoked"; do
    u=${pair%%:*}
    why=${pair#*:}
    lookup "$plain" "$u@example.org"
    rc=$?
    tap_check "$u: refused: $why" -- grep -qF "$u@example.org ldap refused: $why" "$T/out"
    tap_is "$rc" "1" "$u: no usable certificate (exit 1)"
done

lookup "$plain" nocert@example.org
tap_is "$?" "1" "nocert: no usable certificate (exit 1)"
lookup "$plain" nobody@example.org
tap_is "$?" "1" "unknown address: exit 1"

# Active Directory: proxyAddresses (case-insensitive prefix), the AD filter
ad=$(conf ad LDAPURI "$PROV_URI" LDAPFilter '(|(mail=%s)(proxyAddresses=smtp:%s))')
lookup "$ad" ad.user@example.org
tap_check "AD filter: found through proxyAddresses SMTP: (primary, upper case)" -- grep -q 'ad.user@example.org: 1 usable' "$T/out"
lookup "$plain" ad.user@example.org
tap_is "$?" "1" "OpenLDAP filter (mail=%s) does not find the AD-only address"

# filter injection: the address can never change the filter
: >"$T/inj.addrs"
for a in '*)(mail=*' 'x*)(|(mail=*' 'a\b@example.org' '*'; do
    lookup "$plain" "$a"
    tap_is "$?" "1" "hostile address '$a': no certificate"
done
tap_check "slapd saw the escaped filter (\\2a\\29\\28mail=\\2a)" -- grep -qiF 'filter="(mail=\2a\29\28mail=\2a)"' "$PROV_LOG"
tap_check "slapd saw a\\5cb (backslash escaped)" -- grep -qiF 'filter="(mail=a\5cb@example.org)"' "$PROV_LOG"

# transports and binds
tls=$(conf tls LDAPURI "$PROV_LDAPS" LDAPCACertFile "$CA")
lookup "$tls" alice@example.org
tap_is "$?" "0" "ldaps:// with LDAPCACertFile"
badca=$(conf badca LDAPURI "$PROV_LDAPS" LDAPCACertFile "$P/root.crt")
lookup "$badca" alice@example.org
tap_is "$?" "2" "ldaps:// with the wrong CA: server certificate refused (exit 2)"
stls=$(conf stls LDAPURI "$PROV_URI" LDAPStartTLS yes LDAPCACertFile "$CA")
lookup "$stls" alice@example.org
tap_is "$?" "0" "StartTLS on ldap://"
ldapi=$(conf ldapi LDAPURI "$PROV_LDAPI" LDAPSASLMech EXTERNAL)
lookup "$ldapi" alice@example.org
tap_is "$?" "0" "ldapi:// with SASL EXTERNAL"
bind=$(conf bind LDAPURI "$PROV_URI" LDAPBindDN cn=reader,dc=example,dc=org LDAPBindPasswordFile "$T/reader.pass")
lookup "$bind" alice@example.org
tap_is "$?" "0" "simple bind with a password file"
badbind=$(conf badbind LDAPURI "$PROV_URI" LDAPBindDN cn=reader,dc=example,dc=org LDAPBindPasswordFile "$T/wrong.pass")
lookup "$badbind" alice@example.org
tap_is "$?" "2" "wrong bind password: temporary error (exit 2), not 'no certificate'"
tap_check "smime-milter -n checks the LDAP bind" -- bash -c "'$MILTER' -n -c '$bind' | grep -q 'LDAP: connected and bound'"
"$MILTER" -n -c "$badbind" >"$T/n.out" 2>&1
tap_is "$?" "1" "smime-milter -n fails on a bad bind"
tap_check "-n names the LDAP problem" -- grep -q 'error: LDAP:' "$T/n.out"

# local store first, harvested store last
cp "$P/bob.crt" "$T/local/whatever.pem"
cp "$P/aduser.crt" "$T/harvest/"
stores=$(conf stores LDAPURI "$PROV_URI" CertificateStore "$T/local" HarvestStore "$T/harvest")
lookup "$stores" bob@example.net
tap_check "local store answers before LDAP" -- grep -q 'bob@example.net: 1 usable certificate (source: local)' "$T/out"
tap_check "the directory's copy is listed but not used" -- grep -q 'bob@example.net ldap usable, not used' "$T/out"
lookup "$stores" ad.user@example.org
tap_check "harvested store answers when LDAP has nothing" -- grep -q 'ad.user@example.org: 1 usable certificate (source: harvested)' "$T/out"

# failover: a dead server first, then a syncrepl provider/consumer pair
dead=$(free_port)
fo=$(conf fo LDAPURI "ldap://127.0.0.1:$dead $PROV_URI")
lookup "$fo" alice@example.org
tap_is "$?" "0" "failover past a closed port"
pair=$(conf pair LDAPURI "$PROV_URI $CONS_URI")
ldap_use "$T/ldap1" && ldap_stop >/dev/null
lookup "$pair" alice@example.org
tap_is "$?" "0" "provider stopped: the consumer answers"
tap_check "the answer came from the consumer" -- grep -q "from $CONS_URI" "$T/out"
ldap_use "$T/ldap2" && ldap_stop >/dev/null
t0=$(date +%s%N)
lookup "$pair" alice@example.org
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
tap_is "$rc" "2" "both servers down: temporary error (exit 2)"
tap_check "both down: reported within the timeouts ($ms ms)" -- test "$ms" -lt 9000
tap_check "both down: says it is a temporary failure" -- grep -q 'temporary failure' "$T/out"

# the daemon: RCPT-time prefetch and the cache
ldap_use "$T/ldap1" && ldap_start >/dev/null
cache=$(conf cache LDAPURI "$PROV_URI" InternalHosts 127.0.0.1 CacheTTL 3 NegativeCacheTTL 3 LogLevel debug)
milter_start "$cache" || { echo "Bail out! milter"; exit 1; }
printf 'From: alice@example.org\nTo: carol@example.org\nSubject: x\n\nhi\n' >"$T/m.eml"
# milter-client sends RCPT, DATA and end of message at once: the end of
# message must wait for the RCPT-time prefetch still in flight instead of
# searching the directory a second time.
send() { "$CLIENT" -s "inet:$MILTER_PORT@127.0.0.1" -f alice@example.org -r "$1" <"$T/m.eml" >/dev/null 2>&1; }
searches() { grep -c "filter=\"(mail=$1)\"" "$PROV_LOG"; }
before=$(searches carol@example.org)
send carol@example.org
for _ in $(seq 1 50); do grep -q 'prefetch carol@example.org: 1 usable' "$MILTER_LOG" && break; sleep 0.1; done
tap_check "RCPT TO starts a lookup (prefetch) for an outbound recipient" -- grep -q 'prefetch carol@example.org: 1 usable (ldap)' "$MILTER_LOG"
tap_is "$(( $(searches carol@example.org) - before ))" "1" "one directory search for the first message"
send carol@example.org
sleep 0.5
tap_is "$(( $(searches carol@example.org) - before ))" "1" "second message: answered from the cache, no search"
tap_check "the cache hit is logged" -- grep -q 'prefetch carol@example.org: answer already in the cache' "$MILTER_LOG"
nbefore=$(searches nocert@example.org)
send nocert@example.org
for _ in $(seq 1 50); do grep -q 'prefetch nocert@example.org: 0 usable' "$MILTER_LOG" && break; sleep 0.1; done
send nocert@example.org
sleep 0.5
tap_is "$(( $(searches nocert@example.org) - nbefore ))" "1" "negative answers are cached too"
sleep 3.2
send carol@example.org
for _ in $(seq 1 30); do [ "$(( $(searches carol@example.org) - before ))" -ge 2 ] && break; sleep 0.1; done
tap_is "$(( $(searches carol@example.org) - before ))" "2" "after CacheTTL the directory is asked again"
kill -HUP "$MILTER_PID"
for _ in $(seq 1 50); do grep -q reloaded "$MILTER_LOG" && break; sleep 0.1; done
send carol@example.org
for _ in $(seq 1 30); do [ "$(( $(searches carol@example.org) - before ))" -ge 3 ] && break; sleep 0.1; done
tap_is "$(( $(searches carol@example.org) - before ))" "3" "a reload empties the cache"
ldap_stop >/dev/null
ldap_start >/dev/null
sleep 3.2
send carol@example.org
for _ in $(seq 1 30); do [ "$(( $(searches carol@example.org) - before ))" -ge 4 ] && break; sleep 0.1; done
tap_is "$(( $(searches carol@example.org) - before ))" "4" "after a slapd restart the pool reconnects"
tap_not "no lookup errors logged" -- grep -q 'prefetch carol@example.org: directory' "$MILTER_LOG"
tap_done
