/*
 * bench-mail -- the messages and the S/MIME work shared by the benchmark
 * programs (milter-load, cms-limit), so that the load generator checks the
 * milter's output with the same code that measures the crypto limit, on
 * the same bytes.
 *
 * The test PKI is the one tests/pki/mkpki.sh writes: alice signs, bob and
 * dave-enc are the encryption recipients, bob's key decrypts, trust.pem
 * holds the root.  A struct bm_pki is loaded once and then only read, so
 * any number of threads may use it at the same time.  Buffers (struct
 * bm_buf) are owned by the caller and released with bm_buf_free().
 * Functions that can fail return 0 on success and -1 with a sentence in
 * the caller's `why` buffer (BM_WHY bytes).
 */
#ifndef BENCH_MAIL_H
#define BENCH_MAIL_H

#include <stddef.h>

#include <openssl/cms.h>
#include <openssl/x509.h>

#define BM_WHY 256
#define BM_TEXT_TYPE "text/plain; charset=us-ascii"

struct bm_pki {
    EVP_PKEY *signer_key; /* alice.pem */
    X509 *signer;
    STACK_OF(X509) * chain; /* the intermediate, sent with signatures */
    EVP_PKEY *rcpt_key;     /* bob.pem: decrypts what is sent to bob */
    X509 *rcpt;
    STACK_OF(X509) * rcpts; /* bob.crt, dave-enc.crt */
    X509_STORE *store;      /* trust.pem */
};

struct bm_buf {
    char *p;
    size_t len;
    size_t cap;
};

/* CLOCK_MONOTONIC in seconds */
double bm_now(void);
/* Run fn in n threads and wait for them; *deadline is set to now +
 * seconds just before they start.  Returns the seconds the run took, or
 * -1 when a thread could not be started (the others are still joined). */
double bm_run(long n, void *(*fn)(void *), double seconds, double *deadline);

int bm_pki_load(const char *dir, struct bm_pki *, char *why);
void bm_pki_free(struct bm_pki *);

void bm_buf_add(struct bm_buf *, const void *, size_t);
void bm_buf_str(struct bm_buf *, const char *);
void bm_buf_free(struct bm_buf *);

/* size bytes of text: CRLF-terminated lines of at most 76 characters */
void bm_text(struct bm_buf *, size_t size);
/* the plaintext entity: Content-Type: BM_TEXT_TYPE, blank line, text */
void bm_entity(struct bm_buf *, const char *text, size_t len);

/* A detached signature by the signer over entity (canonical, CRLF),
 * wrapped as a multipart/signed entity (Content-Type field, blank line,
 * the two parts) appended to out. */
int bm_sign(const struct bm_pki *, const char *entity, size_t len,
            struct bm_buf *out, char *why);
/* AES-256-CBC EnvelopedData of data to recipients, DER, base64 with CRLF
 * line ends, appended to out. */
int bm_encrypt(STACK_OF(X509) * rcpts, const char *data, size_t len,
               struct bm_buf *out, char *why);

/* The value of the first header field `name` in the header block at the
 * start of p (up to the blank line), unfolded, malloc'd; NULL if absent. */
char *bm_header(const char *p, size_t len, const char *name);
/* Offset of the body of the entity at p (after the blank line), or -1. */
long bm_body_offset(const char *p, size_t len);

/*
 * Checks of what a milter returned.  ct is the message's Content-Type
 * value, body its body.  want/wantlen is the text the innermost entity
 * must carry as its body.  With full set, the cryptography is checked too
 * (the signature verifies over the first part and chains to trust.pem;
 * bob's key decrypts), which costs about what the milter spent.
 */
int bm_check_signed(const struct bm_pki *, const char *ct, const char *body,
                    size_t len, const char *want, size_t wantlen, int full,
                    char *why);
int bm_check_enveloped(const struct bm_pki *, const char *ct, const char *body,
                       size_t len, const char *want, size_t wantlen, int full,
                       char *why);

#endif
