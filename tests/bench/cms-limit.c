/*
 * cms-limit -- the physical limit: the same S/MIME work the milter does,
 * on the same bytes, in process with OpenSSL alone, keys and certificates
 * decoded once and shared by every thread.
 *
 *   cms-limit -K PKIDIR -m sign|sign-encrypt|decrypt-verify
 *       [-S BODY-BYTES] [-c THREADS] [-R RECIPIENTS] [-n OPS | -d SECONDS]
 *       [-T]
 *
 * sign            CMS_sign (detached, SHA-256, alice with her chain) of the
 *                 text entity, assembled as multipart/signed (base64);
 * sign-encrypt    that, then CMS_encrypt (AES-256-CBC) of the signed entity
 *                 to R recipients (bob, dave; default 2), base64;
 * decrypt-verify  base64-decode, CMS_decrypt with bob's key, split the
 *                 multipart/signed, CMS_verify against trust.pem -- of a
 *                 message signed by alice and encrypted to bob, built once.
 *
 * With -T every thread decodes its own copies of the keys, certificates
 * and trust store (OpenSSL 3.0 serialises threads on locks inside shared
 * objects, such as the X509_STORE lookups); without it they share one.
 * The text is the one milter-load sends (tests/bench/bench-mail.c).
 * Prints one line: mode size threads ops seconds msgs_per_s cpu_ms_per_op
 * (user + system time of all threads per operation).  Exit 1 if
 * an operation fails.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench-mail.h"

enum mode { SIGN, SIGN_ENCRYPT, DECRYPT_VERIFY };

static struct {
    enum mode mode;
    struct bm_pki pki;
    STACK_OF(X509) * rcpts;
    struct bm_buf text, entity, enveloped;
    const char *pkidir;
    int per_thread;
    long ops;
    double seconds, deadline;
} cfg;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long next_op, done_ops, failed;

static int
one(const struct bm_pki *k, STACK_OF(X509) * rcpts, char *why)
{
    struct bm_buf sig = {0}, enc = {0};
    int rc;

    switch (cfg.mode) {
    case SIGN:
        rc = bm_sign(k, cfg.entity.p, cfg.entity.len, &sig, why);
        break;
    case SIGN_ENCRYPT:
        rc = bm_sign(k, cfg.entity.p, cfg.entity.len, &sig, why);
        if (rc == 0)
            rc = bm_encrypt(rcpts, sig.p, sig.len, &enc, why);
        break;
    default:
        rc = bm_check_enveloped(
            k, "application/pkcs7-mime; smime-type=enveloped-data",
            cfg.enveloped.p, cfg.enveloped.len, cfg.text.p, cfg.text.len, 1,
            why);
    }
    bm_buf_free(&sig);
    bm_buf_free(&enc);
    return rc;
}

/* the first n recipient certificates of k (not owned) */
static STACK_OF(X509) * first_rcpts(const struct bm_pki *k, long n)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    long i;

    for (i = 0; sk != NULL && i < n; i++)
        sk_X509_push(sk, sk_X509_value(k->rcpts, (int)i));
    return sk;
}

static void *
worker(void *arg)
{
    struct bm_pki own, *k = &cfg.pki;
    STACK_OF(X509) *rcpts = cfg.rcpts;
    char why[BM_WHY];
    long n;

    (void)arg;
    if (cfg.per_thread) { /* this thread's own copies of every object */
        if (bm_pki_load(cfg.pkidir, &own, why) != 0) {
            fprintf(stderr, "cms-limit: %s\n", why);
            return NULL;
        }
        k = &own;
        rcpts = first_rcpts(k, sk_X509_num(cfg.rcpts));
    }
    for (;;) {
        pthread_mutex_lock(&lock);
        n = next_op++;
        pthread_mutex_unlock(&lock);
        if (cfg.seconds > 0 ? bm_now() >= cfg.deadline : n >= cfg.ops)
            break;
        if (one(k, rcpts, why) != 0) {
            pthread_mutex_lock(&lock);
            if (failed++ == 0)
                fprintf(stderr, "cms-limit: %s\n", why);
            pthread_mutex_unlock(&lock);
            break;
        }
        pthread_mutex_lock(&lock);
        done_ops++;
        pthread_mutex_unlock(&lock);
    }
    if (cfg.per_thread) {
        sk_X509_free(rcpts);
        bm_pki_free(&own);
    }
    return NULL;
}

