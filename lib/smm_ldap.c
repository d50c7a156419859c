/*
 * smm_ldap -- recipient certificate lookup in LDAP; see smm_ldap.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lber.h>
#include <ldap.h>
#include <openssl/crypto.h>

#include "smm_keystore.h"
#include "smm_ldap.h"
#include "smm_log.h"

struct smm_ldap_conn {
    LDAP *ld;   /* NULL when not connected */
    size_t uri; /* index into uris of the server ld is bound to */
    int busy;   /* taken by a thread */
};

struct smm_ldap {
    char **uris;
    size_t nuris;
    int starttls;
    char *cacert;   /* NULL: libldap's default */
    char *bind_dn;  /* NULL: no simple bind */
    char *password; /* NULL: none; cleansed on free */
    int sasl_external;
    char *base;
    char *filter;
    char **attrs; /* NULL-terminated */
    int timeout;  /* seconds per server */
    int hold;     /* LDAPRetryAfterTimeout (seconds; 0: off) */
    int size_limit;
    struct smm_ldap_srv *srv; /* per URI, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct smm_ldap_conn *conns;
    size_t nconns;
    unsigned long connects; /* successful connect + bind */
    unsigned long searches; /* successful searches */
};

#define WHYLEN 300

/*
 * A server whose failure took most of LDAPTimeout (hung, or a network that
 * drops packets) is held down for LDAPRetryAfterTimeout seconds: lookups
 * skip it and fail over at once, or fail at once (a temporary error) when
 * no server is left, instead of each waiting the whole timeout again while
 * mail piles up.  After the hold one lookup probes it; the others keep
 * skipping it while the probe runs.  Quick failures (connection refused)
 * cost nothing and are never held.
 */
struct smm_ldap_srv {
    struct timespec until; /* held down before this (0: not held) */
    char why[WHYLEN];      /* the failure that held it */
};

/* ---------------------------------------------------------------- time */

static void
deadline_set(struct timespec *dl, int secs)
{
    clock_gettime(CLOCK_MONOTONIC, dl);
    dl->tv_sec += secs;
}

/* Time left until dl in tv; 0 when it has passed. */
static int
deadline_left(const struct timespec *dl, struct timeval *tv)
{
    struct timespec now;
    long long us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long long)(dl->tv_sec - now.tv_sec) * 1000000 +
         (dl->tv_nsec - now.tv_nsec) / 1000;
    if (us <= 0)
        return 0;
    tv->tv_sec = (time_t)(us / 1000000);
    tv->tv_usec = (suseconds_t)(us % 1000000);
    return 1;
}

static double
ms_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 +
           (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Is server u held down?  If so, why says why and for how long.  The
 * first caller after a hold ends becomes the probe. */
static int
srv_held(struct smm_ldap *l, size_t u, char *why, size_t whysz)
{
    struct smm_ldap_srv *sv = &l->srv[u];
    struct timespec now;
    long long ms;
    int held = 0;

    if (l->hold <= 0)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&l->mu);
    if (sv->until.tv_sec != 0) {
        ms = (long long)(sv->until.tv_sec - now.tv_sec) * 1000 +
             (sv->until.tv_nsec - now.tv_nsec) / 1000000;
        if (ms > 0) {
            held = 1;
            snprintf(why, whysz, "held down for %lld s more after: %.200s",
                     (ms + 999) / 1000, sv->why);
        } else {
            /* the probe: others skip the server while it runs */
            sv->until = now;
            sv->until.tv_sec += l->timeout + 1;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return held;
}

/* Server u failed after elapsed ms (why), or answered (why NULL). */
static void
srv_result(struct smm_ldap *l, size_t u, double elapsed, const char *why)
{
    struct smm_ldap_srv *sv = &l->srv[u];
    int hold = why != NULL && l->hold > 0 && elapsed >= l->timeout * 500.0;

    pthread_mutex_lock(&l->mu);
    if (hold) {
        if (sv->until.tv_sec == 0)
            smm_log(SMM_LOG_WARNING,
                    "ldap: %s took %.1f s to fail; not asking it again for "
                    "%d s (LDAPRetryAfterTimeout)",
                    l->uris[u], elapsed / 1e3, l->hold);
        clock_gettime(CLOCK_MONOTONIC, &sv->until);
        sv->until.tv_sec += l->hold;
        snprintf(sv->why, sizeof(sv->why), "%s", why);
    } else {
        sv->until.tv_sec = 0;
        sv->until.tv_nsec = 0;
    }
    pthread_mutex_unlock(&l->mu);
}

/* Bound the next connect, TLS handshake or synchronous operation. */
static int
set_timeouts(LDAP *ld, const struct timespec *dl, struct timeval *tv)
{
    if (!deadline_left(dl, tv))
        return LDAP_TIMEOUT;
    if (ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, tv) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, tv) != LDAP_OPT_SUCCESS)
        return LDAP_LOCAL_ERROR;
    return LDAP_SUCCESS;
}

