/*
 * lookup-bench CONF ADDRESS [N] -- recipient lookup speed.
 *
 * Prints, from one run: uncached lookup latency (every source asked,
 * cache bypassed: local store, LDAP, harvested) as p50/p99/max over N
 * lookups, then cached lookups per second on 1 and 2 threads.  Not a
 * test: a benchmark whose figures go into the notes.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gmime/gmime.h>

#include "smm_cms.h"
#include "smm_diag.h"
#include "smm_resolver.h"
#include "smm_state.h"

static struct smm_state *st;
static const char *addr;
static long per_thread;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void *
cached_loop(void *arg)
{
    struct smm_lookup l;
    struct smm_err err;
    long i;
    time_t t = time(NULL);

    (void)arg;
    for (i = 0; i < per_thread; i++) {
        if (smm_resolve(st, addr, t, 0, &l, &err) != SMM_OK || !l.cached) {
            fprintf(stderr, "lookup-bench: not cached\n");
            exit(1);
        }
        smm_lookup_free(&l);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    struct smm_diag diag = {0};
    struct smm_err err;
    struct smm_lookup l;
    long n, i;
    double *lat, t0, t1;
    pthread_t th[2];
    int threads;

    if (argc < 3) {
        fprintf(stderr, "usage: lookup-bench CONF ADDRESS [N]\n");
        return 2;
    }
    addr = argv[2];
    n = argc > 3 ? atol(argv[3]) : 200;
    g_mime_init();
    smm_crypto_init(&err);
    if (smm_state_load(argv[1], &st, &diag, &err) != SMM_OK) {
        fprintf(stderr, "lookup-bench: %s\n", err.msg);
        return 1;
    }
    lat = calloc((size_t)n, sizeof(*lat));
    for (i = 0; i < n; i++) {
        t0 = now_s();
        if (smm_resolve(st, addr, time(NULL), SMM_RESOLVE_ALL, &l, &err) !=
                SMM_OK ||
            sk_X509_num(l.usable) == 0) {
            fprintf(stderr, "lookup-bench: %s has no usable certificate\n",
                    addr);
            return 1;
        }
        lat[i] = (now_s() - t0) * 1e3;
        smm_lookup_free(&l);
    }
    qsort(lat, (size_t)n, sizeof(*lat), dcmp);
    printf("uncached lookup (all sources, %s): p50 %.2f ms  p99 %.2f ms  "
           "max %.2f ms  (n=%ld)\n",
           addr, lat[n / 2], lat[(n * 99) / 100], lat[n - 1], n);
    /* prime the cache, then hammer it */
    smm_resolve(st, addr, time(NULL), 0, &l, &err);
    smm_lookup_free(&l);
    for (threads = 1; threads <= 2; threads++) {
        per_thread = 1000000;
        t0 = now_s();
        for (i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, cached_loop, NULL);
        for (i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        t1 = now_s();
        printf("cached lookups, %d thread%s: %.0f /s\n", threads,
               threads > 1 ? "s" : "",
               (double)per_thread * threads / (t1 - t0));
    }
    free(lat);
    smm_state_unref(st);
    smm_diag_free(&diag);
    smm_crypto_done();
    return 0;
}
