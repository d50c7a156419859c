/*
 * smm_trust -- trust anchors and chain building; see smm_trust.h.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "smm_log.h"
#include "smm_trust.h"

/*
 * Append every certificate in a PEM (one or more) or DER file to sk.
 * Returns SMM_EPARSE when the file holds no certificate.
 */
smm_status
smm_certs_load_file(const char *path, STACK_OF(X509) * sk, struct smm_err *err)
{
    BIO *b = NULL;
    X509 *x = NULL;
    int n = 0;
    smm_status st = SMM_OK;

    if ((b = BIO_new_file(path, "rb")) == NULL)
        return smm_err_set(err, SMM_EIO, "%s: cannot open: %s", path,
                           strerror(errno));
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
        n++;
    }
    ERR_clear_error(); /* end of PEM data */
    if (n == 0) {
        (void)BIO_reset(b);
        if ((x = d2i_X509_bio(b, NULL)) != NULL) {
            if (!sk_X509_push(sk, x)) {
                X509_free(x);
                st = smm_err_set(err, SMM_ENOMEM, "out of memory");
                goto out;
            }
            n++;
        }
        ERR_clear_error();
    }
    if (n == 0)
        st = smm_err_set(err, SMM_EPARSE, "%s: no certificate found", path);
out:
    BIO_free(b);
    return st;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load a directory (not recursive; hidden files skipped), sorted by name. */
static smm_status
load_dir(const char *dir, STACK_OF(X509) * sk, struct smm_diag *diag,
         struct smm_err *err)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL, **nn, path[4096];
    size_t n = 0, i;
    struct stat sb;
    struct smm_err ferr;
    smm_status st = SMM_OK;

    if ((d = opendir(dir)) == NULL)
        return smm_err_set(err, SMM_EIO, "TrustAnchors %s: %s", dir,
                           strerror(errno));
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL ||
            (nn[n] = strdup(de->d_name)) == NULL) {
            names = nn != NULL ? nn : names;
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
        names = nn;
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), name_cmp);
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (smm_certs_load_file(path, sk, &ferr) != SMM_OK)
            smm_diag_add(diag, SMM_LOG_WARNING, "TrustAnchors: %s", ferr.msg);
    }
out:
    closedir(d);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

/* Load every CRL (PEM or DER) in a file or a directory into t->crls. */
static smm_status
load_crls(struct smm_trust *t, const char *path, struct smm_diag *diag,
          struct smm_err *err)
{
    struct stat sb;
    DIR *d = NULL;
    struct dirent *de;
    char fp[4096];
    BIO *b;
    X509_CRL *crl;
    int n;

    if (stat(path, &sb) != 0)
        return smm_err_set(err, SMM_EINVAL, "CRLs %s: %s", path,
                           strerror(errno));
    if (S_ISDIR(sb.st_mode) && (d = opendir(path)) == NULL)
        return smm_err_set(err, SMM_EINVAL, "CRLs %s: %s", path,
                           strerror(errno));
    for (;;) {
        if (d != NULL) {
            if ((de = readdir(d)) == NULL)
                break;
            if (de->d_name[0] == '.')
                continue;
            if (snprintf(fp, sizeof(fp), "%s/%s", path, de->d_name) >=
                (int)sizeof(fp))
                continue;
        } else {
            snprintf(fp, sizeof(fp), "%s", path);
        }
        n = 0;
        if ((b = BIO_new_file(fp, "rb")) != NULL) {
            while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
                if (!sk_X509_CRL_push(t->crls, crl))
                    X509_CRL_free(crl);
                n++;
            }
            if (n == 0) {
                (void)BIO_reset(b);
                if ((crl = d2i_X509_CRL_bio(b, NULL)) != NULL) {
                    if (!sk_X509_CRL_push(t->crls, crl))
                        X509_CRL_free(crl);
                    n++;
                }
            }
            BIO_free(b);
        }
        ERR_clear_error();
        if (n == 0)
            smm_diag_add(diag, SMM_LOG_WARNING, "CRLs: %s: no CRL found", fp);
        if (d == NULL)
            break;
    }
    if (d != NULL)
        closedir(d);
    return SMM_OK;
}

/*
 * Load TrustAnchors (path may be "" for none) and CRLs (crlpath, "" for
 * none).  A missing path is an error; unreadable files inside a directory
 * are reported in diag.
 */
