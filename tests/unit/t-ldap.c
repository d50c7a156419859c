/*
 * t-ldap: recipient certificate lookup (smm_ldap) against a real slapd.
 *
 * The filter escaping and the configuration checks run everywhere.  The
 * rest needs a running slapd, named by the environment:
 *
 *   SMM_TEST_LDAP_URI     ldap://127.0.0.1:PORT (plain TCP; required)
 *   SMM_TEST_LDAP_BASE    an existing suffix, e.g. dc=example,dc=org
 *   SMM_TEST_LDAP_ROOTDN  a DN that may add entries under the base, and
 *   SMM_TEST_LDAP_ROOTPW  its password (also used for the simple bind test)
 *   SMM_TEST_LDAP_CACERT  optional: CA of the server certificate; turns on
 *                         the StartTLS tests (the certificate must match
 *                         the host in SMM_TEST_LDAP_URI)
 *   SMM_TEST_LDAPS_URI    optional: ldaps:// tests (with the CA above)
 *   SMM_TEST_LDAPI_URI    optional: ldapi:// tests, anonymous and SASL
 *                         EXTERNAL
 *
 * The test adds its own entries under ou=t-ldap-PID,BASE (certificates
 * made here, in memory) and deletes them at the end.  A server that
 * accepts and never answers, closed ports, and a TCP proxy in front of
 * the real server (to drop connections and refuse new ones, as a slapd
 * restart does) are made here too.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "smm_config.h"
#include "smm_ldap.h"
#include "smm_log.h"
#include "tap.h"

static const char *env_uri, *env_base, *env_rootdn, *env_rootpw, *env_cacert,
    *env_ldaps, *env_ldapi;
static char dir[] = "/tmp/t-ldap.XXXXXX";
static char ou[512], ouname[64];

/* ------------------------------------------------------------- logging */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];

static void
log_cb(int level, const char *line, void *arg)
{
    size_t len;

    (void)arg;
    fprintf(stderr, "log[%d]: %s\n", level, line);
    pthread_mutex_lock(&log_mu);
    len = strlen(log_text);
    if (len + strlen(line) + 2 < sizeof(log_text))
        snprintf(log_text + len, sizeof(log_text) - len, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static void
log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* ---------------------------------------------------------------- time */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* -------------------------------------------------------------- config */

static void
set_str(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
}

/* space-separated words into a strlist */
static void
set_list(struct smm_strlist *sl, const char *words)
{
    char *copy = strdup(words), *w, *save = NULL;

    smm_strlist_free(sl);
    for (w = strtok_r(copy, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        sl->v = realloc(sl->v, (sl->n + 1) * sizeof(*sl->v));
        sl->v[sl->n++] = strdup(w);
    }
    free(copy);
}

static struct smm_config *
mkcfg(const char *uris, int timeout, int pool)
{
    struct smm_config *c = NULL;
    struct smm_err err;

    if (smm_config_defaults(&c, &err) != SMM_OK) {
        printf("Bail out! smm_config_defaults: %s\n", err.msg);
        exit(1);
    }
    set_list(&c->ldap_uri, uris);
    set_str(&c->ldap_base, ou);
    c->ldap_timeout = timeout;
    c->ldap_pool_size = pool;
    return c;
}

/* smm_ldap_new() from a config, then free the config */
static struct smm_ldap *
mkldap(struct smm_config *c, const char *what)
{
    struct smm_ldap *l = NULL;
    struct smm_err err;
    smm_status st;

    st = smm_ldap_new(c, &l, &err);
    if (!ok(st == SMM_OK, "%s: smm_ldap_new", what))
        printf("#   %s: %s\n", smm_status_str(st), err.msg);
    smm_config_free(c);
    return l;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    fputs(text, fp);
    fclose(fp);
    chmod(path, mode);
}

/* ---------------------------------------------------------- test certs */

static unsigned char *der[4];
static int derlen[4];

static X509 *
make_cert(const char *cn, EVP_PKEY **keyp)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now_s() * 1000) & 0xffff);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    if (keyp != NULL)
        *keyp = key;
    else
        EVP_PKEY_free(key);
    return x;
}

static void
make_ders(void)
{
    static const char *const cns[] = {"t-ldap A", "t-ldap B", "t-ldap C",
                                      "t-ldap D"};
    X509 *x;
    int i;

    for (i = 0; i < 4; i++) {
        x = make_cert(cns[i], NULL);
        der[i] = NULL;
        derlen[i] = i2d_X509(x, &der[i]);
        X509_free(x);
    }
}

/* -------------------------------------------------------- test entries */

struct tentry {
    const char *uid, *cn, *mail, *certattr;
    int c1, c2; /* indexes into der[], -1 = none */
};

static const struct tentry entries[] = {
    {"alice", "alice", "alice@example.org", "userCertificate;binary", 0, -1},
    {"bob", "bob", "bob@example.org", "userSMIMECertificate", 1, -1},
    {"carol", "Carol", "carol@example.org", "userCertificate;binary", 2, 3},
    {"dan", "dan", "dan@example.org", NULL, -1, -1},
    {"weird", "weird", "x(y)*z@example.org", "userCertificate;binary", 0, -1},
    {"shared1", "shared1", "shared@example.org", "userCertificate;binary", 0,
     -1},
    {"shared2", "shared2", "shared@example.org", "userCertificate;binary", 1,
     -1},
};
#define NENTRIES (sizeof(entries) / sizeof(entries[0]))

static LDAP *
admin_bind(void)
{
    LDAP *ld = NULL;
    int v3 = LDAP_VERSION3, rc;
    struct berval cred;

    if (ldap_initialize(&ld, env_uri) != LDAP_SUCCESS)
        return NULL;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    cred.bv_val = (char *)env_rootpw;
    cred.bv_len = strlen(env_rootpw);
    rc = ldap_sasl_bind_s(ld, env_rootdn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                          NULL);
    if (rc != LDAP_SUCCESS) {
        printf("# admin bind: %s\n", ldap_err2string(rc));
        ldap_unbind_ext(ld, NULL, NULL);
        return NULL;
    }
    return ld;
}

