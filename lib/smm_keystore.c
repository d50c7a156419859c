/*
 * smm_keystore -- key store loading and lookup; see smm_keystore.h.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "smm_buf.h"
#include "smm_keystore.h"
#include "smm_log.h"
#include "smm_x509.h"

#define KS_MAX_FILE (4 * 1024 * 1024)
#define KS_MAX_DEPTH 8

/* One file's worth of parsed material. */
struct ks_file {
    char *path;
    STACK_OF(X509) * certs;
    EVP_PKEY *pkey; /* or NULL */
};

struct ks_index {
    const char *addr; /* points into a key's addrs */
    struct smm_key *key;
};

struct smm_keystore {
    struct smm_key **keys;
    size_t n;
    struct ks_index *idx; /* sorted by addr */
    size_t nidx;
};

/*
 * Read a passphrase or password file: the first line, without its line
 * end.  Refused when group or others may read it.  *out is the caller's;
 * cleanse it with OPENSSL_clear_free(p, strlen(p)).
 */
smm_status
smm_read_secret_file(const char *path, char **out, struct smm_err *err)
{
    int fd;
    struct stat sb;
    char buf[1024];
    ssize_t n;
    size_t len;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return smm_err_set(err, SMM_EINVAL, "%s: cannot open: %s", path,
                           strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return smm_err_set(err, SMM_EINVAL, "%s: not a regular file", path);
    }
    if (sb.st_mode & (S_IRGRP | S_IROTH)) {
        close(fd);
        return smm_err_set(err, SMM_EINVAL,
                           "%s: refused: readable by group or others (mode "
                           "%04o); chmod 600 it",
                           path, (unsigned)(sb.st_mode & 07777));
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return smm_err_set(err, SMM_EIO, "%s: read: %s", path, strerror(errno));
    buf[n] = '\0';
    len = strcspn(buf, "\r\n");
    buf[len] = '\0';
    *out = OPENSSL_strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (*out == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    return SMM_OK;
}

static void
secret_free(char *p)
{
    if (p != NULL)
        OPENSSL_clear_free(p, strlen(p));
}

static int
has_suffix(const char *name, const char *suf)
{
    size_t nl = strlen(name), sl = strlen(suf);

    return nl > sl && strcasecmp(name + nl - sl, suf) == 0;
}

static int
pem_pass_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pass = u;
    int len;

    (void)rwflag;
    if (pass == NULL)
        return -1;
    len = (int)strlen(pass);
    if (len > size)
        len = size;
    memcpy(buf, pass, (size_t)len);
    return len;
}

/* Read a whole (small) file into memory; refuse group/other-readable
 * files that contain a private key. */
static smm_status
slurp(const char *path, struct smm_buf *b, mode_t *mode, struct smm_err *err)
{
    int fd;
    struct stat sb;
    char chunk[8192];
    ssize_t n;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return smm_err_set(err, SMM_EIO, "cannot open: %s", strerror(errno));
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return smm_err_set(err, SMM_EIO, "stat: %s", strerror(errno));
    }
    *mode = sb.st_mode;
    if (sb.st_size > KS_MAX_FILE) {
        close(fd);
        return smm_err_set(err, SMM_EPARSE, "file too large");
    }
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if (smm_buf_append(b, chunk, (size_t)n) != SMM_OK) {
            close(fd);
            return smm_err_set(err, SMM_ENOMEM, "out of memory");
        }
    close(fd);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    if (n < 0)
        return smm_err_set(err, SMM_EIO, "read: %s", strerror(errno));
    return SMM_OK;
}

static const char *
perm_problem(mode_t mode)
{
    return (mode & (S_IRGRP | S_IROTH)) ? "readable by group or others" : NULL;
}

static smm_status
parse_p12(const char *path, struct smm_buf *data, const char *pass,
          struct ks_file *f, struct smm_err *err)
{
    BIO *b;
    PKCS12 *p12;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    smm_status st = SMM_OK;

