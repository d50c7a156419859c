/*
 * smm_resolver -- recipient certificate lookup; see smm_resolver.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "smm_cache.h"
#include "smm_certblob.h"
#include "smm_certsel.h"
#include "smm_certstore.h"
#include "smm_ldap.h"
#include "smm_log.h"
#include "smm_harvest.h"
#include "smm_resolver.h"
#include "smm_state.h"
#include "smm_x509.h"

static smm_status
add_candidate(struct smm_lookup *l, X509 *x, const char *source,
              const char *origin, const char *refused)
{
    struct smm_candidate *nc;

    if ((nc = realloc(l->c, (l->n + 1) * sizeof(*nc))) == NULL)
        return SMM_ENOMEM;
    l->c = nc;
    memset(&l->c[l->n], 0, sizeof(*l->c));
    if (!X509_up_ref(x))
        return SMM_ENOMEM;
    l->c[l->n].cert = x;
    l->c[l->n].source = source;
    l->c[l->n].origin = origin != NULL ? strdup(origin) : NULL;
    l->c[l->n].refused = refused != NULL ? strdup(refused) : NULL;
    l->n++;
    return SMM_OK;
}

static int
newest_first(const X509 *const *a, const X509 *const *b)
{
    time_t ta = smm_x509_not_before((X509 *)*a);
    time_t tb = smm_x509_not_before((X509 *)*b);

    return ta < tb ? 1 : ta > tb ? -1 : 0;
}

/*
 * Check every certificate in certs for addr; record each; push the usable
 * ones to usable.  Returns how many were usable.
 */
static int
check_all(const struct smm_state *s, const char *addr, time_t now,
          STACK_OF(X509) * certs, STACK_OF(X509) * pool, const char *source,
          const char *origin, struct smm_lookup *l, STACK_OF(X509) * usable)
{
    struct smm_certsel_opts o;
    char buf[256];
    const char *why;
    int i, n = 0;

    o.now = now;
    o.min_key_bits = s->cfg->min_key_bits;
    o.require_trusted = s->cfg->require_trusted_rcpt;
    o.trust = s->trust;
    for (i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        why = smm_certsel_check(x, addr, pool, &o, buf, sizeof(buf));
        (void)add_candidate(l, x, source, origin, why);
        if (why == NULL && X509_up_ref(x)) {
            if (sk_X509_push(usable, x))
                n++;
            else
                X509_free(x);
        }
    }
    return n;
}

static int
from_store(const struct smm_state *s, const struct smm_certstore *cs,
           const char *addr, time_t now, const char *source,
           struct smm_lookup *l, STACK_OF(X509) * usable)
{
    STACK_OF(X509) *found = sk_X509_new_null();
    int i, n = 0;

    if (found == NULL)
        return 0;
    smm_certstore_find(cs, addr, found);
    for (i = 0; i < sk_X509_num(found); i++) {
        STACK_OF(X509) *one = sk_X509_new_null();
        X509 *x = sk_X509_value(found, i);
        if (one == NULL || !sk_X509_push(one, x)) {
            sk_X509_free(one);
            continue;
        }
        n += check_all(s, addr, now, one, smm_certstore_all(cs), source,
                       smm_certstore_file(cs, x), l, usable);
        sk_X509_free(one);
    }
    sk_X509_pop_free(found, X509_free);
    return n;
}

/* The live HarvestStore file of addr (harvested since the last reload);
 * returns how many certificates it names. */
static int
from_harvest(const struct smm_state *s, const char *addr, time_t now,
             struct smm_lookup *l, STACK_OF(X509) * usable, unsigned *capsp)
{
    STACK_OF(X509) *all = sk_X509_new_null(), *leaves = sk_X509_new_null();
    char path[4096];
    unsigned caps = 0;
    int i, n = 0;

