/*
 * cms-limit -- the physical limit: the same S/MIME work the milter does,
 * on the same bytes, in process with OpenSSL alone, keys and certificates
 * decoded once and shared by every thread.
 *
 *   cms-limit -K PKIDIR -m sign|sign-encrypt|decrypt-verify
 *       [-S BODY-BYTES] [-c THREADS] [-R RECIPIENTS] [-n OPS | -d SECONDS]
 *
 * sign            CMS_sign (detached, SHA-256, alice with her chain) of the
 *                 text entity, assembled as multipart/signed (base64);
 * sign-encrypt    that, then CMS_encrypt (AES-256-CBC) of the signed entity
 *                 to R recipients (bob, dave; default 2), base64;
 * decrypt-verify  base64-decode, CMS_decrypt with bob's key, split the
 *                 multipart/signed, CMS_verify against trust.pem -- of a
 *                 message signed by alice and encrypted to bob, built once.
 *
 * The text is the one milter-load sends (tests/bench/bench-mail.c).
 * Prints one line: mode size threads ops seconds msgs_per_s.  Exit 1 if
 * an operation fails.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench-mail.h"

enum mode { SIGN, SIGN_ENCRYPT, DECRYPT_VERIFY };

static struct {
    enum mode mode;
    struct bm_pki pki;
    STACK_OF(X509) * rcpts;
    struct bm_buf text, entity, enveloped;
    long ops;
    double seconds, deadline;
} cfg;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long next_op, done_ops, failed;

static int
one(char *why)
{
    struct bm_buf sig = {0}, enc = {0};
    int rc;

    switch (cfg.mode) {
    case SIGN:
        rc = bm_sign(&cfg.pki, cfg.entity.p, cfg.entity.len, &sig, why);
        break;
    case SIGN_ENCRYPT:
        rc = bm_sign(&cfg.pki, cfg.entity.p, cfg.entity.len, &sig, why);
        if (rc == 0)
            rc = bm_encrypt(cfg.rcpts, sig.p, sig.len, &enc, why);
        break;
    default:
        rc = bm_check_enveloped(
            &cfg.pki, "application/pkcs7-mime; smime-type=enveloped-data",
            cfg.enveloped.p, cfg.enveloped.len, cfg.text.p, cfg.text.len, 1,
            why);
    }
    bm_buf_free(&sig);
    bm_buf_free(&enc);
    return rc;
}

static void *
worker(void *arg)
{
    char why[BM_WHY];
    long n;

    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        n = next_op++;
        pthread_mutex_unlock(&lock);
        if (cfg.seconds > 0 ? bm_now() >= cfg.deadline : n >= cfg.ops)
            break;
        if (one(why) != 0) {
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
    return NULL;
}

static void
usage(void)
{
    fprintf(stderr, "usage: cms-limit -K PKIDIR -m sign|sign-encrypt|"
                    "decrypt-verify [-S BODY-BYTES] [-c THREADS]\n"
                    "  [-R RECIPIENTS] [-n OPS | -d SECONDS]\n");
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
    double secs;
    int c;

    cfg.ops = 1000;
    while ((c = getopt(argc, argv, "K:m:S:c:R:n:d:")) != -1) {
        switch (c) {
        case 'K':
            pki = optarg;
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
    cfg.rcpts = sk_X509_new_null();
    for (i = 0; i < nr; i++)
        sk_X509_push(cfg.rcpts, sk_X509_value(cfg.pki.rcpts, (int)i));
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
    if ((secs = bm_run(threads, worker, cfg.seconds, &cfg.deadline)) < 0) {
        fprintf(stderr, "cms-limit: cannot start the threads\n");
        return 2;
    }
    printf("mode=%s size=%zu threads=%ld ops=%ld seconds=%.2f "
           "msgs_per_s=%.1f\n",
           names[cfg.mode], size, threads, done_ops, secs,
           (double)done_ops / (secs));
    sk_X509_free(cfg.rcpts);
    bm_buf_free(&sig);
    bm_buf_free(&cfg.text);
    bm_buf_free(&cfg.entity);
    bm_buf_free(&cfg.enveloped);
    bm_pki_free(&cfg.pki);
    return failed > 0 ? 1 : 0;
}