static int
load_entries(void)
{
    LDAP *ld = admin_bind();
    char dn[600];
    char *oc_ou[] = {"organizationalUnit", NULL}, *ouv[2],
         *oc[] = {"inetOrgPerson", NULL};
    char *uid[2], *cn[2], *sn[] = {"t-ldap", NULL}, *mail[2];
    struct berval b[2], *bv[3];
    LDAPMod m[6], *mods[7];
    size_t i;
    int rc, n;

    if (ld == NULL)
        return 0;
    ouv[0] = ouname;
    ouv[1] = NULL;
    m[0] = (LDAPMod){LDAP_MOD_ADD, "objectClass", {oc_ou}};
    m[1] = (LDAPMod){LDAP_MOD_ADD, "ou", {ouv}};
    mods[0] = &m[0];
    mods[1] = &m[1];
    mods[2] = NULL;
    rc = ldap_add_ext_s(ld, ou, mods, NULL, NULL);
    if (rc != LDAP_SUCCESS) {
        printf("# add %s: %s\n", ou, ldap_err2string(rc));
        ldap_unbind_ext(ld, NULL, NULL);
        return 0;
    }
    for (i = 0; i < NENTRIES; i++) {
        snprintf(dn, sizeof(dn), "uid=%s,%s", entries[i].uid, ou);
        uid[0] = (char *)entries[i].uid;
        cn[0] = (char *)entries[i].cn;
        mail[0] = (char *)entries[i].mail;
        uid[1] = cn[1] = mail[1] = NULL;
        m[0] = (LDAPMod){LDAP_MOD_ADD, "objectClass", {oc}};
        m[1] = (LDAPMod){LDAP_MOD_ADD, "uid", {uid}};
        m[2] = (LDAPMod){LDAP_MOD_ADD, "cn", {cn}};
        m[3] = (LDAPMod){LDAP_MOD_ADD, "sn", {sn}};
        m[4] = (LDAPMod){LDAP_MOD_ADD, "mail", {mail}};
        for (n = 0; n < 5; n++)
            mods[n] = &m[n];
        if (entries[i].certattr != NULL) {
            b[0].bv_val = (char *)der[entries[i].c1];
            b[0].bv_len = (ber_len_t)derlen[entries[i].c1];
            bv[0] = &b[0];
            bv[1] = NULL;
            if (entries[i].c2 >= 0) {
                b[1].bv_val = (char *)der[entries[i].c2];
                b[1].bv_len = (ber_len_t)derlen[entries[i].c2];
                bv[1] = &b[1];
                bv[2] = NULL;
            }
            m[5].mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES;
            m[5].mod_type = (char *)entries[i].certattr;
            m[5].mod_bvalues = bv;
            mods[n++] = &m[5];
        }
        mods[n] = NULL;
        if ((rc = ldap_add_ext_s(ld, dn, mods, NULL, NULL)) != LDAP_SUCCESS) {
            printf("# add %s: %s\n", dn, ldap_err2string(rc));
            ldap_unbind_ext(ld, NULL, NULL);
            return 0;
        }
    }
    ldap_unbind_ext(ld, NULL, NULL);
    return 1;
}

static void
delete_entries(void)
{
    LDAP *ld = admin_bind();
    char dn[600];
    size_t i;

    if (ld == NULL)
        return;
    for (i = 0; i < NENTRIES; i++) {
        snprintf(dn, sizeof(dn), "uid=%s,%s", entries[i].uid, ou);
        ldap_delete_ext_s(ld, dn, NULL, NULL);
    }
    ldap_delete_ext_s(ld, ou, NULL, NULL);
    ldap_unbind_ext(ld, NULL, NULL);
}

/* ------------------------------------------------------- fake servers */

static int
listen_any(int *port)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)*port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* a port nobody listens on */
static int
closed_port(void)
{
    int port = 0, fd = listen_any(&port);

    close(fd);
    return port;
}

/* A server that accepts connections and never says a word. */
static struct {
    int lfd, port, stop, fds[64], nfds;
    pthread_t th;
} hang;

static void *
hang_main(void *arg)
{
    struct pollfd p;
    int fd;

    (void)arg;
    while (!__atomic_load_n(&hang.stop, __ATOMIC_SEQ_CST)) {
        p.fd = hang.lfd;
        p.events = POLLIN;
        if (poll(&p, 1, 50) == 1 && (fd = accept(hang.lfd, NULL, NULL)) >= 0) {
            if (hang.nfds < 64)
                hang.fds[hang.nfds++] = fd;
            else
                close(fd);
        }
    }
    return NULL;
}

static void
hang_start(void)
{
    hang.port = 0;
    hang.lfd = listen_any(&hang.port);
    pthread_create(&hang.th, NULL, hang_main, NULL);
}

