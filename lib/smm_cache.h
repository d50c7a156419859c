/*
 * smm_cache -- recipient certificate lookups remembered for a while.
 *
 * Maps an address (without regard to case) to the usable certificates
 * found for it (a positive entry) or to "none" (a negative entry), each
 * with its own expiry.  Bounded: past the size limit the least recently
 * used entry goes.  Thread-safe (one mutex; lookups copy references out).
 * A directory error is never stored here: it is not an answer.  The cache
 * belongs to a state snapshot, so a reload starts with an empty one.
 */
#ifndef SMM_CACHE_H
#define SMM_CACHE_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

struct smm_cache;

struct smm_cache_stats {
    unsigned long hits;
    unsigned long negative_hits;
    unsigned long misses;
    unsigned long evictions;
    size_t entries;
};

struct smm_cache *smm_cache_new(size_t);
int smm_cache_get(struct smm_cache *, const char *, time_t, STACK_OF(X509) **,
                  unsigned *);
int smm_cache_has(struct smm_cache *, const char *, time_t);
void smm_cache_put(struct smm_cache *, const char *, STACK_OF(X509) *, unsigned,
                   time_t);
void smm_cache_forget(struct smm_cache *, const char *);
void smm_cache_stats(struct smm_cache *, struct smm_cache_stats *);
void smm_cache_free(struct smm_cache *);

#endif
