/*
 * mf_prefetch -- look recipients up while the message is still arriving.
 *
 * At RCPT TO of an outbound message the callback queues the address; a
 * few worker threads resolve it (smm_resolve), which leaves the answer in
 * the snapshot's certificate cache, so that the end-of-message pipeline
 * finds it there and directory latency overlaps with the DATA phase.
 * Each job holds a reference to the snapshot it was queued with, so a
 * reload never mixes states.  The queue is bounded: when it is full the
 * address is simply not prefetched (the pipeline looks it up itself).
 * mf_prefetch_wait() lets the end of message wait for lookups of its
 * recipients still queued or running, so a slow directory is asked once,
 * not twice.  An address whose answer is already in the cache is not
 * queued: handing it to a thread that finds it there costs more than the
 * lookup itself.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mf.h"
#include "smm_log.h"
#include "smm_cache.h"
#include "smm_resolver.h"

#define PF_QUEUE 1024
#define PF_THREADS 4

struct job {
    struct smm_state *state;
    char *addr;
};

static pthread_mutex_t pf_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pf_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pf_done = PTHREAD_COND_INITIALIZER;
static struct job pf_q[PF_QUEUE];
static size_t pf_head, pf_len;
static struct job pf_running[PF_THREADS]; /* addr NULL when idle */

static void *
worker(void *arg)
{
    struct job j;
    struct smm_lookup l;
    struct smm_err err;
    size_t me = (size_t)(uintptr_t)arg;
    char esc[320];
    smm_status st;

    for (;;) {
        pthread_mutex_lock(&pf_lock);
        while (pf_len == 0)
            pthread_cond_wait(&pf_cond, &pf_lock);
        j = pf_q[pf_head];
        pf_head = (pf_head + 1) % PF_QUEUE;
        pf_len--;
        pf_running[me] = j;
        pthread_mutex_unlock(&pf_lock);
        st = smm_resolve(j.state, j.addr, time(NULL), 0, &l, &err);
        smm_log_escape(esc, sizeof(esc), j.addr);
        if (st != SMM_OK)
            smm_log(SMM_LOG_DEBUG, "prefetch %s: %s", esc, err.msg);
        else
            smm_log(SMM_LOG_DEBUG, "prefetch %s: %d usable (%s)", esc,
                    smm_lookup_usable(&l),
                    l.source != NULL ? l.source : "none");
        smm_lookup_free(&l);
        pthread_mutex_lock(&pf_lock);
        pf_running[me].addr = NULL;
        pf_running[me].state = NULL;
        pthread_cond_broadcast(&pf_done);
        pthread_mutex_unlock(&pf_lock);
        smm_state_unref(j.state);
        free(j.addr);
    }
    return NULL;
}

/* Whether a lookup of addr with state s is queued or running (lock held). */
static int
pending(const struct smm_state *s, const char *addr)
{
    size_t i;

    for (i = 0; i < PF_THREADS; i++)
        if (pf_running[i].addr != NULL && pf_running[i].state == s &&
            strcmp(pf_running[i].addr, addr) == 0)
            return 1;
    for (i = 0; i < pf_len; i++) {
        const struct job *j = &pf_q[(pf_head + i) % PF_QUEUE];
        if (j->state == s && strcmp(j->addr, addr) == 0)
            return 1;
    }
    return 0;
}

/* Wait (up to seconds) until no lookup of these addresses is pending. */
void
mf_prefetch_wait(const struct smm_state *s, char *const *addrs, size_t n,
                 int seconds)
{
    struct timespec until;
    size_t i;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&pf_lock);
    for (i = 0; i < n; i++)
        while (pending(s, addrs[i]))
            if (pthread_cond_timedwait(&pf_done, &pf_lock, &until) != 0) {
                pthread_mutex_unlock(&pf_lock);
                return;
            }
    pthread_mutex_unlock(&pf_lock);
}

/* Start the workers (in the worker process, before smfi_main). */
int
mf_prefetch_init(void)
{
    pthread_t tid;
    int i;

    for (i = 0; i < PF_THREADS; i++) {
        if (pthread_create(&tid, NULL, worker, (void *)(uintptr_t)i) != 0)
            return -1;
        pthread_detach(tid);
    }
    return 0;
}

/* Queue addr for a lookup with state s (a new reference is taken). */
void
mf_prefetch(struct smm_state *s, const char *addr)
{
    char *a;

    if (s == NULL || addr == NULL || *addr == '\0')
        return;
    if (s->cache != NULL && smm_cache_has(s->cache, addr, time(NULL))) {
        smm_log(SMM_LOG_DEBUG, "prefetch %s: answer already in the cache",
                addr);
        return;
    }
    if ((a = strdup(addr)) == NULL)
        return;
    pthread_mutex_lock(&pf_lock);
    if (pf_len == PF_QUEUE) {
        pthread_mutex_unlock(&pf_lock);
        char esc[320];
        smm_log(SMM_LOG_DEBUG, "prefetch queue full: %s not prefetched",
                smm_log_escape(esc, sizeof(esc), a));
        free(a);
        return;
    }
    pf_q[(pf_head + pf_len) % PF_QUEUE].state = smm_state_ref(s);
    pf_q[(pf_head + pf_len) % PF_QUEUE].addr = a;
    pf_len++;
    pthread_cond_signal(&pf_cond);
    pthread_mutex_unlock(&pf_lock);
}
