/*
 * smm_cache -- LRU cache of lookups; see smm_cache.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smm_cache.h"
#include "smm_lru.h"
#include "smm_x509.h"

struct centry {
    struct smm_lru_link lru; /* first: see smm_lru.h */
    char *key;
    STACK_OF(X509) * certs; /* empty = negative */
    unsigned caps;          /* SMIMECapabilities seen (smm_certblob.h) */
    time_t expires;
    struct centry *hnext; /* hash chain */
};

struct smm_cache {
    pthread_mutex_t lock;
    struct centry **buckets;
    size_t nbuckets;
    size_t n, max;
    struct smm_lru lru; /* most recent first */
    struct smm_cache_stats st;
};

static uint64_t
hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Key: the address folded to lower case. */
static char *
make_key(const char *addr)
{
    char *k = strdup(addr);

    if (k != NULL)
        smm_addr_fold(k);
    return k;
}

struct smm_cache *
smm_cache_new(size_t max)
{
    struct smm_cache *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    c->max = max > 0 ? max : 1;
    c->nbuckets = 64;
    while (c->nbuckets < c->max && c->nbuckets < (1U << 24))
        c->nbuckets *= 2;
    if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static struct centry **
find_slot(struct smm_cache *c, const char *key)
{
    struct centry **pp = &c->buckets[hash(key) & (c->nbuckets - 1)];

    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void
entry_free(struct centry *e)
{
    sk_X509_pop_free(e->certs, X509_free);
    free(e->key);
    free(e);
}

static void
remove_entry(struct smm_cache *c, struct centry **slot)
{
    struct centry *e = *slot;

    *slot = e->hnext;
    smm_lru_unlink(&c->lru, &e->lru);
    entry_free(e);
    c->n--;
}

static STACK_OF(X509) * copy_certs(STACK_OF(X509) * in)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    int i;

    for (i = 0; out != NULL && in != NULL && i < sk_X509_num(in); i++) {
        X509 *x = sk_X509_value(in, i);
        if (!X509_up_ref(x))
            continue;
        if (!sk_X509_push(out, x))
            X509_free(x);
    }
    return out;
}

/*
 * 1: positive hit, *certs gets new references (caller frees the stack
 * with sk_X509_pop_free); -1: negative hit; 0: miss or expired.
 */
int
smm_cache_get(struct smm_cache *c, const char *addr, time_t now,
              STACK_OF(X509) * *certs, unsigned *caps)
{
    char *key = make_key(addr);
    struct centry **slot, *e;
    int rc = 0;

    *certs = NULL;
    if (caps != NULL)
        *caps = 0;
    if (key == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    slot = find_slot(c, key);
    if ((e = *slot) != NULL && e->expires <= now) {
        remove_entry(c, slot);
        e = NULL;
    }
    if (e == NULL) {
        c->st.misses++;
    } else {
        smm_lru_unlink(&c->lru, &e->lru);
        smm_lru_push_front(&c->lru, &e->lru);
        if (sk_X509_num(e->certs) > 0) {
            c->st.hits++;
            *certs = copy_certs(e->certs);
            if (caps != NULL)
                *caps = e->caps;
            rc = 1;
        } else {
            c->st.negative_hits++;
            rc = -1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(key);
    return rc;
}

/* Whether an answer for addr (positive or negative) is there and fresh;
 * neither the statistics nor the LRU order change. */
int
smm_cache_has(struct smm_cache *c, const char *addr, time_t now)
{
    char *key = make_key(addr);
    struct centry *e;
    int rc;

    if (key == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    e = *find_slot(c, key);
    rc = e != NULL && e->expires > now;
    pthread_mutex_unlock(&c->lock);
    free(key);
    return rc;
}

/* Remember certs (NULL or empty = "none") for addr until expires. */
void
smm_cache_put(struct smm_cache *c, const char *addr, STACK_OF(X509) * certs,
              unsigned caps, time_t expires)
{
    char *key = make_key(addr);
    struct centry **slot, *e;
    STACK_OF(X509) *copy = copy_certs(certs);

    if (key == NULL || copy == NULL || (e = calloc(1, sizeof(*e))) == NULL) {
        free(key);
        sk_X509_pop_free(copy, X509_free);
        return;
    }
    e->key = key;
    e->certs = copy;
    e->caps = caps;
    e->expires = expires;
    pthread_mutex_lock(&c->lock);
    slot = find_slot(c, key);
    if (*slot != NULL)
        remove_entry(c, slot); /* *slot is now the rest of the chain */
    e->hnext = *slot;
    *slot = e;
    smm_lru_push_front(&c->lru, &e->lru);
    c->n++;
    while (c->n > c->max && c->lru.tail != NULL) {
        struct centry *old = (struct centry *)c->lru.tail;
        remove_entry(c, find_slot(c, old->key));
        c->st.evictions++;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Drop what is known about addr (a certificate was just harvested). */
void
smm_cache_forget(struct smm_cache *c, const char *addr)
{
    char *key = make_key(addr);
    struct centry **slot;

    if (c == NULL || key == NULL) {
        free(key);
        return;
    }
    pthread_mutex_lock(&c->lock);
    slot = find_slot(c, key);
    if (*slot != NULL)
        remove_entry(c, slot);
    pthread_mutex_unlock(&c->lock);
    free(key);
}

void
smm_cache_stats(struct smm_cache *c, struct smm_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    out->entries = c->n;
    pthread_mutex_unlock(&c->lock);
}

void
smm_cache_free(struct smm_cache *c)
{
    struct centry *e, *next;

    if (c == NULL)
        return;
    for (e = (struct centry *)c->lru.head; e != NULL; e = next) {
        next = (struct centry *)e->lru.next;
        entry_free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
