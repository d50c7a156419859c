/*
 * smm_harvest -- the harvested certificate store; see smm_harvest.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "smm_cache.h"
#include "smm_certblob.h"
#include "smm_certsel.h"
#include "smm_harvest.h"
#include "smm_state.h"
#include "smm_x509.h"

#define CAPS_LINE "# capabilities:"

int
smm_harvest_path(const char *dir, const char *addr, char *out, size_t sz)
{
    size_t o;
    const unsigned char *p;
    int n = snprintf(out, sz, "%s/", dir);

    if (n < 0 || (size_t)n >= sz || addr == NULL || *addr == '\0')
        return -1;
    o = (size_t)n;
    for (p = (const unsigned char *)addr; *p != '\0'; p++) {
        if (o + 8 >= sz)
            return -1;
        if (isalnum(*p) || (strchr("@_+-", *p) != NULL) ||
            (*p == '.' && p != (const unsigned char *)addr))
            out[o++] = (char)tolower(*p);
        else
            o += (size_t)snprintf(out + o, sz - o, "%%%02X", *p);
    }
    snprintf(out + o, sz - o, ".pem");
    return 0;
}

int
smm_harvest_read(const char *dir, const char *addr, STACK_OF(X509) * out,
                 unsigned *caps)
{
    char path[4096], line[512];
    FILE *fp;
    X509 *x;
    int n = 0;

    *caps = 0;
    if (dir == NULL || *dir == '\0' ||
        smm_harvest_path(dir, addr, path, sizeof(path)) != 0 ||
        (fp = fopen(path, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), fp) != NULL && line[0] == '#')
        if (strncmp(line, CAPS_LINE, strlen(CAPS_LINE)) == 0) {
            const char *v = line + strlen(CAPS_LINE);
            if (strstr(v, "known") != NULL)
                *caps |= SMM_CAP_KNOWN;
            if (strstr(v, "aes-128-gcm") != NULL)
                *caps |= SMM_CAP_GCM128;
            if (strstr(v, "aes-256-gcm") != NULL)
                *caps |= SMM_CAP_GCM256;
        }
    rewind(fp);
    while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(out, x))
            n++;
        else
            X509_free(x);
    }
    ERR_clear_error();
    fclose(fp);
    return n;
}

/* Write x's issuers found in chain, each once, up to a self-signed one
 * (chain may hold other certificates too: trust anchors, intermediates
 * known here).  Returns 0 when a write fails. */
static int
write_issuers(FILE *fp, X509 *x, STACK_OF(X509) * chain)
{
    X509 *cur = x, *y, *next;
    int i, depth;

    for (depth = 0; depth < 16; depth++) {
        if (X509_check_issued(cur, cur) == X509_V_OK)
            break; /* self-signed: the top */
        next = NULL;
        for (i = 0; next == NULL && i < sk_X509_num(chain); i++) {
            y = sk_X509_value(chain, i);
            if (y != cur && X509_cmp(y, cur) != 0 && X509_check_ca(y) > 0 &&
                X509_check_issued(y, cur) == X509_V_OK)
                next = y;
        }
        if (next == NULL)
            break;
        if (!PEM_write_X509(fp, next))
            return 0;
        cur = next;
    }
    return 1;
}

int
smm_harvest_store(const struct smm_state *s, const char *addr, X509 *x,
                  STACK_OF(X509) * chain, unsigned caps, time_t now,
                  struct smm_err *err)
{
    const char *dir = s->cfg->harvest_store;
    char path[4096], tmp[4200], why[256];
    STACK_OF(X509) *old = sk_X509_new_null();
    struct smm_certsel_opts o;
    unsigned oldcaps = 0;
    FILE *fp = NULL;
    char *subject = NULL;
    int fd = -1, i, ret = -1, ok;
    struct tm tm;
    char when[32];

    if (old == NULL) {
        smm_err_set(err, SMM_ENOMEM, "out of memory");
        return -1;
    }
    if (smm_harvest_path(dir, addr, path, sizeof(path)) != 0) {
        smm_err_set(err, SMM_EINVAL, "no file name for <%s>", addr);
        goto out;
    }
    o.now = now;
    o.min_key_bits = s->cfg->min_key_bits;
    o.require_trusted = s->cfg->require_trusted_rcpt;
    o.trust = s->trust;
    if (smm_certsel_check(x, addr, chain, &o, why, sizeof(why)) != NULL) {
        ret = 0; /* not something we could encrypt to */
        goto out;
    }
    (void)smm_harvest_read(dir, addr, old, &oldcaps);
    for (i = 0; i < sk_X509_num(old); i++) {
        X509 *y = sk_X509_value(old, i);
        if (X509_check_ca(y) > 0)
            continue;
        /* a signature without SMIMECapabilities says nothing new about
         * the same certificate: what an earlier one said stays */
        if (X509_cmp(x, y) == 0 && !(caps & SMM_CAP_KNOWN))
            caps = oldcaps;
        if ((X509_cmp(x, y) == 0 && oldcaps == caps) ||
            (X509_cmp(x, y) != 0 &&
             smm_x509_not_before(y) > smm_x509_not_before(x) &&
             smm_x509_valid_at(y, now))) {
            ret = 0; /* the same, or a newer one is already there */
            goto out;
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0 && errno == ENOENT && mkdir(dir, 0755) == 0) {
        /* a HarvestStore not made yet (mkstemp filled in the template) */
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
        fd = mkstemp(tmp);
    }
    if (fd < 0 || fchmod(fd, 0644) != 0 || (fp = fdopen(fd, "w")) == NULL) {
        smm_err_set(err, SMM_EIO, "HarvestStore %s: %s", dir, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        goto out;
    }
    fd = -1;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    subject = smm_x509_subject(x);
    fprintf(fp,
            "# smime-milter harvested certificate\n"
            "# address: %s\n"
            "# subject: %s\n" CAPS_LINE "%s%s%s%s\n"
            "# harvested: %s\n",
            addr, subject != NULL ? subject : "?",
            caps & SMM_CAP_KNOWN ? " known" : " unknown",
            caps & SMM_CAP_GCM128 ? " aes-128-gcm" : "",
            caps & SMM_CAP_GCM256 ? " aes-256-gcm" : "",
            caps & SMM_CAP_KNOWN ? " aes-cbc" : "", when);
    ok = PEM_write_X509(fp, x) && write_issuers(fp, x, chain);
    if (!ok || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        smm_err_set(err, SMM_EIO, "writing %s: %s", tmp, strerror(errno));
        fclose(fp);
        unlink(tmp);
        goto out;
    }
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        smm_err_set(err, SMM_EIO, "writing %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    smm_cache_forget(s->cache, addr);
    ret = 1;
out:
    ERR_clear_error();
    free(subject);
    sk_X509_pop_free(old, X509_free);
    return ret;
}
