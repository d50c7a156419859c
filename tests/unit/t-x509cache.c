/*
 * t-x509cache: certificates decoded once and found again by their DER,
 * and signatures parsed with their certificates taken from that cache:
 * the same certificates, in the same order, as OpenSSL's own parse.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "smm_cms.h"
#include "smm_x509cache.h"
#include "tap.h"
#include "testpki.h"

static unsigned char *
der_of(X509 *x, int *len)
{
    unsigned char *d = NULL;

    *len = i2d_X509(x, &d);
    return d;
}

/* DER of a detached SignedData by key/cert over "hello", carrying the
 * signer's certificate and then chain */
static unsigned char *
signature(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, int *len)
{
    BIO *in = BIO_new_mem_buf("hello\r\n", -1);
    CMS_ContentInfo *cms =
        CMS_sign(cert, key, chain, in, CMS_DETACHED | CMS_BINARY);
    unsigned char *d = NULL;

    *len = cms != NULL ? i2d_CMS_ContentInfo(cms, &d) : -1;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return d;
}

int
main(void)
{
    EVP_PKEY *ca_key = EVP_RSA_gen(2048), *key = EVP_RSA_gen(2048);
    X509 *ca = make_cert(ca_key, "Test CA", NULL, NULL, NULL, NULL, -1, 30);
    X509 *user = make_cert(key, "alice", ca, ca_key, "email:alice@example.org",
                           "digitalSignature,keyEncipherment", -1, 30);
    struct smm_x509cache *c = smm_x509cache_new(2);
    STACK_OF(X509) *chain = sk_X509_new_null(), *certs = NULL, *full = NULL;
    unsigned char *d1, *d2, *sig, junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    int l1, l2, sl, i, same;
    X509 *a, *b, *x;
    CMS_ContentInfo *cms, *whole;
    enum smm_cms_kind kind, kind2;
    struct smm_err err;

    d1 = der_of(ca, &l1);
    d2 = der_of(user, &l2);
    a = smm_x509cache_get(c, d1, (size_t)l1);
    b = smm_x509cache_get(c, d1, (size_t)l1);
    ok(a != NULL && a == b, "the same DER gives the same decoded object");
    ok(a != NULL && X509_cmp(a, ca) == 0, "and it is the certificate");
    X509_free(b);
    ok(smm_x509cache_get(c, junk, sizeof(junk)) == NULL,
       "DER that is not a certificate: NULL");
    ok(smm_x509cache_get(c, d1, (size_t)l1 - 1) == NULL,
       "a truncated certificate: NULL");
    /* a third certificate pushes the least recently used one out */
    x = smm_x509cache_get(c, d2, (size_t)l2);
    X509_free(x);
    sk_X509_push(chain, ca);
    x = make_cert(key, "bob", ca, ca_key, "email:bob@example.org",
                  "digitalSignature", -1, 30);
    {
        unsigned char *d3;
        int l3;
        X509 *y;

        d3 = der_of(x, &l3);
        y = smm_x509cache_get(c, d3, (size_t)l3);
        X509_free(y);
        OPENSSL_free(d3);
        b = smm_x509cache_get(c, d1, (size_t)l1);
        ok(b != NULL && b != a && X509_cmp(b, ca) == 0,
           "past the limit the oldest goes, and is decoded again");
        X509_free(b);
    }
    X509_free(x);
    X509_free(a);

    /* a signature: its certificates come from the cache, in order */
    sig = signature(key, user, chain, &sl);
    whole = smm_cms_parse(sig, (size_t)sl, &kind, &err);
    full = whole != NULL ? CMS_get1_certs(whole) : NULL;
    cms = smm_cms_parse_cached(sig, (size_t)sl, c, &kind2, &certs, &err);
    ok(cms != NULL && certs != NULL, "signature parsed apart from its "
                                     "certificates");
    ok(kind == SMM_CMS_SIGNED && kind2 == SMM_CMS_SIGNED, "both: SignedData");
    same = full != NULL && certs != NULL &&
           sk_X509_num(full) == sk_X509_num(certs);
    for (i = 0; same && i < sk_X509_num(full); i++)
        same = X509_cmp(sk_X509_value(full, i), sk_X509_value(certs, i)) == 0;
    ok(same, "the same %d certificates in the same order",
       full != NULL ? sk_X509_num(full) : -1);
    ok(cms != NULL && CMS_get1_certs(cms) == NULL,
       "the CMS comes without them");
    ok(cms != NULL && sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) == 1,
       "and with its signer");
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(whole);
    sk_X509_pop_free(certs, X509_free);
    /* a damaged certificate inside: no CMS, as a whole parse gives none */
    {
        unsigned char *bad = malloc((size_t)sl);
        unsigned char *at;

        memcpy(bad, sig, (size_t)sl);
        /* the signer's certificate: 30 82 xx xx, then its TBS SEQUENCE,
         * which becomes a NULL */
        at = memmem(bad, (size_t)sl, d2, (size_t)l2);
        ok(at != NULL, "the signer's certificate is in the signature");
        if (at != NULL)
            at[4] = 0x05;
        cms = smm_cms_parse_cached(bad, (size_t)sl, c, &kind2, &certs, &err);
        ok(at != NULL && cms == NULL && certs == NULL &&
               err.status == SMM_EPARSE,
           "a certificate that does not decode: unparseable");
        CMS_ContentInfo_free(cms);
        free(bad);
    }
    sk_X509_pop_free(full, X509_free);
    OPENSSL_free(sig);
    OPENSSL_free(d1);
    OPENSSL_free(d2);
    sk_X509_free(chain);
    smm_x509cache_free(c);
    X509_free(user);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return tap_done();
}
