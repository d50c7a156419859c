/*
 * bench-mail -- messages and S/MIME work for the benchmarks; see
 * bench-mail.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "bench-mail.h"

#define BOUNDARY "=_bench_signed_7f3a9c"

static int why_set(char *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
why_set(char *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, BM_WHY, fmt, ap);
    va_end(ap);
    return -1;
}

/* why_set with the OpenSSL error, and the thread's error queue emptied */
static int
why_ssl(char *why, const char *what)
{
    char e[160];

    ERR_error_string_n(ERR_peek_last_error(), e, sizeof(e));
    ERR_clear_error();
    return why_set(why, "%s: %s", what, e);
}

void
bm_buf_add(struct bm_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        if ((b->p = realloc(b->p, cap)) == NULL) {
            fprintf(stderr, "bench: out of memory\n");
            abort();
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
bm_buf_str(struct bm_buf *b, const char *s)
{
    bm_buf_add(b, s, strlen(s));
}

void
bm_buf_free(struct bm_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

double
bm_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
bm_run(long n, void *(*fn)(void *), double seconds, double *deadline)
{
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    double t0 = bm_now();
    long i, started;

    if (th == NULL)
        return -1;
    *deadline = t0 + seconds;
    for (started = 0; started < n; started++)
        if (pthread_create(&th[started], NULL, fn, NULL) != 0)
            break;
    for (i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    return started == n ? bm_now() - t0 : -1;
}

/* a certificate (key == 0) or private key (key == 1) from dir/name */
static void *
read_pem(const char *dir, const char *name, int key, char *why)
{
    char path[4096];
    FILE *fp;
    void *p;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fp = fopen(path, "r")) == NULL) {
        why_set(why, "cannot open %s", path);
        return NULL;
    }
    p = key ? (void *)PEM_read_PrivateKey(fp, NULL, NULL, NULL)
            : (void *)PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    if (p == NULL)
        why_ssl(why, path);
    return p;
}

int
bm_pki_load(const char *dir, struct bm_pki *k, char *why)
{
    char path[4096];
    X509 *x;

    memset(k, 0, sizeof(*k));
    if ((k->signer = read_pem(dir, "alice.crt", 0, why)) == NULL ||
        (k->signer_key = read_pem(dir, "alice.key", 1, why)) == NULL ||
        (k->rcpt = read_pem(dir, "bob.crt", 0, why)) == NULL ||
        (k->rcpt_key = read_pem(dir, "bob.key", 1, why)) == NULL)
        goto err;
    k->chain = sk_X509_new_null();
    k->rcpts = sk_X509_new_null();
    if ((x = read_pem(dir, "inter.crt", 0, why)) == NULL ||
        !sk_X509_push(k->chain, x))
        goto err;
    if (!X509_up_ref(k->rcpt) || !sk_X509_push(k->rcpts, k->rcpt))
        goto err;
    if ((x = read_pem(dir, "dave-enc.crt", 0, why)) == NULL ||
        !sk_X509_push(k->rcpts, x))
        goto err;
    snprintf(path, sizeof(path), "%s/trust.pem", dir);
    if ((k->store = X509_STORE_new()) == NULL ||
        X509_STORE_load_file(k->store, path) != 1) {
        why_ssl(why, path);
        goto err;
    }
    return 0;
err:
    bm_pki_free(k);
    return -1;
}

void
bm_pki_free(struct bm_pki *k)
{
    EVP_PKEY_free(k->signer_key);
    X509_free(k->signer);
    sk_X509_pop_free(k->chain, X509_free);
    EVP_PKEY_free(k->rcpt_key);
    X509_free(k->rcpt);
    sk_X509_pop_free(k->rcpts, X509_free);
    X509_STORE_free(k->store);
    memset(k, 0, sizeof(*k));
}

void
bm_text(struct bm_buf *b, size_t size)
{
    static const char line[] = "The quick brown fox jumps over the lazy dog, "
                               "again and again and again.\r\n";
    size_t n = sizeof(line) - 1, rem;

    while (b->len + n <= size)
        bm_buf_add(b, line, n);
    rem = size - b->len;
    if (rem > 2) { /* a shorter last line, not ending in a space */
        bm_buf_add(b, line, rem - 2);
        if (b->p[b->len - 1] == ' ')
            b->p[b->len - 1] = '.';
        bm_buf_add(b, "\r\n", 2);
    }
}

void
bm_entity(struct bm_buf *b, const char *text, size_t len)
{
    bm_buf_str(b, "Content-Type: " BM_TEXT_TYPE "\r\n\r\n");
    bm_buf_add(b, text, len);
}

/* base64, 76 columns, CRLF after every line */
static void
b64(struct bm_buf *b, const unsigned char *p, size_t n)
{
    unsigned char line[80];
    size_t k;
    int l;

    while (n > 0) {
        k = n < 57 ? n : 57;
        l = EVP_EncodeBlock(line, p, (int)k);
        line[l++] = '\r';
        line[l++] = '\n';
        bm_buf_add(b, line, (size_t)l);
        p += k;
        n -= k;
    }
}

/* base64 text (line ends and white space ignored) to bytes */
static int
unb64(const char *p, size_t n, struct bm_buf *out, char *why)
{
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    unsigned char tmp[4096 + 64];
    int l, rc = 0;
    size_t k;

    if (ctx == NULL)
        return why_set(why, "out of memory");
    EVP_DecodeInit(ctx);
    for (; n > 0 && rc == 0; p += k, n -= k) {
        k = n < 4096 ? n : 4096;
        if (EVP_DecodeUpdate(ctx, tmp, &l, (const unsigned char *)p, (int)k) <
            0)
            rc = why_set(why, "bad base64");
        else
            bm_buf_add(out, tmp, (size_t)l);
    }
    if (rc == 0 && EVP_DecodeFinal(ctx, tmp, &l) < 0)
        rc = why_set(why, "bad base64 at the end");
    else if (rc == 0)
        bm_buf_add(out, tmp, (size_t)l);
    EVP_ENCODE_CTX_free(ctx);
    return rc;
}

static int
der_b64(CMS_ContentInfo *cms, struct bm_buf *out, char *why)
{
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);

    if (n <= 0)
        return why_ssl(why, "i2d_CMS_ContentInfo");
    b64(out, der, (size_t)n);
    OPENSSL_free(der);
    return 0;
}

int
bm_sign(const struct bm_pki *k, const char *entity, size_t len,
        struct bm_buf *out, char *why)
{
    BIO *in = BIO_new_mem_buf(entity, (int)len);
    CMS_ContentInfo *cms = NULL;
    int rc = -1;

    if (in == NULL || (cms = CMS_sign(k->signer, k->signer_key, k->chain, in,
                                      CMS_DETACHED | CMS_BINARY)) == NULL) {
        why_ssl(why, "CMS_sign");
        goto out;
    }
    bm_buf_str(out, "Content-Type: multipart/signed; "
                    "protocol=\"application/pkcs7-signature\"; "
                    "micalg=sha-256;\r\n\tboundary=\"" BOUNDARY "\"\r\n\r\n"
                    "This is an S/MIME signed message\r\n\r\n"
                    "--" BOUNDARY "\r\n");
    bm_buf_add(out, entity, len);
    bm_buf_str(out, "\r\n--" BOUNDARY "\r\n"
                    "Content-Type: application/pkcs7-signature; "
                    "name=\"smime.p7s\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n"
                    "Content-Disposition: attachment; "
                    "filename=\"smime.p7s\"\r\n\r\n");
    if (der_b64(cms, out, why) != 0)
        goto out;
    bm_buf_str(out, "\r\n--" BOUNDARY "--\r\n");
    rc = 0;
out:
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rc;
}

int
bm_encrypt(STACK_OF(X509) * rcpts, const char *data, size_t len,
           struct bm_buf *out, char *why)
{
    BIO *in = BIO_new_mem_buf(data, (int)len);
    CMS_ContentInfo *cms = NULL;
    int rc = -1;

    if (in == NULL ||
        (cms = CMS_encrypt(rcpts, in, EVP_aes_256_cbc(), CMS_BINARY)) == NULL)
        why_ssl(why, "CMS_encrypt");
    else
        rc = der_b64(cms, out, why);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rc;
}

/* end of the line starting at p (at its CRLF or LF), or NULL */
static const char *
eol(const char *p, const char *end)
{
    const char *q = memchr(p, '\n', (size_t)(end - p));

    if (q != NULL && q > p && q[-1] == '\r')
        q--;
    return q;
}

static const char *
next_line(const char *q, const char *end)
{
    if (q < end && *q == '\r')
        q++;
    return q < end ? q + 1 : end;
}

char *
bm_header(const char *p, size_t len, const char *name)
{
    const char *end = p + len, *q;
    size_t nl = strlen(name);
    struct bm_buf v = {0};

    while (p < end && (q = eol(p, end)) != NULL && q > p) {
        if (v.p == NULL && (size_t)(q - p) > nl && p[nl] == ':' &&
            strncasecmp(p, name, nl) == 0) {
            const char *s = p + nl + 1;
            while (s < q && (*s == ' ' || *s == '\t'))
                s++;
            bm_buf_add(&v, s, (size_t)(q - s));
            /* continuation lines */
            for (p = next_line(q, end); p < end && (*p == ' ' || *p == '\t') &&
                                        (q = eol(p, end)) != NULL;
                 p = next_line(q, end))
                bm_buf_add(&v, p, (size_t)(q - p));
            return v.p;
        }
        p = next_line(q, end);
    }
    return NULL;
}

long
bm_body_offset(const char *p, size_t len)
{
    const char *s = p, *end = p + len, *q;

    while (s < end && (q = eol(s, end)) != NULL) {
        if (q == s)
            return (long)(next_line(q, end) - p);
        s = next_line(q, end);
    }
    return -1;
}

/* the boundary parameter of a Content-Type value, malloc'd */
static char *
boundary(const char *ct)
{
    const char *p = ct, *e;

    while ((p = strcasestr(p, "boundary")) != NULL) {
        e = p + 8;
        while (*e == ' ' || *e == '\t')
            e++;
        if (*e++ != '=') {
            p += 8;
            continue;
        }
        while (*e == ' ' || *e == '\t')
            e++;
        if (*e == '"') {
            const char *z = strchr(++e, '"');
            return z != NULL ? strndup(e, (size_t)(z - e)) : NULL;
        }
        return strndup(e, strcspn(e, "; \t"));
    }
    return NULL;
}

static const char *
find(const char *hay, size_t n, const char *needle, size_t nn)
{
    return memmem(hay, n, needle, nn);
}

int
bm_check_signed(const struct bm_pki *k, const char *ct, const char *body,
                size_t len, const char *want, size_t wantlen, int full,
                char *why)
{
    const char *end = body + len, *p1, *e1, *p2, *e2;
    char *b = NULL, *delim = NULL, *pct = NULL;
    struct bm_buf der = {0};
    CMS_ContentInfo *cms = NULL;
    const unsigned char *dp;
    BIO *in = NULL;
    size_t dl;
    long off;
    int rc = -1;

    if (ct == NULL || strncasecmp(ct, "multipart/signed", 16) != 0 ||
        strcasestr(ct, "pkcs7-signature") == NULL) {
        why_set(why, "Content-Type is \"%.60s\", want multipart/signed",
                ct ? ct : "(none)");
        goto out;
    }
    if ((b = boundary(ct)) == NULL) {
        why_set(why, "multipart/signed without a boundary");
        goto out;
    }
    if ((delim = malloc(strlen(b) + 8)) == NULL)
        goto out;
    dl = (size_t)sprintf(delim, "\r\n--%s", b);
    /* the first delimiter may open the body (no preamble) */
    if (len >= dl - 2 && memcmp(body, delim + 2, dl - 2) == 0)
        p1 = body + dl - 2;
    else if ((p1 = find(body, len, delim, dl)) != NULL)
        p1 += dl;
    if (p1 == NULL || end - p1 < 2 || memcmp(p1, "\r\n", 2) != 0) {
        why_set(why, "no first part");
        goto out;
    }
    p1 += 2;
    if ((e1 = find(p1, (size_t)(end - p1), delim, dl)) == NULL ||
        end - (e1 + dl) < 2 || memcmp(e1 + dl, "\r\n", 2) != 0) {
        why_set(why, "no second part");
        goto out;
    }
    p2 = e1 + dl + 2;
    if ((e2 = find(p2, (size_t)(end - p2), delim, dl)) == NULL ||
        end - (e2 + dl) < 2 || memcmp(e2 + dl, "--", 2) != 0) {
        why_set(why, "no closing delimiter");
        goto out;
    }
    /* the signed part carries the original text, unencoded */
    off = bm_body_offset(p1, (size_t)(e1 - p1));
    if (off < 0 || (size_t)(e1 - p1 - off) != wantlen ||
        memcmp(p1 + off, want, wantlen) != 0) {
        why_set(why,
                "the signed part's body differs from the original "
                "(%ld bytes, want %zu)",
                off < 0 ? -1L : (long)(e1 - p1 - off), wantlen);
        goto out;
    }
    pct = bm_header(p2, (size_t)(e2 - p2), "Content-Type");
    off = bm_body_offset(p2, (size_t)(e2 - p2));
    if (pct == NULL || strcasestr(pct, "pkcs7-signature") == NULL || off < 0) {
        why_set(why, "the second part is not application/pkcs7-signature");
        goto out;
    }
    if (!full) {
        rc = 0;
        goto out;
    }
    if (unb64(p2 + off, (size_t)(e2 - p2 - off), &der, why) != 0)
        goto out;
    dp = (const unsigned char *)der.p;
    if ((cms = d2i_CMS_ContentInfo(NULL, &dp, (long)der.len)) == NULL) {
        why_ssl(why, "the signature does not parse");
        goto out;
    }
    in = BIO_new_mem_buf(p1, (int)(e1 - p1));
    if (CMS_verify(cms, NULL, k->store, in, NULL, CMS_BINARY) != 1) {
        why_ssl(why, "the signature does not verify");
        goto out;
    }
    rc = 0;
out:
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    bm_buf_free(&der);
    free(pct);
    free(delim);
    free(b);
    return rc;
}

/* Only base64 characters and line ends?  (strspn() with a set of 66
 * characters cost the load generator 5% of its time) */
static int
all_base64(const char *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=' ||
              c == '\r' || c == '\n'))
            return 0;
    }
    return 1;
}

