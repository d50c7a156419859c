#!/bin/bash
# t-capabilities: CipherFromCapabilities.  GCM (AuthEnvelopedData) is used
# only when every recipient's published SMIMECapabilities (in the signed
# userSMIMECertificate blob, as Outlook publishes it) include it; anyone
# unknown or without it gets AES-256-CBC.  Outlook cannot read GCM.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/slapd.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
mkdir -p "$T/keys" "$T/bobkeys"
install -m 600 "$P/alice.pem" "$T/keys/"
install -m 600 "$P/bob.pem" "$T/bobkeys/"
cat "$P/root.crt" "$P/inter.crt" >"$T/anchors.pem"

# bob's blob: a signature made by smime-milter itself, whose
# SMIMECapabilities list AES-GCM (what a modern client publishes)
printf 'KeyStore %s\nTrustAnchors %s\n' "$T/bobkeys" "$T/anchors.pem" >"$T/bob.conf"
printf 'From: bob@example.net\nSubject: x\n\nx\n' |
    "$CTL" -c "$T/bob.conf" process --outbound --from bob@example.net --rcpt x@example.org >"$T/bob-signed.eml" 2>/dev/null
smime_split "$T/bob-signed.eml" "$T/bob.content" "$T/bob-blob.der" >/dev/null 2>&1 ||
    { echo "Bail out! cannot make bob's blob"; exit 1; }
tap_check "bob's blob advertises AES-256-GCM" -- bash -c "openssl cms -cmsout -print -inform DER -in '$T/bob-blob.der' | grep -q aes-256-gcm"
# carol's blob: signed by OpenSSL, whose default capabilities have no GCM
openssl cms -sign -nodetach -in /dev/null -signer "$P/carol.crt" -inkey "$P/carol.key" \
    -certfile "$P/inter.crt" -md sha256 -outform DER -out "$T/carol-blob.der" 2>/dev/null
tap_check "carol's blob has a capability list without GCM" -- bash -c "openssl cms -cmsout -print -inform DER -in '$T/carol-blob.der' | grep -q 'aes-256-cbc' && ! openssl cms -cmsout -print -inform DER -in '$T/carol-blob.der' | grep -q gcm"

at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_init "$T/ldap" >/dev/null && ldap_start >/dev/null || { echo "Bail out! slapd"; exit 1; }
{
    printf 'dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n'
    printf 'dn: uid=bob,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\nmail: bob@example.net\n'
    printf 'userSMIMECertificate:: %s\n\n' "$(base64 -w0 "$T/bob-blob.der")"
    printf 'dn: uid=carol,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: carol\ncn: Carol\nsn: C\nmail: carol@example.org\n'
    printf 'userSMIMECertificate:: %s\n\n' "$(base64 -w0 "$T/carol-blob.der")"
    printf 'dn: uid=dave,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: dave\ncn: Dave\nsn: D\nmail: dave@example.org\n'
    printf 'userCertificate;binary:: %s\n\n' "$(openssl x509 -in "$P/dave-enc.crt" -outform DER | base64 -w0)"
} >"$T/people.ldif"
ldap_add "$T/people.ldif" >/dev/null || { echo "Bail out! ldapadd"; exit 1; }

conf() { # conf NAME KEY VALUE...
    local f=$T/$1.conf
    shift
    {
        echo "KeyStore $T/keys"
        echo "TrustAnchors $T/anchors.pem"
        echo "LDAPURI $LDAP_URI"
        echo "LDAPBase dc=example,dc=org"
        echo "EncryptToSelf no"
        while [ $# -ge 2 ]; do echo "$1 $2"; shift 2; done
    } >"$f"
    echo "$f"
}
send() { # send CONF NAME RCPT...
    local c=$1 n=$2 args=()
    shift 2
    for r in "$@"; do args+=(--rcpt "$r"); done
    printf 'From: alice@example.org\nTo: x\nSubject: caps\n\nsecret\n' |
        "$CTL" -c "$c" process --outbound --from alice@example.org "${args[@]}" >"$T/$n.out" 2>"$T/$n.err"
}
stamp() { sed -n 's/^X-SMIME-Milter: //p' "$1" | tr -d '\r'; }

gcm=$(conf gcm Cipher aes-256-gcm)
send "$gcm" bobonly bob@example.net
tap_is "$(stamp "$T/bobonly.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-256-gcm" "bob publishes GCM support: aes-256-gcm"
tap_check "bob's copy is AuthEnvelopedData" -- grep -q 'smime-type=authEnveloped-data' "$T/bobonly.out"
tap_check "bob decrypts it" -- smime_decrypt_openssl "$T/bobonly.out" "$P/bob.crt" "$P/bob.key" "$T/x.dec"
send "$gcm" mixed bob@example.net carol@example.org
tap_is "$(stamp "$T/mixed.out")" "signed=alice@example.org; encrypted=2/2; cipher=aes-256-cbc" "carol's client lists no GCM: falls back to aes-256-cbc"
tap_check "the mixed copy is EnvelopedData" -- grep -q 'smime-type=enveloped-data' "$T/mixed.out"
send "$gcm" unknown bob@example.net dave@example.org
tap_is "$(stamp "$T/unknown.out")" "signed=alice@example.org; encrypted=2/2; cipher=aes-256-cbc" "dave published no capabilities: aes-256-cbc"
gcm128=$(conf gcm128 Cipher aes-128-gcm)
send "$gcm128" bob128 bob@example.net
tap_is "$(stamp "$T/bob128.out")" "signed=alice@example.org; encrypted=1/1; cipher=aes-128-gcm" "aes-128-gcm is advertised too"
blind=$(conf blind Cipher aes-256-gcm CipherFromCapabilities no)
send "$blind" blind bob@example.net carol@example.org
tap_is "$(stamp "$T/blind.out")" "signed=alice@example.org; encrypted=2/2; cipher=aes-256-gcm" "CipherFromCapabilities no: GCM for everyone"
tap_done