static void
hang_stop(void)
{
    int i;

    __atomic_store_n(&hang.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(hang.th, NULL);
    for (i = 0; i < hang.nfds; i++)
        close(hang.fds[i]);
    close(hang.lfd);
}

/*
 * A TCP proxy in front of the real server.  proxy_cmd(DROP) closes every
 * connection (as a server restart does), DOWN also stops listening
 * (connection refused), UP listens again on the same port.
 */
enum { P_NONE, P_DROP, P_DOWN, P_UP, P_QUIT };
static struct {
    struct sockaddr_storage up;
    socklen_t uplen;
    int lfd, port, cmd, accepted;
    int a[32], b[32], n;
    pthread_t th;
} px;

static void
px_close_all(void)
{
    int i;

    for (i = 0; i < px.n; i++) {
        close(px.a[i]);
        close(px.b[i]);
    }
    px.n = 0;
}

static void *
px_main(void *arg)
{
    struct pollfd p[65];
    char buf[16384];
    int i, np, cmd, fd, ufd, from, to;
    ssize_t r;

    (void)arg;
    for (;;) {
        cmd = __atomic_load_n(&px.cmd, __ATOMIC_SEQ_CST);
        if (cmd == P_DROP || cmd == P_DOWN || cmd == P_QUIT)
            px_close_all();
        if ((cmd == P_DOWN || cmd == P_QUIT) && px.lfd >= 0) {
            close(px.lfd);
            px.lfd = -1;
        }
        if (cmd == P_UP && px.lfd < 0)
            px.lfd = listen_any(&px.port);
        if (cmd == P_QUIT)
            return NULL;
        if (cmd != P_NONE)
            __atomic_store_n(&px.cmd, P_NONE, __ATOMIC_SEQ_CST);
        np = 0;
        for (i = 0; i < px.n; i++) {
            p[np++] = (struct pollfd){px.a[i], POLLIN, 0};
            p[np++] = (struct pollfd){px.b[i], POLLIN, 0};
        }
        if (px.lfd >= 0)
            p[np++] = (struct pollfd){px.lfd, POLLIN, 0};
        if (poll(p, (nfds_t)np, 20) <= 0)
            continue;
        if (px.lfd >= 0 && (p[np - 1].revents & POLLIN) &&
            (fd = accept(px.lfd, NULL, NULL)) >= 0) {
            ufd = socket(px.up.ss_family, SOCK_STREAM, 0);
            if (px.n >= 32 ||
                connect(ufd, (struct sockaddr *)&px.up, px.uplen) != 0) {
                close(fd);
                close(ufd);
            } else {
                px.a[px.n] = fd;
                px.b[px.n++] = ufd;
                px.accepted++;
            }
            continue; /* the pollfd array is stale now */
        }
        for (i = 0; i < px.n; i++) {
            for (from = 0; from < 2; from++) {
                if (!(p[2 * i + from].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                fd = from == 0 ? px.a[i] : px.b[i];
                to = from == 0 ? px.b[i] : px.a[i];
                r = read(fd, buf, sizeof(buf));
                if (r <= 0 || write(to, buf, (size_t)r) != r) {
                    close(px.a[i]);
                    close(px.b[i]);
                    px.a[i] = px.a[px.n - 1];
                    px.b[i] = px.b[px.n - 1];
                    px.n--;
                    goto next; /* indexes moved: poll again */
                }
            }
        }
    next:;
    }
}

static int
px_start(void)
{
    LDAPURLDesc *lud = NULL;
    struct addrinfo hints, *ai = NULL;
    char port[16];
    int ok_ = 0;

    if (ldap_url_parse(env_uri, &lud) != LDAP_URL_SUCCESS)
        return 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", lud->lud_port ? lud->lud_port : 389);
    if (strcmp(lud->lud_scheme, "ldap") == 0 &&
        getaddrinfo(lud->lud_host && lud->lud_host[0] ? lud->lud_host
                                                      : "localhost",
                    port, &hints, &ai) == 0) {
        memcpy(&px.up, ai->ai_addr, ai->ai_addrlen);
        px.uplen = ai->ai_addrlen;
        px.port = 0;
        px.lfd = listen_any(&px.port);
        pthread_create(&px.th, NULL, px_main, NULL);
        ok_ = 1;
    }
    if (ai != NULL)
        freeaddrinfo(ai);
    ldap_free_urldesc(lud);
    return ok_;
}

static void
px_cmd(int cmd)
{
    __atomic_store_n(&px.cmd, cmd, __ATOMIC_SEQ_CST);
    if (cmd == P_QUIT) {
        pthread_join(px.th, NULL);
        return;
    }
    while (__atomic_load_n(&px.cmd, __ATOMIC_SEQ_CST) != P_NONE)
        usleep(5000);
}

/* -------------------------------------------------------- lookup tests */

/* look addr up; check status and number of values */
static void
lookup_is(struct smm_ldap *l, const char *addr, smm_status want_st,
          size_t want_n, const char *what)
{
    struct smm_ldap_result res;
    struct smm_err err;
    smm_status st;

    err.msg[0] = '\0';
    st = smm_ldap_lookup(l, addr, &res, &err);
    if (!ok(st == want_st && (st != SMM_OK || res.n == want_n), "%s", what))
        printf("#   got %s n=%zu (%s), want %s n=%zu\n", smm_status_str(st),
               res.n, err.msg, smm_status_str(want_st), want_n);
    smm_ldap_result_free(&res);
}

static const struct {
    const char *tmpl, *addr, *want;
} filters[] = {
    {"(mail=%s)", "a@b", "(mail=a@b)"},
    {"(mail=%s)", "*)(mail=*", "(mail=\\2a\\29\\28mail=\\2a)"},
    {"(mail=%s)", "a\\b", "(mail=a\\5cb)"},
    {"(mail=%s)", "(", "(mail=\\28)"},
    {"(mail=%s)", "*", "(mail=\\2a)"},
    {"(mail=%s)", "", "(mail=)"},
    {"(|(mail=%s)(proxyAddresses=smtp:%s))", "x@y.org",
     "(|(mail=x@y.org)(proxyAddresses=smtp:x@y.org))"},
    {"(|(mail=%s)(proxyAddresses=smtp:%s))", "*",
     "(|(mail=\\2a)(proxyAddresses=smtp:\\2a))"},
    {"%s%s%s", "()", "\\28\\29\\28\\29\\28\\29"},
    {"(mail=%s)", "j\xc3\xb6rg@example.org", "(mail=j\\c3\\b6rg@example.org)"},
    {"(&(objectClass=person)(mail=%s))", "a%sb",
     "(&(objectClass=person)(mail=a%sb))"},
    {"(cn=100%)", "x", "(cn=100%)"},
};

static void
test_filters(void)
{
    size_t i;
    char *f;

    for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        f = smm_ldap_filter(filters[i].tmpl, filters[i].addr);
        is_str(f, filters[i].want, "filter %s with \"%s\"", filters[i].tmpl,
               filters[i].addr);
        free(f);
    }
    ok(smm_ldap_filter(NULL, "a") == NULL &&
           smm_ldap_filter("(mail=%s)", NULL) == NULL,
       "filter: NULL in, NULL out");
}

static void
new_fails(struct smm_config *c, smm_status want, const char *want_msg,
          const char *what)
{
    struct smm_ldap *l = NULL;
    struct smm_err err;
    smm_status st;

    err.msg[0] = '\0';
    st = smm_ldap_new(c, &l, &err);
    is_int(st, want, "new: %s refused", what);
    has_str(err.msg, want_msg, "new: %s: message", what);
    ok(l == NULL, "new: %s: no object", what);
    smm_config_free(c);
}

static void
test_new_errors(void)
{
    struct smm_config *c;
    char path[300];

    c = mkcfg("", 1, 1);
    new_fails(c, SMM_EINVAL, "no LDAPURI", "no URI");

    c = mkcfg("http://127.0.0.1/", 1, 1);
    new_fails(c, SMM_EINVAL, "\"http://127.0.0.1/\" is not an ldap://",
              "http URI");

    c = mkcfg("ldap://127.0.0.1/", 1, 1);
    set_str(&c->ldap_bind_dn, "cn=x");
    new_fails(c, SMM_EINVAL, "LDAPBindDN needs LDAPBindPasswordFile",
              "bind DN without password");

    snprintf(path, sizeof(path), "%s/open.pass", dir);
    write_file(path, "pw\n", 0644);
    c = mkcfg("ldap://127.0.0.1/", 1, 1);
    set_str(&c->ldap_bind_dn, "cn=x");
    set_str(&c->ldap_bind_passfile, path);
    new_fails(c, SMM_EINVAL, "readable by group or others",
              "world-readable password file");

    c = mkcfg("ldap://127.0.0.1/", 1, 1);
    set_str(&c->ldap_sasl_mech, "EXTERNAL");
    set_str(&c->ldap_bind_dn, "cn=x");
    new_fails(c, SMM_EINVAL, "exclude each other", "EXTERNAL with bind DN");

    c = mkcfg("ldaps://127.0.0.1:1/", 1, 1);
    set_str(&c->ldap_cacert, "/nonexistent/ca.pem");
    new_fails(c, SMM_EINVAL, "/nonexistent/ca.pem", "missing CA file");
}

static void
test_found(void)
{
    struct smm_ldap *l;
    struct smm_ldap_result res;
    struct smm_err err;
    struct smm_config *c;
    char dn[600];
    smm_status st;
    size_t i;
    int n0 = 0, n1 = 0;

    l = mkldap(mkcfg(env_uri, 5, 2), "default attributes");
    if (l == NULL)
        return;
    st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
    is_int(st, SMM_OK, "alice: found");
    is_int(res.n, 1, "alice: one value");
    if (res.n == 1) {
        is_str(res.v[0].attr, "userCertificate;binary",
               "alice: attribute name as the server returns it");
        snprintf(dn, sizeof(dn), "uid=alice,%s", ou);
        is_str(res.v[0].dn, dn, "alice: entry DN");
        ok(res.v[0].len == (size_t)derlen[0] &&
               memcmp(res.v[0].data, der[0], res.v[0].len) == 0,
           "alice: the certificate, byte for byte");
    }
    is_str(res.server, env_uri, "alice: server that answered");
    smm_ldap_result_free(&res);
    ok(res.v == NULL && res.n == 0 && res.server == NULL,
       "result_free zeroes the result");
    smm_ldap_result_free(NULL);

    st = smm_ldap_lookup(l, "bob@example.org", &res, &err);
    is_int(st, SMM_OK, "bob: found");
    ok(res.n == 1 && strcmp(res.v[0].attr, "userSMIMECertificate") == 0 &&
           res.v[0].len == (size_t)derlen[1],
       "bob: userSMIMECertificate value");
    smm_ldap_result_free(&res);

    st = smm_ldap_lookup(l, "carol@example.org", &res, &err);
    is_int(st, SMM_OK, "carol: found");
    is_int(res.n, 2, "carol: both values of a multi-valued attribute");
    for (i = 0; i < res.n; i++) {
        if (res.v[i].len == (size_t)derlen[2] &&
            memcmp(res.v[i].data, der[2], res.v[i].len) == 0)
            n0++;
        if (res.v[i].len == (size_t)derlen[3] &&
            memcmp(res.v[i].data, der[3], res.v[i].len) == 0)
            n1++;
    }
    ok(n0 == 1 && n1 == 1, "carol: each certificate once");
    smm_ldap_result_free(&res);

    lookup_is(l, "dan@example.org", SMM_OK, 0, "dan: entry without cert");
    lookup_is(l, "nobody@example.org", SMM_OK, 0, "nobody: not found is OK");
    lookup_is(l, "shared@example.org", SMM_OK, 2, "shared: two entries");

    /* hostile addresses never change the filter */
    lookup_is(l, "*", SMM_OK, 0, "\"*\" matches nobody");
    lookup_is(l, "*)(mail=*", SMM_OK, 0, "\"*)(mail=*\" matches nobody");
    lookup_is(l, "*)(|(mail=*", SMM_OK, 0, "\"*)(|(mail=*\" matches nobody");
    lookup_is(l, "a\\b", SMM_OK, 0, "\"a\\b\" matches nobody");
    lookup_is(l, "(", SMM_OK, 0, "\"(\" matches nobody");
    lookup_is(l, "x(y)*z@example.org", SMM_OK, 1,
              "\"x(y)*z@example.org\" matches exactly its entry");
    lookup_is(l, "x(y)*", SMM_OK, 0, "\"x(y)*\" is no substring filter");

    err.msg[0] = '\0';
    st = smm_ldap_lookup(l, "", &res, &err);
    is_int(st, SMM_EINVAL, "empty address refused");
    smm_ldap_free(l);

    /* the size limit cuts the answer short without failing it */
    c = mkcfg(env_uri, 5, 1);
    c->ldap_size_limit = 1;
    if ((l = mkldap(c, "size limit 1")) != NULL) {
        lookup_is(l, "shared@example.org", SMM_OK, 1,
                  "size limit 1: one of two entries");
        smm_ldap_free(l);
    }

    /* two %s: either attribute may match */
    c = mkcfg(env_uri, 5, 1);
    set_str(&c->ldap_filter, "(|(mail=%s)(cn=%s))");
    if ((l = mkldap(c, "filter with two %s")) != NULL) {
        lookup_is(l, "Carol", SMM_OK, 2, "two %s: cn matches");
        lookup_is(l, "alice@example.org", SMM_OK, 1, "two %s: mail matches");
        lookup_is(l, "*", SMM_OK, 0, "two %s: \"*\" still matches nobody");
        smm_ldap_free(l);
    }

    /*
     * ;binary on userSMIMECertificate: OpenLDAP 2.5 returns nothing for
     * it (no error), AD returns the value.  The other attribute counts.
     */
    c = mkcfg(env_uri, 5, 1);
    set_list(&c->ldap_attrs,
             "userSMIMECertificate;binary userCertificate;binary");
    if ((l = mkldap(c, "userSMIMECertificate;binary")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1,
                  "userSMIMECertificate;binary requested: alice still found");
        st = smm_ldap_lookup(l, "bob@example.org", &res, &err);
        ok(st == SMM_OK && res.n <= 1,
           "userSMIMECertificate;binary requested: bob OK (%zu value%s)", res.n,
           res.n == 1 ? "" : "s");
        smm_ldap_result_free(&res);
        smm_ldap_free(l);
    }

    /* a broken filter template is a configuration error, not ETEMP */
    c = mkcfg(env_uri, 5, 1);
    set_str(&c->ldap_filter, "(mail=%s");
    if ((l = mkldap(c, "broken filter")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_EINVAL, 0,
                  "broken filter: EINVAL");
        err.msg[0] = '\0';
        is_int(smm_ldap_check(l, &err), SMM_EINVAL, "broken filter: check");
        has_str(err.msg, "LDAPFilter", "broken filter: check message");
        smm_ldap_free(l);
    }
}

static void
test_reuse(void)
{
    struct smm_ldap *l;
    unsigned long conns = 99, searches = 99;

    if ((l = mkldap(mkcfg(env_uri, 5, 1), "reuse")) == NULL)
        return;
    smm_ldap_stats(l, &conns, &searches);
    ok(conns == 0 && searches == 0, "reuse: nothing before the first lookup");
    lookup_is(l, "alice@example.org", SMM_OK, 1, "reuse: lookup 1");
    lookup_is(l, "nobody@example.org", SMM_OK, 0, "reuse: lookup 2");
    lookup_is(l, "carol@example.org", SMM_OK, 2, "reuse: lookup 3");
    smm_ldap_stats(l, &conns, &searches);
    is_int(conns, 1, "reuse: one connection for three lookups");
    is_int(searches, 3, "reuse: three searches");
    smm_ldap_free(l);
}

static void
test_failover(void)
{
    struct smm_config *c;
    struct smm_ldap *l;
    struct smm_ldap_result res;
    struct smm_err err;
    char uris[512], dead1[64], dead2[64], hung[64];
    double t0, dt;
    smm_status st;

    snprintf(dead1, sizeof(dead1), "ldap://127.0.0.1:%d/", closed_port());
    snprintf(dead2, sizeof(dead2), "ldap://127.0.0.1:%d/", closed_port());
    snprintf(hung, sizeof(hung), "ldap://127.0.0.1:%d/", hang.port);

    /* first server down, second answers */
    snprintf(uris, sizeof(uris), "%s %s", dead1, env_uri);
    if ((l = mkldap(mkcfg(uris, 1, 1), "failover")) != NULL) {
        log_reset();
        t0 = now_s();
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        dt = now_s() - t0;
        ok(st == SMM_OK && res.n == 1, "failover: found on the second server");
        is_str(res.server, env_uri, "failover: the second server answered");
        ok(dt < 1.0, "failover: refused port costs no time (%.3f s)", dt);
        has_str(log_text, dead1, "failover: warning names the dead server");
        has_str(log_text, "failing over", "failover: warning says so");
        smm_ldap_result_free(&res);
        lookup_is(l, "alice@example.org", SMM_OK, 1,
                  "failover: next lookup stays on the second server");
        smm_ldap_free(l);
    }

    /* everything down: ETEMP, fast, and the message names both */
    snprintf(uris, sizeof(uris), "%s %s", dead1, dead2);
    if ((l = mkldap(mkcfg(uris, 1, 1), "all down")) != NULL) {
        t0 = now_s();
        err.msg[0] = '\0';
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        dt = now_s() - t0;
        is_int(st, SMM_ETEMP, "all down: ETEMP, not \"no certificate\"");
        ok(res.n == 0 && res.v == NULL, "all down: empty result");
        has_str(err.msg, dead1, "all down: message names server 1");
        has_str(err.msg, dead2, "all down: message names server 2");
        has_str(err.msg, "Can't contact LDAP server", "all down: reason");
        ok(dt < 1.0, "all down: quick (%.3f s)", dt);
        err.msg[0] = '\0';
        is_int(smm_ldap_check(l, &err), SMM_ETEMP, "all down: check ETEMP");
        has_str(err.msg, "no LDAP server works", "all down: check message");
        smm_ldap_free(l);
    }

    /* a server that accepts and never answers: bounded by LDAPTimeout */
    if ((l = mkldap(mkcfg(hung, 1, 1), "hung server")) != NULL) {
        t0 = now_s();
        err.msg[0] = '\0';
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        dt = now_s() - t0;
        is_int(st, SMM_ETEMP, "hung server: ETEMP");
        has_str(err.msg, "Timed out", "hung server: timeout reported");
        ok(dt >= 0.9 && dt < 3.0, "hung server: took %.3f s (timeout 1 s)", dt);
        t0 = now_s();
        is_int(smm_ldap_check(l, &err), SMM_ETEMP, "hung server: check ETEMP");
        dt = now_s() - t0;
        ok(dt < 3.0, "hung server: check took %.3f s", dt);
        smm_ldap_free(l);
    }

    /* the TLS handshake (ldaps) and StartTLS are bounded too */
    if (env_cacert != NULL) {
        snprintf(uris, sizeof(uris), "ldaps://127.0.0.1:%d/", hang.port);
        c = mkcfg(uris, 1, 1);
        set_str(&c->ldap_cacert, env_cacert);
        if ((l = mkldap(c, "hung ldaps server")) != NULL) {
            t0 = now_s();
            lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                      "hung ldaps server: ETEMP");
            dt = now_s() - t0;
            ok(dt >= 0.9 && dt < 3.0, "hung ldaps server: took %.3f s", dt);
            smm_ldap_free(l);
        }
        c = mkcfg(hung, 1, 1);
        c->ldap_starttls = 1;
        set_str(&c->ldap_cacert, env_cacert);
        if ((l = mkldap(c, "hung StartTLS server")) != NULL) {
            t0 = now_s();
            lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                      "hung StartTLS server: ETEMP");
            dt = now_s() - t0;
            ok(dt >= 0.9 && dt < 3.0, "hung StartTLS server: took %.3f s", dt);
            smm_ldap_free(l);
        }
    }

    /* hung first, real second: one timeout, then the answer */
    snprintf(uris, sizeof(uris), "%s %s", hung, env_uri);
    if ((l = mkldap(mkcfg(uris, 1, 1), "hung then real")) != NULL) {
        t0 = now_s();
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        dt = now_s() - t0;
        ok(st == SMM_OK && res.n == 1 && res.server != NULL &&
               strcmp(res.server, env_uri) == 0,
           "hung then real: answered by the real server");
        ok(dt >= 0.9 && dt < 3.0, "hung then real: took %.3f s", dt);
        smm_ldap_result_free(&res);
        t0 = now_s();
        lookup_is(l, "alice@example.org", SMM_OK, 1,
                  "hung then real: second lookup");
        dt = now_s() - t0;
        ok(dt < 0.5, "hung then real: second lookup reuses it (%.3f s)", dt);
        smm_ldap_free(l);
    }
}

