#!/bin/bash
# shellcheck disable=SC2016  # sh -c scripts take their arguments as $1...
# shellcheck disable=SC1091  # instance env files exist only at run time
# t-slapd-fixture: self-test of tests/lib/slapd.sh (private slapd instances)
# and tests/ldap/mkldif.sh (directory content from the test PKI): listeners
# (ldap, ldaps, StartTLS, ldapi + SASL EXTERNAL), the server certificate is
# really checked, anonymous and reader binds, every generated entry and
# blob, AD-style proxyAddresses, how OpenLDAP 2.5 treats the ";binary"
# option, the stats log, syncrepl to a consumer, stop/restart, and that no
# slapd is left behind.  TAP output.
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/slapd.sh
. "$SRCDIR/tests/lib/slapd.sh"

# contrib/install-deps.sh installs both: missing means a broken install
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] ||
    { echo "Bail out! slapd is not installed (contrib/install-deps.sh)"; exit 1; }
command -v ldapsearch >/dev/null 2>&1 ||
    { echo "Bail out! ldap-utils are not installed (contrib/install-deps.sh)"; exit 1; }

at_exit 'ldap_stop_all >/dev/null 2>&1'
P=$T/pki
make_pki "$P" || { echo "Bail out! cannot make the test PKI"; exit 1; }
tap_check "mkldif.sh builds the directory content from the PKI" -- \
    sh "$SRCDIR/tests/ldap/mkldif.sh" "$P" "$T/people.ldif"
[ -s "$T/people.ldif" ] || { echo "Bail out! no LDIF"; exit 1; }
for c in multi1 multi2 aduser; do
    tap_check "mkldif.sh issued $c.crt (chains to the test root, S/MIME encryption)" -- \
        openssl verify -CAfile "$P/root.crt" -untrusted "$P/inter.crt" \
        -purpose smimeencrypt "$P/$c.crt"
done
nb() { date -u -d "$(openssl x509 -in "$1" -noout -startdate | sed 's/^notBefore=//')" +%s; }
now=$(date -u +%s)
d1=$(((now - $(nb "$P/multi1.crt")) / 86400))
d2=$(((now - $(nb "$P/multi2.crt")) / 86400))
tap_is "$d1/$d2" "10/2" "multi1/multi2 notBefore are 10 and 2 days ago"

# ---------------------------------------------------------------- provider
ldap_init "$T/lp" >"$T/init.out" 2>&1
tap_ok $? "ldap_init creates a provider instance"
sed 's/^/# /' "$T/init.out"
tap_ok "$([ -n "$LDAP_PORT" ] && [ -n "$LDAPS_PORT" ] && [ "$LDAP_PORT" != "$LDAPS_PORT" ] &&
    [ "$LDAP_URI" = "ldap://127.0.0.1:$LDAP_PORT" ] &&
    [ "$LDAPS_URI" = "ldaps://127.0.0.1:$LDAPS_PORT" ] &&
    [ "$LDAP_BASE" = dc=example,dc=org ] && [ -s "$LDAP_CA_CERT" ] &&
    [ "${LDAPI_URI#ldapi://%2F}" != "$LDAPI_URI" ] && [ -n "$LDAP_LOG" ]; echo $?)" \
    "LDAP_URI LDAPS_URI LDAPI_URI LDAP_CA_CERT LDAP_LOG LDAP_BASE are exported"
tap_diag "provider: $LDAP_URI $LDAPS_URI $LDAPI_URI"
tap_check "the server certificate is for 127.0.0.1 and localhost, issued by LDAP_CA_CERT" -- \
    sh -c 'openssl verify -CAfile "$1" -purpose sslserver "$2" &&
           openssl x509 -in "$2" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1" &&
           openssl x509 -in "$2" -noout -ext subjectAltName | grep -q "DNS:localhost"' \
    _ "$LDAP_CA_CERT" "$LDAP_WORKDIR/tls/server.crt"

ldap_start
tap_ok $? "ldap_start starts slapd and it answers"
ldap_running || { echo "Bail out! slapd did not start"; tail -n 30 "$LDAP_LOG"; exit 1; }
tap_not "ldap_start refuses a running instance" -- ldap_start
tap_not "ldap_init refuses to replace a running instance" -- \
    bash -c '. "$1"; ldap_init "$2"' _ "$SRCDIR/tests/lib/slapd.sh" "$LDAP_WORKDIR"