    if ((b = BIO_new_mem_buf(data->data, (int)data->len)) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    p12 = d2i_PKCS12_bio(b, NULL);
    BIO_free(b);
    if (p12 == NULL)
        return smm_err_ossl(err, SMM_EPARSE, "not a PKCS#12 file");
    if (!PKCS12_verify_mac(p12, pass, pass != NULL ? -1 : 0) &&
        !(pass == NULL && PKCS12_verify_mac(p12, "", 0))) {
        PKCS12_free(p12);
        ERR_clear_error();
        return smm_err_set(err, SMM_EINVAL,
                           "wrong passphrase (KeyStorePassphraseFile or "
                           "%s.pass)",
                           path);
    }
    if (!PKCS12_parse(p12, pass != NULL ? pass : "", &f->pkey, &cert, &ca)) {
        PKCS12_free(p12);
        return smm_err_ossl(err, SMM_EPARSE,
                            "cannot decode PKCS#12 (a legacy algorithm?)");
    }
    PKCS12_free(p12);
    if (cert != NULL && !sk_X509_insert(f->certs, cert, 0)) {
        X509_free(cert);
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    while (ca != NULL && sk_X509_num(ca) > 0) {
        X509 *x = sk_X509_shift(ca);
        if (!sk_X509_push(f->certs, x)) {
            X509_free(x);
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            break;
        }
    }
    sk_X509_pop_free(ca, X509_free);
    return st;
}

static smm_status
parse_pem(struct smm_buf *data, const char *pass, struct ks_file *f,
          struct smm_err *err)
{
    BIO *b;
    X509 *x;

    if ((b = BIO_new_mem_buf(data->data, (int)data->len)) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(f->certs, x)) {
            X509_free(x);
            BIO_free(b);
            return smm_err_set(err, SMM_ENOMEM, "out of memory");
        }
    ERR_clear_error();
    if (strstr(data->data, "PRIVATE KEY-----") != NULL) {
        (void)BIO_reset(b);
        f->pkey = PEM_read_bio_PrivateKey(b, NULL, pem_pass_cb, (void *)pass);
        if (f->pkey == NULL) {
            BIO_free(b);
            return smm_err_ossl(err, SMM_EPARSE,
                                "cannot read the private key (encrypted "
                                "with another passphrase?)");
        }
    }
    BIO_free(b);
    if (sk_X509_num(f->certs) == 0 && f->pkey == NULL) {
        /* maybe a DER certificate */
        const unsigned char *p = (const unsigned char *)data->data;
        if ((x = d2i_X509(NULL, &p, (long)data->len)) != NULL &&
            !sk_X509_push(f->certs, x))
            X509_free(x);
        ERR_clear_error();
        if (sk_X509_num(f->certs) == 0)
            return smm_err_set(err, SMM_EPARSE,
                               "no certificate or private key found");
    }
    return SMM_OK;
}

static void
ks_file_free(struct ks_file *f)
{
    free(f->path);
    sk_X509_pop_free(f->certs, X509_free);
    EVP_PKEY_free(f->pkey);
}

struct walk {
    const char *gpass; /* global passphrase or NULL */
    struct ks_file *files;
    size_t nfiles;
    struct smm_diag *diag;
};

static void
load_file(struct walk *w, const char *path, const char *name)
{
    struct smm_buf data = {0};
    struct smm_err ferr;
    struct ks_file f = {0};
    struct ks_file *nf;
    char *lpass = NULL, passpath[4200];
    mode_t mode = 0;
    int p12 = has_suffix(name, ".p12") || has_suffix(name, ".pfx");
    const char *why;
    smm_status st;

    if (!p12 && !has_suffix(name, ".pem") && !has_suffix(name, ".key") &&
        !has_suffix(name, ".crt") && !has_suffix(name, ".cer") &&
        !has_suffix(name, ".der"))
        return; /* .pass files, READMEs, editor backups... */
    if (slurp(path, &data, &mode, &ferr) != SMM_OK) {
        smm_diag_add(w->diag, SMM_LOG_ERR, "KeyStore: %s: %s", path, ferr.msg);
        goto out;
    }
    if ((p12 || (data.data != NULL &&
                 strstr(data.data, "PRIVATE KEY-----") != NULL)) &&
        (why = perm_problem(mode)) != NULL) {
        smm_diag_add(w->diag, SMM_LOG_ERR,
                     "KeyStore: %s: refused: %s (mode %04o); chmod 600 it",
                     path, why, (unsigned)(mode & 07777));
        goto out;
    }
    if (snprintf(passpath, sizeof(passpath), "%s.pass", path) >=
        (int)sizeof(passpath))
        goto out;
    if (access(passpath, F_OK) == 0 &&
        smm_read_secret_file(passpath, &lpass, &ferr) != SMM_OK) {
        smm_diag_add(w->diag, SMM_LOG_ERR, "KeyStore: %s", ferr.msg);
        goto out;
    }
    if ((f.certs = sk_X509_new_null()) == NULL)
        goto out;
    if (data.len == 0) {
        smm_diag_add(w->diag, SMM_LOG_ERR, "KeyStore: %s: empty file", path);
        goto out;
    }
    st = p12 ? parse_p12(path, &data, lpass ? lpass : w->gpass, &f, &ferr)
             : parse_pem(&data, lpass ? lpass : w->gpass, &f, &ferr);
    if (st != SMM_OK) {
        smm_diag_add(w->diag, SMM_LOG_ERR, "KeyStore: %s: %s", path, ferr.msg);
        goto out;
    }
    if ((nf = realloc(w->files, (w->nfiles + 1) * sizeof(*nf))) == NULL)
        goto out;
    w->files = nf;
    if ((f.path = strdup(path)) == NULL)
        goto out;
    w->files[w->nfiles++] = f;
    memset(&f, 0, sizeof(f));
out:
    ks_file_free(&f);
    secret_free(lpass);
    if (data.data != NULL)
        OPENSSL_cleanse(data.data, data.len);
    smm_buf_free(&data);
}

static void
walk_dir(struct walk *w, const char *dir, int depth)
{
    DIR *d;
    struct dirent *de;
    struct stat sb;
    char path[4096];

    if (depth > KS_MAX_DEPTH) {
        smm_diag_add(w->diag, SMM_LOG_WARNING,
                     "KeyStore: %s: nested too deep, skipped", dir);
        return;
    }
    if ((d = opendir(dir)) == NULL) {
        smm_diag_add(w->diag, SMM_LOG_ERR, "KeyStore: %s: %s", dir,
                     strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
            (int)sizeof(path))
            continue;
        if (stat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            walk_dir(w, path, depth + 1);
        else if (S_ISREG(sb.st_mode))
            load_file(w, path, de->d_name);
    }
    closedir(d);
}

static int
idx_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ks_index *)a)->addr,
                  ((const struct ks_index *)b)->addr);
}

