/*
 * smm_resolver -- find the encryption certificates for a recipient.
 *
 * Order: cache, local CertificateStore, LDAP, HarvestStore; the first
 * source with a usable certificate answers.  Every candidate is checked by
 * smm_certsel; the answer is every usable certificate (a recipient may
 * have several; encrypting to all of them is allowed), newest notBefore
 * first.  From LDAP, certificates from userSMIMECertificate win over
 * userCertificate when both give usable ones (Outlook's rule).
 *
 * SMM_OK with n_usable == 0 means "no certificate" (cached for
 * NegativeCacheTTL); SMM_ETEMP means the directory could not be asked and
 * nothing else had an answer -- never cached, so the MTA's retry asks
 * again.  With SMM_RESOLVE_ALL (smime-milter-ctl lookup) every source is
 * consulted, the cache skipped, and every candidate reported with its
 * verdict.  Thread-safe; the lookup result is owned by the caller
 * (smm_lookup_free).
 */
#ifndef SMM_RESOLVER_H
#define SMM_RESOLVER_H

#include <time.h>

#include <openssl/x509.h>

#include "smm_err.h"

struct smm_state;

#define SMM_RESOLVE_ALL 0x01

struct smm_candidate {
    X509 *cert;
    const char *source; /* "cache", "local", "ldap", "harvested" */
    char *origin;       /* file, or "URI attr (format)" */
    char *refused;      /* NULL when usable, else the reason */
    int used;           /* in the answer (an earlier source may have
                           answered already) */
};

struct smm_lookup {
    struct smm_candidate *c;
    size_t n;
    STACK_OF(X509) * usable; /* new references, newest first */
    const char *source;      /* where the answer came from, or NULL */
    int cached;              /* answered from the cache */
    unsigned caps;           /* SMIMECapabilities seen (SMM_CAP_*), 0 if
                                none were published */
    char *dir_error;         /* the directory's trouble, if any */
};

smm_status smm_resolve(const struct smm_state *, const char *, time_t, unsigned,
                       struct smm_lookup *, struct smm_err *);
int smm_lookup_usable(const struct smm_lookup *);
void smm_lookup_free(struct smm_lookup *);

#endif
