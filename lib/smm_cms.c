/*
 * smm_cms -- CMS signing; see smm_cms.h.
 */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "smm_buf.h"
#include "smm_certblob.h"
#include "smm_cms.h"
#include "smm_log.h"
#include "smm_x509.h"
#include "smm_x509cache.h"

/* id-aa-encrypKeyPref (RFC 8551 2.5.3) */
#define OID_ENCRYPT_KEY_PREF "1.2.840.113549.1.9.16.2.11"

/*
 * Once per process, before threads: the default provider, plus the legacy
 * one when present so that PKCS#12 files exported by older Windows and
 * macOS (RC2, 3DES) can be read.
 */
static OSSL_PROVIDER *prov_default, *prov_legacy;
/* SHA-256 fetched once: an implicit fetch per digest takes the method
 * store's lock every time */
static EVP_MD *sha256;

smm_status
smm_crypto_init(struct smm_err *err)
{
    if ((prov_default = OSSL_PROVIDER_load(NULL, "default")) == NULL)
        return smm_err_ossl(err, SMM_ECRYPTO,
                            "cannot load the OpenSSL "
                            "default provider");
    if ((prov_legacy = OSSL_PROVIDER_load(NULL, "legacy")) == NULL) {
        ERR_clear_error();
        smm_log(SMM_LOG_INFO, "OpenSSL legacy provider not available: old "
                              "PKCS#12 files (RC2, 3DES) cannot be read");
    }
    if ((sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return smm_err_ossl(err, SMM_ECRYPTO, "no SHA-256 in OpenSSL");
    return SMM_OK;
}

/* At exit: release what smm_crypto_init() loaded. */
void
smm_crypto_done(void)
{
    EVP_MD_free(sha256);
    sha256 = NULL;
    if (prov_legacy != NULL)
        OSSL_PROVIDER_unload(prov_legacy);
    if (prov_default != NULL)
        OSSL_PROVIDER_unload(prov_default);
    prov_legacy = prov_default = NULL;
}

/*
 * DER of SMIMEEncryptionKeyPreference ::= CHOICE { issuerAndSerialNumber
 * [0] IMPLICIT IssuerAndSerialNumber, ... } for certificate x.
 */
static int
enc_key_pref_der(X509 *x, unsigned char **out, int *outlen)
{
    unsigned char *name = NULL, *serial = NULL, *p;
    int nl, sl, cl, hl, total;

    *out = NULL;
    if ((nl = i2d_X509_NAME(X509_get_issuer_name(x), &name)) <= 0)
        goto fail;
    if ((sl = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &serial)) <= 0)
        goto fail;
    cl = nl + sl;
    total = ASN1_object_size(1, cl, 0);
    if (total <= 0 || (*out = OPENSSL_malloc((size_t)total)) == NULL)
        goto fail;
    p = *out;
    /* constructed, context-specific [0] */
    ASN1_put_object(&p, 1, cl, 0, V_ASN1_CONTEXT_SPECIFIC);
    hl = (int)(p - *out);
    memcpy(p, name, (size_t)nl);
    memcpy(p + nl, serial, (size_t)sl);
    *outlen = hl + cl;
    OPENSSL_free(name);
    OPENSSL_free(serial);
    return 0;
fail:
    OPENSSL_free(name);
    OPENSSL_free(serial);
    OPENSSL_free(*out);
    *out = NULL;
    return -1;
}

static int
add_capabilities(CMS_SignerInfo *si)
{
    STACK_OF(X509_ALGOR) *caps = NULL;
    int ok;

    ok = CMS_add_simple_smimecap(&caps, NID_aes_256_gcm, -1) &&
         CMS_add_simple_smimecap(&caps, NID_aes_128_gcm, -1) &&
         CMS_add_simple_smimecap(&caps, NID_aes_256_cbc, -1) &&
         CMS_add_simple_smimecap(&caps, NID_aes_192_cbc, -1) &&
         CMS_add_simple_smimecap(&caps, NID_aes_128_cbc, -1) &&
         CMS_add_smimecap(si, caps);
    sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
    return ok;
}

static int
add_signing_time(CMS_SignerInfo *si, time_t t)
{
    ASN1_TIME *at;
    int ok;

    if ((at = ASN1_TIME_adj(NULL, t, 0, 0)) == NULL)
        return 0;
    ok = CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, at->type, at,
                                     -1);
    ASN1_TIME_free(at);
    return ok;
}

EVP_MD_CTX *
smm_cms_digest_new(struct smm_err *err)
{
    EVP_MD_CTX *md;

    if ((md = EVP_MD_CTX_new()) == NULL ||
        !EVP_DigestInit_ex(md, sha256 != NULL ? sha256 : EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        smm_err_ossl(err, SMM_ECRYPTO, "SHA-256");
        return NULL;
    }
    return md;
}

/*
 * What CMS_final() would do for a detached signature, on a digest the
 * caller made while writing the content out: messageDigest and
 * contentType attributes, then the signature over the signed attributes
 * (CMS_SignerInfo_sign).
 */
static int
sign_digest(CMS_ContentInfo *cms, CMS_SignerInfo *si, EVP_MD_CTX *content)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;

    return EVP_DigestFinal_ex(content, md, &mdlen) &&
           CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest,
                                       V_ASN1_OCTET_STRING, md, (int)mdlen) &&
           CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
                                       CMS_get0_eContentType(cms), -1) &&
           CMS_SignerInfo_sign(si);
}

smm_status
smm_cms_sign(const struct smm_key *signer, const struct smm_key *enc,
             EVP_MD_CTX *content, time_t signing_time, unsigned char **der,
             size_t *derlen, struct smm_err *err)
{
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si;
    ASN1_OBJECT *obj = NULL;
    unsigned char *pref = NULL;
    int preflen = 0, len, i;
    unsigned int flags =
        CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
    smm_status st = SMM_OK;

    *der = NULL;
    *derlen = 0;
    ERR_clear_error();
    if ((cms = CMS_sign(NULL, NULL, NULL, NULL, flags)) == NULL) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_sign");
        goto out;
    }
    si = CMS_add1_signer(cms, signer->cert, signer->pkey, EVP_sha256(), flags);
    if (si == NULL) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_add1_signer");
        goto out;
    }
    for (i = 0; i < sk_X509_num(signer->chain); i++)
        if (!CMS_add1_cert(cms, sk_X509_value(signer->chain, i))) {
            st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_add1_cert");
            goto out;
        }
    if (!add_capabilities(si)) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "SMIMECapabilities");
        goto out;
    }
    if (signing_time != 0 && !add_signing_time(si, signing_time)) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "signingTime");
        goto out;
    }
    if (enc != NULL && enc != signer && X509_cmp(enc->cert, signer->cert)) {
        if (enc_key_pref_der(enc->cert, &pref, &preflen) != 0 ||
            (obj = OBJ_txt2obj(OID_ENCRYPT_KEY_PREF, 1)) == NULL ||
            !CMS_signed_add1_attr_by_OBJ(si, obj, V_ASN1_SEQUENCE, pref,
                                         preflen) ||
            !CMS_add1_cert(cms, enc->cert)) {
            st = smm_err_ossl(err, SMM_ECRYPTO, "SMIMEEncryptionKeyPreference");
            goto out;
        }
        for (i = 0; i < sk_X509_num(enc->chain); i++)
            (void)CMS_add1_cert(cms, sk_X509_value(enc->chain, i));
        ERR_clear_error(); /* "already present" is fine */
    }
    if (!sign_digest(cms, si, content)) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "signing");
        goto out;
    }
    if ((len = i2d_CMS_ContentInfo(cms, der)) <= 0) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "i2d_CMS_ContentInfo");
        goto out;
    }
    *derlen = (size_t)len;