/* LDAPRetryAfterTimeout: a hung server is skipped, then probed again */
struct probe {
    struct smm_ldap *l;
    smm_status st;
    double dt;
};

static void *
probe_main(void *arg)
{
    struct probe *p = arg;
    struct smm_ldap_result res;
    struct smm_err err;
    double t0 = now_s();

    p->st = smm_ldap_lookup(p->l, "alice@example.org", &res, &err);
    p->dt = now_s() - t0;
    smm_ldap_result_free(&res);
    return NULL;
}

static void
test_hold(void)
{
    struct smm_config *c;
    struct smm_ldap *l;
    struct smm_ldap_result res;
    struct smm_err err;
    struct probe pr;
    pthread_t th;
    char uris[512], dead[64], hung[64];
    double t0, dt;
    smm_status st;

    snprintf(dead, sizeof(dead), "ldap://127.0.0.1:%d/", closed_port());
    snprintf(hung, sizeof(hung), "ldap://127.0.0.1:%d/", hang.port);

    /* hung and alone: held for 2 s, then one probe, others still skip */
    c = mkcfg(hung, 1, 2);
    c->ldap_retry_after_timeout = 2;
    if ((l = mkldap(c, "hold")) != NULL) {
        log_reset();
        t0 = now_s();
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0, "hold: first ETEMP");
        dt = now_s() - t0;
        ok(dt >= 0.9, "hold: the first lookup waited the timeout (%.3f s)", dt);
        has_str(log_text, "not asking it again for 2 s",
                "hold: the hold is logged");
        t0 = now_s();
        err.msg[0] = '\0';
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        dt = now_s() - t0;
        is_int(st, SMM_ETEMP, "hold: second lookup ETEMP");
        ok(dt < 0.5, "hold: second lookup fails at once (%.3f s)", dt);
        has_str(err.msg, "held down for", "hold: the error says held down");
        has_str(err.msg, "Timed out", "hold: ... and why");
        smm_ldap_result_free(&res);
        usleep(2100 * 1000);
        pr.l = l;
        pthread_create(&th, NULL, probe_main, &pr);
        usleep(300 * 1000);
        t0 = now_s();
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "hold: during the probe, ETEMP");
        dt = now_s() - t0;
        ok(dt < 0.5, "hold: during the probe others skip it (%.3f s)", dt);
        pthread_join(th, NULL);
        is_int(pr.st, SMM_ETEMP, "hold over: the probe asks the server");
        ok(pr.dt >= 0.9, "hold over: the probe waited the timeout (%.3f s)",
           pr.dt);
        smm_ldap_free(l);
    }

    /* hung first, real second: after one timeout straight to the second */
    snprintf(uris, sizeof(uris), "%s %s", hung, env_uri);
    if ((l = mkldap(mkcfg(uris, 1, 2), "hold, failover")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1,
                  "hold, failover: first lookup answered");
        /* the second pool handle is not bound yet: without the hold it
         * would try the hung server first */
        t0 = now_s();
        pr.l = l;
        pthread_create(&th, NULL, probe_main, &pr);
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        dt = now_s() - t0;
        pthread_join(th, NULL);
        ok(st == SMM_OK && pr.st == SMM_OK, "hold, failover: both answered");
        ok(dt < 0.5 && pr.dt < 0.5,
           "hold, failover: the hung server is skipped (%.3f s, %.3f s)", dt,
           pr.dt);
        smm_ldap_result_free(&res);
        smm_ldap_free(l);
    }

    /* LDAPRetryAfterTimeout 0: every lookup waits again */
    c = mkcfg(hung, 1, 1);
    c->ldap_retry_after_timeout = 0;
    if ((l = mkldap(c, "no hold")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0, "no hold: first");
        t0 = now_s();
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0, "no hold: second");
        dt = now_s() - t0;
        ok(dt >= 0.9, "no hold: the second lookup waits again (%.3f s)", dt);
        smm_ldap_free(l);
    }

    /* a refused connection is quick and never held */
    if ((l = mkldap(mkcfg(dead, 1, 1), "refused")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0, "refused: first");
        err.msg[0] = '\0';
        st = smm_ldap_lookup(l, "alice@example.org", &res, &err);
        is_int(st, SMM_ETEMP, "refused: second ETEMP");
        ok(strstr(err.msg, "held down") == NULL &&
               strstr(err.msg, "Can't contact") != NULL,
           "refused: asked again, not held (%s)", err.msg);
        smm_ldap_result_free(&res);
        smm_ldap_free(l);
    }
}

