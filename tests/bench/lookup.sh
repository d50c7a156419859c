#!/bin/bash
# tests/bench/lookup.sh -- recipient lookup micro-benchmark against a
# private slapd on loopback (not a test: prints figures).
. "$(dirname "$0")/../lib/common.sh"
. "$SRCDIR/tests/lib/slapd.sh"
make_pki "$T/pki" || exit 1
sh "$SRCDIR/tests/ldap/mkldif.sh" "$T/pki" "$T/people.ldif" >/dev/null 2>&1 || exit 1
at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_init "$T/ldap" >/dev/null && ldap_start >/dev/null && ldap_add "$T/people.ldif" >/dev/null || exit 1
mkdir -p "$T/keys"
cat "$T/pki/root.crt" "$T/pki/inter.crt" >"$T/anchors.pem"
cat >"$T/bench.conf" <<EOC
KeyStore $T/keys
TrustAnchors $T/anchors.pem
LDAPURI $LDAP_URI
LDAPBase dc=example,dc=org
EOC
"$BUILDDIR/tests/bench/lookup-bench" "$T/bench.conf" alice@example.org "${1:-500}"