out:
    ASN1_OBJECT_free(obj);
    OPENSSL_free(pref);
    CMS_ContentInfo_free(cms);
    return st;
}

static const EVP_CIPHER *
cipher_of(int c)
{
    switch (c) {
    case SMM_CIPHER_AES128_CBC:
        return EVP_aes_128_cbc();
    case SMM_CIPHER_AES192_CBC:
        return EVP_aes_192_cbc();
    case SMM_CIPHER_AES128_GCM:
        return EVP_aes_128_gcm();
    case SMM_CIPHER_AES256_GCM:
        return EVP_aes_256_gcm();
    default:
        return EVP_aes_256_cbc();
    }
}

smm_status
smm_cms_encrypt_begin(STACK_OF(X509) * recips, int cipher, int oaep, BIO *sink,
                      struct smm_cms_enc *e, struct smm_err *err)
{
    CMS_RecipientInfo *ri;
    EVP_PKEY_CTX *pctx;
    unsigned int flags = CMS_BINARY | CMS_PARTIAL;
    smm_status st = SMM_OK;
    int i;

    memset(e, 0, sizeof(*e));
    e->sink = sink;
    ERR_clear_error();
    if ((e->cms = CMS_encrypt(NULL, NULL, cipher_of(cipher), flags)) == NULL) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_encrypt");
        goto out;
    }
    for (i = 0; i < sk_X509_num(recips); i++) {
        X509 *x = sk_X509_value(recips, i);
        EVP_PKEY *pk = X509_get0_pubkey(x);
        int rsa = pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA;
        ri =
            CMS_add1_recipient_cert(e->cms, x, rsa && oaep ? CMS_KEY_PARAM : 0);
        if (ri == NULL) {
            st = smm_err_ossl(err, SMM_ECRYPTO, "recipient %d", i);
            goto out;
        }
        if (rsa && oaep) {
            pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
            if (pctx == NULL ||
                EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <=
                    0 ||
                EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
                st = smm_err_ossl(err, SMM_ECRYPTO, "RSA-OAEP");
                goto out;
            }
        }
    }
    /* the ciphertext goes to the sink, not into the structure: it is put
     * back between head and tail by smm_cms_encrypt_end() */
    if (!CMS_set_detached(e->cms, 1) ||
        (e->in = CMS_dataInit(e->cms, sink)) == NULL) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_dataInit (encrypt)");
        goto out;
    }
out:
    if (st != SMM_OK)
        smm_cms_encrypt_free(e);
    return st;
}

/* Free a CMS BIO chain down to (not including) stop. */
static void
free_upto(BIO *b, BIO *stop)
{
    BIO *next;

    while (b != NULL && b != stop) {
        next = BIO_pop(b);
        BIO_free(b);
        b = next;
    }
}

/* The DER header of a TLV: tag (class cls, constructed or not), length. */
static size_t
put_hdr(unsigned char *p, int constructed, size_t len, int tag, int cls)
{
    unsigned char *q = p;

    ASN1_put_object(&q, constructed, (int)len, tag, cls);
    return (size_t)(q - p);
}

/* A definite-length TLV at *p (within end): its header and content bounds. */
static int
get_tlv(const unsigned char **p, const unsigned char *end, long *len, int *tag,
        int *cls)
{
    int r = ASN1_get_object(p, len, tag, cls, end - *p);

    return (r & 0x80) || (r & 0x01) || *len > end - *p ? -1 : r;
}

/*
 * d is the DER of the ContentInfo without its encryptedContent.  Build head
 * and tail so that head || ctlen bytes of ciphertext || tail is the DER
 * with the content in: every enclosing length grows by the size of the
 * [0] IMPLICIT OCTET STRING inserted at the end of EncryptedContentInfo.
 */
static smm_status
splice(const unsigned char *d, size_t dlen, size_t ctlen, unsigned char **head,
       size_t *headlen, unsigned char **tail, size_t *taillen,
       struct smm_err *err)
{
    const unsigned char *end = d + dlen, *p = d, *q, *oid, *c3;
    const unsigned char *eci = NULL, *eci_c = NULL, *eci_end = NULL;
    long l, l1, l2, l3, l4 = 0;
    int tag, cls, con;
    size_t oidlen, n1, n2, n3, n4, off = 0;
    unsigned char *h;

