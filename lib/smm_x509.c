/*
 * smm_x509 -- certificate helpers; see smm_x509.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "smm_x509.h"

static smm_status
strlist_add_folded(struct smm_strlist *l, const unsigned char *s, int len)
{
    char **nv, *p;
    size_t i;

    if (len <= 0 || memchr(s, '\0', (size_t)len) != NULL)
        return SMM_OK; /* embedded NUL: never a valid address */
    if ((p = strndup((const char *)s, (size_t)len)) == NULL)
        return SMM_ENOMEM;
    smm_addr_fold(p);
    for (i = 0; i < l->n; i++)
        if (strcmp(l->v[i], p) == 0) {
            free(p);
            return SMM_OK;
        }
    if ((nv = realloc(l->v, (l->n + 1) * sizeof(*nv))) == NULL) {
        free(p);
        return SMM_ENOMEM;
    }
    l->v = nv;
    l->v[l->n++] = p;
    return SMM_OK;
}

/*
 * Append the mail addresses the certificate names: every SAN rfc822Name;
 * when there is none, the subject's emailAddress attributes.
 */
smm_status
smm_x509_addresses(X509 *x, struct smm_strlist *out)
{
    GENERAL_NAMES *gens;
    GENERAL_NAME *g;
    X509_NAME *subj;
    X509_NAME_ENTRY *ne;
    ASN1_STRING *s;
    int i, found = 0, pos;
    smm_status st = SMM_OK;

    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_EMAIL)
            continue;
        s = g->d.rfc822Name;
        found = 1;
        if ((st = strlist_add_folded(out, ASN1_STRING_get0_data(s),
                                     ASN1_STRING_length(s))) != SMM_OK)
            break;
    }
    GENERAL_NAMES_free(gens);
    if (st != SMM_OK || found)
        return st;
    subj = X509_get_subject_name(x);
    pos = -1;
    while ((pos = X509_NAME_get_index_by_NID(subj, NID_pkcs9_emailAddress,
                                             pos)) >= 0) {
        ne = X509_NAME_get_entry(subj, pos);
        s = X509_NAME_ENTRY_get_data(ne);
        if ((st = strlist_add_folded(out, ASN1_STRING_get0_data(s),
                                     ASN1_STRING_length(s))) != SMM_OK)
            break;
    }
    return st;
}

/* S/MIME capabilities of the certificate per its key usage and EKU. */
unsigned
smm_x509_usage(X509 *x)
{
    uint32_t ku, xku, flags;
    unsigned u = 0;
    EVP_PKEY *pk;
    int is_ec;

    flags = X509_get_extension_flags(x); /* also caches the extensions */
    ku = X509_get_key_usage(x);
    xku = X509_get_extended_key_usage(x);
    pk = X509_get0_pubkey(x);
    is_ec = pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC;
    if (!(flags & EXFLAG_KUSAGE) ||
        (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)))
        u |= SMM_USE_SIGN;
    if (!(flags & EXFLAG_KUSAGE) || (!is_ec && (ku & KU_KEY_ENCIPHERMENT)) ||
        (is_ec && (ku & KU_KEY_AGREEMENT)))
        u |= SMM_USE_ENCRYPT;
    if (!(flags & EXFLAG_XKUSAGE) || (xku & (XKU_SMIME | XKU_ANYEKU)))
        u |= SMM_USE_EMAIL;
    return u;
}

int
smm_x509_valid_at(X509 *x, time_t t)
{
    return X509_cmp_time(X509_get0_notBefore(x), &t) <= 0 &&
           X509_cmp_time(X509_get0_notAfter(x), &t) >= 0;
}

static time_t
asn1_time_to_time_t(const ASN1_TIME *at)
{
    struct tm tm;

    if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1)
        return 0;
    return timegm(&tm);
}

time_t
smm_x509_not_before(X509 *x)
{
    return asn1_time_to_time_t(X509_get0_notBefore(x));
}

time_t
smm_x509_not_after(X509 *x)
{
    return asn1_time_to_time_t(X509_get0_notAfter(x));
}

/* Upper-case hex serial, no separators ("01A4..."). */
char *
smm_x509_serial_hex(X509 *x)
{
    BIGNUM *bn;
    char *hex, *out;

    if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL)
        return NULL;
    hex = BN_bn2hex(bn);
    BN_free(bn);
    if (hex == NULL)
        return NULL;
    out = strdup(hex);
    OPENSSL_free(hex);
    return out;
}

/* RFC 2253-style one line ("CN=...,O=..."), UTF-8. */
char *
smm_x509_name_oneline(const X509_NAME *n)
{
    BIO *b;
    char *p, *out = NULL;
    long len;

    if ((b = BIO_new(BIO_s_mem())) == NULL)
        return NULL;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >=
        0) {
        len = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)len);
    }
    BIO_free(b);
    return out;
}

/* The subject and issuer as one line; the caller frees them. */
char *
smm_x509_subject(X509 *x)
{
    return smm_x509_name_oneline(X509_get_subject_name(x));
}

char *
smm_x509_issuer(X509 *x)
{
    return smm_x509_name_oneline(X509_get_issuer_name(x));
}

/* SHA-256 fingerprint, lower-case hex without separators. */
char *
smm_x509_fingerprint(X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen, i;
    char *out;

    if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1)
        return NULL;
    if ((out = malloc(mdlen * 2 + 1)) == NULL)
        return NULL;
    for (i = 0; i < mdlen; i++) {
        out[i * 2] = "0123456789abcdef"[md[i] >> 4];
        out[i * 2 + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[mdlen * 2] = '\0';
    return out;
}

/*
 * Mail addresses are compared without regard to ASCII case, the local part
 * too.  RFC 5321 2.4 lets a host tell "Bob" from "bob", but no mail system
 * in use does, Postfix folds case for its table lookups, and certificates
 * and directories spell addresses as they please: an exact local part
 * only made "Alice.Smith@example.org" miss the key of
 * "alice.smith@example.org".  Bytes over 127 are compared as they are.
 */
int
smm_addr_equal(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Fold an address in place to the form every index keeps: lower case. */
void
smm_addr_fold(char *a)
{
    for (; *a != '\0'; a++)
        if (*a >= 'A' && *a <= 'Z')
            *a = (char)(*a - 'A' + 'a');
}

/* A certificate address that names a whole domain: "example.org" or
 * "@example.org". */
int
smm_addr_is_domain(const char *a)
{
    const char *at = strchr(a, '@');

    return at == NULL || (at == a && a[1] != '\0');
}

/* The domain of an address ("example.org"), or the whole string. */
const char *
smm_addr_domain(const char *a)
{
    const char *at = strrchr(a, '@');

    return at != NULL ? at + 1 : a;
}
