/*
 * smm_lru -- the recency list of the LRU caches (smm_cache, smm_x509cache).
 *
 * An entry embeds a struct smm_lru_link as its FIRST member, so that a
 * link found on the list (head, tail, next) converts back to the entry
 * with a cast.  The list is most recent first; the caller holds the
 * cache's lock.
 */
#ifndef SMM_LRU_H
#define SMM_LRU_H

#include <stddef.h>

struct smm_lru_link {
    struct smm_lru_link *prev, *next;
};

struct smm_lru {
    struct smm_lru_link *head, *tail;
};

static inline void
smm_lru_unlink(struct smm_lru *l, struct smm_lru_link *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

static inline void
smm_lru_push_front(struct smm_lru *l, struct smm_lru_link *e)
{
    e->next = l->head;
    e->prev = NULL;
    if (l->head != NULL)
        l->head->prev = e;
    l->head = e;
    if (l->tail == NULL)
        l->tail = e;
}

#endif
