/*
 * fuzz-util -- shared helpers of the fuzz targets; see fuzz-util.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "fuzz-util.h"
#include "smm_log.h"
#include "smm_message.h"
#include "smm_pipeline.h"
#include "smm_result.h"

static char tmpdir[1024];
static char pkidir[2048];

static void
die(const char *what)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, strerror(errno));
    abort();
}

static void
quiet(int level, const char *line, void *arg)
{
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path); /* best effort: keep going */
    return 0;
}

static void
rm_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_setup(void)
{
    struct smm_err err;
    const char *base = getenv("TMPDIR");

    if (tmpdir[0] != '\0')
        return tmpdir;
    if (smm_init(&err) != SMM_OK) {
        fprintf(stderr, "fuzz: %s\n", err.msg);
        abort();
    }
    smm_log_set(quiet, NULL, SMM_LOG_ERR);
    snprintf(tmpdir, sizeof(tmpdir), "%s/smm-fuzz.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        die("mkdtemp");
    atexit(rm_tmpdir);
    return tmpdir;
}

int
fuzz_write(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    const char *p = data;

    if (fd < 0)
        return -1;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd);
}

char *
fuzz_cstr(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);

    if (s == NULL)
        abort();
    memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* ---------------------------------------------------------------- PKI */

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL ||
        X509_add_ext(x, ext, -1) != 1)
        die("X509_add_ext");
    X509_EXTENSION_free(ext);
}

/* a CA (issuer NULL) or an end-entity certificate for addr */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
          const char *addr, const char *ku)
{
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    static long serial = 1000;
    char san[256];

    if (x == NULL || n == NULL)
        die("X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                               -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400L);
    X509_gmtime_adj(X509_getm_notAfter(x), 730 * 86400L);
    X509_set_pubkey(x, key);
    add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
    if (issuer == NULL) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        snprintf(san, sizeof(san), "email:%s", addr);
        add_ext(x, issuer, NID_authority_key_identifier, "keyid");
        add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
        add_ext(x, issuer, NID_key_usage, ku);
        add_ext(x, issuer, NID_ext_key_usage, "emailProtection");
        add_ext(x, issuer, NID_subject_alt_name, san);
    }
    if (X509_sign(x, ikey ? ikey : key, EVP_sha256()) <= 0)
        die("X509_sign");
    X509_NAME_free(n);
    return x;
}

/* DIR/NAME.pem (certificate + key, 0600) and DIR/NAME.crt */
static void
save_user(const char *dir, const char *name, X509 *x, EVP_PKEY *key)
{
    char path[4200];
    BIO *b;

    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    if ((b = BIO_new_file(path, "w")) == NULL || !PEM_write_bio_X509(b, x))
        die(path);
    BIO_free(b);
    snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    if (fuzz_write(path, "", 0, 0600) != 0 ||
        (b = BIO_new_file(path, "w")) == NULL || !PEM_write_bio_X509(b, x) ||
        !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL))
        die(path);
    BIO_free(b);
}

static void
generate_pki(const char *dir)
{
    static const struct {
        const char *name, *addr, *alg, *ku;
    } users[] = {
        {"alice", "alice@example.org", "RSA",
         "digitalSignature,nonRepudiation,keyEncipherment"},
        {"bob", "bob@example.net", "RSA",
         "digitalSignature,nonRepudiation,keyEncipherment"},
        {"carol", "carol@example.org", "EC", "digitalSignature,keyAgreement"},
    };
    EVP_PKEY *rootkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *root;
    char path[4200];
    BIO *b;
    size_t i;

    if (rootkey == NULL)
        die("root key");
    root = make_cert(rootkey, "smime-milter fuzz root", NULL, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "%s/trust.pem", dir);
    if ((b = BIO_new_file(path, "w")) == NULL || !PEM_write_bio_X509(b, root))
        die(path);
    BIO_free(b);
    for (i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        EVP_PKEY *k = strcmp(users[i].alg, "EC") == 0
                          ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                          : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        X509 *x;
        if (k == NULL)
            die("user key");
        x = make_cert(k, users[i].addr, root, rootkey, users[i].addr,
                      users[i].ku);
        save_user(dir, users[i].name, x, k);
        X509_free(x);
        EVP_PKEY_free(k);
    }
    X509_free(root);
    EVP_PKEY_free(rootkey);
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *fp = fopen(from, "rb");
    char *buf = NULL;
    long len;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)len + 1)) == NULL ||
        fread(buf, 1, (size_t)len, fp) != (size_t)len ||
        fuzz_write(to, buf, (size_t)len, mode) != 0)
        die(from);
    fclose(fp);
    free(buf);
}

