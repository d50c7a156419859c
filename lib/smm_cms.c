/*
 * smm_cms -- CMS signing; see smm_cms.h.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "smm_cms.h"
#include "smm_log.h"

/* id-aa-encrypKeyPref (RFC 8551 2.5.3) */
#define OID_ENCRYPT_KEY_PREF "1.2.840.113549.1.9.16.2.11"

/*
 * Once per process, before threads: the default provider, plus the legacy
 * one when present so that PKCS#12 files exported by older Windows and
 * macOS (RC2, 3DES) can be read.
 */
static OSSL_PROVIDER *prov_default, *prov_legacy;

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
    return SMM_OK;
}

/* At exit: release what smm_crypto_init() loaded. */
void
smm_crypto_done(void)
{
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

smm_status
smm_cms_sign(const struct smm_key *signer, const struct smm_key *enc,
             BIO *content, time_t signing_time, unsigned char **der,
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
    if (!CMS_final(cms, content, NULL, flags)) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_final");
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
smm_cms_encrypt(STACK_OF(X509) * recips, int cipher, int oaep, BIO *content,
                unsigned char **der, size_t *derlen, struct smm_err *err)
{
    CMS_ContentInfo *cms = NULL;
    CMS_RecipientInfo *ri;
    EVP_PKEY_CTX *pctx;
    unsigned int flags = CMS_BINARY | CMS_PARTIAL;
    smm_status st = SMM_OK;
    int i, len;

    *der = NULL;
    *derlen = 0;
    ERR_clear_error();
    if ((cms = CMS_encrypt(NULL, NULL, cipher_of(cipher), flags)) == NULL) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_encrypt");
        goto out;
    }
    for (i = 0; i < sk_X509_num(recips); i++) {
        X509 *x = sk_X509_value(recips, i);
        EVP_PKEY *pk = X509_get0_pubkey(x);
        int rsa = pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA;
        ri = CMS_add1_recipient_cert(cms, x, rsa && oaep ? CMS_KEY_PARAM : 0);
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
    if (!CMS_final(cms, content, NULL, flags)) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "CMS_final (encrypt)");
        goto out;
    }
    if ((len = i2d_CMS_ContentInfo(cms, der)) <= 0) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "i2d_CMS_ContentInfo");
        goto out;
    }
    *derlen = (size_t)len;
out:
    CMS_ContentInfo_free(cms);
    return st;
}