    *head = *tail = NULL;
    if (ctlen > INT_MAX / 2 || dlen > INT_MAX / 2)
        return smm_err_set(err, SMM_EINVAL, "message too large to encrypt");
    /* ContentInfo ::= SEQUENCE { contentType OID, [0] EXPLICIT content } */
    if (get_tlv(&p, end, &l1, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE ||
        p + l1 != end)
        goto bad;
    oid = p;
    if (get_tlv(&p, end, &l, &tag, &cls) < 0 || tag != V_ASN1_OBJECT)
        goto bad;
    p += l;
    oidlen = (size_t)(p - oid);
    if (get_tlv(&p, end, &l2, &tag, &cls) < 0 ||
        cls != V_ASN1_CONTEXT_SPECIFIC || tag != 0 || p + l2 != end)
        goto bad;
    /* (Auth)EnvelopedData ::= SEQUENCE { version, [0] originatorInfo
     * OPTIONAL, SET recipientInfos, SEQUENCE encryptedContentInfo, ... } */
    if (get_tlv(&p, end, &l3, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE ||
        p + l3 != end)
        goto bad;
    c3 = p;
    while (p < end && eci == NULL) {
        q = p;
        if ((con = get_tlv(&q, end, &l, &tag, &cls)) < 0)
            goto bad;
        if (cls == V_ASN1_UNIVERSAL && tag == V_ASN1_SEQUENCE &&
            (con & V_ASN1_CONSTRUCTED)) {
            eci = p;
            eci_c = q;
            l4 = l;
            eci_end = q + l;
        }
        p = q + l;
    }
    if (eci == NULL)
        goto bad;
    /* the new content lengths, innermost first */
    n4 = (size_t)l4 + (size_t)ASN1_object_size(0, (int)ctlen, 0);
    n3 = (size_t)l3 - (size_t)(eci_end - eci) +
         (size_t)ASN1_object_size(1, (int)n4, V_ASN1_SEQUENCE);
    n2 = (size_t)ASN1_object_size(1, (int)n3, V_ASN1_SEQUENCE);
    n1 = oidlen + (size_t)ASN1_object_size(1, (int)n2, 0);
    /* five headers of at most 6 bytes (lengths below 2^31) */
    if ((h = OPENSSL_malloc(oidlen + (size_t)(eci - c3) + (size_t)l4 + 30)) ==
        NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    off += put_hdr(h + off, 1, n1, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(h + off, oid, oidlen);
    off += oidlen;
    off += put_hdr(h + off, 1, n2, 0, V_ASN1_CONTEXT_SPECIFIC);
    off += put_hdr(h + off, 1, n3, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(h + off, c3, (size_t)(eci - c3));
    off += (size_t)(eci - c3);
    off += put_hdr(h + off, 1, n4, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(h + off, eci_c, (size_t)l4);
    off += (size_t)l4;
    /* encryptedContent [0] IMPLICIT OCTET STRING, primitive as DER wants */
    off += put_hdr(h + off, 0, ctlen, 0, V_ASN1_CONTEXT_SPECIFIC);
    *taillen = (size_t)(end - eci_end);
    if ((*tail = OPENSSL_malloc(*taillen + 1)) == NULL) {
        OPENSSL_free(h);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    memcpy(*tail, eci_end, *taillen);
    *head = h;
    *headlen = off;
    return SMM_OK;
bad:
    return smm_err_set(err, SMM_ECRYPTO, "unexpected EnvelopedData encoding");
}

smm_status
smm_cms_encrypt_end(struct smm_cms_enc *e, unsigned char **head,
                    size_t *headlen, unsigned char **tail, size_t *taillen,
                    struct smm_err *err)
{
    unsigned char *der = NULL;
    int len;
    smm_status st;

    *head = *tail = NULL;
    *headlen = *taillen = 0;
    if (BIO_flush(e->in) != 1 || !CMS_dataFinal(e->cms, e->in))
        return smm_err_ossl(err, SMM_ECRYPTO, "CMS_dataFinal (encrypt)");
    if ((len = i2d_CMS_ContentInfo(e->cms, &der)) <= 0)
        return smm_err_ossl(err, SMM_ECRYPTO, "i2d_CMS_ContentInfo");
    st = splice(der, (size_t)len, (size_t)BIO_number_written(e->sink), head,
                headlen, tail, taillen, err);
    OPENSSL_free(der);
    return st;
}

void
smm_cms_encrypt_free(struct smm_cms_enc *e)
{
    free_upto(e->in, e->sink);
    CMS_ContentInfo_free(e->cms);
    e->in = NULL;
    e->cms = NULL;
}
/* ------------------------------------------------------------------ */
/* inbound: parse, decrypt, verify                                     */

/* id-aa-encrypKeyPref (above) and Microsoft's older equivalent */
#define OID_MS_ENCRYPT_KEY_PREF "1.3.6.1.4.1.311.16.4"

CMS_ContentInfo *
smm_cms_parse(const unsigned char *der, size_t len, enum smm_cms_kind *kind,
              struct smm_err *err)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms;

    ERR_clear_error();
    if (der == NULL || len == 0 || len > LONG_MAX ||
        (cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) == NULL) {
        smm_err_ossl(err, SMM_EPARSE, "not a CMS object");
        return NULL;
    }
    switch (OBJ_obj2nid(CMS_get0_type(cms))) {
    case NID_pkcs7_enveloped:
        *kind = SMM_CMS_ENVELOPED;
        break;
    case NID_id_smime_ct_authEnvelopedData:
        *kind = SMM_CMS_AUTH_ENVELOPED;
        break;
    case NID_pkcs7_signed:
        *kind = sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) > 0
                    ? SMM_CMS_SIGNED
                    : SMM_CMS_CERTS_ONLY;
        break;
    default:
        *kind = SMM_CMS_OTHER;
        break;
    }
    return cms;
}

/* id-signedData, as DER */
static const unsigned char oid_signed_data[] = {
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};

/*
 * A SignedData ContentInfo (definite lengths) whose certificates field
 * holds only certificates: the DER without that field goes to *rest (the
 * caller frees it with OPENSSL_free), each certificate's DER range to
 * cert/certlen (at most max).  Returns the number of certificates, 0 when
 * there is nothing to take out or the encoding is one this does not know
 * (the caller then parses the whole), -1 when out of memory.
 */
static int
split_certs(const unsigned char *d, size_t dlen, unsigned char **rest,
            size_t *restlen, const unsigned char **cert, size_t *certlen,
            int max)
{
    const unsigned char *end = d + dlen, *p = d, *q, *c3, *cs = NULL,
                        *ce = NULL;
    long l, l1, l2, l3;
    int tag, cls, con, n = 0;
    size_t n1, n2, n3, off = 0;
    unsigned char *h;

    *rest = NULL;
    if (dlen > INT_MAX / 2 || get_tlv(&p, end, &l1, &tag, &cls) < 0 ||
        tag != V_ASN1_SEQUENCE || p + l1 != end ||
        (size_t)(end - p) < sizeof(oid_signed_data) ||
        memcmp(p, oid_signed_data, sizeof(oid_signed_data)) != 0)
        return 0;
    p += sizeof(oid_signed_data);
    if (get_tlv(&p, end, &l2, &tag, &cls) < 0 ||
        cls != V_ASN1_CONTEXT_SPECIFIC || tag != 0 || p + l2 != end ||
        get_tlv(&p, end, &l3, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE ||
        p + l3 != end)
        return 0;
    c3 = p;
    /* version, digestAlgorithms, encapContentInfo, [0] certificates */
    while (p < end && cs == NULL) {
        q = p;
        if ((con = get_tlv(&q, end, &l, &tag, &cls)) < 0)
            return 0;
        if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0 &&
            (con & V_ASN1_CONSTRUCTED)) {
            cs = p;
            ce = q + l;
            for (p = q; p < ce; p = q + l) {
                q = p;
                if ((con = get_tlv(&q, ce, &l, &tag, &cls)) < 0 ||
                    cls != V_ASN1_UNIVERSAL || tag != V_ASN1_SEQUENCE ||
                    !(con & V_ASN1_CONSTRUCTED) || n == max)
                    return 0;
                cert[n] = p;
                certlen[n++] = (size_t)(q + l - p);
            }
        }
        p = q + l;
    }
    if (cs == NULL || n == 0)
        return 0;
    n3 = (size_t)l3 - (size_t)(ce - cs);
    n2 = (size_t)ASN1_object_size(1, (int)n3, V_ASN1_SEQUENCE);
    n1 = sizeof(oid_signed_data) + (size_t)ASN1_object_size(1, (int)n2, 0);
    if ((h = OPENSSL_malloc(n1 + 6)) == NULL)
        return -1;
    off += put_hdr(h + off, 1, n1, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(h + off, oid_signed_data, sizeof(oid_signed_data));
    off += sizeof(oid_signed_data);
    off += put_hdr(h + off, 1, n2, 0, V_ASN1_CONTEXT_SPECIFIC);
    off += put_hdr(h + off, 1, n3, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(h + off, c3, (size_t)(cs - c3));
    off += (size_t)(cs - c3);
    memcpy(h + off, ce, (size_t)(end - ce));
    off += (size_t)(end - ce);
    *rest = h;
    *restlen = off;
    return n;
}

#define MAX_MSG_CERTS 64

/*
 * smm_cms_parse(), with the certificates of a SignedData taken from xc
 * (decoded the first time they are seen) instead of being decoded again
 * with every message: *certs gets them in their order, as new references,
 * and the CMS comes without them.  *certs is NULL when the structure was
 * parsed whole (another type, an encoding split_certs() does not know): the
 * certificates are then in the CMS, as smm_cms_parse() leaves them.
 */
CMS_ContentInfo *
smm_cms_parse_cached(const unsigned char *der, size_t len,
                     struct smm_x509cache *xc, enum smm_cms_kind *kind,
                     STACK_OF(X509) * *certs, struct smm_err *err)
{
    const unsigned char *cert[MAX_MSG_CERTS];
    size_t certlen[MAX_MSG_CERTS], restlen = 0;
    unsigned char *rest = NULL;
    CMS_ContentInfo *cms = NULL;
    X509 *x;
    int n, i;

    *certs = NULL;
    if (xc == NULL || der == NULL ||
        (n = split_certs(der, len, &rest, &restlen, cert, certlen,
                         MAX_MSG_CERTS)) == 0)
        return smm_cms_parse(der, len, kind, err);
    if (n < 0 || (*certs = sk_X509_new_null()) == NULL) {
        smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto fail;
    }
    if ((cms = smm_cms_parse(rest, restlen, kind, err)) == NULL)
        goto fail;
    for (i = 0; i < n; i++) {
        if ((x = smm_x509cache_get(xc, cert[i], certlen[i])) == NULL) {
            smm_err_set(err, SMM_EPARSE, "not a CMS object");
            goto fail;
        }
        if (!sk_X509_push(*certs, x)) {
            X509_free(x);
            smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto fail;
        }
    }
    OPENSSL_free(rest);
    return cms;
fail:
    OPENSSL_free(rest);
    CMS_ContentInfo_free(cms);
    sk_X509_pop_free(*certs, X509_free);
    *certs = NULL;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* an (Auth)EnvelopedData in a spool, read without its ciphertext       */

/* id-envelopedData and id-ct-authEnvelopedData, as DER */
static const unsigned char oid_enveloped[] = {
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
static const unsigned char oid_auth_enveloped[] = {0x06, 0x0b, 0x2a, 0x86, 0x48,
                                                   0x86, 0xf7, 0x0d, 0x01, 0x09,
                                                   0x10, 0x01, 0x17};

#define SKEL_MAX (1 << 20) /* everything but the ciphertext */
#define MAX_PIECES 65536

/* One BER header: low tag numbers, lengths up to 2^32 or indefinite. */
struct tlv {
    int cls, tag, cons, indef;
    size_t hlen, len; /* len: of the content, when definite */
};

static int
rd_tlv(struct smm_spool *sp, size_t off, size_t end, struct tlv *t)
{
    unsigned char h[6];
    ssize_t n;
    size_t i, nl;

    if (off >= end || (n = smm_spool_pread(sp, h, sizeof(h), off)) < 2)
        return -1;
    if ((h[0] & 0x1f) == 0x1f)
        return -1; /* high tag numbers: not in these structures */
    t->cls = h[0] & 0xc0;
    t->cons = (h[0] & 0x20) != 0;
    t->tag = h[0] & 0x1f;
    t->indef = 0;
    t->len = 0;
    if (h[1] < 0x80) {
        t->hlen = 2;
        t->len = h[1];
    } else if (h[1] == 0x80) {
        if (!t->cons)
            return -1;
        t->hlen = 2;
        t->indef = 1;
    } else {
        nl = h[1] & 0x7f;
        if (nl > 4 || (size_t)n < 2 + nl)
            return -1;
        for (i = 0; i < nl; i++)
            t->len = (t->len << 8) | h[2 + i];
        t->hlen = 2 + nl;
    }
    if (!t->indef && (t->len > end - off || t->hlen > end - off - t->len))
        return -1;
    return 0;
}

static int
is_eoc(const struct tlv *t)
{
    return t->cls == 0 && t->tag == 0 && !t->cons && !t->indef && t->len == 0;
}

/* The offset just past the element at off (walking an indefinite one). */
static size_t
tlv_end(struct smm_spool *sp, size_t off, size_t end, int depth)
{
    struct tlv t, c;
    size_t p;

    if (depth > 32 || rd_tlv(sp, off, end, &t) != 0)
        return 0;
    if (!t.indef)
        return off + t.hlen + t.len;
    for (p = off + t.hlen; p < end;) {
        if (rd_tlv(sp, p, end, &c) != 0)
            return 0;
        if (is_eoc(&c))
            return p + 2;
        if ((p = tlv_end(sp, p, end, depth + 1)) == 0)
            return 0;
    }
    return 0;
}

/* Append bytes [a, b) of the spool to o. */
static int
copy_out(struct smm_buf *o, struct smm_spool *sp, size_t a, size_t b)
{
    char buf[4096];
    ssize_t n;

    if (b - a > SKEL_MAX || o->len + (b - a) > SKEL_MAX)
        return -1;
    while (a < b) {
        n = smm_spool_pread(sp, buf, b - a < sizeof(buf) ? b - a : sizeof(buf),
                            a);
        if (n <= 0 || smm_buf_append(o, buf, (size_t)n) != SMM_OK)
            return -1;
        a += (size_t)n;
    }
    return 0;
}

/* o = a definite-length header (tag, class) around content c. */
static int
wrap(struct smm_buf *o, int tag, int cls, const struct smm_buf *c)
{
    unsigned char h[8];
    size_t hl = put_hdr(h, 1, c->len, tag, cls);

    return smm_buf_append(o, h, hl) == SMM_OK &&
                   smm_buf_append(o, c->data != NULL ? c->data : "", c->len) ==
                       SMM_OK
               ? 0
               : -1;
}

/* The children of the container at off: [*first, *stop) and the end of
 * the container itself. */
static int
children(struct smm_spool *sp, size_t off, size_t end, const struct tlv *t,
         size_t *first, size_t *stop, size_t *after)
{
    *first = off + t->hlen;
    if (!t->indef) {
        *stop = *after = *first + t->len;
        return 0;
    }
    if ((*after = tlv_end(sp, off, end, 0)) == 0)
        return -1;
    *stop = *after - 2; /* before the end-of-contents octets */
    return 0;
}

static int
add_piece(struct smm_cms_env *e, size_t off, size_t len)
{
    size_t *no, *nl;

    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        if (cap > MAX_PIECES)
            return -1;
        if ((no = realloc(e->off, cap * sizeof(*no))) == NULL)
            return -1;
        e->off = no;
        if ((nl = realloc(e->len, cap * sizeof(*nl))) == NULL)
            return -1;
        e->len = nl;
        e->cap = cap;
    }
    e->off[e->n] = off;
    e->len[e->n] = len;
    e->n++;
    return 0;
}

/* The encryptedContent [0] at off (header t): where its bytes are. */
static int
env_pieces(struct smm_spool *sp, size_t off, size_t end, const struct tlv *t,
           struct smm_cms_env *e)
{
    size_t first, stop, after, p;
    struct tlv c;

    if (!t->cons)
        return add_piece(e, off + t->hlen, t->len);
    if (children(sp, off, end, t, &first, &stop, &after) != 0)
        return -1;
    for (p = first; p < stop; p += c.hlen + c.len)
        if (rd_tlv(sp, p, stop, &c) != 0 || c.cls != 0 ||
            c.tag != V_ASN1_OCTET_STRING || c.cons ||
            add_piece(e, p + c.hlen, c.len) != 0)
            return -1;
    return e->n > 0 ? 0 : add_piece(e, first, 0);
}

void
smm_cms_env_free(struct smm_cms_env *e)
{
    OPENSSL_free(e->skel);
    free(e->off);
    free(e->len);
    memset(e, 0, sizeof(*e));
}

/*
 * Read the (Auth)EnvelopedData at the start of sp (DER or BER, len bytes)
 * into e: the ContentInfo without its encryptedContent, with definite
 * lengths (e->skel, small), and where the ciphertext lies in the spool (one
 * piece for a primitive string, the OCTET STRINGs of a constructed one).
 * 0 when the structure is one this reads; -1 when not (another type, an
 * encoding it does not know, more than SKEL_MAX besides the ciphertext):
 * the caller then reads it whole.
 */
int
smm_cms_env_split(struct smm_spool *sp, size_t len, struct smm_cms_env *e)
{
    struct smm_buf ci = {0}, env = {0}, eci = {0}, tmp = {0}, out = {0};
    struct tlv t0, t1, t2, t, c;
    size_t p, first, stop, after, f2, s2, a2, f3, s3, a3, q;
    unsigned char oid[16];
    int found = 0, rc = -1;

    memset(e, 0, sizeof(*e));
    /* ContentInfo SEQUENCE { contentType, [0] EXPLICIT content } */
    if (rd_tlv(sp, 0, len, &t0) != 0 || t0.cls != 0 ||
        t0.tag != V_ASN1_SEQUENCE || !t0.cons ||
        children(sp, 0, len, &t0, &first, &stop, &after) != 0)
        goto out;
    p = first;
    if (rd_tlv(sp, p, stop, &t) != 0 || t.tag != V_ASN1_OBJECT ||
        t.hlen + t.len > sizeof(oid) ||
        smm_spool_pread(sp, oid, t.hlen + t.len, p) !=
            (ssize_t)(t.hlen + t.len))
        goto out;
    if (t.hlen + t.len == sizeof(oid_enveloped) &&
        memcmp(oid, oid_enveloped, sizeof(oid_enveloped)) == 0)
        e->auth = 0;
    else if (t.hlen + t.len == sizeof(oid_auth_enveloped) &&
             memcmp(oid, oid_auth_enveloped, sizeof(oid_auth_enveloped)) == 0)
        e->auth = 1;
    else
        goto out;
    if (smm_buf_append(&ci, oid, t.hlen + t.len) != SMM_OK)
        goto out;
    p += t.hlen + t.len;
    if (rd_tlv(sp, p, stop, &t1) != 0 || t1.cls != V_ASN1_CONTEXT_SPECIFIC ||
        t1.tag != 0 || !t1.cons ||
        children(sp, p, stop, &t1, &f2, &s2, &a2) != 0 ||
        rd_tlv(sp, f2, s2, &t2) != 0 || t2.cls != 0 ||
        t2.tag != V_ASN1_SEQUENCE || !t2.cons ||
        children(sp, f2, s2, &t2, &f3, &s3, &a3) != 0)
        goto out;
    /* version, originatorInfo, recipientInfos: as they are; then the
     * EncryptedContentInfo; then what follows it, as it is */
    for (p = f3; p < s3; p = after) {
        if (rd_tlv(sp, p, s3, &t) != 0 || (after = tlv_end(sp, p, s3, 0)) == 0)
            goto out;
        if (found || t.cls != 0 || t.tag != V_ASN1_SEQUENCE || !t.cons) {
            if (copy_out(&env, sp, p, after) != 0)
                goto out;
            continue;
        }
        found = 1;
        /* EncryptedContentInfo { contentType, algorithm, [0] content } */
        if (children(sp, p, s3, &t, &first, &stop, &after) != 0)
            goto out;
        for (q = first; q < stop;) {
            size_t qe;
            if (rd_tlv(sp, q, stop, &c) != 0 ||
                (qe = tlv_end(sp, q, stop, 0)) == 0)
                goto out;
            if (c.cls == V_ASN1_CONTEXT_SPECIFIC && c.tag == 0 && e->n == 0) {
                if (env_pieces(sp, q, stop, &c, e) != 0)
                    goto out;
            } else if (copy_out(&eci, sp, q, qe) != 0) {
                goto out;
            }
            q = qe;
        }
        if (e->n == 0 || wrap(&env, V_ASN1_SEQUENCE, 0, &eci) != 0)
            goto out;
    }
    if (!found || wrap(&tmp, V_ASN1_SEQUENCE, 0, &env) != 0 ||
        wrap(&ci, 0, V_ASN1_CONTEXT_SPECIFIC, &tmp) != 0 ||
        wrap(&out, V_ASN1_SEQUENCE, 0, &ci) != 0 ||
        (e->skel = OPENSSL_malloc(out.len)) == NULL)
        goto out;
    memcpy(e->skel, out.data, out.len);
    e->skellen = out.len;
    rc = 0;
out:
    if (rc != 0)
        smm_cms_env_free(e);
    smm_buf_free(&ci);
    smm_buf_free(&env);
    smm_buf_free(&eci);
    smm_buf_free(&tmp);
    smm_buf_free(&out);
    return rc;
}

/*
 * The content-encryption algorithm of (Auth)EnvelopedData, read from the
 * DER: ContentInfo { OID, [0] { version, [0] originatorInfo OPTIONAL,
 * SET recipientInfos, SEQUENCE encryptedContentInfo { OID,
 * AlgorithmIdentifier { OID ... } } } }.  OpenSSL has no getter.
 */
void
smm_cms_cipher_name(const unsigned char *der, size_t len, char *buf, size_t sz)
{
    const unsigned char *p = der, *end = der + len;
    long l;
    int tag, cls, i;
    ASN1_OBJECT *obj = NULL;

    snprintf(buf, sz, "unknown");
    /* ContentInfo SEQUENCE, contentType OID, [0], inner SEQUENCE */
    if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80)
        return;
    if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80 ||
        tag != V_ASN1_OBJECT)
        return;
    p += l;
    if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80 ||
        ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80)
        return;
    /* version; skip fields until the encryptedContentInfo SEQUENCE */
    for (i = 0; i < 4 && p < end; i++) {
        const unsigned char *q = p;
        if (ASN1_get_object(&q, &l, &tag, &cls, end - q) & 0x80)
            return;
        if (cls == V_ASN1_UNIVERSAL && tag == V_ASN1_SEQUENCE) {
            p = q;
            if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80 ||
                tag != V_ASN1_OBJECT)
                return;
            p += l; /* contentType */
            if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80 ||
                tag != V_ASN1_SEQUENCE)
                return;
            if ((obj = d2i_ASN1_OBJECT(NULL, &p, end - p)) != NULL) {
                int nid = OBJ_obj2nid(obj);
                const char *ln = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
                if (ln != NULL)
                    snprintf(buf, sz, "%s", ln);
                else
                    OBJ_obj2txt(buf, (int)sz, obj, 1);
                ASN1_OBJECT_free(obj);
            }
            ERR_clear_error();
            return;
        }
        p = q + l; /* INTEGER, [0] originatorInfo, SET recipientInfos */
    }
    ERR_clear_error();
}

/* Whether key k serves one of the addresses: its certificate names it,
 * or it is the domain key ("@domain") of its domain. */
static int
serves_one(const struct smm_key *k, const char *addr)
{
    const char *dom = smm_addr_domain(addr);
    size_t i;

    for (i = 0; i < k->addrs.n; i++)
        if (smm_addr_equal(k->addrs.v[i], addr) ||
            (k->addrs.v[i][0] == '@' && dom != NULL &&
             strcasecmp(k->addrs.v[i] + 1, dom) == 0))
            return 1;
    return 0;
}

static int
serves(const struct smm_key *k, char *const *addrs, size_t n)
{
    size_t j;

    for (j = 0; j < n; j++)
        if (serves_one(k, addrs[j]))
            return 1;
    return 0;
}

/* Call fn for every key of the store that one of cms's RecipientInfos
 * names (key transport, and each recipient of key agreement), until it
 * returns non-zero; returns that. */
static int
each_ri_key(CMS_ContentInfo *cms, const struct smm_keystore *ks,
            int (*fn)(void *, const struct smm_key *), void *arg)
{
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
    const struct smm_key *k;
    ASN1_OCTET_STRING *keyid;
    X509_NAME *issuer;
    ASN1_INTEGER *serial;
    int i, j, r;

    for (i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
        CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
        STACK_OF(CMS_RecipientEncryptedKey) *reks = NULL;
        int nids = 1;

        if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE) {
            if ((reks = CMS_RecipientInfo_kari_get0_reks(ri)) == NULL)
                continue;
            nids = sk_CMS_RecipientEncryptedKey_num(reks);
        } else if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_TRANS) {
            continue;
        }
        for (j = 0; j < nids; j++) {
            size_t it = 0;
            keyid = NULL;
            issuer = NULL;
            serial = NULL;
            if (reks != NULL) {
                if (!CMS_RecipientEncryptedKey_get0_id(
                        sk_CMS_RecipientEncryptedKey_value(reks, j), &keyid,
                        NULL, NULL, &issuer, &serial))
                    continue;
            } else if (!CMS_RecipientInfo_ktri_get0_signer_id(
                           ri, &keyid, &issuer, &serial)) {
                continue;
            }
            while ((k = smm_keystore_recipient(ks, keyid, issuer, serial,
                                               &it)) != NULL)
                if ((r = fn(arg, k)) != 0)
                    return r;
        }
    }
    return 0;
}

struct dec_try {
    CMS_ContentInfo *cms;
    char *const *rcpts;
    size_t nrcpts;
    int pass; /* 0: keys of the recipients; 1: the others */
    BIO *dcont, *out;
    int tried;
    const struct smm_key *used;
};

static int
try_key(void *arg, const struct smm_key *k)
{
    struct dec_try *t = arg;

    if (serves(k, t->rcpts, t->nrcpts) != (t->pass == 0))
        return 0;
    t->tried++;
    ERR_clear_error();
    if (CMS_decrypt_set1_pkey_and_peer(t->cms, k->pkey, k->cert, NULL) == 1 &&
        (t->dcont == NULL || BIO_reset(t->dcont) == 1) &&
        CMS_decrypt(t->cms, NULL, NULL, t->dcont, t->out, CMS_BINARY) == 1) {
        t->used = k;
        return 1;
    }
    return 0;
}

/*
 * Decrypt cms (EnvelopedData or AuthEnvelopedData) with a key of the
 * store named by one of its RecipientInfos; the content goes to out.
 * Keys of the envelope recipients are tried first; any other key only
 * when any_key is set.  SMM_ENOCERT when no key fits, SMM_EPARSE when a
 * fitting key fails (a damaged message).
 */
smm_status
smm_cms_decrypt(CMS_ContentInfo *cms, const struct smm_keystore *ks,
                char *const *rcpts, size_t nrcpts, int any_key, BIO *dcont,
                BIO *out, const struct smm_key **used, struct smm_err *err)
{
    struct dec_try t = {cms, rcpts, nrcpts, 0, dcont, out, 0, NULL};

    *used = NULL;
    for (t.pass = 0; t.pass < (any_key ? 2 : 1); t.pass++)
        if (each_ri_key(cms, ks, try_key, &t)) {
            *used = t.used;
            return SMM_OK;
        }
    if (t.tried > 0)
        return smm_err_ossl(err, SMM_EPARSE,
                            "decryption with the matching key failed");
    ERR_clear_error();
    return smm_err_set(err, SMM_ENOCERT, "no key for any of its %d recipients",
                       sk_CMS_RecipientInfo_num(CMS_get0_RecipientInfos(cms)));
}

static int
key_serves(void *arg, const struct smm_key *k)
{
    return arg == NULL || serves_one(k, arg);
}

/* The first envelope recipient for whom no key of the store opens one of
 * cms's RecipientInfos (one that was not meant to read it), or -1; *known:
 * whether the store has a key for any of them at all. */
int
smm_cms_unserved_rcpt(CMS_ContentInfo *cms, const struct smm_keystore *ks,
                      char *const *rcpts, size_t nrcpts, int *known)
{
    size_t i;

    *known = each_ri_key(cms, ks, key_serves, NULL);
    for (i = 0; i < nrcpts; i++)
        if (!each_ri_key(cms, ks, key_serves, rcpts[i]))
            return (int)i;
    return -1;
}

static const char *const sig_names[] = {
    "pass", "policy", "neutral", "fail", "permerror", "temperror", "none"};

const char *
smm_sig_result_name(enum smm_sig_result r)
{
    return (unsigned)r < sizeof(sig_names) / sizeof(sig_names[0]) ? sig_names[r]
                                                                  : "temperror";
}

void
smm_sig_clear(struct smm_sig *s)
{
    X509_free(s->signer);
    X509_free(s->enc_cert);
    sk_X509_pop_free(s->certs, X509_free);
    memset(s, 0, sizeof(*s));
}

static enum smm_sig_result sig_set(struct smm_sig *s, enum smm_sig_result r,
                                   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum smm_sig_result
sig_set(struct smm_sig *s, enum smm_sig_result r, const char *fmt, ...)
{
    va_list ap;

    s->result = r;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
    va_end(ap);
    return r;
}

/* The certificate named by an SMIMEEncryptionKeyPreference (RFC 8551
 * 2.5.3, [0] IMPLICIT IssuerAndSerialNumber) or Microsoft's variant (a
 * plain IssuerAndSerialNumber), among certs; a new reference or NULL. */
static X509 *
enc_key_pref(CMS_SignerInfo *si, STACK_OF(X509) * certs)
{
    static const char *const oids[] = {OID_ENCRYPT_KEY_PREF,
                                       OID_MS_ENCRYPT_KEY_PREF};
    X509_ATTRIBUTE *attr;
    ASN1_TYPE *t;
    ASN1_OBJECT *obj;
    X509_NAME *name = NULL;
    ASN1_INTEGER *serial = NULL;
    X509 *found = NULL;
    const unsigned char *p, *end;
    long l;
    int tag, cls, i, idx;
    size_t o;

    for (o = 0; found == NULL && o < sizeof(oids) / sizeof(oids[0]); o++) {
        if ((obj = OBJ_txt2obj(oids[o], 1)) == NULL)
            break;
        idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
        ASN1_OBJECT_free(obj);
        if (idx < 0 || (attr = CMS_signed_get_attr(si, idx)) == NULL ||
            (t = X509_ATTRIBUTE_get0_type(attr, 0)) == NULL ||
            t->type == V_ASN1_BOOLEAN || t->type == V_ASN1_NULL ||
            t->type == V_ASN1_OBJECT)
            continue;
        p = t->value.asn1_string->data;
        end = p + t->value.asn1_string->length;
        /* the outer tag: [0] (RFC 8551) or SEQUENCE (Microsoft) */
        if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80 ||
            !((cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0) ||
              (cls == V_ASN1_UNIVERSAL && tag == V_ASN1_SEQUENCE)))
            continue;
        if ((name = d2i_X509_NAME(NULL, &p, end - p)) != NULL &&
            (serial = d2i_ASN1_INTEGER(NULL, &p, end - p)) != NULL) {
            for (i = 0; found == NULL && i < sk_X509_num(certs); i++) {
                X509 *x = sk_X509_value(certs, i);
                if (X509_NAME_cmp(X509_get_issuer_name(x), name) == 0 &&
                    ASN1_INTEGER_cmp(X509_get0_serialNumber(x), serial) == 0 &&
                    X509_up_ref(x))
                    found = x;
            }
        }
        X509_NAME_free(name);
        ASN1_INTEGER_free(serial);
        name = NULL;
        serial = NULL;
    }
    ERR_clear_error();
    return found;
}

static unsigned
signer_caps(CMS_SignerInfo *si)
{
    ASN1_STRING *s;
    const unsigned char *p;
    STACK_OF(X509_ALGOR) * caps;
    unsigned out = 0;

    s = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_SMIMECapabilities), -3,
                                    V_ASN1_SEQUENCE);
    if (s == NULL)
        return 0;
    p = s->data;
    if ((caps = d2i_X509_ALGORS(NULL, &p, s->length)) != NULL) {
        out = smm_smimecaps_bits(caps);
        sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
    }
    ERR_clear_error();
    return out;
}

