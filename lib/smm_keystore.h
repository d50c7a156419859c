/*
 * smm_keystore -- the private keys the gateway signs and decrypts with.
 *
 * KeyStore is a directory tree; file names and subdirectories are free.
 * Recognised files: PKCS#12 (*.p12, *.pfx; passphrase from
 * KeyStorePassphraseFile, or from "<file>.pass" beside it) and PEM
 * (*.pem, *.key, *.crt, *.cer: certificates and/or a private key, possibly
 * encrypted with the same passphrase).  A key is paired with every
 * certificate in the store that carries its public key, wherever it lies,
 * so "alice.pem" with everything, or "alice.crt" + "alice.key", or a key
 * in one folder and its certificate in another all work.  The addresses a
 * key serves come from its certificate (SAN rfc822Name, else
 * emailAddress); a certificate naming a bare domain ("example.org" or
 * "@example.org") is a domain key.  Files holding a private key that are
 * readable by group or others are refused.
 *
 * A loaded key store is immutable and shared read-only by all threads;
 * the whole thing is replaced on reload.  Every struct smm_key it hands
 * out lives as long as the store.
 */
#ifndef SMM_KEYSTORE_H
#define SMM_KEYSTORE_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "smm_config.h"
#include "smm_diag.h"
#include "smm_err.h"
#include "smm_trust.h"

struct smm_key {
    X509 *cert;
    EVP_PKEY *pkey;
    STACK_OF(X509) * chain;   /* issuers to send along, no root */
    struct smm_strlist addrs; /* normalised; domain keys as "@domain" */
    unsigned usage;           /* SMM_USE_* */
    time_t not_before;
    time_t not_after;
    int trusted; /* chains to TrustAnchors */
    char *file;
    char *serial;      /* hex */
    char *fingerprint; /* sha-256 hex */
};

struct smm_keystore;

smm_status smm_keystore_load(const struct smm_config *,
                             const struct smm_trust *, struct smm_keystore **,
                             struct smm_diag *, struct smm_err *);
const struct smm_key *smm_keystore_signer(const struct smm_keystore *,
                                          const char *, time_t, int);
const struct smm_key *smm_keystore_encryption(const struct smm_keystore *,
                                              const char *, time_t);
const struct smm_key *smm_keystore_recipient(const struct smm_keystore *,
                                             const ASN1_OCTET_STRING *,
                                             const X509_NAME *,
                                             const ASN1_INTEGER *, size_t *);
int smm_keystore_has_domain(const struct smm_keystore *, const char *);
size_t smm_keystore_count(const struct smm_keystore *);
const struct smm_key *smm_keystore_get(const struct smm_keystore *, size_t);
void smm_keystore_free(struct smm_keystore *);
smm_status smm_read_secret_file(const char *, char **, struct smm_err *);

#endif