ldap_use "$T/lp"

# listeners on loopback only (/proc/net/tcp: 0100007F = 127.0.0.1)
listen_addr() { # listen_addr PORT -> local addresses listening on PORT
    awk -v p="$(printf ':%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p { print $2 }' \
        /proc/net/tcp /proc/net/tcp6
}
tap_is "$(listen_addr "$LDAP_PORT") $(listen_addr "$LDAPS_PORT")" \
    "0100007F:$(printf %04X "$LDAP_PORT") 0100007F:$(printf %04X "$LDAPS_PORT")" \
    "slapd listens on 127.0.0.1 only"
tap_ok "$([ -S "$LDAPI_SOCKET" ]; echo $?)" "the ldapi socket is under WORKDIR"

# ---------------------------------------------------------------- binds
export LDAPTLS_REQCERT=demand
unset LDAPTLS_CACERT LDAPTLS_CACERTDIR
who() { ldapwhoami -o nettimeout=5 "$@" </dev/null 2>&1; }
tap_is "$(who -x -H "$LDAP_URI")" "anonymous" "anonymous bind on ldap://"
tap_is "$(who -x -H "$LDAP_URI" -D "$LDAP_READER_DN" -w readerpw)" \
    "dn:cn=reader,dc=example,dc=org" "reader bind on ldap://"
tap_not "a wrong reader password is refused" -- \
    ldapwhoami -x -H "$LDAP_URI" -D "$LDAP_READER_DN" -w wrong
tap_is "$(LDAPTLS_CACERT=$LDAP_CA_CERT who -x -H "$LDAPS_URI")" "anonymous" \
    "anonymous bind on ldaps:// trusting LDAP_CA_CERT"
tap_is "$(LDAPTLS_CACERT=$LDAP_CA_CERT who -x -H "$LDAPS_URI" -D "$LDAP_READER_DN" -w readerpw)" \
    "dn:cn=reader,dc=example,dc=org" "reader bind on ldaps://"
# (not ldaps://localhost with libldap: for "localhost" it checks the
# certificate against the reverse-resolved name of the peer address)
tap_check "openssl s_client verifies the ldaps:// certificate for 127.0.0.1 and localhost" -- \
    sh -c 'for v in "-verify_ip 127.0.0.1" "-verify_hostname localhost"; do
               openssl s_client -connect "127.0.0.1:$1" -CAfile "$2" $v \
                   -verify_return_error -brief </dev/null 2>&1 |
                   grep -q "^Verification: OK" || exit 1
           done' _ "$LDAPS_PORT" "$LDAP_CA_CERT"
tap_not "ldaps:// fails without the CA (REQCERT=demand, system CAs only)" -- \
    ldapwhoami -o nettimeout=5 -x -H "$LDAPS_URI"
tap_not "ldaps:// fails with another CA (the S/MIME test root)" -- \
    env LDAPTLS_CACERT="$P/root.crt" ldapwhoami -o nettimeout=5 -x -H "$LDAPS_URI"
tap_is "$(LDAPTLS_CACERT=$LDAP_CA_CERT who -x -ZZ -H "$LDAP_URI" -D "$LDAP_READER_DN" -w readerpw)" \
    "dn:cn=reader,dc=example,dc=org" "StartTLS (-ZZ) on the plain port + reader bind"
tap_not "StartTLS (-ZZ) fails without the CA" -- \
    ldapwhoami -o nettimeout=5 -x -ZZ -H "$LDAP_URI"
grep -q 'STARTTLS' "$LDAP_LOG" && grep -q 'TLS established' "$LDAP_LOG"
tap_ok $? "the log shows STARTTLS and TLS established"
tap_is "$(who -H "$LDAPI_URI" -Y EXTERNAL -Q)" "dn:cn=admin,dc=example,dc=org" \
    "ldapi:// + SASL EXTERNAL as root maps to the rootdn"
tap_check "the rootdn may read cn=config over ldapi (EXTERNAL)" -- \
    sh -c 'ldapsearch -LLL -H "$1" -Y EXTERNAL -Q -b cn=config -s base olcLogLevel | grep -qx "olcLogLevel: stats"' \
    _ "$LDAPI_URI"

