/*
 * t-cache-blob: the certificate cache (hits, negative entries, expiry,
 * LRU bound) and directory attribute formats (DER, PKCS#7 certs-only,
 * Microsoft TLV, PEM, junk).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "smm_cache.h"
#include "smm_certblob.h"
#include "tap.h"
#include "testpki.h"

static int
blob_count(const unsigned char *p, size_t n)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    int c = smm_certblob_parse(p, n, sk);

    if (c != sk_X509_num(sk))
        c = -1;
    sk_X509_pop_free(sk, X509_free);
    return c;
}

int
main(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    X509 *ca = make_cert(k, "CA", NULL, NULL, NULL, NULL, -1, 10);
    X509 *u = make_cert(k, "u", ca, k, "email:u@example.org", "keyEncipherment",
                        -1, 10);
    unsigned char *der = NULL, *p7der = NULL, *tlv, *pem;
    int dl, pl, i;
    STACK_OF(X509) *sk = sk_X509_new_null(), *got = NULL;
    PKCS7 *p7;
    BIO *b;
    struct smm_cache *c;
    struct smm_cache_stats st;
    char addr[64];
    long pemlen;
    unsigned caps = 0;
    static const unsigned char junk[] = "\x30\x82\xff\xff garbage";

    /* --- formats */
    dl = i2d_X509(u, &der);
    is_int(blob_count(der, (size_t)dl), 1, "DER certificate");
    is_str(smm_certblob_format(der, (size_t)dl), "DER", "DER named");
    sk_X509_push(sk, u);
    sk_X509_push(sk, ca);
    p7 = PKCS7_new();
    PKCS7_set_type(p7, NID_pkcs7_signed);
    PKCS7_content_new(p7, NID_pkcs7_data);
    PKCS7_add_certificate(p7, u);
    PKCS7_add_certificate(p7, ca);
    pl = i2d_PKCS7(p7, &p7der);
    is_int(blob_count(p7der, (size_t)pl), 2, "PKCS#7 certs-only: both");
    is_str(smm_certblob_format(p7der, (size_t)pl), "PKCS#7", "PKCS#7 named");
    /* MS TLV: a 4-byte-valued record, then the certificate record */
    tlv = malloc((size_t)dl + 12);
    memcpy(tlv, "\x01\x00\x08\x00\x01\x00\x00\x00", 8);
    tlv[8] = 0x03;
    tlv[9] = 0x00;
    tlv[10] = (unsigned char)((dl + 4) & 0xff);
    tlv[11] = (unsigned char)((dl + 4) >> 8);
    memcpy(tlv + 12, der, (size_t)dl);
    is_int(blob_count(tlv, (size_t)dl + 12), 1, "MS TLV: certificate record");
    is_str(smm_certblob_format(tlv, (size_t)dl + 12), "MS-TLV", "TLV named");
    is_int(blob_count(tlv, (size_t)dl + 5), 0, "truncated TLV: nothing");
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, u);
    PEM_write_bio_X509(b, ca);
    pemlen = BIO_get_mem_data(b, (char **)&pem);
    is_int(blob_count(pem, (size_t)pemlen), 2, "PEM text: both");
    is_int(blob_count(junk, sizeof(junk) - 1), 0, "junk: nothing, no crash");
    is_int(blob_count(der, (size_t)dl - 1), 0, "truncated DER: nothing");
    is_int(blob_count(NULL, 0), 0, "empty");

    /* --- cache */
    c = smm_cache_new(3);
    smm_cache_put(c, "a@Example.ORG", sk, 3, 1000);
    smm_cache_put(c, "none@example.org", NULL, 0, 1000);
    is_int(smm_cache_get(c, "a@example.org", 500, &got, &caps), 1,
           "positive hit (domain case-insensitive)");
    is_int(caps, 3, "capabilities come back with the hit");
    is_int(got != NULL ? sk_X509_num(got) : -1, 2, "both certificates back");
    sk_X509_pop_free(got, X509_free);
    is_int(smm_cache_get(c, "A@example.org", 500, &got, NULL), 1,
           "local part compared without regard to case: hit");
    sk_X509_pop_free(got, X509_free);
    is_int(smm_cache_get(c, "none@example.org", 500, &got, NULL), -1,
           "negative hit");
    is_int(smm_cache_get(c, "a@example.org", 1000, &got, NULL), 0,
           "expired entry: miss");
    for (i = 0; i < 5; i++) {
        snprintf(addr, sizeof(addr), "u%d@example.org", i);
        smm_cache_put(c, addr, sk, 0, 2000);
    }
    smm_cache_stats(c, &st);
    is_int(st.entries, 3, "bounded to CacheSize");
    ok(st.evictions >= 2, "least recently used evicted (%lu)", st.evictions);
    is_int(smm_cache_get(c, "u4@example.org", 1500, &got, NULL), 1,
           "newest entry kept");
    sk_X509_pop_free(got, X509_free);
    is_int(smm_cache_get(c, "u0@example.org", 1500, &got, NULL), 0,
           "oldest entry gone");
    smm_cache_stats(c, &st);
    ok(st.hits == 3 && st.negative_hits == 1 && st.misses >= 2,
       "stats: %lu hits, %lu negative, %lu misses", st.hits, st.negative_hits,
       st.misses);
    smm_cache_free(c);

    BIO_free(b);
    free(tlv);
    OPENSSL_free(der);
    OPENSSL_free(p7der);
    PKCS7_free(p7);
    sk_X509_free(sk);
    X509_free(u);
    X509_free(ca);
    EVP_PKEY_free(k);
    return tap_done();
}
