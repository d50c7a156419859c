/*
 * smm_certblob -- directory attribute parsing; see smm_certblob.h.
 */
#include "config.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "smm_certblob.h"

#define BLOB_MAX (1024 * 1024)

static int
push(STACK_OF(X509) * sk, X509 *x)
{
    if (!sk_X509_push(sk, x)) {
        X509_free(x);
        return 0;
    }
    return 1;
}

/* A whole DER certificate (no trailing bytes). */
static X509 *
der_cert(const unsigned char *p, size_t len)
{
    const unsigned char *q = p;
    X509 *x;

    if (len == 0 || len > BLOB_MAX || p[0] != 0x30)
        return NULL;
    x = d2i_X509(NULL, &q, (long)len);
    if (x != NULL && (size_t)(q - p) != len) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

static int
parse_pkcs7(const unsigned char *p, size_t len, STACK_OF(X509) * out)
{
    const unsigned char *q = p;
    PKCS7 *p7 = d2i_PKCS7(NULL, &q, (long)len);
    STACK_OF(X509) *certs = NULL;
    int i, n = 0;

    if (p7 == NULL)
        return 0;
    if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
        certs = p7->d.sign->cert;
    for (i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        if (X509_up_ref(x) && push(out, x))
            n++;
    }
    PKCS7_free(p7);
    return n;
}

static int
parse_pem(const unsigned char *p, size_t len, STACK_OF(X509) * out)
{
    BIO *b = BIO_new_mem_buf(p, (int)len);
    X509 *x;
    int n = 0;

    if (b == NULL)
        return 0;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (push(out, x))
            n++;
    BIO_free(b);
    return n;
}

static int
parse_ms_tlv(const unsigned char *p, size_t len, STACK_OF(X509) * out)
{
    size_t off = 0, rlen;
    X509 *x;
    int n = 0;

    while (off + 4 <= len) {
        rlen = (size_t)p[off + 2] | ((size_t)p[off + 3] << 8);
        if (rlen < 4 || off + rlen > len)
            break; /* not (or no longer) TLV */
        if ((x = der_cert(p + off + 4, rlen - 4)) != NULL && push(out, x))
            n++;
        off += rlen;
    }
    return n;
}

/* Append the certificates in an attribute value; returns how many. */
int
smm_certblob_parse(const unsigned char *p, size_t len, STACK_OF(X509) * out)
{
    X509 *x;
    int n = 0;

    if (p == NULL || len == 0 || len > BLOB_MAX)
        return 0;
    if (p[0] == 0x30) {
        if ((x = der_cert(p, len)) != NULL)
            n = push(out, x);
        else
            n = parse_pkcs7(p, len, out);
    } else if (len > 11 && memcmp(p, "-----BEGIN ", 11) == 0) {
        n = parse_pem(p, len, out);
    } else {
        n = parse_ms_tlv(p, len, out);
    }
    ERR_clear_error();
    return n;
}

/* A word for the log and smime-milter-ctl lookup. */
const char *
smm_certblob_format(const unsigned char *p, size_t len)
{
    const unsigned char *q = p;
    X509 *x;
    PKCS7 *p7;

    if (p == NULL || len == 0)
        return "empty";
    if (p[0] == 0x30) {
        if ((x = der_cert(p, len)) != NULL) {
            X509_free(x);
            return "DER";
        }
        if ((p7 = d2i_PKCS7(NULL, &q, (long)len)) != NULL) {
            PKCS7_free(p7);
            return "PKCS#7";
        }
        ERR_clear_error();
        return "unknown DER";
    }
    if (len > 11 && memcmp(p, "-----BEGIN ", 11) == 0)
        return "PEM";
    return "MS-TLV";
}

/* The capabilities a signed PKCS#7 blob advertises (0: none known). */
/* The SMM_CAP_* bits of an SMIMECapabilities list. */
unsigned
smm_smimecaps_bits(const STACK_OF(X509_ALGOR) * caps)
{
    unsigned out = SMM_CAP_KNOWN;
    int j, nid;

    for (j = 0; j < sk_X509_ALGOR_num(caps); j++) {
        const ASN1_OBJECT *obj;
        X509_ALGOR_get0(&obj, NULL, NULL, sk_X509_ALGOR_value(caps, j));
        nid = OBJ_obj2nid(obj);
        if (nid == NID_aes_128_gcm)
            out |= SMM_CAP_GCM128;
        else if (nid == NID_aes_256_gcm)
            out |= SMM_CAP_GCM256;
    }
    return out;
}

unsigned
smm_certblob_caps(const unsigned char *p, size_t len)
{
    const unsigned char *q = p;
    PKCS7 *p7;
    STACK_OF(PKCS7_SIGNER_INFO) * sis;
    STACK_OF(X509_ALGOR) * caps;
    unsigned out = 0;
    int i;

    if (p == NULL || len == 0 || len > BLOB_MAX || p[0] != 0x30)
        return 0;
    if ((p7 = d2i_PKCS7(NULL, &q, (long)len)) == NULL) {
        ERR_clear_error();
        return 0;
    }
    if (PKCS7_type_is_signed(p7) && (sis = PKCS7_get_signer_info(p7)) != NULL) {
        for (i = 0; i < sk_PKCS7_SIGNER_INFO_num(sis); i++) {
            caps = PKCS7_get_smimecap(sk_PKCS7_SIGNER_INFO_value(sis, i));
            if (caps == NULL)
                continue;
            out |= smm_smimecaps_bits(caps);
            sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
        }
    }
    PKCS7_free(p7);
    ERR_clear_error();
    return out;
}