/* ------------------------------------------------------------- helpers */

/* "step: reason (server's diagnostic)" into why. */
static void
describe(LDAP *ld, int rc, const char *step, char *why, size_t whysz)
{
    char *diag = NULL, esc[200];

    if (ld != NULL &&
        ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) ==
            LDAP_OPT_SUCCESS &&
        diag != NULL && diag[0] != '\0' &&
        strcmp(diag, "(unknown error code)") != 0) { /* libldap's TLS */
        smm_log_escape(esc, sizeof(esc), diag);
        snprintf(why, whysz, "%s: %s (%s)", step, ldap_err2string(rc), esc);
    } else {
        snprintf(why, whysz, "%s: %s", step, ldap_err2string(rc));
    }
    ldap_memfree(diag);
}

/* Errors that no other server would answer differently. */
static int
is_local_error(int rc)
{
    return rc == LDAP_FILTER_ERROR || rc == LDAP_PARAM_ERROR ||
           rc == LDAP_NO_MEMORY || rc == LDAP_ENCODING_ERROR;
}

static smm_status
local_error(const struct smm_ldap *l, int rc, const char *why,
            struct smm_err *err)
{
    if (rc == LDAP_NO_MEMORY)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    if (rc == LDAP_FILTER_ERROR)
        return smm_err_set(err, SMM_EINVAL,
                           "LDAPFilter \"%s\" does not give a valid filter",
                           l->filter);
    return smm_err_set(err, SMM_EINVAL, "LDAP: %s", why);
}

static int
uri_is(const char *uri, const char *scheme)
{
    size_t n = strlen(scheme);

    return strncasecmp(uri, scheme, n) == 0 && strncmp(uri + n, "://", 3) == 0;
}

static int
uses_tls(const struct smm_ldap *l, const char *uri)
{
    return uri_is(uri, "ldaps") || (l->starttls && uri_is(uri, "ldap"));
}

/* Per-handle TLS settings: check the server, our CA, a fresh context. */
static int
set_tls(const struct smm_ldap *l, LDAP *ld)
{
    int demand = LDAP_OPT_X_TLS_DEMAND, client = 0;

    if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) !=
        LDAP_OPT_SUCCESS)
        return LDAP_LOCAL_ERROR;
    if (l->cacert != NULL && ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
                                             l->cacert) != LDAP_OPT_SUCCESS)
        return LDAP_LOCAL_ERROR;
    if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS)
        return LDAP_LOCAL_ERROR;
    return LDAP_SUCCESS;
}

static void
conn_close(struct smm_ldap_conn *c)
{
    if (c->ld != NULL)
        ldap_unbind_ext(c->ld, NULL, NULL);
    c->ld = NULL;
}

/*
 * Connect c to server u and bind, all before dl.  Returns an LDAP result
 * code; on failure why says what went wrong and c is left closed.
 */
