/*
 * smm_ldap -- recipient certificate lookup in LDAP / Active Directory.
 *
 * A struct smm_ldap is a pool of LDAPPoolSize libldap handles built from a
 * config (the values it needs are copied, and the bind password is read
 * once from LDAPBindPasswordFile, so the config may be freed afterwards).
 * Handles are created lazily and stay connected across lookups; a lookup
 * takes a free handle (waiting on a condition variable when all are busy),
 * uses it alone and gives it back, so one libldap handle is never used by
 * two threads at once.  A handle that failed (server down, timeout, bind
 * refused, search error) is unbound at once and reconnected by the same
 * lookup, so a restarted server costs no failed lookup.
 *
 * Failover: a handle keeps the server it is connected to; when that
 * server fails, the LDAPURI list is tried again in order (a dropped
 * connection gets one new try, a hung or erring server none) and the
 * first server that connects, binds and searches wins.  Every server gets
 * at most LDAPTimeout seconds in all (connect + TLS + bind + search).  A
 * lookup returns SMM_OK with res->n == 0 when the directory has no
 * certificate, and SMM_ETEMP only when every server failed, so "no
 * certificate" and "directory unavailable" are never confused.  Values
 * come back under the attribute name the server uses (OpenLDAP 2.5
 * silently returns nothing for "userSMIMECertificate;binary", AD accepts
 * both).
 *
 * smm_ldap_check() (for "smime-milter -n") binds to the first server
 * that lets it and runs one search with LDAPBase and LDAPFilter.
 * smm_ldap_filter() builds a filter from the LDAPFilter template with
 * every "%s" replaced by the RFC 4515-escaped address (caller frees).
 * smm_ldap_stats() counts successful connects (+ binds) and searches.
 *
 * TLS: ldaps:// URIs, or StartTLS on ldap:// URIs when LDAPStartTLS is
 * set; the server certificate is always checked (DEMAND) against
 * LDAPCACertFile, else libldap's default CA.  Bind: simple with
 * LDAPBindDN + password, SASL EXTERNAL (ldapi:// peer credentials or a
 * TLS client certificate), or anonymous.  Referrals are not chased.
 *
 * Thread-safe: smm_ldap_lookup(), smm_ldap_check() and smm_ldap_stats()
 * may be called from any number of threads; smm_ldap_new() and
 * smm_ldap_free() must not race with them.  The program must ignore
 * SIGPIPE (libldap may write to a socket the server has closed).
 */
#ifndef SMM_LDAP_H
#define SMM_LDAP_H

#include <stddef.h>

#include "smm_config.h"
#include "smm_err.h"

struct smm_ldap;

/* One attribute value; all strings and data are owned by the result. */
struct smm_ldap_value {
    char *attr;          /* attribute name as the server returned it */
    unsigned char *data; /* the raw value (a DER certificate, usually) */
    size_t len;
    char *dn; /* the entry it came from */
};

struct smm_ldap_result {
    struct smm_ldap_value *v;
    size_t n;
    char *server; /* the URI that answered (NULL when none did) */
};

smm_status smm_ldap_new(const struct smm_config *, struct smm_ldap **,
                        struct smm_err *);
smm_status smm_ldap_lookup(struct smm_ldap *, const char *,
                           struct smm_ldap_result *, struct smm_err *);
void smm_ldap_result_free(struct smm_ldap_result *);
smm_status smm_ldap_check(struct smm_ldap *, struct smm_err *);
char *smm_ldap_filter(const char *, const char *);
void smm_ldap_stats(struct smm_ldap *, unsigned long *, unsigned long *);
void smm_ldap_free(struct smm_ldap *);

#endif
