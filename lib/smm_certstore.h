/*
 * smm_certstore -- a directory of recipient certificates.
 *
 * Used for CertificateStore (the local store, no server needed) and for
 * HarvestStore (certificates collected from verified signatures).  Every
 * regular file below the directory (recursively, hidden names skipped)
 * holding PEM or DER certificates is read; the addresses come from each
 * certificate (SAN rfc822Name, else emailAddress), so file names are free.
 * Every certificate also serves as a possible intermediate when chains
 * are built.  Immutable after loading; shared read-only between threads.
 */
#ifndef SMM_CERTSTORE_H
#define SMM_CERTSTORE_H

#include <openssl/x509.h>

#include "smm_diag.h"
#include "smm_err.h"

struct smm_certstore;

smm_status smm_certstore_load(const char *, const char *, int,
                              struct smm_certstore **, struct smm_diag *,
                              struct smm_err *);
int smm_certstore_find(const struct smm_certstore *, const char *,
                       STACK_OF(X509) *);
STACK_OF(X509) * smm_certstore_all(const struct smm_certstore *);
STACK_OF(X509) * smm_certstore_cas(const struct smm_certstore *);
const char *smm_certstore_file(const struct smm_certstore *, X509 *);
void smm_certstore_free(struct smm_certstore *);

#endif