int
bm_check_enveloped(const struct bm_pki *k, const char *ct, const char *body,
                   size_t len, const char *want, size_t wantlen, int full,
                   char *why)
{
    struct bm_buf der = {0};
    CMS_ContentInfo *cms = NULL;
    const unsigned char *dp;
    BIO *out = NULL;
    char *ict = NULL, *data;
    long n, off;
    int rc = -1;

    if (ct == NULL ||
        (strncasecmp(ct, "application/pkcs7-mime", 22) != 0 &&
         strncasecmp(ct, "application/x-pkcs7-mime", 24) != 0) ||
        strcasestr(ct, "enveloped-data") == NULL) {
        why_set(why, "Content-Type is \"%.60s\", want enveloped-data",
                ct ? ct : "(none)");
        goto out;
    }
    if (len == 0 || !all_base64(body, len)) {
        why_set(why, "the body is not base64");
        goto out;
    }
    if (!full) {
        rc = 0;
        goto out;
    }
    if (unb64(body, len, &der, why) != 0)
        goto out;
    dp = (const unsigned char *)der.p;
    if ((cms = d2i_CMS_ContentInfo(NULL, &dp, (long)der.len)) == NULL) {
        why_ssl(why, "the CMS does not parse");
        goto out;
    }
    if ((out = BIO_new(BIO_s_mem())) == NULL ||
        CMS_decrypt(cms, k->rcpt_key, k->rcpt, NULL, out, CMS_BINARY) != 1) {
        why_ssl(why, "bob's key does not decrypt it");
        goto out;
    }
    n = BIO_get_mem_data(out, &data);
    ict = bm_header(data, (size_t)n, "Content-Type");
    if ((off = bm_body_offset(data, (size_t)n)) < 0) {
        why_set(why, "the decrypted entity has no body");
        goto out;
    }
    rc = bm_check_signed(k, ict, data + off, (size_t)(n - off), want, wantlen,
                         1, why);
out:
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    bm_buf_free(&der);
    free(ict);
    return rc;
}