smm_status
smm_trust_load(const char *path, const char *crlpath, struct smm_trust **out,
               struct smm_diag *diag, struct smm_err *err)
{
    struct smm_trust *t;
    struct stat sb;
    smm_status st = SMM_OK;
    int i;

    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL ||
        (t->store = X509_STORE_new()) == NULL ||
        (t->certs = sk_X509_new_null()) == NULL ||
        (t->crls = sk_X509_CRL_new_null()) == NULL) {
        smm_trust_free(t);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    if (path != NULL && *path != '\0') {
        if (stat(path, &sb) != 0) {
            st = smm_err_set(err, SMM_EINVAL, "TrustAnchors %s: %s", path,
                             strerror(errno));
            goto out;
        }
        if (S_ISDIR(sb.st_mode))
            st = load_dir(path, t->certs, diag, err);
        else if ((st = smm_certs_load_file(path, t->certs, err)) != SMM_OK)
            smm_err_prefix(err, "TrustAnchors ");
        if (st != SMM_OK)
            goto out;
        for (i = 0; i < sk_X509_num(t->certs); i++) {
            X509 *x = sk_X509_value(t->certs, i);
            (void)X509_get_extension_flags(x); /* cache before sharing */
            if (!X509_STORE_add_cert(t->store, x)) {
                st = smm_err_ossl(err, SMM_ENOMEM, "X509_STORE_add_cert");
                goto out;
            }
        }
        if (sk_X509_num(t->certs) == 0)
            smm_diag_add(diag, SMM_LOG_WARNING,
                         "TrustAnchors %s: no certificates", path);
    }
    if (crlpath != NULL && *crlpath != '\0')
        st = load_crls(t, crlpath, diag, err);
out:
    if (st != SMM_OK) {
        smm_trust_free(t);
        return st;
    }
    *out = t;
    return SMM_OK;
}

/*
 * The certificates to send along with leaf: its issuers up to, but not
 * including, a self-signed root.  Built from the trust store and extra
 * (e.g. the CA certificates that came in the same PKCS#12 file).  When no
 * path to an anchor exists, the best partial chain from extra is returned
 * (never NULL unless out of memory).  The caller frees the stack with
 * sk_X509_pop_free(sk, X509_free).
 */
STACK_OF(X509) * smm_trust_chain(const struct smm_trust *t, X509 *leaf,
                                 STACK_OF(X509) * extra)
{
    STACK_OF(X509) *pool = NULL, *chain = NULL, *out = NULL;
    X509 *cur, *c;
    int i, j, progress;

    if ((out = sk_X509_new_null()) == NULL)
        return NULL;
    if ((pool = sk_X509_new_null()) == NULL)
        goto fail;
    for (i = 0; extra != NULL && i < sk_X509_num(extra); i++)
        if (!sk_X509_push(pool, sk_X509_value(extra, i)))
            goto fail;
    for (i = 0; t != NULL && i < sk_X509_num(t->certs); i++)
        if (!sk_X509_push(pool, sk_X509_value(t->certs, i)))
            goto fail;
    /* walk issuer links through the pool; bounded by the pool size */
    cur = leaf;
    for (j = 0; j <= sk_X509_num(pool); j++) {
        if (X509_check_issued(cur, cur) == X509_V_OK)
            break; /* self-signed: done */
        progress = 0;
        for (i = 0; i < sk_X509_num(pool); i++) {
            c = sk_X509_value(pool, i);
            if (c != cur && X509_check_issued(c, cur) == X509_V_OK) {
                if (X509_check_issued(c, c) == X509_V_OK) {
                    progress = 0; /* reached a root: don't include it */
                    j = sk_X509_num(pool) + 1;
                    break;
                }
                if (!X509_up_ref(c))
                    goto fail;
                if (!sk_X509_push(out, c)) {
                    X509_free(c);
                    goto fail;
                }
                cur = c;
                progress = 1;
                break;
            }
        }
        if (!progress)
            break;
    }
    ERR_clear_error();
    sk_X509_free(pool);
    sk_X509_free(chain);
    return out;
fail:
    ERR_clear_error();
    sk_X509_free(pool);
    sk_X509_pop_free(out, X509_free);
    return NULL;
}

/*
 * Whether a CRL from CRLs revokes x.  issuer, when known, must have signed
 * the CRL (a CRL with the same issuer name but another key is ignored).
 */
int
smm_trust_revoked(const struct smm_trust *t, X509 *x, X509 *issuer)
{
    X509_REVOKED *rev = NULL;
    int i;

    for (i = 0; t->crls != NULL && i < sk_X509_CRL_num(t->crls); i++) {
        X509_CRL *crl = sk_X509_CRL_value(t->crls, i);
        if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(x)) !=
            0)
            continue;
        if (issuer != NULL &&
            X509_CRL_verify(crl, X509_get0_pubkey(issuer)) != 1) {
            ERR_clear_error();
            continue; /* not signed by this certificate's issuer */
        }
        if (X509_CRL_get0_by_cert(crl, &rev, x) == 1)
            return 1;
    }
    return 0;
}

void
smm_trust_free(struct smm_trust *t)
{
    if (t == NULL)
        return;
    X509_STORE_free(t->store);
    sk_X509_pop_free(t->certs, X509_free);
    sk_X509_CRL_pop_free(t->crls, X509_CRL_free);
    free(t);
}