static void
test_reconnect(void)
{
    struct smm_ldap *l;
    char uri[64];
    unsigned long conns = 0, searches = 0;
    struct smm_err err;

    if (!px_start()) {
        printf("ok %d # SKIP reconnect: %s is not ldap://host:port\n", ++tap_n,
               env_uri);
        return;
    }
    snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%d/", px.port);
    if ((l = mkldap(mkcfg(uri, 2, 1), "reconnect")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1, "reconnect: before");
        px_cmd(P_DROP);
        lookup_is(l, "alice@example.org", SMM_OK, 1,
                  "reconnect: connection dropped, same lookup reconnects");
        smm_ldap_stats(l, &conns, &searches);
        is_int(conns, 2, "reconnect: a second connection was made");

        px_cmd(P_DOWN);
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "reconnect: server down: ETEMP");
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "reconnect: still down: ETEMP");
        px_cmd(P_UP);
        lookup_is(l, "alice@example.org", SMM_OK, 1,
                  "reconnect: server back: found again");
        smm_ldap_stats(l, &conns, &searches);
        is_int(conns, 3, "reconnect: third connection");
        err.msg[0] = '\0';
        is_int(smm_ldap_check(l, &err), SMM_OK, "reconnect: check OK");
        smm_ldap_free(l);
    }
    px_cmd(P_QUIT);
    close(px.lfd);
}