    if (all != NULL && leaves != NULL &&
        smm_harvest_read(s->cfg->harvest_store, addr, all, &caps) > 0) {
        for (i = 0; i < sk_X509_num(all); i++)
            if (X509_check_ca(sk_X509_value(all, i)) <= 0)
                (void)sk_X509_push(leaves, sk_X509_value(all, i));
        (void)smm_harvest_path(s->cfg->harvest_store, addr, path, sizeof(path));
        if (check_all(s, addr, now, leaves, all, "harvested", path, l, usable) >
            0)
            *capsp = caps;
        n = sk_X509_num(leaves);
    }
    sk_X509_free(leaves);
    sk_X509_pop_free(all, X509_free);
    return n;
}

/* LDAP: returns usable count, or -1 on directory error (l->dir_error). */
static int
from_ldap(const struct smm_state *s, const char *addr, time_t now,
          struct smm_lookup *l, STACK_OF(X509) * usable, unsigned *capsp)
{
    unsigned caps = 0;
    struct smm_ldap_result res = {0};
    struct smm_err err;
    STACK_OF(X509) *pool = NULL, *certs;
    STACK_OF(X509) *u_smime = NULL, *u_plain = NULL;
    char origin[512];
    size_t i;
    int n = -1, j;

    if (smm_ldap_lookup(s->ldap, addr, &res, &err) != SMM_OK) {
        free(l->dir_error);
        l->dir_error = strdup(err.msg);
        return -1;
    }
    pool = sk_X509_new_null();
    u_smime = sk_X509_new_null();
    u_plain = sk_X509_new_null();
    if (pool == NULL || u_smime == NULL || u_plain == NULL)
        goto out;
    /* every certificate of every value is a possible chain link */
    for (i = 0; i < res.n; i++)
        (void)smm_certblob_parse(res.v[i].data, res.v[i].len, pool);
    for (j = 0; s->trust != NULL && j < sk_X509_num(s->trust->certs); j++) {
        X509 *x = sk_X509_value(s->trust->certs, j);
        if (X509_up_ref(x) && !sk_X509_push(pool, x))
            X509_free(x);
    }
    for (i = 0; i < res.n; i++) {
        int is_smime =
            strncasecmp(res.v[i].attr, "userSMIMECertificate", 20) == 0;
        certs = sk_X509_new_null();
        if (certs == NULL)
            continue;
        smm_certblob_parse(res.v[i].data, res.v[i].len, certs);
        /* CA certificates in a blob are its chain, not candidates */
        for (j = sk_X509_num(certs) - 1; j >= 0; j--)
            if (X509_check_ca(sk_X509_value(certs, j)) > 0)
                X509_free(sk_X509_delete(certs, j));
        snprintf(origin, sizeof(origin), "%s %s %s (%s)",
                 res.server != NULL ? res.server : "ldap",
                 res.v[i].dn != NULL ? res.v[i].dn : "", res.v[i].attr,
                 smm_certblob_format(res.v[i].data, res.v[i].len));
        if (check_all(s, addr, now, certs, pool, "ldap", origin, l,
                      is_smime ? u_smime : u_plain) > 0 &&
            is_smime)
            caps |= smm_certblob_caps(res.v[i].data, res.v[i].len);
        sk_X509_pop_free(certs, X509_free);
    }
    /* Outlook's rule: userSMIMECertificate first */
    certs = sk_X509_num(u_smime) > 0 ? u_smime : u_plain;
    for (j = 0; j < sk_X509_num(certs); j++) {
        X509 *x = sk_X509_value(certs, j);
        if (X509_up_ref(x) && !sk_X509_push(usable, x))
            X509_free(x);
    }
    n = sk_X509_num(certs);
    if (certs == u_smime)
        *capsp = caps;
out:
    sk_X509_pop_free(pool, X509_free);
    sk_X509_pop_free(u_smime, X509_free);
    sk_X509_pop_free(u_plain, X509_free);
    smm_ldap_result_free(&res);
    return n;
}

