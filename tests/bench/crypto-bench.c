/*
 * crypto-bench CONF SIGNER-ADDR RCPT1 RCPT2 [SIZE] [SECONDS]
 *
 * One run, two measurements on the same machine and the same bytes:
 *   pipeline  smm_pipeline_run() on a SIZE-byte text message from
 *             SIGNER-ADDR to RCPT1 and RCPT2 (canonicalise, sign, look the
 *             recipients up -- cached after the first message -- encrypt,
 *             assemble), as smime-milter does at end of message;
 *   limit     OpenSSL alone: CMS_sign (detached, SHA-256) of the same
 *             canonical bytes, then CMS_encrypt (AES-256-CBC) of the signed
 *             entity to the same certificates, with keys already decoded.
 * Prints messages per second for both and the ratio pipeline/limit.  Not
 * a test: a benchmark whose figures go into the notes.
 *
 * crypto-bench inbound CONF MSG ENC.der CONTENT SIG.der [SECONDS]
 *
 *   pipeline  smm_pipeline_run() inbound on MSG (sign-then-encrypt to a
 *             key of the store): decode, decrypt, find the multipart/signed
 *             inside, verify against the trust anchors, stamp;
 *   limit     OpenSSL alone: d2i + CMS_decrypt of ENC.der (the same
 *             EnvelopedData) with the already decoded key, then CMS_verify
 *             of SIG.der over CONTENT (the signed part) with the same
 *             trust store.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif

#include <gmime/gmime.h>
#include <openssl/cms.h>
#include <openssl/err.h>

#include "smm_cms.h"
#include "smm_diag.h"
#include "smm_pipeline.h"
#include "smm_resolver.h"
#include "smm_state.h"

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
make_message(const char *from, const char *r1, const char *r2, size_t size)
{
    static const char line[] = "The quick brown fox jumps over the lazy "
                               "dog, again and again and again.\r\n";
    char *m = malloc(size + 512);
    size_t o;

    o = (size_t)sprintf(m,
                        "From: <%s>\r\nTo: <%s>, <%s>\r\nSubject: bench\r\n"
                        "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
                        from, r1, r2);
    while (o + sizeof(line) - 1 < size) {
        memcpy(m + o, line, sizeof(line) - 1); /* (not the NUL) */
        o += sizeof(line) - 1;
    }
    m[o] = '\0';
    return m;
}

/* One message through smm_pipeline_run; 1 when the verdict is want and
 * the log holds need (NULL: anything). */
static int
run_pipeline(struct smm_state *s, const char *msg, enum smm_direction dir,
             const char *from, const char *r1, const char *r2, const char *want,
             const char *need)
{
    struct smm_message *m;
    struct smm_result r;
    struct smm_err err;
    FILE *fp = fmemopen((void *)msg, strlen(msg), "r");
    int ok;

    smm_message_new(s->cfg->max_memory_body, 0, "/tmp", &m, &err);
    smm_message_set_from(m, from);
    smm_message_add_rcpt(m, r1);
    if (r2 != NULL)
        smm_message_add_rcpt(m, r2);
    smm_message_read(fp, m, &err);
    fclose(fp);
    ok = smm_pipeline_run(s, m, dir, NULL, &r, &err) == SMM_OK &&
         r.verdict != NULL && strcmp(r.verdict, want) == 0 &&
         (need == NULL ||
          (r.log.data != NULL && strstr(r.log.data, need) != NULL));
    if (!ok)
        fprintf(stderr, "crypto-bench: pipeline: %s %s\n",
                r.verdict ? r.verdict : "-", r.log.data ? r.log.data : "");
    smm_result_free(&r);
    smm_message_free(m);
    return ok;
}

static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *b = NULL;
    long n;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0 || (b = malloc((size_t)n + 1)) == NULL ||
        fread(b, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "crypto-bench: cannot read %s\n", path);
        exit(1);
    }
    fclose(fp);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static int
run_inbound(struct smm_state *s, const char *msg)
{
    return run_pipeline(s, msg, SMM_DIR_INBOUND, "alice@example.org",
                        "bob@example.net", NULL, "decrypted+verified",
                        " sig1=pass");
}