/* Normalise a certificate address for the index: "example.org" -> "@..." */
static char *
norm_cert_addr(const char *a)
{
    char *p;

    if (strchr(a, '@') == NULL) {
        if ((p = malloc(strlen(a) + 2)) == NULL)
            return NULL;
        p[0] = '@';
        strcpy(p + 1, a);
        return p;
    }
    return strdup(a);
}

/* Digest of a public key's SubjectPublicKeyInfo, for pairing. */
static int
pkey_digest(EVP_PKEY *pk, unsigned char md[32])
{
    unsigned char *der = NULL;
    int len;
    unsigned int mdlen;

    if ((len = i2d_PUBKEY(pk, &der)) <= 0)
        return -1;
    len = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    return len == 1 ? 0 : -1;
}

static void
key_free(struct smm_key *k)
{
    X509_free(k->cert);
    EVP_PKEY_free(k->pkey);
    sk_X509_pop_free(k->chain, X509_free);
    smm_strlist_free(&k->addrs);
    free(k->file);
    free(k->serial);
    free(k->fingerprint);
    free(k);
}

static smm_status
add_key(struct smm_keystore *ks, const struct smm_trust *trust,
        struct ks_file *kf, X509 *cert, STACK_OF(X509) * pool,
        struct smm_diag *diag)
{
    struct smm_key *k, **nk;
    struct smm_strlist raw = {0};
    STACK_OF(X509) *extra = NULL;
    size_t i;
    char *a;
    X509_STORE_CTX *ctx = NULL;

