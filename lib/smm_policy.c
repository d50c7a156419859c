/*
 * smm_policy -- direction rules; see smm_policy.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smm_policy.h"
#include "smm_x509.h"

/*
 * auth: the {auth_authen} macro (NULL or "" when not authenticated);
 * client_addr: the client's IP address as text (NULL when unknown);
 * daemon: the {daemon_name} macro (NULL when not sent).
 * *reason gets a static word for the log: "auth", "internal-host",
 * "daemon" or "external".
 */
enum smm_direction
smm_direction_decide(const struct smm_config *cfg, const char *auth,
                     const char *client_addr, const char *daemon,
                     const char **reason)
{
    size_t i;

    if (auth != NULL && *auth != '\0') {
        *reason = "auth";
        return SMM_DIR_OUTBOUND;
    }
    for (i = 0; i < cfg->internal_hosts.n; i++) {
        if (smm_cidr_match(&cfg->internal_hosts.v[i], client_addr)) {
            *reason = "internal-host";
            return SMM_DIR_OUTBOUND;
        }
    }
    if (daemon != NULL) {
        for (i = 0; i < cfg->outbound_daemons.n; i++) {
            if (strcmp(daemon, cfg->outbound_daemons.v[i]) == 0) {
                *reason = "daemon";
                return SMM_DIR_OUTBOUND;
            }
        }
    }
    *reason = "external";
    return SMM_DIR_INBOUND;
}

const char *
smm_direction_name(enum smm_direction d)
{
    return d == SMM_DIR_OUTBOUND ? "outbound" : "inbound";
}

struct pm_entry {
    char *key; /* folded to lower case (smm_addr_fold) */
    int policy;
    int line; /* where it was read */
};

struct smm_policymap {
    struct pm_entry *e;
    size_t n;
};

static int
pm_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pm_entry *)a)->key,
                  ((const struct pm_entry *)b)->key);
}

smm_status
smm_policymap_load(const char *path, struct smm_policymap **out,
                   struct smm_err *err)
{
    struct smm_policymap *pm;
    FILE *fp;
    char *line = NULL, key[512], pol[64], extra[8];
    size_t cap = 0;
    int lineno = 0, p, n;
    struct pm_entry *ne;
    smm_status st = SMM_OK;

    *out = NULL;
    if ((pm = calloc(1, sizeof(*pm))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    if (path == NULL || *path == '\0') {
        *out = pm;
        return SMM_OK;
    }
    if ((fp = fopen(path, "r")) == NULL) {
        free(pm);
        return smm_err_set(err, SMM_EINVAL, "PolicyMap %s: %s", path,
                           strerror(errno));
    }
    while (getline(&line, &cap, fp) >= 0) {
        char *hash = strchr(line, '#');
        lineno++;
        if (hash != NULL)
            *hash = '\0';
        n = sscanf(line, "%511s %63s %7s", key, pol, extra);
        if (n <= 0)
            continue;
        if (n != 2 || (p = smm_policy_parse(pol)) < 0 ||
            (key[0] != '.' && strchr(key, '@') == NULL) ||
            (key[0] == '@' && key[1] == '\0') ||
            (key[0] == '.' && key[1] == '\0')) {
            st = smm_err_set(err, SMM_EINVAL,
                             "%s:%d: expected \"address|@domain|.domain "
                             "never|opportunistic|mandatory\"",
                             path, lineno);
            goto out;
        }
        if ((ne = realloc(pm->e, (pm->n + 1) * sizeof(*ne))) == NULL ||
            (ne[pm->n].key = strdup(key)) == NULL) {
            if (ne != NULL)
                pm->e = ne;
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
        pm->e = ne;
        smm_addr_fold(pm->e[pm->n].key);
        pm->e[pm->n].policy = p;
        pm->e[pm->n].line = lineno;
        pm->n++;
    }
    if (pm->n > 0)
        qsort(pm->e, pm->n, sizeof(*pm->e), pm_cmp);
    for (n = 1; (size_t)n < pm->n; n++) /* which line wins is no guess */
        if (pm_cmp(&pm->e[n - 1], &pm->e[n]) == 0) {
            int a = pm->e[n - 1].line, b = pm->e[n].line;
            st = smm_err_set(err, SMM_EINVAL,
                             "%s:%d: %s is listed twice (also on line %d)",
                             path, a > b ? a : b, pm->e[n].key, a > b ? b : a);
            goto out;
        }
out:
    free(line);
    fclose(fp);
    if (st != SMM_OK) {
        smm_policymap_free(pm);
        return st;
    }
    *out = pm;
    return SMM_OK;
}

static int
pm_find(const struct smm_policymap *pm, const char *key)
{
    struct pm_entry k, *hit;

    if (pm == NULL || pm->n == 0)
        return -1;
    k.key = (char *)key;
    hit = bsearch(&k, pm->e, pm->n, sizeof(*pm->e), pm_cmp);
    return hit != NULL ? hit->policy : -1;
}

/* The policy for addr: exact, @domain, longest .domain, else deflt. */
int
smm_policymap_lookup(const struct smm_policymap *pm, const char *addr,
                     int deflt)
{
    char a[512], k[520];
    const char *dom, *d;
    int p;

    snprintf(a, sizeof(a), "%s", addr);
    smm_addr_fold(a);
    if ((p = pm_find(pm, a)) >= 0)
        return p;
    if ((dom = strrchr(a, '@')) == NULL)
        return deflt;
    if ((p = pm_find(pm, dom)) >= 0) /* "@domain" */
        return p;
    /* ".parent" for every parent domain, longest first */
    for (d = strchr(dom + 1, '.'); d != NULL; d = strchr(d + 1, '.')) {
        snprintf(k, sizeof(k), "%s", d);
        if ((p = pm_find(pm, k)) >= 0)
            return p;
    }
    return deflt;
}

void
smm_policymap_free(struct smm_policymap *pm)
{
    size_t i;

    if (pm == NULL)
        return;
    for (i = 0; i < pm->n; i++)
        free(pm->e[i].key);
    free(pm->e);
    free(pm);
}