const char *
fuzz_pki(void)
{
    static const char *const names[] = {"alice", "bob", "carol"};
    const char *env = getenv("SMM_FUZZ_PKI");
    char from[4200], to[4200];
    size_t i;

    if (pkidir[0] != '\0')
        return pkidir;
    fuzz_setup();
    if (env != NULL && *env != '\0') {
        snprintf(pkidir, sizeof(pkidir), "%s", env);
    } else {
        snprintf(pkidir, sizeof(pkidir), "%s/pki", tmpdir);
        if (mkdir(pkidir, 0700) != 0)
            die(pkidir);
        generate_pki(pkidir);
    }
    /* keys/NAME.pem for the key store (rcptkeys/: bob and carol only),
       certs/NAME.crt for the resolver, harvest/ for the HarvestStore */
    snprintf(to, sizeof(to), "%s/keys", tmpdir);
    if (mkdir(to, 0700) != 0)
        die(to);
    snprintf(to, sizeof(to), "%s/certs", tmpdir);
    if (mkdir(to, 0700) != 0)
        die(to);
    snprintf(to, sizeof(to), "%s/harvest", tmpdir);
    if (mkdir(to, 0700) != 0)
        die(to);
    snprintf(to, sizeof(to), "%s/rcptkeys", tmpdir);
    if (mkdir(to, 0700) != 0)
        die(to);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(from, sizeof(from), "%s/%s.pem", pkidir, names[i]);
        snprintf(to, sizeof(to), "%s/keys/%s.pem", tmpdir, names[i]);
        copy_file(from, to, 0600);
        if (i > 0) { /* the recipients only, without alice (the sender) */
            snprintf(to, sizeof(to), "%s/rcptkeys/%s.pem", tmpdir, names[i]);
            copy_file(from, to, 0600);
        }
        snprintf(from, sizeof(from), "%s/%s.crt", pkidir, names[i]);
        snprintf(to, sizeof(to), "%s/certs/%s.crt", tmpdir, names[i]);
        copy_file(from, to, 0644);
    }
    return pkidir;
}

struct smm_state *
fuzz_state(const char *name, const char *conf)
{
    struct smm_state *s = NULL;
    struct smm_diag diag = {0};
    struct smm_err err;
    char path[4200];

    fuzz_setup();
    snprintf(path, sizeof(path), "%s/%s.conf", tmpdir, name);
    if (fuzz_write(path, conf, strlen(conf), 0600) != 0)
        die(path);
    if (smm_state_load(path, &s, &diag, &err) != SMM_OK) {
        fprintf(stderr, "fuzz: %s: %s\n", path, err.msg);
        abort();
    }
    smm_diag_free(&diag);
    return s;
}

/* ---------------------------------------------------------------- pipeline */

void
fuzz_pipeline(const struct smm_state *s, enum smm_direction dir,
              const char *from, const char *const *rcpts, const uint8_t *data,
              size_t size)
{
    static FILE *devnull;
    static int verbose = -1;
    struct smm_message *m = NULL;
    struct smm_result r;
    struct smm_err err;
    struct smm_run_opts ro = {0};
    FILE *in = NULL;

    memset(&r, 0, sizeof(r));
    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        die("/dev/null");
    if (size == 0)
        return; /* fmemopen() refuses an empty buffer */
    if (smm_message_new(s->cfg->max_memory_body, s->cfg->max_message_size,
                        s->cfg->temp_dir, &m, &err) != SMM_OK ||
        smm_message_set_queue_id(m, "FUZZ") != SMM_OK ||
        smm_message_set_from(m, from) != SMM_OK)
        goto out;
    for (; *rcpts != NULL; rcpts++)
        if (smm_message_add_rcpt(m, *rcpts) != SMM_OK)
            goto out;
    if ((in = fmemopen((void *)data, size, "r")) == NULL)
        die("fmemopen");
    if (verbose < 0)
        verbose = getenv("SMM_FUZZ_VERBOSE") != NULL;
    if (smm_message_read(in, m, &err) != SMM_OK ||
        smm_pipeline_run(s, m, dir, &ro, &r, &err) != SMM_OK) {
        if (verbose) /* the milter would tempfail */
            fprintf(stderr, "fuzz: %s error: %s\n", smm_direction_name(dir),
                    err.msg);
        goto out;
    }
    if (verbose) /* what the summary log line would say */
        fprintf(stderr, "fuzz: %s action=%d result=%s%s\n",
                smm_direction_name(dir), (int)r.action,
                r.verdict != NULL ? r.verdict : "-",
                r.log.data != NULL ? r.log.data : "");
    if (r.action == SMM_ACT_DELIVER || r.action == SMM_ACT_HOLD)
        smm_result_write(&r, m, devnull, &err);
out:
    if (in != NULL)
        fclose(in);
    smm_result_free(&r);
    smm_message_free(m);
}
