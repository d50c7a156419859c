/*
 * milter-load -- drive a running milter as an MTA would, with N messages
 * over C concurrent connections, and check every answer.
 *
 *   milter-load -s inet:PORT@HOST|unix:PATH -m MODE -K PKIDIR
 *       [-n MESSAGES | -d SECONDS] [-c CONNECTIONS] [-S BODY-BYTES]
 *       [-R RECIPIENTS] [-r ADDRESS]... [-f SENDER] [-k PER-CONNECTION]
 *       [-V EVERY] [-w WARMUP] [-D DAEMON-NAME] [-i CLIENT-IP] [-L]
 *       [-P PIDFILE | -p PID] [-v]
 *
 * MODE is outbound-sign (the message must come back multipart/signed,
 * signature over the original text), outbound-encrypt (application/
 * pkcs7-mime enveloped-data that bob's key decrypts into such a signed
 * entity) or inbound (the input is built here once: the text signed by
 * alice, encrypted to bob; the milter must replace the body by the
 * decrypted entity -- the signed one, or the bare text when it strips
 * signatures -- and add Authentication-Results with smime=pass).  PKIDIR
 * is what tests/pki/mkpki.sh wrote.  The milter sees the client -i
 * (default 198.51.100.7, not an internal host) and {daemon_name} -D
 * (default ORIGINATING for the outbound modes, MTA for inbound), so its
 * OutboundDaemons setting decides the direction.
 *
 * Every answer is checked for its structure; the cryptography (verify,
 * decrypt) of every EVERY-th message (-V, default 1; 0 = never), since
 * that costs the load generator about what it costs the milter.  A
 * message that is refused, tempfailed, lost with its connection or comes
 * back wrong is a failure; the first few are described on stderr.
 *
 * The packets are the ones Postfix sends (checked against Postfix 3.7):
 * macros before every step, also before DATA when the milter skips it,
 * and the end-of-header and end-of-data macros before every header field
 * and body chunk; an abort after every message.  -L sends macros only
 * at MAIL, connect and end of message, and no abort: a leaner MTA, as
 * earlier versions of milter-load were.
 *
 * Prints one line of key=value: mode size rcpts conns messages ok
 * failures seconds msgs_per_s p50_ms p99_ms peak_rss_kb (the highest
 * VmHWM of the given process and its children: the milter's supervisor
 * and worker).  Exit 0 when every message passed, 1 when any failed, 2 on
 * a usage or setup error.  Messages are sent over each connection one
 * after the other, -k per connection (0: one connection per thread for
 * the whole run).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfdef.h>

#include "bench-mail.h"
#include "milter-proto.h"

enum mode { OUT_SIGN, OUT_ENCRYPT, INBOUND };

struct hdr {
    char *name;
    char *value;
};

struct hdrs {
    struct hdr *v;
    size_t n;
    size_t cap;
};

/* what is sent (shared, read-only once the threads run) */
static struct {
    const char *sock, *from, *daemon, *ip;
    enum mode mode;
    char *rcpts[64];
    int nrcpts;
    struct hdrs hdrs;
    struct bm_buf body;
    struct bm_buf text; /* what the innermost entity must carry */
    struct bm_buf signed_ct, signed_body; /* inbound: the decrypted entity */
    struct bm_pki pki;
    long messages, per_conn, verify_every;
    double seconds, deadline;
    int verbose;
    int lean; /* -L: macros only at connect, MAIL and end of message */
} cfg;

/* what happened (the counters are updated under lock) */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long next_msg, n_ok, n_fail, n_reported;
static double *lat;
static size_t nlat, caplat;

static void
usage(void)
{
    fprintf(
        stderr,
        "usage: milter-load -s SOCKET -m outbound-sign|outbound-encrypt|"
        "inbound -K PKIDIR\n"
        "  [-n MESSAGES | -d SECONDS] [-c CONNECTIONS] [-S BODY-BYTES] "
        "[-R RECIPIENTS]\n"
        "  [-r ADDRESS]... [-f SENDER] [-k PER-CONNECTION] [-V EVERY] "
        "[-w WARMUP]\n"
        "  [-D DAEMON-NAME] [-i CLIENT-IP] [-L] [-P PIDFILE | -p PID] [-v]\n");
    exit(2);
}

