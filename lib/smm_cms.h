/*
 * smm_cms -- OpenSSL CMS operations on already-canonical bytes.
 *
 * smm_cms_sign() makes a detached SHA-256 SignedData (RFC 8551) over the
 * content read from a BIO: signer certificate and its chain included,
 * signed attributes contentType, signingTime, messageDigest,
 * SMIMECapabilities (what we can decrypt: AES-256/192/128 in CBC and GCM)
 * and, when the user's encryption certificate differs from the signing
 * one, SMIMEEncryptionKeyPreference naming it (the certificate itself is
 * included too, so the recipient can harvest it).  Returns DER in a
 * buffer the caller frees with OPENSSL_free().
 *
 * smm_cms_encrypt() makes EnvelopedData (CBC ciphers) or RFC 5083
 * AuthEnvelopedData (GCM) for every certificate in the stack: RSA key
 * transport (PKCS#1 v1.5, or OAEP with SHA-256 when asked), ECDH key
 * agreement for EC certificates.  The content is taken as is (binary).
 *
 * smm_crypto_init() once at start, before threads; smm_crypto_done() at
 * exit.  Thread-safe: keys and certificates are only read.  Each call drains
 * the thread's OpenSSL error queue into err.
 */
#ifndef SMM_CMS_H
#define SMM_CMS_H

#include <stddef.h>
#include <time.h>

#include <openssl/bio.h>

#include "smm_err.h"
#include "smm_keystore.h"

smm_status smm_cms_sign(const struct smm_key *, const struct smm_key *, BIO *,
                        time_t, unsigned char **, size_t *, struct smm_err *);
smm_status smm_cms_encrypt(STACK_OF(X509) *, int, int, BIO *, unsigned char **,
                           size_t *, struct smm_err *);
smm_status smm_crypto_init(struct smm_err *);
void smm_crypto_done(void);

#endif