static int
untrusted_error(int e)
{
    return e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
           e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
           e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
           e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
           e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

/* Whether x (the top of an untrusted chain) bears the name of a trust
 * anchor without being it: someone imitating a CA we trust. */
static int
impostor(const struct smm_trust *t, X509 *x)
{
    int i;

    for (i = 0; x != NULL && i < sk_X509_num(t->certs); i++) {
        X509 *a = sk_X509_value(t->certs, i);
        if (X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(x)) ==
                0 &&
            EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(x)) != 1)
            return 1;
    }
    ERR_clear_error();
    return 0;
}

/* Chain, validity, usage and revocation of the signer certificate. */
static enum smm_sig_result
check_chain(X509 *x, STACK_OF(X509) * certs, const struct smm_verify_opts *o,
            struct smm_sig *s)
{
    X509_STORE_CTX *ctx;
    STACK_OF(X509) * chain;
    int ok, e, i;
    enum smm_sig_result r = SMM_SIG_PASS;

    if (o->trust == NULL || o->trust->store == NULL ||
        sk_X509_num(o->trust->certs) == 0)
        return sig_set(s, SMM_SIG_NEUTRAL, "no trust anchors configured");
    if ((ctx = X509_STORE_CTX_new()) == NULL ||
        X509_STORE_CTX_init(ctx, o->trust->store, x, certs) != 1 ||
        X509_STORE_CTX_set_default(ctx, "smime_sign") != 1) {
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        return sig_set(s, SMM_SIG_TEMPERROR, "out of memory");
    }
    X509_STORE_CTX_set_time(ctx, 0, o->now);
    ok = X509_verify_cert(ctx) == 1;
    if (!ok) {
        e = X509_STORE_CTX_get_error(ctx);
        r = sig_set(s, untrusted_error(e) ? SMM_SIG_NEUTRAL : SMM_SIG_FAIL,
                    "%s%s",
                    untrusted_error(e) ? "untrusted: " : "certificate: ",
                    X509_verify_cert_error_string(e));
        if (r == SMM_SIG_NEUTRAL &&
            (chain = X509_STORE_CTX_get0_chain(ctx)) != NULL &&
            impostor(o->trust, sk_X509_value(chain, sk_X509_num(chain) - 1)))
            r = sig_set(s, SMM_SIG_FAIL,
                        "certificate: its root has the name of a trust anchor "
                        "but another key");
    } else if ((chain = X509_STORE_CTX_get0_chain(ctx)) != NULL) {
        for (i = 0; i + 1 < sk_X509_num(chain); i++)
            if (smm_trust_revoked(o->trust, sk_X509_value(chain, i),
                                  sk_X509_value(chain, i + 1))) {
                r = sig_set(s, SMM_SIG_FAIL, "certificate: revoked%s",
                            i > 0 ? " (an issuing CA)" : "");
                break;
            }
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

/* Local policy on a good signature: digest, key size, From address. */
static enum smm_sig_result
check_policy(CMS_SignerInfo *si, X509 *x, const struct smm_verify_opts *o,
             struct smm_sig *s)
{
    X509_ALGOR *dig = NULL;
    const ASN1_OBJECT *obj;
    EVP_PKEY *pk = X509_get0_pubkey(x);
    int nid, bits;
    struct smm_strlist addrs = {0};
    size_t i;
    int match = 0;

    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
    if (dig != NULL) {
        X509_ALGOR_get0(&obj, NULL, NULL, dig);
        nid = OBJ_obj2nid(obj);
        if (nid == NID_md5 || (nid == NID_sha1 && !o->allow_sha1))
            return sig_set(s, SMM_SIG_POLICY, "weak digest (%s)",
                           OBJ_nid2sn(nid));
    }
    if (pk != NULL) {
        bits = EVP_PKEY_get_bits(pk);
        if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC ? bits < 256
                                                    : bits < o->min_key_bits)
            return sig_set(s, SMM_SIG_POLICY, "weak key (%d bits)", bits);
    }
    if (o->from == NULL)
        return sig_set(s, SMM_SIG_POLICY, "no From address to compare");
    if (o->from_why != NULL)
        return sig_set(s, SMM_SIG_POLICY, "%s", o->from_why);
    (void)smm_x509_addresses(x, &addrs);
    for (i = 0; i < addrs.n; i++)
        if (smm_addr_equal(addrs.v[i], o->from))
            match = 1;
    smm_strlist_free(&addrs);
    if (!match)
        return sig_set(s, SMM_SIG_POLICY, "signer is not the From address");
    return SMM_SIG_PASS;
}

/* The signingTime signed attribute, or 0. */
static time_t
signing_time(CMS_SignerInfo *si)
{
    int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    X509_ATTRIBUTE *a = idx >= 0 ? CMS_signed_get_attr(si, idx) : NULL;
    ASN1_TYPE *t = a != NULL ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    struct tm tm;

    if (t == NULL ||
        (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME) ||
        ASN1_TIME_to_tm((ASN1_TIME *)t->value.asn1_string, &tm) != 1) {
        ERR_clear_error();
        return 0;
    }
    return timegm(&tm);
}

/* One SignerInfo: math, chain, policy.  The content went through cmsbio. */
static void
check_signer(CMS_SignerInfo *si, BIO *cmsbio, STACK_OF(X509) * certs,
             const struct smm_verify_opts *o, struct smm_sig *s)
{
    X509 *x = NULL;
    int i;

    for (i = 0; x == NULL && i < sk_X509_num(certs); i++)
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0)
            x = sk_X509_value(certs, i);
    if (x == NULL) {
        sig_set(s, SMM_SIG_NEUTRAL, "signer certificate not available");
        return;
    }
    if (X509_up_ref(x))
        s->signer = x;
    s->signing_time = signing_time(si);
    CMS_SignerInfo_set1_signer_cert(si, x);
    if (CMS_signed_get_attr_count(si) >= 0 && CMS_SignerInfo_verify(si) != 1) {
        sig_set(s, SMM_SIG_FAIL, "bad signature");
        return;
    }
    if (CMS_SignerInfo_verify_content(si, cmsbio) != 1) {
        sig_set(s, SMM_SIG_FAIL, "content does not match the signature");
        return;
    }
    if (check_chain(x, certs, o, s) != SMM_SIG_PASS ||
        check_policy(si, x, o, s) != SMM_SIG_PASS)
        return;
    sig_set(s, SMM_SIG_PASS, "good");
    s->enc_cert = enc_key_pref(si, certs);
    s->caps = signer_caps(si);
}