static void
hdr_insert(struct hdrs *h, size_t at, const char *name, const char *value)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        if ((h->v = realloc(h->v, h->cap * sizeof(*h->v))) == NULL)
            abort();
    }
    if (at > h->n)
        at = h->n;
    memmove(h->v + at + 1, h->v + at, (h->n - at) * sizeof(*h->v));
    h->v[at].name = strdup(name);
    h->v[at].value = strdup(value);
    h->n++;
}

static void
hdrs_free(struct hdrs *h)
{
    size_t i;

    for (i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    memset(h, 0, sizeof(*h));
}

/* index of the idx-th (1-based) field called name, or -1 */
static long
hdr_find(const struct hdrs *h, const char *name, unsigned idx)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0 && --idx == 0)
            return (long)i;
    return -1;
}

/* one message's answer: the header fields as they end up, the body */
struct answer {
    struct hdrs hdrs;
    struct bm_buf body;
    int replaced;
    char other; /* a modification we do not expect (recipients, ...) */
};

static void
on_mod(const struct mp_mod *m, void *arg)
{
    struct answer *a = arg;
    long i;

    switch (m->cmd) {
    case SMFIR_ADDHEADER:
        hdr_insert(&a->hdrs, a->hdrs.n, m->name, m->value);
        break;
    case SMFIR_INSHEADER:
        hdr_insert(&a->hdrs, m->index, m->name, m->value);
        break;
    case SMFIR_CHGHEADER:
        /* libmilter semantics: index among the fields of that name; an
         * empty value deletes; a missing field is added */
        i = hdr_find(&a->hdrs, m->name, m->index);
        if (i < 0 && *m->value != '\0') {
            hdr_insert(&a->hdrs, a->hdrs.n, m->name, m->value);
        } else if (i >= 0 && *m->value == '\0') {
            free(a->hdrs.v[i].name);
            free(a->hdrs.v[i].value);
            memmove(a->hdrs.v + i, a->hdrs.v + i + 1,
                    (a->hdrs.n - (size_t)i - 1) * sizeof(*a->hdrs.v));
            a->hdrs.n--;
        } else if (i >= 0) {
            free(a->hdrs.v[i].value);
            a->hdrs.v[i].value = strdup(m->value);
        }
        break;
    case SMFIR_REPLBODY:
        a->replaced = 1;
        bm_buf_add(&a->body, m->data, m->len);
        break;
    default:
        a->other = m->cmd;
    }
}

/* The value of the last field called name, unfolded, malloc'd. */
static char *
answer_header(const struct answer *a, const char *name, const char *has)
{
    const char *s;
    char *v, *o;
    size_t i;

    for (i = a->hdrs.n; i-- > 0;) {
        if (strcasecmp(a->hdrs.v[i].name, name) != 0 ||
            (has != NULL && strstr(a->hdrs.v[i].value, has) == NULL))
            continue;
        if ((v = malloc(strlen(a->hdrs.v[i].value) + 1)) == NULL)
            abort();
        for (s = a->hdrs.v[i].value, o = v; *s; s++)
            if (*s != '\r' && *s != '\n')
                *o++ = *s;
        *o = '\0';
        return v;
    }
    return NULL;
}

