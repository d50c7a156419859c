/*
 * smm_trust -- the trust anchors (TrustAnchors: a PEM file or a directory
 * of PEM/DER files), the equivalent of Exchange's virtual certificate
 * collection.
 *
 * Loaded once per (re)load into an X509_STORE; immutable afterwards, so it
 * can be shared between threads.  Self-signed certificates are anchors;
 * CA certificates that are not self-signed found here are kept too and
 * serve as intermediates when a chain is built.  CRLs (a file or a
 * directory, PEM or DER) are kept beside, for smm_certsel's revocation
 * check.  smm_trust_free() accepts NULL.
 */
#ifndef SMM_TRUST_H
#define SMM_TRUST_H

#include <openssl/x509.h>

#include "smm_diag.h"
#include "smm_err.h"

struct smm_trust {
    X509_STORE *store;         /* anchors (and intermediates) */
    STACK_OF(X509) * certs;    /* everything loaded, for chain building */
    STACK_OF(X509_CRL) * crls; /* from CRLs (may be empty) */
};

smm_status smm_trust_load(const char *, const char *, struct smm_trust **,
                          struct smm_diag *, struct smm_err *);
smm_status smm_certs_load_file(const char *, STACK_OF(X509) *,
                               struct smm_err *);
STACK_OF(X509) *
    smm_trust_chain(const struct smm_trust *, X509 *, STACK_OF(X509) *);
int smm_trust_revoked(const struct smm_trust *, X509 *, X509 *);
void smm_trust_free(struct smm_trust *);

#endif
