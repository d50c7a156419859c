/*
 * smm_state -- one immutable snapshot of everything loaded from disk:
 * the configuration, the trust anchors and the key store.
 *
 * smm_state_load() builds a new snapshot from a config file; problems
 * that do not prevent running (an unreadable key file, a key without a
 * certificate) are collected in diag.  Snapshots are reference-counted:
 * every message holds a reference from its first callback to its end, so
 * a reload (which swaps in a new snapshot) never mixes old and new state
 * within one message.  Everything is read-only but the certificate
 * caches and the LDAP connection pool, which lock internally; a reload
 * starts with empty caches.
 *
 * When a file the configuration names cannot be used, the error starts
 * with the configuration file and the line of that key
 * ("/etc/x.conf:4: TrustAnchors /etc/a.pem: No such file or directory").
 *
 * smm_init() once in main(), before threads: GMime and the OpenSSL
 * providers; smm_done() at exit.  Programs outside lib/ call these rather
 * than GMime or OpenSSL themselves.  ref/unref are thread-safe (atomic).
 */
#ifndef SMM_STATE_H
#define SMM_STATE_H

#include "smm_config.h"
#include "smm_diag.h"
#include "smm_err.h"
#include "smm_keystore.h"
#include "smm_trust.h"

#include <openssl/x509.h>

/* certificates of incoming signatures kept decoded (smm_x509cache.h) */
#define SMM_X509CACHE_SIZE 512

struct smm_cache;
struct smm_x509cache;
struct smm_policymap;
struct smm_certstore;
struct smm_ldap;

struct smm_state {
    int refs;
    struct smm_config *cfg;
    struct smm_trust *trust;
    struct smm_keystore *ks;
    struct smm_certstore *certstore; /* CertificateStore */
    struct smm_certstore *harvest;   /* HarvestStore */
    struct smm_ldap *ldap;           /* NULL without LDAPURI */
    struct smm_cache *cache;         /* mutable, thread-safe */
    struct smm_x509cache *x509cache; /* certificates of signed mail, decoded
                                        once; mutable, thread-safe */
    struct smm_policymap *policymap; /* PolicyMap (maybe empty) */
    STACK_OF(X509) * archive;        /* ArchiveCertificates */
};

smm_status smm_init(struct smm_err *);
void smm_done(void);
smm_status smm_state_load(const char *, struct smm_state **, struct smm_diag *,
                          struct smm_err *);
struct smm_state *smm_state_ref(struct smm_state *);
void smm_state_unref(struct smm_state *);

#endif