static int
check(const struct answer *a, long n, char *why)
{
    char *ct = answer_header(a, "Content-Type", NULL), *ar;
    const char *body = a->replaced ? a->body.p : cfg.body.p;
    size_t len = a->replaced ? a->body.len : cfg.body.len;
    int full = cfg.verify_every > 0 && n % cfg.verify_every == 0, rc = -1;

    if (body == NULL)
        body = "";
    if (a->other) {
        snprintf(why, BM_WHY, "unexpected modification '%c'", a->other);
    } else if (cfg.mode == OUT_SIGN) {
        rc = bm_check_signed(&cfg.pki, ct, body, len, cfg.text.p, cfg.text.len,
                             full, why);
    } else if (cfg.mode == OUT_ENCRYPT) {
        rc = bm_check_enveloped(&cfg.pki, ct, body, len, cfg.text.p,
                                cfg.text.len, full, why);
    } else if ((ar = answer_header(a, "Authentication-Results", "smime=")) ==
               NULL) {
        snprintf(why, BM_WHY, "no Authentication-Results with smime=");
    } else if (strstr(ar, "smime=pass") == NULL) {
        snprintf(why, BM_WHY, "%.200s", ar);
        free(ar);
    } else if (!a->replaced) {
        snprintf(why, BM_WHY, "the body was not replaced");
        free(ar);
    } else {
        free(ar);
        /* the decrypted entity: signed (kept) or the bare text (stripped) */
        if (ct != NULL && strncasecmp(ct, "multipart/signed", 16) == 0 &&
            len == cfg.signed_body.len &&
            memcmp(body, cfg.signed_body.p, len) == 0)
            rc = 0;
        else if (ct != NULL && strncasecmp(ct, "text/plain", 10) == 0 &&
                 len == cfg.text.len && memcmp(body, cfg.text.p, len) == 0)
            rc = 0;
        else
            snprintf(why, BM_WHY,
                     "the body (%zu bytes, Content-Type \"%.60s\") is not the "
                     "decrypted entity",
                     len, ct ? ct : "(none)");
    }
    free(ct);
    return rc;
}

static const char *
reply_word(int r)
{
    switch (r) {
    case SMFIR_TEMPFAIL:
        return "tempfail";
    case SMFIR_REJECT:
        return "reject";
    case SMFIR_DISCARD:
        return "discard";
    case SMFIR_REPLYCODE:
        return "reply";
    }
    return "unexpected reply";
}

/* The envelope, headers and body of message n, then EOM; 0 when the
 * answer is right, 1 when wrong, -1 when the connection broke. */
static int
transaction(struct mp_conn *c, long n, char *why)
{
    struct answer a;
    char qid[32], *qmac[1];
    size_t i;
    int r, rc = 1;

    memset(&a, 0, sizeof(a));
    snprintf(qid, sizeof(qid), "i=BENCH%06ld", n);
    qmac[0] = qid;
    if ((r = mp_macros(c, SMFIC_MAIL, qmac, 1)) != 0 ||
        (r = mp_mail(c, cfg.from)) != SMFIR_CONTINUE)
        goto refused;
    for (i = 0; i < (size_t)cfg.nrcpts; i++) {
        /* Postfix's default milter_rcpt_macros, before every RCPT */
        static char rh[] = "{rcpt_host}=[127.0.0.1]",
                    rm[] = "{rcpt_mailer}=smtp";
        char ra[300], *rmac[3] = {ra, rh, rm};
        snprintf(ra, sizeof(ra), "{rcpt_addr}=%s", cfg.rcpts[i]);
        if ((!cfg.lean && (r = mp_macros(c, SMFIC_RCPT, rmac, 3)) != 0) ||
            (r = mp_rcpt(c, cfg.rcpts[i])) != SMFIR_CONTINUE)
            goto refused;
    }
    /* Postfix sends the DATA macros even to a milter that skips DATA,
     * and its end-of-header and end-of-data macros before every header
     * field and body chunk */
    if (!cfg.lean && ((r = mp_macros(c, SMFIC_DATA, qmac, 1)) != 0 ||
                      (r = mp_data(c)) != SMFIR_CONTINUE))
        goto refused;
    c->msg_macro = cfg.lean ? NULL : qid;
    for (i = 0; i < cfg.hdrs.n; i++)
        if ((r = mp_header(c, cfg.hdrs.v[i].name, cfg.hdrs.v[i].value)) !=
            SMFIR_CONTINUE)
            goto refused;
    if ((r = mp_eoh(c)) != SMFIR_CONTINUE ||
        (r = mp_body(c, cfg.body.p, cfg.body.len)) != SMFIR_CONTINUE ||
        (r = mp_macros(c, SMFIC_BODYEOB, qmac, 1)) != 0)
        goto refused;
    for (i = 0; i < cfg.hdrs.n; i++)
        hdr_insert(&a.hdrs, a.hdrs.n, cfg.hdrs.v[i].name, cfg.hdrs.v[i].value);
    r = mp_eom(c, on_mod, &a);
    if (r == SMFIR_CONTINUE || r == SMFIR_ACCEPT)
        rc = check(&a, n, why) == 0 ? 0 : 1;
    else
        goto refused;
    /* Postfix ends every transaction with an abort, sent with the next
     * MAIL */
    if (!cfg.lean && mp_reset(c) != 0)
        rc = -1;
    c->msg_macro = NULL; /* (qid is this call's) */
    hdrs_free(&a.hdrs);
    bm_buf_free(&a.body);
    return rc;
refused:
    c->msg_macro = NULL;
    hdrs_free(&a.hdrs);
    bm_buf_free(&a.body);
    if (r < 0) {
        snprintf(why, BM_WHY, "%s", c->err);
        return -1;
    }
    snprintf(why, BM_WHY, "%s %.200s", reply_word(r),
             r == SMFIR_REPLYCODE ? c->buf : "");
    /* end the refused transaction, keep the connection */
    return mp_abort(c) == 0 ? 1 : -1;
}