# ---------------------------------------------------------------- content
tap_check "ldap_add loads the mkldif.sh LDIF" -- ldap_add "$T/people.ldif"
s() { ldapsearch -x -LLL -o ldif-wrap=no -H "$LDAP_URI" -b "$LDAP_BASE" "$@" </dev/null; }
tap_is "$(s '(objectClass=inetOrgPerson)' 1.1 | sed -n 's/^dn: //p' | sort | tr '\n' ' ')" \
    "$(for u in aduser alice bob carol dave erin multi nina nocert rita sam ursula walter; do printf 'uid=%s,ou=people,dc=example,dc=org ' $u; done)" \
    "every mkldif.sh entry is present"
# val UID ATTR [N]: the N-th (default 1st) value of ATTR as raw bytes
val() {
    s "(uid=$1)" "$2" | sed -n "s/^$2:: //p" | sed -n "${3:-1}p" | base64 -d
}
nvals() { s "(uid=$1)" "$2" | grep -c "^$2:: "; }
der() { openssl x509 -in "$1" -outform DER; }
val alice userSMIMECertificate >"$T/alice.p7"
tap_is "$(openssl pkcs7 -inform DER -in "$T/alice.p7" -print_certs 2>&1 | grep -c '^subject=')" 2 \
    "alice's userSMIMECertificate is PKCS#7 certs-only with 2 certificates"
tap_check "... alice.crt and inter.crt" -- sh -c '
    openssl pkcs7 -inform DER -in "$1" -print_certs | grep -q "^subject=.*CN *= *alice@example.org" &&
    openssl pkcs7 -inform DER -in "$1" -print_certs | grep -q "^subject=.*CN *= *smime-milter Test Intermediate"' \
    _ "$T/alice.p7"

# bob: MS-OXOABK 2.2.4.36 TLV blob
val bob userSMIMECertificate >"$T/bob.ms"
tlvs() { # tlvs FILE DIR: print "tag length" per setting, write DIR/tag-N
    perl -e 'local $/; open my $f, "<", $ARGV[0] or die; binmode $f; my $d = <$f>;
        my ($o, $n) = (0, 0);
        while ($o + 4 <= length $d) {
            my ($t, $l) = unpack "vv", substr($d, $o, 4);
            die "bad length $l at $o\n" if $l < 4 || $o + $l > length $d;
            printf "%d %d\n", $t, $l; $n++;
            open my $w, ">", "$ARGV[1]/tag$t-$n" or die; binmode $w;
            print $w substr($d, $o + 4, $l - 4); close $w;
            $o += $l;
        }
        die "trailing bytes\n" if $o != length $d;' "$1" "$2"
}
mkdir -p "$T/bobtlv"
tap_is "$(tlvs "$T/bob.ms" "$T/bobtlv" | awk '{print $1}' | tr '\n' ' ')" "1 3 4 " \
    "bob's userSMIMECertificate is an MS TLV blob: Version, KeyExchangeCertificate, ChainCertificate"
tap_is "$(od -An -tx1 -N10 "$T/bob.ms" | tr -d ' \n')" "01000800010000000300" \
    "... little-endian, LENGTH includes the 4-byte header, version 1"
tap_check "... tag 3 holds bob.crt (DER), tag 4 inter.crt" -- sh -c '
    openssl x509 -in "$1/bob.crt" -outform DER | cmp -s - "$2/tag3-2" &&
    openssl x509 -in "$1/inter.crt" -outform DER | cmp -s - "$2/tag4-3"' _ "$P" "$T/bobtlv"

val carol 'userCertificate;binary' >"$T/carol.der"
tap_check "carol's userCertificate;binary is carol.crt (EC), DER" -- sh -c '
    openssl x509 -in "$1" -outform DER | cmp -s - "$2" &&
    openssl x509 -inform DER -in "$2" -noout -text | grep -q id-ecPublicKey' _ "$P/carol.crt" "$T/carol.der"
tap_check "dave: userSMIMECertificate = dave-enc.crt (plain DER), userCertificate;binary = dave-sign.crt" -- \
    sh -c 'val() { ldapsearch -x -LLL -o ldif-wrap=no -H "$1" -b "$2" "(uid=dave)" "$3" |
                   sed -n "s/^$3:: //p" | base64 -d; }
           val "$1" "$2" userSMIMECertificate | cmp -s - "$3" &&
           val "$1" "$2" "userCertificate;binary" | cmp -s - "$4"' _ "$LDAP_URI" "$LDAP_BASE" \
    <(der "$P/dave-enc.crt") <(der "$P/dave-sign.crt")
