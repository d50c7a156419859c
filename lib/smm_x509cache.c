/*
 * smm_x509cache -- decoded certificates by DER; see smm_x509cache.h.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "smm_lru.h"
#include "smm_x509cache.h"

struct xentry {
    struct smm_lru_link lru; /* first: see smm_lru.h */
    unsigned char *der;
    size_t len;
    uint64_t hash;
    X509 *x;
    struct xentry *hnext; /* hash chain */
};

struct smm_x509cache {
    pthread_mutex_t lock;
    struct xentry **buckets;
    size_t nbuckets, n, max;
    struct smm_lru lru; /* most recent first */
};

static uint64_t
hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct smm_x509cache *
smm_x509cache_new(size_t max)
{
    struct smm_x509cache *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    c->max = max > 0 ? max : 1;
    for (c->nbuckets = 16; c->nbuckets < c->max; c->nbuckets *= 2)
        ;
    if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static struct xentry **
find_slot(struct smm_x509cache *c, const unsigned char *der, size_t len,
          uint64_t h)
{
    struct xentry **pp = &c->buckets[h & (c->nbuckets - 1)];

    while (*pp != NULL && !((*pp)->hash == h && (*pp)->len == len &&
                            memcmp((*pp)->der, der, len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void
entry_free(struct xentry *e)
{
    X509_free(e->x);
    free(e->der);
    free(e);
}

/* Drop the least recently used entry (lock held). */
static void
evict(struct smm_x509cache *c)
{
    struct xentry *e = (struct xentry *)c->lru.tail, **pp;

    if (e == NULL)
        return;
    pp = find_slot(c, e->der, e->len, e->hash);
    *pp = e->hnext;
    smm_lru_unlink(&c->lru, &e->lru);
    entry_free(e);
    c->n--;
}

X509 *
smm_x509cache_get(struct smm_x509cache *c, const unsigned char *der, size_t len)
{
    uint64_t h = hash(der, len);
    struct xentry **slot, *e;
    const unsigned char *p = der;
    X509 *x = NULL;

    if (len == 0 || len > LONG_MAX)
        return NULL;
    pthread_mutex_lock(&c->lock);
    if ((e = *find_slot(c, der, len, h)) != NULL) {
        smm_lru_unlink(&c->lru, &e->lru);
        smm_lru_push_front(&c->lru, &e->lru);
        if (X509_up_ref(e->x))
            x = e->x;
    }
    pthread_mutex_unlock(&c->lock);
    if (x != NULL)
        return x;
    /* decode outside the lock; the whole DER must be the certificate */
    if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
        X509_free(x);
        ERR_clear_error();
        return NULL;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL || (e->der = malloc(len)) == NULL ||
        !X509_up_ref(x)) {
        if (e != NULL)
            free(e->der);
        free(e);
        return x; /* not remembered, still good */
    }
    memcpy(e->der, der, len);
    e->len = len;
    e->hash = h;
    e->x = x;
    pthread_mutex_lock(&c->lock);
    slot = find_slot(c, der, len, h);
    if (*slot != NULL) { /* another thread was faster */
        pthread_mutex_unlock(&c->lock);
        entry_free(e);
        return x;
    }
    *slot = e;
    smm_lru_push_front(&c->lru, &e->lru);
    if (++c->n > c->max)
        evict(c);
    pthread_mutex_unlock(&c->lock);
    return x;
}

void
smm_x509cache_free(struct smm_x509cache *c)
{
    struct xentry *e, *next;

    if (c == NULL)
        return;
    for (e = (struct xentry *)c->lru.head; e != NULL; e = next) {
        next = (struct xentry *)e->lru.next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}