static int
inbound_main(int argc, char **argv)
{
    struct smm_state *s;
    struct smm_diag diag = {0};
    struct smm_err err;
    const struct smm_key *k;
    unsigned char *msg, *enc, *content, *sig;
    size_t msglen, enclen, clen, siglen, it = 0;
    double secs = argc > 7 ? atof(argv[7]) : 3.0, t0, t, p_rate, l_rate;
    long n;

    if (smm_state_load(argv[2], &s, &diag, &err) != SMM_OK) {
        fprintf(stderr, "crypto-bench: %s\n", err.msg);
        return 1;
    }
    msg = slurp(argv[3], &msglen);
    enc = slurp(argv[4], &enclen);
    content = slurp(argv[5], &clen);
    sig = slurp(argv[6], &siglen);
    if (!run_inbound(s, (char *)msg))
        return 1;
    t0 = now_s();
    for (n = 0; (t = now_s()) - t0 < secs; n++)
        if (!run_inbound(s, (char *)msg))
            return 1;
    p_rate = (double)n / (t - t0);

    for (k = NULL; it < smm_keystore_count(s->ks) && k == NULL; it++)
        k = smm_keystore_get(s->ks, it);
    t0 = now_s();
    for (n = 0; (t = now_s()) - t0 < secs; n++) {
        const unsigned char *p = enc, *q = sig;
        CMS_ContentInfo *e = d2i_CMS_ContentInfo(NULL, &p, (long)enclen);
        CMS_ContentInfo *v = d2i_CMS_ContentInfo(NULL, &q, (long)siglen);
        BIO *out = BIO_new(BIO_s_mem());
        BIO *in = BIO_new_mem_buf(content, (int)clen);
        if (e == NULL || v == NULL ||
            CMS_decrypt(e, k->pkey, k->cert, NULL, out, CMS_BINARY) != 1 ||
            CMS_verify(v, NULL, s->trust->store, in, NULL, CMS_BINARY) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        CMS_ContentInfo_free(e);
        CMS_ContentInfo_free(v);
        BIO_free(out);
        BIO_free(in);
    }
    l_rate = (double)n / (t - t0);
    printf("decrypt+verify, %zu-byte message, 1 thread:\n"
           "  pipeline (smm_pipeline_run) %8.1f msg/s\n"
           "  limit (OpenSSL CMS alone)   %8.1f msg/s\n"
           "  ratio pipeline/limit        %8.2f\n",
           msglen, p_rate, l_rate, p_rate / l_rate);
    free(msg);
    free(enc);
    free(content);
    free(sig);
    smm_state_unref(s);
    smm_diag_free(&diag);
    return 0;
}

int
main(int argc, char **argv)
{
    struct smm_state *s;
    struct smm_diag diag = {0};
    struct smm_err err;
    struct smm_lookup l1, l2;
    const struct smm_key *k;
    STACK_OF(X509) * recips;
    size_t size = argc > 5 ? (size_t)atol(argv[5]) : 20480;
    double secs = argc > 6 ? atof(argv[6]) : 3.0, t0, t, p_rate, l_rate;
    char *msg, *body;
    long n;
    int i;

    /* the daemon's malloc settings (milter/mf_main.c tune_malloc): without
     * them every buffer past 128 KiB is a fresh mmap() and its page faults
     * dominate the 200 KB rows */
#if defined(HAVE_MALLOC_H) && defined(HAVE_MALLOPT) && defined(M_TRIM_THRESHOLD)
    (void)mallopt(M_MMAP_THRESHOLD, 2 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 4 << 20);
#endif
    g_mime_init();
    smm_crypto_init(&err);
    if (argc >= 7 && strcmp(argv[1], "inbound") == 0)
        return inbound_main(argc, argv);
    if (argc < 5) {
        fprintf(stderr, "usage: crypto-bench CONF SIGNER RCPT1 RCPT2 [SIZE] "
                        "[SECONDS]\n       crypto-bench inbound CONF MSG "
                        "ENC.der CONTENT SIG.der [SECONDS]\n");
        return 2;
    }
    if (smm_state_load(argv[1], &s, &diag, &err) != SMM_OK) {
        fprintf(stderr, "crypto-bench: %s\n", err.msg);
        return 1;
    }
    msg = make_message(argv[2], argv[3], argv[4], size);
    /* pipeline */
    if (!run_pipeline(s, msg, SMM_DIR_OUTBOUND, argv[2], argv[3], argv[4],
                      "signed+encrypted", NULL))
        return 1;
    t0 = now_s();
    for (n = 0; (t = now_s()) - t0 < secs; n++)
        if (!run_pipeline(s, msg, SMM_DIR_OUTBOUND, argv[2], argv[3], argv[4],
                          "signed+encrypted", NULL))
            return 1;
    p_rate = (double)n / (t - t0);

    /* the OpenSSL limit on the same bytes and keys */
    k = smm_keystore_signer(s->ks, argv[2], time(NULL), 0);
    if (k == NULL || smm_resolve(s, argv[3], time(NULL), 0, &l1, &err) ||
        smm_resolve(s, argv[4], time(NULL), 0, &l2, &err)) {
        fprintf(stderr, "crypto-bench: keys or certificates missing\n");
        return 1;
    }
    recips = sk_X509_new_null();
    for (i = 0; i < sk_X509_num(l1.usable); i++)
        sk_X509_push(recips, sk_X509_value(l1.usable, i));
    for (i = 0; i < sk_X509_num(l2.usable); i++)
        sk_X509_push(recips, sk_X509_value(l2.usable, i));
    body = strstr(msg, "\r\n\r\n") + 4;
    t0 = now_s();
    for (n = 0; (t = now_s()) - t0 < secs; n++) {
        BIO *in = BIO_new_mem_buf(body, (int)strlen(body));
        BIO *sig = BIO_new(BIO_s_mem());
        CMS_ContentInfo *c1, *c2;
        c1 =
            CMS_sign(k->cert, k->pkey, k->chain, in, CMS_DETACHED | CMS_BINARY);
        i2d_CMS_bio(sig, c1);
        (void)BIO_reset(in);
        /* the signed entity: content + signature, about what we send */
        BIO_write(sig, body, (int)strlen(body));
        c2 = CMS_encrypt(recips, sig, EVP_aes_256_cbc(), CMS_BINARY);
        if (c1 == NULL || c2 == NULL) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        CMS_ContentInfo_free(c1);
        CMS_ContentInfo_free(c2);
        BIO_free(in);
        BIO_free(sig);
    }
    l_rate = (double)n / (t - t0);
    printf("sign+encrypt, %zu bytes, 2 recipients, 1 thread:\n"
           "  pipeline (smm_pipeline_run) %8.1f msg/s\n"
           "  limit (OpenSSL CMS alone)   %8.1f msg/s\n"
           "  ratio pipeline/limit        %8.2f\n",
           size, p_rate, l_rate, p_rate / l_rate);
    sk_X509_free(recips);
    smm_lookup_free(&l1);
    smm_lookup_free(&l2);
    free(msg);
    smm_state_unref(s);
    smm_diag_free(&diag);
    smm_crypto_done();
    return 0;
}
