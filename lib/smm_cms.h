/*
 * smm_cms -- OpenSSL CMS operations on already-canonical bytes.
 *
 * smm_cms_sign() makes a detached SHA-256 SignedData (RFC 8551) over the
 * content whose digest the caller made while writing the content out
 * (smm_cms_digest_new(), EVP_DigestUpdate(); smm_cms_sign() finishes it,
 * the caller frees it): signer certificate and its chain included,
 * signed attributes contentType, signingTime, messageDigest,
 * SMIMECapabilities (what we can decrypt: AES-256/192/128 in CBC and GCM)
 * and, when the user's encryption certificate differs from the signing
 * one, SMIMEEncryptionKeyPreference naming it (the certificate itself is
 * included too, so the recipient can harvest it).  Returns DER in a
 * buffer the caller frees with OPENSSL_free().
 *
 * smm_cms_encrypt_begin() starts EnvelopedData (CBC ciphers) or RFC 5083
 * AuthEnvelopedData (GCM) for every certificate in the stack: RSA key
 * transport (PKCS#1 v1.5, or OAEP with SHA-256 when asked), ECDH key
 * agreement for EC certificates.  The content, taken as is (binary), is
 * then written to e->in, and its ciphertext goes straight on to the
 * caller's sink BIO, so that a large message is never held in memory.
 * smm_cms_encrypt_end() finishes it and returns the DER that goes before
 * the ciphertext (ContentInfo down to the encryptedContent header) and
 * after it (the GCM tag): head || ciphertext || tail is byte for byte the
 * DER of the whole ContentInfo (definite lengths), with buffers the caller
 * frees with OPENSSL_free().  smm_cms_encrypt_free() releases e (not the
 * sink), whatever happened.
 *
 * Inbound: smm_cms_parse() reads DER and says what it is;
 * smm_cms_parse_cached() does the same but takes a SignedData's
 * certificates from a cache of decoded ones (smm_x509cache.h);
 * smm_cms_decrypt() finds a key of the store for one of the RecipientInfos
 * (issuer and serial, or subject key identifier; key transport or key
 * agreement; every key in the store counts, expired ones too; keys of the
 * given recipient addresses first, others only when asked for) and writes
 * the content (read from dcont when the ciphertext is not in the
 * structure); smm_cms_unserved_rcpt() names the first recipient address
 * none of whose keys opens a RecipientInfo (domain keys serve their
 * domain);
 * smm_cms_env_split() reads an (Auth)EnvelopedData from a spool as a small
 * structure without its ciphertext and the places of the ciphertext, so a
 * large message is decrypted from the spool without being held in memory
 * (-1: not a structure it reads; parse it whole); smm_cms_verify()
 * digests the content (dcont for a detached signature, else the embedded one,
 * copied to out when out is not NULL) and judges every signer: signature, chain
 * to the trust anchors at o->now with the "smime_sign" purpose (key usage,
 * EKU), CRLs, then local policy (SHA-1/MD5, key size, signer address = From).
 * The best signer is reported; SMM_OK whenever res is meaningful.
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
#include <openssl/cms.h>
#include <openssl/evp.h>

#include "smm_err.h"
#include "smm_keystore.h"
#include "smm_spool.h"
#include "smm_trust.h"

EVP_MD_CTX *smm_cms_digest_new(struct smm_err *);
smm_status smm_cms_sign(const struct smm_key *, const struct smm_key *,
                        EVP_MD_CTX *, time_t, unsigned char **, size_t *,
                        struct smm_err *);
struct smm_cms_enc {
    CMS_ContentInfo *cms;
    BIO *in;   /* write the content here */
    BIO *sink; /* the caller's: receives the ciphertext */
};
smm_status smm_cms_encrypt_begin(STACK_OF(X509) *, int, int, BIO *,
                                 struct smm_cms_enc *, struct smm_err *);
smm_status smm_cms_encrypt_end(struct smm_cms_enc *, unsigned char **, size_t *,
                               unsigned char **, size_t *, struct smm_err *);
void smm_cms_encrypt_free(struct smm_cms_enc *);

/* inbound */
enum smm_cms_kind {
    SMM_CMS_ENVELOPED,
    SMM_CMS_AUTH_ENVELOPED,
    SMM_CMS_SIGNED,
    SMM_CMS_CERTS_ONLY, /* SignedData without signers */
    SMM_CMS_OTHER,
};

/* Verdicts, best first (RFC 7281 result names). */
enum smm_sig_result {
    SMM_SIG_PASS,
    SMM_SIG_POLICY,
    SMM_SIG_NEUTRAL,
    SMM_SIG_FAIL,
    SMM_SIG_PERMERROR,
    SMM_SIG_TEMPERROR,
    SMM_SIG_NONE,
};

struct smm_verify_opts {
    const struct smm_trust *trust;
    STACK_OF(X509) * extra;     /* certificates known for the sender, or NULL */
    STACK_OF(X509) * msg_certs; /* the certificates the SignedData carried,
                                   when smm_cms_parse_cached() took them
                                   out; NULL: they are in the CMS */
    time_t now;
    const char *from;     /* the From address, or NULL */
    const char *from_why; /* why the From field names no single author
                             (no signer can match it), or NULL */
    int min_key_bits;
    int allow_sha1;
};

struct smm_sig {
    enum smm_sig_result result;
    char reason[SMM_ERR_MSGLEN];
    X509 *signer;           /* the signer's certificate, when found */
    X509 *enc_cert;         /* pass only: SMIMEEncryptionKeyPreference target */
    time_t signing_time;    /* its signingTime attribute, or 0 */
    unsigned caps;          /* pass only: SMM_CAP_* from SMIMECapabilities */
    STACK_OF(X509) * certs; /* pass only: the certificates it carried */
};

struct smm_x509cache;
CMS_ContentInfo *smm_cms_parse(const unsigned char *, size_t,
                               enum smm_cms_kind *, struct smm_err *);
CMS_ContentInfo *smm_cms_parse_cached(const unsigned char *, size_t,
                                      struct smm_x509cache *,
                                      enum smm_cms_kind *, STACK_OF(X509) **,
                                      struct smm_err *);
void smm_cms_cipher_name(const unsigned char *, size_t, char *, size_t);
smm_status smm_cms_decrypt(CMS_ContentInfo *, const struct smm_keystore *,
                           char *const *, size_t, int, BIO *, BIO *,
                           const struct smm_key **, struct smm_err *);
int smm_cms_unserved_rcpt(CMS_ContentInfo *, const struct smm_keystore *,
                          char *const *, size_t, int *);
smm_status smm_cms_verify(CMS_ContentInfo *, BIO *, BIO *,
                          const struct smm_verify_opts *, struct smm_sig *,
                          struct smm_err *);
/* an (Auth)EnvelopedData read from a spool without its ciphertext */
struct smm_cms_env {
    unsigned char *skel; /* the ContentInfo without encryptedContent */
    size_t skellen;
    int auth;      /* AuthEnvelopedData */
    size_t n, cap; /* the ciphertext: n pieces of the spool */
    size_t *off, *len;
};
int smm_cms_env_split(struct smm_spool *, size_t, struct smm_cms_env *);
void smm_cms_env_free(struct smm_cms_env *);
const char *smm_sig_result_name(enum smm_sig_result);
void smm_sig_clear(struct smm_sig *);
smm_status smm_crypto_init(struct smm_err *);
void smm_crypto_done(void);

#endif
