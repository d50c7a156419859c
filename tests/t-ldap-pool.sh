#!/bin/bash
# t-ldap-pool: the LDAP connection pool module (tests/unit/t-ldap.c)
# against a real slapd from the fixture: escaping, formats, failover,
# hung servers, reconnect, TLS, ldapi EXTERNAL, 8 threads on a pool of 2.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/slapd.sh"
at_exit 'ldap_stop_all >/dev/null 2>&1'
ldap_init "$T/ldap" >/dev/null && ldap_start >/dev/null ||
    { echo "Bail out! slapd"; exit 1; }
SMM_TEST_LDAP_URI=$LDAP_URI SMM_TEST_LDAP_BASE=$LDAP_BASE \
    SMM_TEST_LDAP_ROOTDN=$LDAP_ROOTDN SMM_TEST_LDAP_ROOTPW=$LDAP_ROOTPW \
    SMM_TEST_LDAP_CACERT=$LDAP_CA_CERT SMM_TEST_LDAPS_URI=$LDAPS_URI \
    SMM_TEST_LDAPI_URI=$LDAPI_URI "$BUILDDIR/tests/unit/t-ldap"