# the DER values from LDAP vs. the PEM files (one perl, no openssl)
same_certs() { # same_certs LDIF-ATTR PEM... <ldif: the values are exactly the files
    perl -MMIME::Base64 -e '
        my $attr = shift; my (%want, %got);
        for my $f (@ARGV) {
            open my $h, "<", $f or die "$f: $!"; local $/; my $p = <$h>;
            $p =~ s/-----[^\n]*\n?//g; $want{decode_base64($p)}++;
        }
        while (<STDIN>) { $got{decode_base64($1)}++ if /^\Q$attr\E:: (.*)$/ }
        my $w = join ",", sort map { unpack "H*", $_ } keys %want;
        my $g = join ",", sort map { unpack "H*", $_ } keys %got;
        printf "%d %d %s\n", scalar(keys %got), scalar(keys %want), $w eq $g ? "same" : "differ";
    ' "$@"
}
got=$(s '(uid=multi)' 'userCertificate;binary' | same_certs 'userCertificate;binary' \
    "$P"/{expired,notyet,weak,signonly-eku,untrusted,revoked,alice,multi1,multi2}.crt)
want="9 9 same"
tap_is "$got" "$want" "multi has the 9 certificates (7 refusal reasons + multi1 + multi2)"
val aduser userSMIMECertificate >"$T/aduser.p7"
tap_check "aduser's userSMIMECertificate is PKCS#7 with the ad.user@example.org certificate" -- \
    sh -c 'openssl pkcs7 -inform DER -in "$1" -print_certs | grep -q "^subject=.*CN *= *ad.user@example.org"' \
    _ "$T/aduser.p7"
tap_is "$(s '(uid=nocert)' userSMIMECertificate userCertificate mail | grep -v '^$' | tr '\n' ' ')" \
    "dn: uid=nocert,ou=people,dc=example,dc=org mail: nocert@example.org " \
    "nocert has a mail address and no certificate attribute"

# ---------------------------------------------------------------- lookups
tap_is "$(s '(mail=alice@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=alice,ou=people,dc=example,dc=org" "(mail=alice@example.org) finds alice (anonymous)"
tap_is "$(s -D "$LDAP_READER_DN" -w readerpw '(mail=ALICE@Example.ORG)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=alice,ou=people,dc=example,dc=org" "(mail=ALICE@Example.ORG) finds alice (reader)"
tap_is "$(s '(proxyAddresses=smtp:ad.user@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=aduser,ou=people,dc=example,dc=org" \
    "(proxyAddresses=smtp:ad.user@example.org) finds aduser (stored as SMTP:...)"
tap_is "$(s '(proxyAddresses=SMTP:ALIAS@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=aduser,ou=people,dc=example,dc=org" "(proxyAddresses=SMTP:ALIAS@example.org) finds aduser"
tap_is "$(s '(proxyAddresses=*:ad.user@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=aduser,ou=people,dc=example,dc=org" "substring match on proxyAddresses"
tap_is "$(s '(mail=ad.user@example.org)' 1.1 | grep -c '^dn:')" 0 \
    "(mail=ad.user@example.org) finds nothing (only proxyAddresses has it)"
tap_is "$(s '(userPassword=*)' userPassword | grep -c '^userPassword')" 0 \
    "anonymous cannot read userPassword"
tap_is "$(s -D "$LDAP_READER_DN" -w readerpw "(cn=reader)" userPassword | grep -c '^userPassword')" 1 \
    "the reader reads everything (even its userPassword)"

# ---------------------------------------------------------------- ;binary
# Exactly what OpenLDAP 2.5 returns per attribute list, for dave (who has
# both attributes).
binary_report() {
    local a out rc
    for a in userSMIMECertificate 'userSMIMECertificate;binary' userCertificate 'userCertificate;binary'; do
        out=$(s '(uid=dave)' "$a" 2>&1)
        rc=$?
        printf '%s -> rc=%s attrs=[%s]\n' "$a" "$rc" \
            "$(echo "$out" | sed -n 's/^\([^: ]*\)::\{0,1\} .*/\1/p' | grep -v '^dn$' | sort | uniq -c |
                awk '{printf "%s%s x%s", (NR > 1 ? " " : ""), $2, $1}')"
    done
}
binary_report >"$T/binary.txt"
sed 's/^/# OpenLDAP ;binary: /' "$T/binary.txt"
tap_is "$(cat "$T/binary.txt")" "userSMIMECertificate -> rc=0 attrs=[userSMIMECertificate x1]
userSMIMECertificate;binary -> rc=0 attrs=[]
userCertificate -> rc=0 attrs=[userCertificate;binary x1]
userCertificate;binary -> rc=0 attrs=[userCertificate;binary x1]" \
    "OpenLDAP 2.5: userSMIMECertificate;binary returns the entry without the attribute (no error); userCertificate[;binary] both return userCertificate;binary"