/*
 * The first source with usable certificates answers: move them into the
 * answer and mark their candidates used; later sources' are only listed.
 */
static void
take(struct smm_lookup *l, STACK_OF(X509) * found, const char *source)
{
    size_t j;
    X509 *x;

    if (l->source == NULL && sk_X509_num(found) > 0) {
        l->source = source;
        while ((x = sk_X509_shift(found)) != NULL) {
            for (j = 0; j < l->n; j++)
                if (l->c[j].cert == x)
                    l->c[j].used = 1;
            if (!sk_X509_push(l->usable, x))
                X509_free(x);
        }
    }
    while ((x = sk_X509_pop(found)) != NULL)
        X509_free(x);
}

smm_status
smm_resolve(const struct smm_state *s, const char *addr, time_t now,
            unsigned flags, struct smm_lookup *l, struct smm_err *err)
{
    STACK_OF(X509) *cached = NULL, *tmp;
    int all = (flags & SMM_RESOLVE_ALL) != 0, hit, i;
    int dir_failed = 0;

    memset(l, 0, sizeof(*l));
    if ((l->usable = sk_X509_new_null()) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    if (!all && s->cache != NULL &&
        (hit = smm_cache_get(s->cache, addr, now, &cached, &l->caps)) != 0) {
        l->cached = 1;
        l->source = "cache";
        for (i = 0; hit > 0 && i < sk_X509_num(cached); i++) {
            X509 *x = sk_X509_value(cached, i);
            (void)add_candidate(l, x, "cache", NULL, NULL);
            l->c[l->n - 1].used = 1;
            if (X509_up_ref(x) && !sk_X509_push(l->usable, x))
                X509_free(x);
        }
        sk_X509_pop_free(cached, X509_free);
        return SMM_OK;
    }
    if ((tmp = sk_X509_new_null()) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    from_store(s, s->certstore, addr, now, "local", l, tmp);
    take(l, tmp, "local");
    if ((all || l->source == NULL) && s->ldap != NULL) {
        unsigned caps = 0;
        int answered = l->source != NULL;
        if (from_ldap(s, addr, now, l, tmp, &caps) < 0)
            dir_failed = 1;
        take(l, tmp, "ldap");
        if (!answered && l->source != NULL)
            l->caps = caps;
    }
    if (all || l->source == NULL) {
        unsigned caps = 0;
        int answered = l->source != NULL;
        if (from_harvest(s, addr, now, l, tmp, &caps) == 0)
            from_store(s, s->harvest, addr, now, "harvested", l, tmp);
        take(l, tmp, "harvested");
        if (!answered && l->source != NULL)
            l->caps = caps;
    }
    sk_X509_free(tmp);
    (void)sk_X509_set_cmp_func(l->usable, newest_first);
    sk_X509_sort(l->usable);
    if (l->source == NULL && dir_failed)
        return smm_err_set(err, SMM_ETEMP, "directory lookup for %s failed: %s",
                           addr, l->dir_error);
    if (!all && s->cache != NULL)
        smm_cache_put(s->cache, addr, l->usable, l->caps,
                      now + (sk_X509_num(l->usable) > 0
                                 ? s->cfg->cache_ttl
                                 : s->cfg->negative_cache_ttl));
    return SMM_OK;
}

/* How many usable certificates the lookup found. */
int
smm_lookup_usable(const struct smm_lookup *l)
{
    return l->usable != NULL ? sk_X509_num(l->usable) : 0;
}

void
smm_lookup_free(struct smm_lookup *l)
{
    size_t i;

    if (l == NULL)
        return;
    for (i = 0; i < l->n; i++) {
        X509_free(l->c[i].cert);
        free(l->c[i].origin);
        free(l->c[i].refused);
    }
    free(l->c);
    free(l->dir_error);
    sk_X509_pop_free(l->usable, X509_free);
    memset(l, 0, sizeof(*l));
}