smm_status
smm_cms_verify(CMS_ContentInfo *cms, BIO *dcont, BIO *out,
               const struct smm_verify_opts *o, struct smm_sig *res,
               struct smm_err *err)
{
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
    STACK_OF(X509) *certs = NULL;
    BIO *cmsbio = NULL;
    struct smm_sig one;
    char buf[16384];
    int i, n;
    smm_status st = SMM_OK;

    memset(res, 0, sizeof(*res));
    sig_set(res, SMM_SIG_PERMERROR, "no signer");
    ERR_clear_error();
    if (o->msg_certs != NULL) { /* parsed apart (smm_cms_parse_cached) */
        if ((certs = sk_X509_new_null()) == NULL)
            return smm_err_set(err, SMM_ENOMEM, "out of memory");
        for (i = 0; i < sk_X509_num(o->msg_certs); i++) {
            X509 *x = sk_X509_value(o->msg_certs, i);
            if (X509_up_ref(x) && !sk_X509_push(certs, x))
                X509_free(x);
        }
    } else if ((certs = CMS_get1_certs(cms)) == NULL &&
               (certs = sk_X509_new_null()) == NULL) {
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    for (i = 0; o->extra != NULL && i < sk_X509_num(o->extra); i++) {
        X509 *x = sk_X509_value(o->extra, i);
        if (X509_up_ref(x) && !sk_X509_push(certs, x))
            X509_free(x);
    }
    if ((cmsbio = CMS_dataInit(cms, dcont)) == NULL) {
        sig_set(res, SMM_SIG_PERMERROR, "signed content missing");
        goto out;
    }
    while ((n = BIO_read(cmsbio, buf, sizeof(buf))) > 0)
        if (out != NULL && BIO_write(out, buf, n) != n) {
            st = smm_err_ossl(err, SMM_EIO, "writing the signed content");
            goto out;
        }
    if (n < 0) {
        sig_set(res, SMM_SIG_PERMERROR, "signed content unreadable");
        goto out;
    }
    for (i = 0; i < sk_CMS_SignerInfo_num(sis); i++) {
        memset(&one, 0, sizeof(one));
        check_signer(sk_CMS_SignerInfo_value(sis, i), cmsbio, certs, o, &one);
        if (i == 0 || one.result < res->result) {
            smm_sig_clear(res);
            *res = one;
        } else {
            smm_sig_clear(&one);
        }
    }
    if (res->result == SMM_SIG_PASS) {
        res->certs = certs;
        certs = NULL;
    }
out:
    free_upto(cmsbio, dcont);
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return st;
}