printf 'dn: uid=binx,ou=people,%s\nobjectClass: inetOrgPerson\nuid: binx\ncn: x\nsn: x\nuserSMIMECertificate;binary:: MAMCAQE=\n' \
    "$LDAP_BASE" >"$T/binx.ldif"
ldap_add "$T/binx.ldif" >"$T/binx.out" 2>&1
rc=$?
tap_ok "$([ "$rc" = 17 ] && grep -q 'option "binary" not supported with type' "$T/binx.out"; echo $?)" \
    "adding userSMIMECertificate;binary is refused (17, option \"binary\" not supported with type)"
printf 'dn: uid=binx,ou=people,%s\nobjectClass: inetOrgPerson\nuid: binx\ncn: x\nsn: x\nuserCertificate:: %s\n' \
    "$LDAP_BASE" "$(der "$P/alice.crt" | base64 -w0)" >"$T/binx.ldif"
ldap_add "$T/binx.ldif" >"$T/binx.out" 2>&1
rc=$?
tap_ok "$([ "$rc" = 17 ] && grep -q 'requires ;binary transfer' "$T/binx.out"; echo $?)" \
    "adding userCertificate without ;binary is refused (17, requires ;binary transfer)"
tap_is "$(s '(userSMIMECertificate;binary=*)' 1.1 | grep -c '^dn:')" 0 \
    "(userSMIMECertificate;binary=*) matches nothing"
tap_is "$(s '(&(uid=dave)(userCertificate=*))' 1.1 | grep -c '^dn:')" 1 \
    "(userCertificate=*) matches (with or without ;binary)"

# ---------------------------------------------------------------- log
tap_check "the stats log shows SRCH filter=\"(mail=alice@example.org)\"" -- \
    grep -q 'SRCH base="dc=example,dc=org" scope=2 deref=0 filter="(mail=alice@example.org)"' "$LDAP_LOG"
s '(mail=we\2aird\28\29\5c@example.org)' 1.1 >/dev/null
tap_check "... and escaped filters as sent: (mail=we\\2Aird\\28\\29\\5C@example.org)" -- \
    grep -q 'filter="(mail=we\\2Aird\\28\\29\\5C@example.org)"' "$LDAP_LOG"
grep -m1 'SRCH base=.*filter="(mail=alice@example.org)"' "$LDAP_LOG" | sed 's/^/# log: /'
tap_check "the log shows the requested attributes (SRCH attr=...)" -- \
    grep -q 'SRCH attr=userSMIMECertificate;binary' "$LDAP_LOG"

# ---------------------------------------------------------------- consumer
ldap_init_consumer "$T/lc" "$T/lp" >"$T/init2.out" 2>&1
tap_ok $? "ldap_init_consumer creates a consumer of the provider"
sed 's/^/# /' "$T/init2.out"
# make the consumer lose the race for its plain port once
old_port=$LDAP_PORT
perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
    LocalPort => $ARGV[0], Listen => 1, ReuseAddr => 1) or die; sleep 30' "$LDAP_PORT" &
blocker=$!
for _ in $(seq 1 50); do [ -n "$(listen_addr "$old_port")" ] && break; sleep 0.05; done
ldap_start
tap_ok $? "ldap_start of the consumer (initial refresh done)"
kill "$blocker" 2>/dev/null
wait "$blocker" 2>/dev/null
tap_ok "$([ "$LDAP_PORT" != "$old_port" ] &&
    grep -q "LDAP_PORT=\"$LDAP_PORT\"" "$LDAP_WORKDIR/ldap.env"; echo $?)" \
    "a port taken meanwhile is replaced (and saved for ldap_use)"
c_uri=$LDAP_URI c_s=$LDAPS_URI c_ca=$LDAP_CA_CERT
tap_ok "$([ "$c_uri" != "$(. "$T/lp/ldap.env"; echo "$LDAP_URI")" ] &&
    [ "$c_ca" != "$T/lp/tls/ca.crt" ]; echo $?)" "the consumer has its own ports and CA"
