/*
 * testpki.h -- certificates made in memory for the unit tests.
 *
 * make_cert(key, cn, issuer, issuer_key, san, key_usage, from, to) makes a
 * CA (issuer NULL: self-signed, CA:TRUE) or an end-entity certificate
 * (EKU emailProtection, the given SAN and key usage), valid from `from`
 * to `to` days relative to now.  The caller frees it.
 */
#ifndef TESTPKI_H
#define TESTPKI_H

#include <openssl/evp.h>
#include <openssl/x509v3.h>

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
          const char *san, const char *ku, long days_from, long days_to)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    static long serial = 1;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                               -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509_gmtime_adj(X509_getm_notBefore(x), days_from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), days_to * 86400);
    X509_set_pubkey(x, key);
    if (issuer == NULL) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
        add_ext(x, issuer, NID_key_usage, ku);
        add_ext(x, issuer, NID_ext_key_usage, "emailProtection");
        add_ext(x, issuer, NID_subject_alt_name, san);
    }
    X509_sign(x, ikey ? ikey : key, EVP_sha256());
    X509_NAME_free(n);
    return x;
}

#endif