static void
test_bind(void)
{
    struct smm_config *c;
    struct smm_ldap *l;
    struct smm_err err;
    char path[300], text[300];

    snprintf(path, sizeof(path), "%s/bind.pass", dir);
    snprintf(text, sizeof(text), "%s\n", env_rootpw);
    write_file(path, text, 0600);
    c = mkcfg(env_uri, 2, 1);
    set_str(&c->ldap_bind_dn, env_rootdn);
    set_str(&c->ldap_bind_passfile, path);
    if ((l = mkldap(c, "simple bind")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1, "simple bind: found");
        is_int(smm_ldap_check(l, &err), SMM_OK, "simple bind: check");
        smm_ldap_free(l);
    }

    snprintf(path, sizeof(path), "%s/wrong.pass", dir);
    write_file(path, "not-the-password\n", 0600);
    c = mkcfg(env_uri, 2, 1);
    set_str(&c->ldap_bind_dn, env_rootdn);
    set_str(&c->ldap_bind_passfile, path);
    if ((l = mkldap(c, "wrong password")) != NULL) {
        err.msg[0] = '\0';
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "wrong password: ETEMP");
        is_int(smm_ldap_check(l, &err), SMM_ETEMP, "wrong password: check");
        has_str(err.msg, "Invalid credentials", "wrong password: message");
        smm_ldap_free(l);
    }

    /* check: a base that does not exist */
    c = mkcfg(env_uri, 2, 1);
    snprintf(text, sizeof(text), "ou=no-such-ou,%s", env_base);
    set_str(&c->ldap_base, text);
    if ((l = mkldap(c, "missing base")) != NULL) {
        err.msg[0] = '\0';
        is_int(smm_ldap_check(l, &err), SMM_EINVAL, "missing base: check");
        has_str(err.msg, "No such object", "missing base: message");
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "missing base: lookup ETEMP, never \"no certificate\"");
        smm_ldap_free(l);
    }

    c = mkcfg(env_uri, 2, 1);
    if ((l = mkldap(c, "check")) != NULL) {
        is_int(smm_ldap_check(l, &err), SMM_OK, "check: OK");
        smm_ldap_free(l);
    }
}