static int
conn_open(struct smm_ldap *l, struct smm_ldap_conn *c, size_t u,
          const struct timespec *dl, char *why, size_t whysz)
{
    LDAP *ld = NULL;
    const char *uri = l->uris[u];
    int rc, v3 = LDAP_VERSION3;
    struct timeval tv;
    struct berval cred;

    conn_close(c);
    if ((rc = ldap_initialize(&ld, uri)) != LDAP_SUCCESS) {
        describe(NULL, rc, "initialize", why, whysz);
        ld = NULL;
        goto out;
    }
    /*
     * CONNECT_ASYNC: with a network timeout set, libldap 2.5 makes the
     * socket non-blocking for the TLS handshake but only waits (poll with
     * the timeout) in async mode; otherwise it spins at 100% CPU for ever
     * on an ldaps:// server that accepts and never answers.
     */
    if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) !=
            LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) !=
            LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON) !=
            LDAP_OPT_SUCCESS) {
        rc = LDAP_LOCAL_ERROR;
        describe(ld, rc, "set options", why, whysz);
        goto out;
    }
    if (uses_tls(l, uri) && (rc = set_tls(l, ld)) != LDAP_SUCCESS) {
        describe(ld, rc, "TLS setup", why, whysz);
        goto out;
    }
    if (l->starttls && uri_is(uri, "ldap")) {
        if ((rc = set_timeouts(ld, dl, &tv)) == LDAP_SUCCESS)
            rc = ldap_start_tls_s(ld, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            describe(ld, rc, "StartTLS", why, whysz);
            goto out;
        }
    }
    if ((rc = set_timeouts(ld, dl, &tv)) == LDAP_SUCCESS) {
        if (l->sasl_external) {
            /* an empty initial response (no authzid); without one slapd
             * answers "SASL bind in progress" */
            cred.bv_val = (char *)"";
            cred.bv_len = 0;
            rc =
                ldap_sasl_bind_s(ld, NULL, "EXTERNAL", &cred, NULL, NULL, NULL);
        } else if (l->bind_dn != NULL) {
            cred.bv_val = l->password;
            cred.bv_len = strlen(l->password);
            rc = ldap_sasl_bind_s(ld, l->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL,
                                  NULL, NULL);
        } else {
            cred.bv_val = (char *)"";
            cred.bv_len = 0;
            rc = ldap_sasl_bind_s(ld, NULL, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                                  NULL);
        }
    }
    if (rc != LDAP_SUCCESS) {
        describe(ld, rc, l->sasl_external ? "SASL EXTERNAL bind" : "bind", why,
                 whysz);
        goto out;
    }
    c->ld = ld;
    c->uri = u;
    ld = NULL;
    pthread_mutex_lock(&l->mu);
    l->connects++;
    pthread_mutex_unlock(&l->mu);
out:
    if (ld != NULL)
        ldap_unbind_ext(ld, NULL, NULL);
    return rc;
}

/*
 * Search on c before dl.  Returns LDAP_SUCCESS (also when the size limit
 * cut the answer short) with *msg set, or an error code with why filled.
 */