static int
conn_open(struct mp_conn *c)
{
    char dn[300], *cmac[1];
    int r;

    if (mp_open(c, cfg.sock, MP_OFFER_ALL) != 0)
        return -1;
    snprintf(dn, sizeof(dn), "{daemon_name}=%s", cfg.daemon);
    cmac[0] = dn;
    if (mp_macros(c, SMFIC_CONNECT, cmac, 1) != 0 ||
        (r = mp_connect_info(c, "client.example", cfg.ip, 25000)) < 0)
        return -1;
    /* Postfix's HELO macros (TLS details: none here), even to a milter
     * that skips HELO */
    if (!cfg.lean && mp_send(c, SMFIC_MACRO, (char[]){SMFIC_HELO}, 1) != 0)
        return -1;
    if (r != SMFIR_CONTINUE) {
        snprintf(c->err, sizeof(c->err), "connection refused: %s",
                 reply_word(r));
        return -1;
    }
    return 0;
}

static void
record(long n, double ms, int ok, const char *why)
{
    pthread_mutex_lock(&lock);
    if (ok) {
        n_ok++;
    } else {
        n_fail++;
        if (n_reported++ < 5 || cfg.verbose)
            fprintf(stderr, "milter-load: message %ld: %s\n", n, why);
    }
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 4096;
        if ((lat = realloc(lat, caplat * sizeof(*lat))) == NULL)
            abort();
    }
    lat[nlat++] = ms;
    pthread_mutex_unlock(&lock);
}

static long
take(void)
{
    long n;

    pthread_mutex_lock(&lock);
    n = next_msg++;
    pthread_mutex_unlock(&lock);
    if (cfg.seconds > 0 ? bm_now() >= cfg.deadline : n >= cfg.messages)
        return -1;
    return n;
}

static void *
worker(void *arg)
{
    struct mp_conn c = {.fd = -1};
    char why[BM_WHY];
    long n, on_conn = 0;
    double t0;
    int r;

    (void)arg;
    while ((n = take()) >= 0) {
        t0 = bm_now();
        if (c.fd < 0 && conn_open(&c) != 0) {
            snprintf(why, sizeof(why), "%s", c.err);
            mp_close(&c);
            record(n, (bm_now() - t0) * 1e3, 0, why);
            usleep(100000);
            continue;
        }
        r = transaction(&c, n, why);
        record(n, (bm_now() - t0) * 1e3, r == 0, why);
        if (r < 0 || (cfg.per_conn > 0 && ++on_conn >= cfg.per_conn)) {
            mp_close(&c);
            on_conn = 0;
        }
    }
    mp_close(&c);
    return NULL;
}