struct worker {
    struct smm_ldap *l;
    int bad;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct smm_ldap_result res;
    struct smm_err err;
    static const char *const addrs[] = {
        "alice@example.org", "carol@example.org", "nobody@example.org"};
    static const size_t want[] = {1, 2, 0};
    int i;

    for (i = 0; i < 30; i++) {
        if (smm_ldap_lookup(w->l, addrs[i % 3], &res, &err) != SMM_OK ||
            res.n != want[i % 3])
            w->bad++;
        smm_ldap_result_free(&res);
    }
    return NULL;
}

static void
test_threads(void)
{
    struct smm_ldap *l;
    struct worker w[8];
    pthread_t th[8];
    unsigned long conns = 0, searches = 0;
    int i, bad = 0;

    smm_log_set(log_cb, NULL, SMM_LOG_INFO); /* 240 debug lines: no */
    if ((l = mkldap(mkcfg(env_uri, 5, 2), "threads")) == NULL)
        return;
    for (i = 0; i < 8; i++) {
        w[i].l = l;
        w[i].bad = 0;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    smm_ldap_stats(l, &conns, &searches);
    is_int(bad, 0, "threads: 8 threads x 30 lookups on a pool of 2, all OK");
    ok(conns >= 1 && conns <= 2, "threads: %lu connections (pool of 2)", conns);
    is_int(searches, 240, "threads: 240 searches");
    smm_ldap_free(l);
    smm_log_set(log_cb, NULL, SMM_LOG_DEBUG);
}

static void
test_tls(void)
{
    struct smm_config *c;
    struct smm_ldap *l;
    struct smm_err err;
    char other[300];
    X509 *x;
    EVP_PKEY *k = NULL;
    FILE *fp;

    if (env_cacert == NULL) {
        printf("ok %d # SKIP TLS: SMM_TEST_LDAP_CACERT not set\n", ++tap_n);
        return;
    }
    /* a CA file that does not hold the server's CA */
    snprintf(other, sizeof(other), "%s/other-ca.pem", dir);
    x = make_cert("t-ldap other CA", &k);
    fp = fopen(other, "w");
    PEM_write_X509(fp, x);
    fclose(fp);
    X509_free(x);
    EVP_PKEY_free(k);

    c = mkcfg(env_uri, 3, 1);
    c->ldap_starttls = 1;
    set_str(&c->ldap_cacert, env_cacert);
    if ((l = mkldap(c, "StartTLS")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1, "StartTLS: found");
        is_int(smm_ldap_check(l, &err), SMM_OK, "StartTLS: check");
        smm_ldap_free(l);
    }
    c = mkcfg(env_uri, 3, 1);
    c->ldap_starttls = 1;
    set_str(&c->ldap_cacert, other);
    if ((l = mkldap(c, "StartTLS, wrong CA")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "StartTLS, wrong CA: server certificate refused");
        smm_ldap_free(l);
    }
    if (env_ldaps == NULL) {
        printf("ok %d # SKIP ldaps: SMM_TEST_LDAPS_URI not set\n", ++tap_n);
        return;
    }
    c = mkcfg(env_ldaps, 3, 1);
    set_str(&c->ldap_cacert, env_cacert);
    if ((l = mkldap(c, "ldaps")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1, "ldaps: found");
        smm_ldap_free(l);
    }
    c = mkcfg(env_ldaps, 3, 1);
    set_str(&c->ldap_cacert, other);
    if ((l = mkldap(c, "ldaps, wrong CA")) != NULL) {
        err.msg[0] = '\0';
        lookup_is(l, "alice@example.org", SMM_ETEMP, 0,
                  "ldaps, wrong CA: server certificate refused");
        smm_ldap_free(l);
    }
}

static void
test_ldapi(void)
{
    struct smm_config *c;
    struct smm_ldap *l;
    struct smm_err err;

    if (env_ldapi == NULL) {
        printf("ok %d # SKIP ldapi: SMM_TEST_LDAPI_URI not set\n", ++tap_n);
        return;
    }
    if ((l = mkldap(mkcfg(env_ldapi, 3, 1), "ldapi")) != NULL) {
        lookup_is(l, "alice@example.org", SMM_OK, 1, "ldapi: found");
        smm_ldap_free(l);
    }
    c = mkcfg(env_ldapi, 3, 1);
    set_str(&c->ldap_sasl_mech, "EXTERNAL");
    if ((l = mkldap(c, "ldapi EXTERNAL")) != NULL) {
        lookup_is(l, "carol@example.org", SMM_OK, 2, "ldapi EXTERNAL: found");
        is_int(smm_ldap_check(l, &err), SMM_OK, "ldapi EXTERNAL: check");
        smm_ldap_free(l);
    }
}

static const char *
env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

int
main(void)
{
    int i;

    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        return 1;
    smm_log_set(log_cb, NULL, SMM_LOG_DEBUG);
    env_uri = env("SMM_TEST_LDAP_URI");
    env_base = env("SMM_TEST_LDAP_BASE");
    env_rootdn = env("SMM_TEST_LDAP_ROOTDN");
    env_rootpw = env("SMM_TEST_LDAP_ROOTPW");
    env_cacert = env("SMM_TEST_LDAP_CACERT");
    env_ldaps = env("SMM_TEST_LDAPS_URI");
    env_ldapi = env("SMM_TEST_LDAPI_URI");
    snprintf(ouname, sizeof(ouname), "t-ldap-%d", (int)getpid());
    snprintf(ou, sizeof(ou), "ou=%s,%s", ouname,
             env_base != NULL ? env_base : "dc=example,dc=org");

    test_filters();
    test_new_errors();

    if (env_uri == NULL || env_base == NULL || env_rootdn == NULL ||
        env_rootpw == NULL) {
        printf("ok %d # SKIP no test slapd (set SMM_TEST_LDAP_URI, "
               "SMM_TEST_LDAP_BASE, SMM_TEST_LDAP_ROOTDN, "
               "SMM_TEST_LDAP_ROOTPW)\n",
               ++tap_n);
        goto done;
    }
    make_ders();
    if (!ok(load_entries(), "test entries loaded under %s", ou))
        goto done;
    hang_start();

    test_found();
    test_reuse();
    test_failover();
    test_hold();
    test_reconnect();
    test_bind();
    test_threads();
    test_tls();
    test_ldapi();

    hang_stop();
    delete_entries();
    for (i = 0; i < 4; i++)
        OPENSSL_free(der[i]);
done : {
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}
    return tap_done();
}
