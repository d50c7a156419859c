#!/bin/bash
# t-scaleout: several gateways sharing a replicated directory.  Two
# smime-milter instances (two gateways), each with its own configuration
# and key store copy; gateway A asks the directory's provider, gateway B a
# syncrepl consumer (with the provider as its failover).  Both encrypt the
# same mail to the same certificate; a certificate published on the
# provider reaches gateway B through replication (after B's negative cache
# entry expires), and B keeps working when the provider goes down.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/slapd.sh"
. "$SRCDIR/tests/lib/smime-check.sh"
CLIENT=$BUILDDIR/tests/tools/milter-client

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_people_pair "$P" "$T" || { echo "Bail out! provider/consumer slapd"; exit 1; }

cat "$P/root.crt" "$P/inter.crt" >"$T/anchors.pem"
gateway() { # gateway NAME LDAPURI: key store, configuration, a running milter
    mkdir -p "$T/$1/keys"
    install -m 600 "$P/alice.pem" "$T/$1/keys/"
    cat >"$T/$1/smime-milter.conf" <<EOC
KeyStore keys
TrustAnchors $T/anchors.pem
LDAPURI $2
LDAPBase dc=example,dc=org
LDAPTimeout 2
NegativeCacheTTL 2
InternalHosts 127.0.0.1
EncryptToSelf no
TempDirectory $T
StatsFile $T/$1/stats
EOC
    milter_start "$T/$1/smime-milter.conf" || return 1
    eval "PORT_$1=\$MILTER_PORT PID_$1=\$MILTER_PID"
}
gateway A "$PROV_URI" || { echo "Bail out! gateway A"; exit 1; }
MILTER_PID= # each gateway is stopped below
gateway B "$CONS_URI $PROV_URI" || { echo "Bail out! gateway B"; exit 1; }
MILTER_PID=
at_exit 'kill -TERM $PID_A $PID_B 2>/dev/null; wait $PID_A $PID_B 2>/dev/null'

send() { # send GATEWAY RCPT OUT
    local port
    eval "port=\$PORT_$1"
    printf 'From: <alice@example.org>\r\nTo: <%s>\r\nSubject: scale-out\r\n\r\nHello.\r\n' "$2" >"$T/m.eml"
    "$CLIENT" -s "inet:$port@127.0.0.1" -i 127.0.0.1 -f alice@example.org -r "$2" \
        <"$T/m.eml" >"$3" 2>"$3.mods"
}
stamp() { sed -n 's/^X-SMIME-Milter: //p' "$1" | tr -d '\r'; }

for g in A B; do
    send "$g" bob@example.net "$T/out.$g"
    tap_is "$(stamp "$T/out.$g")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" \
        "gateway $g: bob's certificate from its directory server, mail encrypted"
    tap_check "gateway $g: bob decrypts it" -- \
        smime_decrypt_openssl "$T/out.$g" "$P/bob.crt" "$P/bob.key" "$T/dec.$g"
done

# a certificate published on the provider reaches gateway B by replication
openssl req -new -nodes -newkey rsa:2048 -keyout "$T/newbie.key" -out "$T/newbie.csr" \
    -subj "/CN=newbie@example.org" 2>/dev/null &&
    printf '%s\n' 'basicConstraints=critical,CA:false' 'keyUsage=critical,keyEncipherment' \
        'extendedKeyUsage=emailProtection' 'subjectAltName=email:newbie@example.org' >"$T/newbie.ext" &&
    openssl x509 -req -in "$T/newbie.csr" -CA "$P/inter.crt" -CAkey "$P/inter.key" \
        -CAcreateserial -CAserial "$T/newbie.srl" -days 30 -sha256 -extfile "$T/newbie.ext" \
        -out "$T/newbie.crt" 2>/dev/null || { echo "Bail out! newbie certificate"; exit 1; }
send B newbie@example.org "$T/before"
tap_is "$(stamp "$T/before")" "signed=alice@example.org; encrypted=no (missing-certificate)" \
    "gateway B: newbie has no certificate yet"
{
    printf 'dn: uid=newbie,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n'
    printf 'uid: newbie\ncn: Newbie\nsn: Newbie\nmail: newbie@example.org\n'
    printf 'userCertificate;binary:: %s\n' "$(openssl x509 -in "$T/newbie.crt" -outform DER | base64 -w0)"
} >"$T/newbie.ldif"
ldap_use "$T/ldap1" && ldap_add "$T/newbie.ldif" >/dev/null
tap_ok $? "the certificate is published on the provider"
ldap_use "$T/ldap2" && ldap_wait_replicated "uid=newbie,ou=people,dc=example,dc=org" 30 >/dev/null
tap_ok $? "it replicates to the consumer"
sleep 2.2 # NegativeCacheTTL
send B newbie@example.org "$T/after"
tap_is "$(stamp "$T/after")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" \
    "gateway B now encrypts to newbie (certificate from its consumer)"
tap_check "newbie decrypts it" -- \
    smime_decrypt_openssl "$T/after" "$T/newbie.crt" "$T/newbie.key" "$T/dec.newbie"
"$CTL" -c "$T/B/smime-milter.conf" lookup newbie@example.org >"$T/lookup" 2>&1
tap_check "smime-milter-ctl lookup on gateway B: taken from the consumer" -- grep -q "$CONS_URI" "$T/lookup"

# the provider goes down: gateway B goes on with its consumer
ldap_use "$T/ldap1" && ldap_stop >/dev/null
send B dave@example.org "$T/out.down"
tap_is "$(stamp "$T/out.down")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-cbc" \
    "provider down: gateway B still looks up (dave, from the consumer) and encrypts"
tap_done
