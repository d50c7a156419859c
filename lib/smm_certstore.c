/*
 * smm_certstore -- directory of recipient certificates; see
 * smm_certstore.h.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "smm_certstore.h"
#include "smm_config.h"
#include "smm_log.h"
#include "smm_trust.h"
#include "smm_x509.h"

#define CS_MAX_DEPTH 8

struct cs_entry {
    char *addr; /* folded to lower case (smm_addr_fold) */
    X509 *cert; /* not owned (in all) */
};

struct smm_certstore {
    STACK_OF(X509) * all;
    STACK_OF(X509) * cas; /* the CA certificates of all (no references) */
    char **files;         /* parallel to all, nfiles of them */
    size_t nfiles;
    struct cs_entry *idx;
    size_t nidx;
};

static int
entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cs_entry *)a)->addr,
                  ((const struct cs_entry *)b)->addr);
}

static void
walk(struct smm_certstore *cs, const char *what, const char *dir, int depth,
     struct smm_diag *diag)
{
    DIR *d;
    struct dirent *de;
    struct stat sb;
    char path[4096];
    struct smm_err ferr;
    int before, i;
    char **nf;

    if (depth > CS_MAX_DEPTH || (d = opendir(dir)) == NULL) {
        smm_diag_add(diag, SMM_LOG_WARNING, "%s: %s: %s", what, dir,
                     depth > CS_MAX_DEPTH ? "nested too deep"
                                          : strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' ||
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
                (int)sizeof(path) ||
            stat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            walk(cs, what, path, depth + 1, diag);
            continue;
        }
        if (!S_ISREG(sb.st_mode))
            continue;
        before = sk_X509_num(cs->all);
        if (smm_certs_load_file(path, cs->all, &ferr) != SMM_OK) {
            smm_diag_add(diag, SMM_LOG_WARNING, "%s: %s", what, ferr.msg);
            continue;
        }
        nf = realloc(cs->files, (size_t)sk_X509_num(cs->all) * sizeof(*nf));
        if (nf == NULL)
            break;
        cs->files = nf;
        for (i = before; i < sk_X509_num(cs->all); i++)
            cs->files[i] = strdup(path);
        cs->nfiles = (size_t)sk_X509_num(cs->all);
    }
    closedir(d);
}

/*
 * Load the store at dir ("" = an empty store).  what names it in messages
 * ("CertificateStore").  A missing directory is an error when must_exist,
 * else an empty store.
 */
smm_status
smm_certstore_load(const char *dir, const char *what, int must_exist,
                   struct smm_certstore **out, struct smm_diag *diag,
                   struct smm_err *err)
{
    struct smm_certstore *cs;
    struct stat sb;
    struct smm_strlist addrs = {0};
    size_t i, j, n = 0;
    struct cs_entry *ni;

    *out = NULL;
    if ((cs = calloc(1, sizeof(*cs))) == NULL ||
        (cs->all = sk_X509_new_null()) == NULL ||
        (cs->cas = sk_X509_new_null()) == NULL) {
        if (cs != NULL)
            sk_X509_free(cs->all);
        free(cs);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    if (dir != NULL && *dir != '\0') {
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            if (must_exist) {
                smm_certstore_free(cs);
                return smm_err_set(err, SMM_EINVAL, "%s %s: %s", what, dir,
                                   errno ? strerror(errno) : "not a directory");
            }
        } else {
            walk(cs, what, dir, 0, diag);
        }
    }
    for (i = 0; i < (size_t)sk_X509_num(cs->all); i++) {
        X509 *x = sk_X509_value(cs->all, (int)i);
        (void)smm_x509_usage(x); /* cache extensions before sharing */
        if (X509_check_ca(x) > 0 && !sk_X509_push(cs->cas, x))
            goto nomem;
        smm_strlist_free(&addrs);
        if (smm_x509_addresses(x, &addrs) != SMM_OK)
            goto nomem;
        if (addrs.n == 0)
            continue;
        if ((ni = realloc(cs->idx, (n + addrs.n) * sizeof(*ni))) == NULL)
            goto nomem;
        cs->idx = ni;
        for (j = 0; j < addrs.n; j++) {
            cs->idx[n].addr = addrs.v[j];
            addrs.v[j] = NULL;
            cs->idx[n].cert = x;
            n++;
        }
        free(addrs.v);
        addrs.v = NULL;
        addrs.n = 0;
    }
    cs->nidx = n;
    if (cs->nidx > 0)
        qsort(cs->idx, cs->nidx, sizeof(*cs->idx), entry_cmp);
    *out = cs;
    return SMM_OK;
nomem:
    cs->nidx = n;
    smm_strlist_free(&addrs);
    smm_certstore_free(cs);
    return smm_err_set(err, SMM_ENOMEM, "out of memory");
}

/* Append (new references to) the certificates naming addr; returns how
 * many. */
int
smm_certstore_find(const struct smm_certstore *cs, const char *addr,
                   STACK_OF(X509) * out)
{
    char norm[1024];
    struct cs_entry key, *hit;
    size_t i;
    int n = 0;

    if (cs == NULL || cs->nidx == 0)
        return 0;
    snprintf(norm, sizeof(norm), "%s", addr);
    smm_addr_fold(norm);
    key.addr = norm;
    if ((hit = bsearch(&key, cs->idx, cs->nidx, sizeof(*cs->idx), entry_cmp)) ==
        NULL)
        return 0;
    i = (size_t)(hit - cs->idx);
    while (i > 0 && strcmp(cs->idx[i - 1].addr, norm) == 0)
        i--;
    for (; i < cs->nidx && strcmp(cs->idx[i].addr, norm) == 0; i++)
        if (X509_up_ref(cs->idx[i].cert)) {
            if (sk_X509_push(out, cs->idx[i].cert))
                n++;
            else
                X509_free(cs->idx[i].cert);
        }
    return n;
}

/* Every certificate in the store (not a copy; do not free). */
STACK_OF(X509) * smm_certstore_all(const struct smm_certstore *cs)
{
    return cs != NULL ? cs->all : NULL;
}

/* The CA certificates of the store, intermediates for chains (not a copy;
 * do not free). */
STACK_OF(X509) * smm_certstore_cas(const struct smm_certstore *cs)
{
    return cs != NULL ? cs->cas : NULL;
}

/* The file a certificate of this store came from, or NULL. */
const char *
smm_certstore_file(const struct smm_certstore *cs, X509 *x)
{
    int i;

    for (i = 0; cs != NULL && i < sk_X509_num(cs->all); i++)
        if (sk_X509_value(cs->all, i) == x)
            return (size_t)i < cs->nfiles ? cs->files[i] : NULL;
    return NULL;
}

void
smm_certstore_free(struct smm_certstore *cs)
{
    size_t i;

    if (cs == NULL)
        return;
    for (i = 0; i < cs->nidx; i++)
        free(cs->idx[i].addr);
    for (i = 0; i < cs->nfiles; i++)
        free(cs->files[i]);
    free(cs->files);
    free(cs->idx);
    sk_X509_free(cs->cas);
    sk_X509_pop_free(cs->all, X509_free);
    free(cs);
}