static int
conn_search(struct smm_ldap *l, struct smm_ldap_conn *c, const char *filter,
            char **attrs, int sizelimit, const struct timespec *dl,
            LDAPMessage **msg, char *why, size_t whysz)
{
    struct timeval tv;
    int rc;

    *msg = NULL;
    if ((rc = set_timeouts(c->ld, dl, &tv)) != LDAP_SUCCESS) {
        describe(c->ld, rc, "search", why, whysz);
        return rc;
    }
    rc = ldap_search_ext_s(c->ld, l->base, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
                           NULL, NULL, &tv, sizelimit, msg);
    if (rc == LDAP_SIZELIMIT_EXCEEDED && *msg != NULL) {
        smm_log(SMM_LOG_DEBUG, "ldap: %s: size limit %d reached",
                l->uris[c->uri], sizelimit);
        rc = LDAP_SUCCESS;
    }
    if (rc != LDAP_SUCCESS) {
        describe(c->ld, rc, "search", why, whysz);
        ldap_msgfree(*msg);
        *msg = NULL;
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    l->searches++;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Append "uri: why" to the list of failures for the final message. */
static void
note_failure(char *buf, size_t sz, const char *uri, const char *why)
{
    size_t len = strlen(buf);

    if (len + 1 < sz)
        snprintf(buf + len, sz - len, "%s%s: %s", len > 0 ? "; " : "", uri,
                 why);
}

/* ---------------------------------------------------------------- pool */

static smm_status
pool_get(struct smm_ldap *l, struct smm_ldap_conn **out, struct smm_err *err)
{
    struct timespec dl;
    size_t i;
    struct smm_ldap_conn *c;
    int rc;

    *out = NULL;
    /* no lookup holds a handle longer than this */
    deadline_set(&dl, l->timeout * (int)(l->nuris + 1) + 1);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        c = NULL;
        for (i = 0; i < l->nconns; i++) {
            if (l->conns[i].busy)
                continue;
            if (c == NULL || (c->ld == NULL && l->conns[i].ld != NULL))
                c = &l->conns[i]; /* prefer an open connection */
        }
        if (c != NULL)
            break;
        rc = pthread_cond_timedwait(&l->cv, &l->mu, &dl);
        if (rc == ETIMEDOUT) {
            pthread_mutex_unlock(&l->mu);
            return smm_err_set(err, SMM_ETEMP,
                               "LDAP: all %zu connections stayed busy",
                               l->nconns);
        }
    }
    c->busy = 1;
    pthread_mutex_unlock(&l->mu);
    *out = c;
    return SMM_OK;
}

static void
pool_put(struct smm_ldap *l, struct smm_ldap_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    c->busy = 0;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* -------------------------------------------------------------- result */

static smm_status
add_value(struct smm_ldap_result *res, const char *attr, const char *dn,
          const struct berval *bv)
{
    struct smm_ldap_value *nv, *v;
    size_t cap;

    /* grow when n reaches a power of two (capacity 4, 8, 16, ...) */
    if (res->n == 0 || (res->n >= 4 && (res->n & (res->n - 1)) == 0)) {
        cap = res->n == 0 ? 4 : res->n * 2;
        if ((nv = realloc(res->v, cap * sizeof(*nv))) == NULL)
            return SMM_ENOMEM;
        res->v = nv;
    }
    v = &res->v[res->n];
    memset(v, 0, sizeof(*v));
    v->attr = strdup(attr);
    v->dn = strdup(dn != NULL ? dn : "");
    v->data = malloc(bv->bv_len > 0 ? bv->bv_len : 1);
    if (v->attr == NULL || v->dn == NULL || v->data == NULL) {
        free(v->attr);
        free(v->dn);
        free(v->data);
        return SMM_ENOMEM;
    }
    if (bv->bv_len > 0)
        memcpy(v->data, bv->bv_val, bv->bv_len);
    v->len = bv->bv_len;
    res->n++;
    return SMM_OK;
}

/* Every value of every attribute of every entry in msg. */
static smm_status
collect(LDAP *ld, LDAPMessage *msg, struct smm_ldap_result *res,
        struct smm_err *err)
{
    LDAPMessage *e;
    BerElement *ber = NULL;
    struct berval **vals = NULL;
    char *dn = NULL, *a = NULL;
    size_t i;
    smm_status st = SMM_OK;

    for (e = ldap_first_entry(ld, msg); e != NULL; e = ldap_next_entry(ld, e)) {
        dn = ldap_get_dn(ld, e);
        for (a = ldap_first_attribute(ld, e, &ber); a != NULL;
             a = ldap_next_attribute(ld, e, ber)) {
            vals = ldap_get_values_len(ld, e, a);
            for (i = 0; vals != NULL && vals[i] != NULL; i++)
                if ((st = add_value(res, a, dn, vals[i])) != SMM_OK)
                    goto out;
            ldap_value_free_len(vals);
            vals = NULL;
            ldap_memfree(a);
        }
        ber_free(ber, 0);
        ber = NULL;
        ldap_memfree(dn);
        dn = NULL;
    }
out:
    ldap_value_free_len(vals);
    ldap_memfree(a);
    if (ber != NULL)
        ber_free(ber, 0);
    ldap_memfree(dn);
    if (st != SMM_OK)
        smm_err_set(err, st, "out of memory");
    return st;
}

void
smm_ldap_result_free(struct smm_ldap_result *res)
{
    size_t i;

    if (res == NULL)
        return;
    for (i = 0; i < res->n; i++) {
        free(res->v[i].attr);
        free(res->v[i].data);
        free(res->v[i].dn);
    }
    free(res->v);
    free(res->server);
    memset(res, 0, sizeof(*res));
}

/* -------------------------------------------------------------- filter */

/*
 * tmpl with every "%s" replaced by addr escaped as an RFC 4515 assertion
 * value by libldap: "*", "(", ")", "\\", NUL and every non-ASCII byte
 * become \XX (lower-case hex here, as slapd writes them: \2a, \28, \29,
 * \5c).  Other "%" characters are copied as they are.
 */
char *
smm_ldap_filter(const char *tmpl, const char *addr)
{
    struct berval in, esc = {0, NULL};
    const char *p, *q;
    size_t n = 0, tl, el, len;
    char *out = NULL, *o;

    if (tmpl == NULL || addr == NULL)
        return NULL;
    in.bv_val = (char *)addr;
    in.bv_len = strlen(addr);
    if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
        return NULL;
    el = esc.bv_val != NULL ? esc.bv_len : 0;
    for (n = 0; n + 2 < el; n++) {
        if (esc.bv_val[n] != '\\')
            continue; /* always \XX: lower-case XX */
        esc.bv_val[n + 1] = (char)tolower((unsigned char)esc.bv_val[n + 1]);
        esc.bv_val[n + 2] = (char)tolower((unsigned char)esc.bv_val[n + 2]);
        n += 2;
    }
    n = 0;
    for (p = tmpl; (q = strstr(p, "%s")) != NULL; p = q + 2)
        n++;
    tl = strlen(tmpl);
    if (n > 0 && el > (SIZE_MAX - tl - 1) / n)
        goto out;
    len = tl - 2 * n + n * el + 1;
    if ((out = malloc(len)) == NULL)
        goto out;
    o = out;
    for (p = tmpl; (q = strstr(p, "%s")) != NULL; p = q + 2) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        if (el > 0)
            memcpy(o, esc.bv_val, el);
        o += el;
    }
    memcpy(o, p, strlen(p) + 1);
out:
    ber_memfree(esc.bv_val);
    return out;
}

/* -------------------------------------------------------------- lookup */

smm_status
smm_ldap_lookup(struct smm_ldap *l, const char *addr,
                struct smm_ldap_result *res, struct smm_err *err)
{
    struct smm_ldap_conn *c = NULL;
    LDAPMessage *msg = NULL;
    char *filter = NULL, why[WHYLEN], fails[SMM_ERR_MSGLEN], eaddr[256];
    struct timespec t0, t1, dl;
    size_t u, skip = SIZE_MAX;
    int rc;
    smm_status st;

    memset(res, 0, sizeof(*res));
    fails[0] = '\0';
    if (addr == NULL || addr[0] == '\0')
        return smm_err_set(err, SMM_EINVAL, "LDAP lookup: empty address");
    smm_log_escape(eaddr, sizeof(eaddr), addr);
    if ((filter = smm_ldap_filter(l->filter, addr)) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    if ((st = pool_get(l, &c, err)) != SMM_OK)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    /* the server this handle is already bound to, unless held down */
    if (c->ld != NULL && srv_held(l, c->uri, why, sizeof(why))) {
        conn_close(c);
    } else if (c->ld != NULL) {
        u = c->uri;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        deadline_set(&dl, l->timeout);
        rc = conn_search(l, c, filter, l->attrs, l->size_limit, &dl, &msg, why,
                         sizeof(why));
        if (rc == LDAP_SUCCESS)
            goto found;
        if (is_local_error(rc)) {
            st = local_error(l, rc, why, err);
            goto out;
        }
        conn_close(c);
        note_failure(fails, sizeof(fails), l->uris[u], why);
        /* a dropped connection (server restarted, idle timeout) is
         * worth one new try, and a failure of that is logged below; a
         * hung or erring server gets no second chance */
        if (rc == LDAP_SERVER_DOWN && ms_since(&t1) < l->timeout * 500.0) {
            smm_log(SMM_LOG_INFO, "ldap: %s: connection lost (%s); retrying",
                    l->uris[u], why);
        } else {
            smm_log(SMM_LOG_WARNING, "ldap: %s failed: %s; %s", l->uris[u], why,
                    l->nuris > 1 ? "failing over" : "no server left");
            srv_result(l, u, ms_since(&t1), why);
            skip = u;
        }
    }

    /* failover: every server in order */
    for (u = 0; u < l->nuris; u++) {
        if (u == skip)
            continue;
        if (srv_held(l, u, why, sizeof(why))) {
            note_failure(fails, sizeof(fails), l->uris[u], why);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        deadline_set(&dl, l->timeout);
        rc = conn_open(l, c, u, &dl, why, sizeof(why));
        if (rc == LDAP_SUCCESS)
            rc = conn_search(l, c, filter, l->attrs, l->size_limit, &dl, &msg,
                             why, sizeof(why));
        if (rc == LDAP_SUCCESS)
            goto found;
        if (is_local_error(rc)) {
            st = local_error(l, rc, why, err);
            goto out;
        }
        conn_close(c);
        note_failure(fails, sizeof(fails), l->uris[u], why);
        srv_result(l, u, ms_since(&t1), why);
        if (u + 1 < l->nuris && !(u + 1 == skip && u + 2 >= l->nuris))
            smm_log(SMM_LOG_WARNING, "ldap: %s failed: %s; failing over",
                    l->uris[u], why);
        else
            smm_log(SMM_LOG_WARNING, "ldap: %s failed: %s; no server left",
                    l->uris[u], why);
    }
    st = smm_err_set(err, SMM_ETEMP, "LDAP lookup for <%s> failed: %s", eaddr,
                     fails[0] != '\0' ? fails : "no server");
    goto out;

found:
    srv_result(l, c->uri, 0, NULL);
    if ((st = collect(c->ld, msg, res, err)) != SMM_OK)
        goto out;
    if ((res->server = strdup(l->uris[c->uri])) == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    smm_log(SMM_LOG_DEBUG, "ldap: %s answered <%s>: %zu value%s in %.1f ms",
            res->server, eaddr, res->n, res->n == 1 ? "" : "s", ms_since(&t0));
out:
    ldap_msgfree(msg);
    free(filter);
    pool_put(l, c);
    if (st != SMM_OK)
        smm_ldap_result_free(res);
    return st;
}

/* --------------------------------------------------------------- check */

/*
 * Connect and bind to the first server that lets us, then run one search
 * with the configured base and filter (for a made-up address) so that a
 * wrong LDAPBase or LDAPFilter shows up too.  Uses its own connection.
 */
smm_status
smm_ldap_check(struct smm_ldap *l, struct smm_err *err)
{
    struct smm_ldap_conn c = {NULL, 0, 1};
    LDAPMessage *msg = NULL;
    char *filter = NULL, *attrs[] = {(char *)LDAP_NO_ATTRS, NULL};
    char why[WHYLEN], fails[SMM_ERR_MSGLEN];
    struct timespec dl;
    size_t u;
    int rc;
    smm_status st;

    fails[0] = '\0';
    if ((filter = smm_ldap_filter(l->filter, "smime-milter-check@invalid")) ==
        NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    for (u = 0; u < l->nuris; u++) {
        deadline_set(&dl, l->timeout);
        if ((rc = conn_open(l, &c, u, &dl, why, sizeof(why))) == LDAP_SUCCESS)
            break;
        smm_log(SMM_LOG_WARNING, "ldap: %s failed: %s", l->uris[u], why);
        note_failure(fails, sizeof(fails), l->uris[u], why);
    }
    if (c.ld == NULL) {
        st = smm_err_set(err, SMM_ETEMP, "no LDAP server works: %s",
                         fails[0] != '\0' ? fails : "no server");
        goto out;
    }
    rc = conn_search(l, &c, filter, attrs, 1, &dl, &msg, why, sizeof(why));
    if (rc == LDAP_SUCCESS) {
        smm_log(SMM_LOG_INFO, "ldap: %s: connected, bound and searched %s",
                l->uris[c.uri], l->base);
        st = SMM_OK;
    } else if (is_local_error(rc)) {
        st = local_error(l, rc, why, err);
    } else {
        st = smm_err_set(err, rc < 0 ? SMM_ETEMP : SMM_EINVAL,
                         "LDAP: %s: test search in \"%s\" failed: %s",
                         l->uris[c.uri], l->base, why);
    }
out:
    ldap_msgfree(msg);
    conn_close(&c);
    free(filter);
    return st;
}

/* ----------------------------------------------------------- lifecycle */

static char *
dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

/* Reject URIs libldap cannot use; set up TLS once, single-threaded. */
static smm_status
check_uris(const struct smm_ldap *l, struct smm_err *err)
{
    LDAPURLDesc *lud = NULL;
    LDAP *ld = NULL;
    size_t i;
    int rc, tls = 0;
    char why[WHYLEN];
    smm_status st = SMM_OK;

    for (i = 0; i < l->nuris; i++) {
        if (ldap_url_parse(l->uris[i], &lud) != LDAP_URL_SUCCESS ||
            (!uri_is(l->uris[i], "ldap") && !uri_is(l->uris[i], "ldaps") &&
             !uri_is(l->uris[i], "ldapi"))) {
            st = smm_err_set(err, SMM_EINVAL,
                             "LDAPURI: \"%s\" is not an ldap://, ldaps:// or "
                             "ldapi:// URI",
                             l->uris[i]);
            goto out;
        }
        ldap_free_urldesc(lud);
        lud = NULL;
        if (uses_tls(l, l->uris[i]))
            tls = 1;
    }
    /* the first handle initialises libldap's globals (and the TLS
     * library, which libldap does not do under a lock) */
    if ((rc = ldap_initialize(&ld, l->uris[0])) != LDAP_SUCCESS) {
        ld = NULL;
        st = smm_err_set(err, SMM_EINVAL, "LDAPURI: %s: %s", l->uris[0],
                         ldap_err2string(rc));
        goto out;
    }
    if (tls && (rc = set_tls(l, ld)) != LDAP_SUCCESS) {
        describe(ld, rc, "TLS setup", why, sizeof(why));
        st = smm_err_set(err, SMM_EINVAL, "LDAP %s (LDAPCACertFile %s)", why,
                         l->cacert != NULL ? l->cacert : "default");
        goto out;
    }
out:
    if (lud != NULL)
        ldap_free_urldesc(lud);
    if (ld != NULL)
        ldap_unbind_ext(ld, NULL, NULL);
    return st;
}

smm_status
smm_ldap_new(const struct smm_config *cfg, struct smm_ldap **out,
             struct smm_err *err)
{
    struct smm_ldap *l = NULL;
    pthread_condattr_t ca;
    size_t i;
    smm_status st;

    *out = NULL;
    if (cfg->ldap_uri.n == 0)
        return smm_err_set(err, SMM_EINVAL, "LDAP: no LDAPURI configured");
    if (cfg->ldap_attrs.n == 0)
        return smm_err_set(err, SMM_EINVAL, "LDAP: LDAPAttributes is empty");
    if (cfg->ldap_timeout < 1 || cfg->ldap_pool_size < 1)
        return smm_err_set(err, SMM_EINVAL,
                           "LDAP: LDAPTimeout and LDAPPoolSize must be at "
                           "least 1");
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);

    l->nuris = cfg->ldap_uri.n;
    l->starttls = cfg->ldap_starttls;
    l->timeout = cfg->ldap_timeout;
    l->hold =
        cfg->ldap_retry_after_timeout > 0 ? cfg->ldap_retry_after_timeout : 0;
    l->size_limit = cfg->ldap_size_limit > 0 ? cfg->ldap_size_limit : 0;
    l->sasl_external = cfg->ldap_sasl_mech != NULL &&
                       strcasecmp(cfg->ldap_sasl_mech, "EXTERNAL") == 0;
    l->nconns = (size_t)cfg->ldap_pool_size;
    if ((l->uris = calloc(l->nuris, sizeof(*l->uris))) == NULL ||
        (l->attrs = calloc(cfg->ldap_attrs.n + 1, sizeof(*l->attrs))) == NULL ||
        (l->conns = calloc(l->nconns, sizeof(*l->conns))) == NULL ||
        (l->srv = calloc(l->nuris, sizeof(*l->srv))) == NULL ||
        (l->base = strdup(cfg->ldap_base != NULL ? cfg->ldap_base : "")) ==
            NULL ||
        (l->filter = strdup(cfg->ldap_filter != NULL && cfg->ldap_filter[0]
                                ? cfg->ldap_filter
                                : "(mail=%s)")) == NULL)
        goto nomem;
    for (i = 0; i < l->nuris; i++)
        if ((l->uris[i] = strdup(cfg->ldap_uri.v[i])) == NULL)
            goto nomem;
    for (i = 0; i < cfg->ldap_attrs.n; i++)
        if ((l->attrs[i] = strdup(cfg->ldap_attrs.v[i])) == NULL)
            goto nomem;
    if ((cfg->ldap_cacert != NULL && cfg->ldap_cacert[0] != '\0' &&
         (l->cacert = dup_or_null(cfg->ldap_cacert)) == NULL) ||
        (cfg->ldap_bind_dn != NULL && cfg->ldap_bind_dn[0] != '\0' &&
         (l->bind_dn = dup_or_null(cfg->ldap_bind_dn)) == NULL))
        goto nomem;

    if (l->sasl_external && l->bind_dn != NULL) {
        st = smm_err_set(err, SMM_EINVAL,
                         "LDAP: LDAPSASLMech EXTERNAL and LDAPBindDN exclude "
                         "each other");
        goto out;
    }
    if (cfg->ldap_bind_passfile != NULL && cfg->ldap_bind_passfile[0]) {
        if (l->bind_dn == NULL) {
            st = smm_err_set(err, SMM_EINVAL,
                             "LDAP: LDAPBindPasswordFile needs LDAPBindDN");
            goto out;
        }
        if ((st = smm_read_secret_file(cfg->ldap_bind_passfile, &l->password,
                                       err)) != SMM_OK)
            goto out;
    } else if (l->bind_dn != NULL) {
        st = smm_err_set(err, SMM_EINVAL,
                         "LDAP: LDAPBindDN needs LDAPBindPasswordFile");
        goto out;
    }
    if ((st = check_uris(l, err)) != SMM_OK)
        goto out;
    *out = l;
    l = NULL;
    st = SMM_OK;
    goto out;
nomem:
    st = smm_err_set(err, SMM_ENOMEM, "out of memory");
out:
    smm_ldap_free(l);
    return st;
}

void
smm_ldap_stats(struct smm_ldap *l, unsigned long *connects,
               unsigned long *searches)
{
    pthread_mutex_lock(&l->mu);
    if (connects != NULL)
        *connects = l->connects;
    if (searches != NULL)
        *searches = l->searches;
    pthread_mutex_unlock(&l->mu);
}

void
smm_ldap_free(struct smm_ldap *l)
{
    size_t i;

    if (l == NULL)
        return;
    for (i = 0; l->conns != NULL && i < l->nconns; i++)
        conn_close(&l->conns[i]);
    free(l->conns);
    free(l->srv);
    for (i = 0; l->uris != NULL && i < l->nuris; i++)
        free(l->uris[i]);
    free(l->uris);
    for (i = 0; l->attrs != NULL && l->attrs[i] != NULL; i++)
        free(l->attrs[i]);
    free(l->attrs);
    if (l->password != NULL)
        OPENSSL_clear_free(l->password, strlen(l->password));
    free(l->cacert);
    free(l->bind_dn);
    free(l->base);
    free(l->filter);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