/* the headers and body of the message sent, built once */
static int
build(size_t size, const char *pki, char *why)
{
    struct bm_buf entity = {0}, sig = {0}, to = {0};
    char *ct = NULL;
    long off;
    int i, rc = -1;

    if (bm_pki_load(pki, &cfg.pki, why) != 0)
        return -1;
    bm_text(&cfg.text, size);
    for (i = 0; i < cfg.nrcpts; i++) {
        if (i > 0)
            bm_buf_str(&to, ", ");
        bm_buf_str(&to, cfg.rcpts[i]);
    }
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "From",
               cfg.mode == INBOUND ? "Alice <alice@example.org>" : cfg.from);
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "To", to.p);
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "Subject", "milter-load");
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "Message-ID", "<bench@example.org>");
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "MIME-Version", "1.0");
    if (cfg.mode != INBOUND) {
        hdr_insert(&cfg.hdrs, cfg.hdrs.n, "Content-Type", BM_TEXT_TYPE);
        bm_buf_add(&cfg.body, cfg.text.p, cfg.text.len);
        rc = 0;
        goto out;
    }
    /* inbound: signed by alice, encrypted to bob */
    bm_entity(&entity, cfg.text.p, cfg.text.len);
    if (bm_sign(&cfg.pki, entity.p, entity.len, &sig, why) != 0)
        goto out;
    ct = bm_header(sig.p, sig.len, "Content-Type");
    off = bm_body_offset(sig.p, sig.len);
    bm_buf_str(&cfg.signed_ct, ct);
    bm_buf_add(&cfg.signed_body, sig.p + off, sig.len - (size_t)off);
    {
        STACK_OF(X509) *bob = sk_X509_new_null();
        sk_X509_push(bob, cfg.pki.rcpt);
        rc = bm_encrypt(bob, sig.p, sig.len, &cfg.body, why);
        sk_X509_free(bob);
    }
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "Content-Type",
               "application/pkcs7-mime; smime-type=enveloped-data; "
               "name=\"smime.p7m\"");
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "Content-Transfer-Encoding", "base64");
    hdr_insert(&cfg.hdrs, cfg.hdrs.n, "Content-Disposition",
               "attachment; filename=\"smime.p7m\"");
out:
    free(ct);
    bm_buf_free(&entity);
    bm_buf_free(&sig);
    bm_buf_free(&to);
    return rc;
}