tap_is "$(s '(mail=alice@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=alice,ou=people,dc=example,dc=org" "the consumer has replicated alice"
tap_is "$(LDAPTLS_CACERT=$LDAP_CA_CERT who -x -H "$LDAPS_URI" -D "$LDAP_READER_DN" -w readerpw)" \
    "dn:cn=reader,dc=example,dc=org" "reader bind on the consumer's ldaps:// (its own CA)"
tap_not "the consumer's ldaps:// is not trusted with the provider's CA" -- \
    env LDAPTLS_CACERT="$T/lp/tls/ca.crt" ldapwhoami -o nettimeout=5 -x -H "$LDAPS_URI"
val alice userSMIMECertificate | cmp -s - "$T/alice.p7"
tap_ok $? "binary values replicate unchanged"

ldap_use "$T/lp"
tap_is "$LDAP_URI" "$(. "$T/lp/ldap.env"; echo "$LDAP_URI")" "ldap_use switches back to the provider"
printf 'dn: uid=late,ou=people,%s\nobjectClass: inetOrgPerson\nuid: late\ncn: Late\nsn: Late\nmail: late@example.org\n' \
    "$LDAP_BASE" >"$T/late.ldif"
tap_check "add an entry on the provider after the consumer started" -- ldap_add "$T/late.ldif"
ldap_use "$T/lc"
tap_check "ldap_wait_replicated: it reaches the consumer" -- \
    ldap_wait_replicated "uid=late,ou=people,$LDAP_BASE" 10
tap_is "$(s '(mail=late@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=late,ou=people,dc=example,dc=org" "... and is found by mail there"
tap_not "ldap_wait_replicated times out for a missing entry" -- \
    ldap_wait_replicated "uid=nobody,ou=people,$LDAP_BASE" 0

ldap_use "$T/lp"
p_port=$LDAP_PORT p_s=$LDAPS_PORT
tap_check "ldap_stop stops the provider" -- ldap_stop
tap_is "$(ldap_pids)" "" "no provider process is left"
tap_not "the provider no longer answers" -- ldapwhoami -o nettimeout=2 -x -H "$LDAP_URI"
ldap_use "$T/lc"
tap_is "$(s -D "$LDAP_READER_DN" -w readerpw '(mail=late@example.org)' 1.1 | sed -n 's/^dn: //p')" \
    "uid=late,ou=people,dc=example,dc=org" "the consumer keeps answering without the provider"

ldap_use "$T/lp"
tap_check "ldap_start restarts the provider" -- ldap_start
tap_is "$LDAP_PORT/$LDAPS_PORT" "$p_port/$p_s" "... on the same ports"
tap_is "$(s '(uid=late)' 1.1 | grep -c '^dn:')" 1 "... with its data"
printf 'dn: uid=later,ou=people,%s\nobjectClass: inetOrgPerson\nuid: later\ncn: Later\nsn: Later\nmail: later@example.org\n' \
    "$LDAP_BASE" >"$T/later.ldif"
ldap_add "$T/later.ldif" >/dev/null
ldap_use "$T/lc"
tap_check "the consumer reconnects and replicates a later add" -- \
    ldap_wait_replicated "uid=later,ou=people,$LDAP_BASE" 10
pid_before=$(ldap_pids)
tap_check "ldap_restart restarts the consumer" -- ldap_restart
tap_ok "$([ -n "$(ldap_pids)" ] && [ "$(ldap_pids)" != "$pid_before" ] &&
    [ "$LDAP_URI" = "$c_uri" ] && [ "$LDAPS_URI" = "$c_s" ]; echo $?)" "... a new process on the same ports"

# ---------------------------------------------------------------- teardown
ldap_use "$T/lc"
tap_check "ldap_stop stops the consumer" -- ldap_stop
ldap_use "$T/lp"
tap_check "ldap_stop stops the provider" -- ldap_stop
tap_is "$(_ldap_pids_of "$T/lp/slapd.d") $(_ldap_pids_of "$T/lc/slapd.d")" " " \
    "no slapd process of either instance remains"
tap_ok "$([ ! -e "$T/lp/run/ldapi" ] && [ ! -e "$T/lc/run/ldapi" ]; echo $?)" \
    "the ldapi sockets are gone"
tap_check "ldap_stop of a stopped instance is a no-op" -- ldap_stop
tap_done