    if ((k = calloc(1, sizeof(*k))) == NULL)
        return SMM_ENOMEM;
    if (!X509_up_ref(cert) || !EVP_PKEY_up_ref(kf->pkey)) {
        free(k);
        return SMM_ENOMEM;
    }
    k->cert = cert;
    k->pkey = kf->pkey;
    k->file = strdup(kf->path);
    k->usage = smm_x509_usage(cert);
    k->not_before = smm_x509_not_before(cert);
    k->not_after = smm_x509_not_after(cert);
    k->serial = smm_x509_serial_hex(cert);
    k->fingerprint = smm_x509_fingerprint(cert);
    if (smm_x509_addresses(cert, &raw) != SMM_OK)
        goto nomem;
    for (i = 0; i < raw.n; i++) {
        char **nv;
        if ((a = norm_cert_addr(raw.v[i])) == NULL)
            goto nomem;
        if ((nv = realloc(k->addrs.v, (k->addrs.n + 1) * sizeof(*nv))) ==
            NULL) {
            free(a);
            goto nomem;
        }
        k->addrs.v = nv;
        k->addrs.v[k->addrs.n++] = a;
    }
    smm_strlist_free(&raw);
    /* issuers from the same file first, then the rest of the store */
    if ((extra = sk_X509_new_null()) == NULL)
        goto nomem;
    for (i = 0; i < (size_t)sk_X509_num(kf->certs); i++)
        if (sk_X509_value(kf->certs, (int)i) != cert)
            (void)sk_X509_push(extra, sk_X509_value(kf->certs, (int)i));
    for (i = 0; i < (size_t)sk_X509_num(pool); i++)
        (void)sk_X509_push(extra, sk_X509_value(pool, (int)i));
    if ((k->chain = smm_trust_chain(trust, cert, extra)) == NULL)
        goto nomem;
    /* does it chain to an anchor?  (a warning only: we can still sign) */
    if ((ctx = X509_STORE_CTX_new()) != NULL &&
        X509_STORE_CTX_init(ctx, trust->store, cert, extra) == 1) {
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
        k->trusted = X509_verify_cert(ctx) == 1;
        if (!k->trusted && sk_X509_num(trust->certs) > 0)
            smm_diag_add(
                diag, SMM_LOG_WARNING,
                "KeyStore: %s: certificate %s does not chain to "
                "TrustAnchors: %s",
                kf->path, k->addrs.n ? k->addrs.v[0] : "(no address)",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    sk_X509_free(extra);
    if (k->addrs.n == 0)
        smm_diag_add(diag, SMM_LOG_WARNING,
                     "KeyStore: %s: certificate names no e-mail address "
                     "(SAN rfc822Name or emailAddress); key not used",
                     kf->path);
    if ((nk = realloc(ks->keys, (ks->n + 1) * sizeof(*nk))) == NULL)
        goto nomem_k;
    ks->keys = nk;
    ks->keys[ks->n++] = k;
    return SMM_OK;
nomem:
    smm_strlist_free(&raw);
    sk_X509_free(extra);
nomem_k:
    key_free(k);
    return SMM_ENOMEM;
}

smm_status
smm_keystore_load(const struct smm_config *cfg, const struct smm_trust *trust,
                  struct smm_keystore **out, struct smm_diag *diag,
                  struct smm_err *err)
{
    struct smm_keystore *ks = NULL;
    struct walk w = {0};
    char *gpass = NULL;
    STACK_OF(X509) *pool = NULL;
    unsigned char(*cmd)[32] = NULL, kmd[32];
    X509 **cx = NULL;
    size_t ncx = 0, i, j, nmatch;
    struct stat sb;
    smm_status st = SMM_OK;

    *out = NULL;
    if (stat(cfg->keystore, &sb) != 0)
        return smm_err_set(err, SMM_EINVAL, "KeyStore %s: %s", cfg->keystore,
                           strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return smm_err_set(err, SMM_EINVAL, "KeyStore %s: not a directory",
                           cfg->keystore);
    if (cfg->keystore_passfile[0] != '\0' &&
        (st = smm_read_secret_file(cfg->keystore_passfile, &gpass, err)) !=
            SMM_OK) {
        smm_err_prefix(err, "KeyStorePassphraseFile ");
        return st;
    }
    if ((ks = calloc(1, sizeof(*ks))) == NULL ||
        (pool = sk_X509_new_null()) == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    w.gpass = gpass;
    w.diag = diag;
    walk_dir(&w, cfg->keystore, 0);

    /* every certificate in the store, with its public key digest */
    for (i = 0; i < w.nfiles; i++)
        ncx += (size_t)sk_X509_num(w.files[i].certs);
    cx = calloc(ncx ? ncx : 1, sizeof(*cx));
    cmd = calloc(ncx ? ncx : 1, sizeof(*cmd));
    if (cx == NULL || cmd == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    for (ncx = 0, i = 0; i < w.nfiles; i++)
        for (j = 0; j < (size_t)sk_X509_num(w.files[i].certs); j++) {
            X509 *x = sk_X509_value(w.files[i].certs, (int)j);
            if (pkey_digest(X509_get0_pubkey(x), cmd[ncx]) != 0)
                continue;
            cx[ncx++] = x;
            (void)sk_X509_push(pool, x);
        }
    /* pair every private key with every certificate for it */
    for (i = 0; i < w.nfiles; i++) {
        if (w.files[i].pkey == NULL)
            continue;
        if (pkey_digest(w.files[i].pkey, kmd) != 0) {
            smm_diag_add(diag, SMM_LOG_ERR,
                         "KeyStore: %s: unsupported private key",
                         w.files[i].path);
            continue;
        }
        nmatch = 0;
        for (j = 0; j < ncx; j++) {
            if (memcmp(kmd, cmd[j], sizeof(kmd)) != 0)
                continue;
            if (X509_check_private_key(cx[j], w.files[i].pkey) != 1) {
                ERR_clear_error();
                continue;
            }
            nmatch++;
            if (add_key(ks, trust, &w.files[i], cx[j], pool, diag) != SMM_OK) {
                st = smm_err_set(err, SMM_ENOMEM, "out of memory");
                goto out;
            }
        }
        if (nmatch == 0)
            smm_diag_add(diag, SMM_LOG_ERR,
                         "KeyStore: %s: private key without a matching "
                         "certificate anywhere in %s",
                         w.files[i].path, cfg->keystore);
    }
    /* address index */
    for (i = 0; i < ks->n; i++)
        ks->nidx += ks->keys[i]->addrs.n;
    if ((ks->idx = calloc(ks->nidx ? ks->nidx : 1, sizeof(*ks->idx))) == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    for (ks->nidx = 0, i = 0; i < ks->n; i++)
        for (j = 0; j < ks->keys[i]->addrs.n; j++) {
            ks->idx[ks->nidx].addr = ks->keys[i]->addrs.v[j];
            ks->idx[ks->nidx].key = ks->keys[i];
            ks->nidx++;
        }
    if (ks->nidx > 0)
        qsort(ks->idx, ks->nidx, sizeof(*ks->idx), idx_cmp);
    *out = ks;
    ks = NULL;
out:
    for (i = 0; i < w.nfiles; i++)
        ks_file_free(&w.files[i]);
    free(w.files);
    sk_X509_free(pool);
    free(cx);
    free(cmd);
    secret_free(gpass);
    smm_keystore_free(ks);
    return st;
}

/* Normalise a lookup address like the index: folded to lower case. */
static void
norm_lookup(const char *addr, char *buf, size_t sz)
{
    snprintf(buf, sz, "%s", addr);
    smm_addr_fold(buf);
}

/* Best key for addr with all usage bits in need, valid at now. */
static const struct smm_key *
find_best(const struct smm_keystore *ks, const char *addr, unsigned need,
          time_t now)
{
    char norm[1024];
    struct ks_index key, *lo;
    const struct smm_key *best = NULL;
    size_t i, first;

    norm_lookup(addr, norm, sizeof(norm));
    key.addr = norm;
    lo = bsearch(&key, ks->idx, ks->nidx, sizeof(*ks->idx), idx_cmp);
    if (lo == NULL)
        return NULL;
    first = (size_t)(lo - ks->idx);
    while (first > 0 && strcmp(ks->idx[first - 1].addr, norm) == 0)
        first--;
    for (i = first; i < ks->nidx && strcmp(ks->idx[i].addr, norm) == 0; i++) {
        const struct smm_key *k = ks->idx[i].key;
        if ((k->usage & need) != need || !smm_x509_valid_at(k->cert, now))
            continue;
        if (best == NULL || k->not_before > best->not_before)
            best = k;
    }
    return best;
}

/*
 * The signing key for a sender: a certificate for the address allowing
 * signing and e-mail protection, valid now, newest first; then, when
 * domain_keys is set, the domain key for its domain.
 */
const struct smm_key *
smm_keystore_signer(const struct smm_keystore *ks, const char *addr, time_t now,
                    int domain_keys)
{
    const struct smm_key *k;
    char dom[1024];

    if (addr == NULL || *addr == '\0' || strchr(addr, '@') == NULL)
        return NULL;
    if ((k = find_best(ks, addr, SMM_USE_SIGN | SMM_USE_EMAIL, now)) != NULL)
        return k;
    if (!domain_keys)
        return NULL;
    snprintf(dom, sizeof(dom), "@%s", smm_addr_domain(addr));
    return find_best(ks, dom, SMM_USE_SIGN | SMM_USE_EMAIL, now);
}

/* The user's own current encryption certificate (for
 * SMIMEEncryptionKeyPreference and EncryptToSelf). */
const struct smm_key *
smm_keystore_encryption(const struct smm_keystore *ks, const char *addr,
                        time_t now)
{
    if (addr == NULL || *addr == '\0')
        return NULL;
    return find_best(ks, addr, SMM_USE_ENCRYPT | SMM_USE_EMAIL, now);
}

/*
 * Decryption: the next key (from *it on) whose certificate is the one a
 * RecipientInfo names, by subject key identifier or by issuer and serial.
 * Validity does not matter: old mail is encrypted to old keys.
 */
const struct smm_key *
smm_keystore_recipient(const struct smm_keystore *ks,
                       const ASN1_OCTET_STRING *keyid, const X509_NAME *issuer,
                       const ASN1_INTEGER *serial, size_t *it)
{
    const ASN1_OCTET_STRING *ski;
    const struct smm_key *k;

    for (; ks != NULL && *it < ks->n; (*it)++) {
        k = ks->keys[*it];
        if (keyid != NULL) {
            ski = X509_get0_subject_key_id(k->cert);
            if (ski == NULL || ASN1_OCTET_STRING_cmp(ski, keyid) != 0)
                continue;
        } else if (issuer == NULL || serial == NULL ||
                   X509_NAME_cmp(X509_get_issuer_name(k->cert), issuer) != 0 ||
                   ASN1_INTEGER_cmp(X509_get0_serialNumber(k->cert), serial) !=
                       0) {
            continue;
        }
        (*it)++;
        return k;
    }
    return NULL;
}

/* Whether some key of the store serves an address in domain. */
int
smm_keystore_has_domain(const struct smm_keystore *ks, const char *domain)
{
    size_t i;
    const char *d;

    for (i = 0; ks != NULL && i < ks->nidx; i++) {
        d = strrchr(ks->idx[i].addr, '@');
        if (d != NULL && strcasecmp(d + 1, domain) == 0)
            return 1;
    }
    return 0;
}

size_t
smm_keystore_count(const struct smm_keystore *ks)
{
    return ks != NULL ? ks->n : 0;
}

const struct smm_key *
smm_keystore_get(const struct smm_keystore *ks, size_t i)
{
    return i < ks->n ? ks->keys[i] : NULL;
}

void
smm_keystore_free(struct smm_keystore *ks)
{
    size_t i;

    if (ks == NULL)
        return;
    for (i = 0; i < ks->n; i++)
        key_free(ks->keys[i]);
    free(ks->keys);
    free(ks->idx);
    free(ks);
}
