/*
 * smm_x509cache -- certificates decoded once, found again by their DER.
 *
 * Signed mail carries the signer's certificate and its CAs, the same
 * bytes from one message to the next; decoding a certificate costs
 * OpenSSL 3.0 a walk through its key decoders under locks that every
 * thread shares.  smm_x509cache_get() returns a new reference to the X509
 * decoded from exactly these DER bytes, decoding them only the first
 * time; NULL when they are not a certificate.  Bounded: past the limit the
 * least recently used entry goes.  Thread-safe (one mutex; the X509
 * objects are only read, as the trust store's are).  It belongs to a
 * state snapshot, so a reload starts empty.
 */
#ifndef SMM_X509CACHE_H
#define SMM_X509CACHE_H

#include <stddef.h>

#include <openssl/x509.h>

struct smm_x509cache;

struct smm_x509cache *smm_x509cache_new(size_t);
X509 *smm_x509cache_get(struct smm_x509cache *, const unsigned char *, size_t);
void smm_x509cache_free(struct smm_x509cache *);

#endif