/* user + system time of the process so far */
static double
cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
usage(void)
{
    fprintf(stderr, "usage: cms-limit -K PKIDIR -m sign|sign-encrypt|"
                    "decrypt-verify [-S BODY-BYTES] [-c THREADS]\n"
                    "  [-R RECIPIENTS] [-n OPS | -d SECONDS] [-T]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const char *const names[] = {"sign", "sign-encrypt",
                                        "decrypt-verify"};
    const char *pki = NULL, *mode = NULL;
    long threads = 1, nr = 2, i;
    size_t size = 20480;
    struct bm_buf sig = {0};
    char why[BM_WHY];
    double secs, cpu;
    int c;

    cfg.ops = 1000;
    while ((c = getopt(argc, argv, "K:m:S:c:R:n:d:T")) != -1) {
        switch (c) {
        case 'K':
            cfg.pkidir = pki = optarg;
            break;
        case 'm':
            mode = optarg;
            break;
        case 'S':
            size = (size_t)atol(optarg);
            break;
        case 'c':
            threads = atol(optarg);
            break;
        case 'R':
            nr = atol(optarg);
            break;
        case 'n':
            cfg.ops = atol(optarg);
            break;
        case 'd':
            cfg.seconds = atof(optarg);
            break;
        case 'T':
            cfg.per_thread = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || pki == NULL || mode == NULL || threads < 1 ||
        threads > 1024 || nr < 1)
        usage();
    for (i = 0; i < 3 && strcmp(mode, names[i]) != 0; i++)
        ;
    if (i == 3)
        usage();
    cfg.mode = (enum mode)i;
    if (bm_pki_load(pki, &cfg.pki, why) != 0) {
        fprintf(stderr, "cms-limit: %s\n", why);
        return 2;
    }
    if (nr > sk_X509_num(cfg.pki.rcpts)) {
        fprintf(stderr, "cms-limit: at most %d recipients\n",
                sk_X509_num(cfg.pki.rcpts));
        return 2;
    }
    cfg.rcpts = first_rcpts(&cfg.pki, nr);
    bm_text(&cfg.text, size);
    bm_entity(&cfg.entity, cfg.text.p, cfg.text.len);
    if (cfg.mode == DECRYPT_VERIFY) {
        /* signed by alice, encrypted to bob: milter-load's inbound input */
        STACK_OF(X509) *bob = sk_X509_new_null();
        sk_X509_push(bob, cfg.pki.rcpt);
        if (bm_sign(&cfg.pki, cfg.entity.p, cfg.entity.len, &sig, why) != 0 ||
            bm_encrypt(bob, sig.p, sig.len, &cfg.enveloped, why) != 0) {
            fprintf(stderr, "cms-limit: %s\n", why);
            return 2;
        }
        sk_X509_free(bob);
    }
    cpu = cpu_seconds();
    if ((secs = bm_run(threads, worker, cfg.seconds, &cfg.deadline)) < 0) {
        fprintf(stderr, "cms-limit: cannot start the threads\n");
        return 2;
    }
    cpu = cpu_seconds() - cpu;
    printf("mode=%s size=%zu threads=%ld ops=%ld seconds=%.2f "
           "msgs_per_s=%.1f cpu_ms_per_op=%.3f\n",
           names[cfg.mode], size, threads, done_ops, secs,
           (double)done_ops / secs,
           done_ops > 0 ? cpu * 1e3 / (double)done_ops : 0.0);
    sk_X509_free(cfg.rcpts);
    bm_buf_free(&sig);
    bm_buf_free(&cfg.text);
    bm_buf_free(&cfg.entity);
    bm_buf_free(&cfg.enveloped);
    bm_pki_free(&cfg.pki);
    return failed > 0 ? 1 : 0;
}
