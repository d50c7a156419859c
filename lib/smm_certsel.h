/*
 * smm_certsel -- is this certificate usable to encrypt to this address?
 *
 * smm_certsel_check() returns NULL when the certificate is usable, or a
 * short reason naming the first rule it breaks, in this order: address
 * mismatch (SAN rfc822Name, else emailAddress; compared without regard
 * to case), not yet valid, expired, weak key (RSA below
 * MinKeyBits, EC below P-256, other key types), wrong key usage (RSA needs
 * keyEncipherment, EC keyAgreement, or no key usage at all), wrong EKU
 * (emailProtection, anyExtendedKeyUsage or none), untrusted (no chain to
 * TrustAnchors, with OpenSSL's reason; skipped when
 * RequireTrustedRecipientCerts is no), revoked (by a CRL from CRLs).
 * Thread-safe; nothing is kept.
 */
#ifndef SMM_CERTSEL_H
#define SMM_CERTSEL_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "smm_trust.h"

struct smm_certsel_opts {
    time_t now;
    int min_key_bits;
    int require_trusted;
    const struct smm_trust *trust;
};

const char *smm_certsel_check(X509 *, const char *, STACK_OF(X509) *,
                              const struct smm_certsel_opts *, char *, size_t);

#endif