/* VmHWM in kB of pid and of its children (the largest), 0 if unknown */
static long
peak_rss(long pid)
{
    char path[64], line[256];
    long best = 0, v, ppid;
    struct dirent *d;
    DIR *dir;
    FILE *fp;

    if (pid <= 0 || (dir = opendir("/proc")) == NULL)
        return 0;
    while ((d = readdir(dir)) != NULL) {
        if (!isdigit((unsigned char)d->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/status", atol(d->d_name));
        if ((fp = fopen(path, "r")) == NULL)
            continue;
        v = ppid = 0;
        while (fgets(line, sizeof(line), fp) != NULL) {
            sscanf(line, "VmHWM: %ld", &v);
            sscanf(line, "PPid: %ld", &ppid);
        }
        fclose(fp);
        if ((atol(d->d_name) == pid || ppid == pid) && v > best)
            best = v;
    }
    closedir(dir);
    return best;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(double p)
{
    size_t i;

    if (nlat == 0)
        return 0;
    i = (size_t)(p * (double)(nlat - 1) + 0.5);
    return lat[i];
}

static void
set_mode(const char *m)
{
    if (strcmp(m, "outbound-sign") == 0)
        cfg.mode = OUT_SIGN;
    else if (strcmp(m, "outbound-encrypt") == 0)
        cfg.mode = OUT_ENCRYPT;
    else if (strcmp(m, "inbound") == 0)
        cfg.mode = INBOUND;
    else
        usage();
}

static const char *const mode_names[] = {"outbound-sign", "outbound-encrypt",
                                         "inbound"};

int
main(int argc, char **argv)
{
    const char *pki = NULL, *pidfile = NULL, *mode = NULL;
    static char gen[64][64];
    long pid = 0, warmup = 0, conns = 1, nr = -1, i;
    size_t size = 20480;
    char why[BM_WHY];
    double secs;
    int c;

    cfg.from = "alice@example.org";
    cfg.ip = "198.51.100.7";
    cfg.messages = 100;
    cfg.verify_every = 1;
    while ((c = getopt(argc, argv, "s:m:K:n:d:c:S:R:r:f:k:V:w:D:i:LP:p:v")) !=
           -1) {
        switch (c) {
        case 's':
            cfg.sock = optarg;
            break;
        case 'm':
            mode = optarg;
            break;
        case 'K':
            pki = optarg;
            break;
        case 'n':
            cfg.messages = atol(optarg);
            break;
        case 'd':
            cfg.seconds = atof(optarg);
            break;
        case 'c':
            conns = atol(optarg);
            break;
        case 'S':
            size = (size_t)atol(optarg);
            break;
        case 'R':
            nr = atol(optarg);
            break;
        case 'r':
            if (cfg.nrcpts == 64)
                usage();
            cfg.rcpts[cfg.nrcpts++] = optarg;
            break;
        case 'f':
            cfg.from = optarg;
            break;
        case 'k':
            cfg.per_conn = atol(optarg);
            break;
        case 'V':
            cfg.verify_every = atol(optarg);
            break;
        case 'w':
            warmup = atol(optarg);
            break;
        case 'D':
            cfg.daemon = optarg;
            break;
        case 'i':
            cfg.ip = optarg;
            break;
        case 'L':
            cfg.lean = 1;
            break;
        case 'P':
            pidfile = optarg;
            break;
        case 'p':
            pid = atol(optarg);
            break;
        case 'v':
            cfg.verbose = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || cfg.sock == NULL || mode == NULL || pki == NULL ||
        conns < 1 || conns > 1024 || nr > 64)
        usage();
    set_mode(mode);
    if (cfg.daemon == NULL)
        cfg.daemon = cfg.mode == INBOUND ? "MTA" : "ORIGINATING";
    /* default recipients: without certificates when only signing, with
     * (bob, dave) when encrypting, bob (who holds the key) inbound */
    if (cfg.nrcpts == 0) {
        if (nr < 0)
            nr = cfg.mode == OUT_ENCRYPT ? 2 : 1;
        for (i = 0; i < nr; i++) {
            if (cfg.mode == OUT_SIGN || i >= 2)
                snprintf(gen[i], sizeof(gen[i]), "user%ld@example.com", i + 1);
            else
                snprintf(gen[i], sizeof(gen[i]), "%s",
                         i == 0 ? "bob@example.net" : "dave@example.org");
            cfg.rcpts[cfg.nrcpts++] = gen[i];
        }
    } else if (nr >= 0 && nr < cfg.nrcpts) {
        cfg.nrcpts = (int)nr;
    }
    if (pidfile != NULL) {
        FILE *fp = fopen(pidfile, "r");
        if (fp == NULL || fscanf(fp, "%ld", &pid) != 1) {
            fprintf(stderr, "milter-load: cannot read %s\n", pidfile);
            return 2;
        }
        fclose(fp);
    }
    if (build(size, pki, why) != 0) {
        fprintf(stderr, "milter-load: %s\n", why);
        return 2;
    }
    /* warm-up (checked, not timed): fills the milter's caches */
    if (warmup > 0) {
        struct mp_conn wc = {.fd = -1};
        if (conn_open(&wc) != 0) {
            fprintf(stderr, "milter-load: %s\n", wc.err);
            return 2;
        }
        for (i = 0; i < warmup; i++)
            if (transaction(&wc, i, why) != 0) {
                fprintf(stderr, "milter-load: warm-up: %s\n", why);
                return 1;
            }
        mp_close(&wc);
    }
    if ((secs = bm_run(conns, worker, cfg.seconds, &cfg.deadline)) < 0) {
        fprintf(stderr, "milter-load: cannot start the threads\n");
        return 2;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    printf("mode=%s size=%zu rcpts=%d conns=%ld messages=%zu ok=%ld "
           "failures=%ld seconds=%.2f msgs_per_s=%.1f p50_ms=%.2f "
           "p99_ms=%.2f peak_rss_kb=%ld\n",
           mode_names[cfg.mode], size, cfg.nrcpts, conns, nlat, n_ok, n_fail,
           secs, (double)n_ok / (secs), pct(0.50), pct(0.99), peak_rss(pid));
    free(lat);
    hdrs_free(&cfg.hdrs);
    bm_buf_free(&cfg.body);
    bm_buf_free(&cfg.text);
    bm_buf_free(&cfg.signed_ct);
    bm_buf_free(&cfg.signed_body);
    bm_pki_free(&cfg.pki);
    return n_fail > 0 || n_ok == 0 ? 1 : 0;
}
