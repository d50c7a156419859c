/*
 * milter-proto -- the MTA side of the milter protocol; see milter-proto.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <libmilter/mfdef.h>

#include "milter-proto.h"

#define MAXPKT (1024 * 1024 + 16)

static int fail(struct mp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct mp_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* Write both pieces with as few system calls as the kernel allows. */
static int
write_all(struct mp_conn *c, const void *a, size_t an, const void *b, size_t bn)
{
    struct iovec iov[2] = {{(void *)a, an}, {(void *)b, bn}};
    struct msghdr mh;
    ssize_t w;
    int i = 0;

    while (i < 2) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov + i;
        mh.msg_iovlen = (size_t)(2 - i);
        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return fail(c, "write to the milter: %s", strerror(errno));
        for (; i < 2 && (size_t)w >= iov[i].iov_len; i++)
            w -= (ssize_t)iov[i].iov_len;
        if (i < 2) {
            iov[i].iov_base = (char *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

int
mp_flush(struct mp_conn *c)
{
    int r = 0;

    if (c->wlen > 0)
        r = write_all(c, c->wbuf, c->wlen, NULL, 0);
    c->wlen = 0;
    return r;
}

/* Fill p with n bytes, through the connection's read buffer: one read()
 * usually brings a whole burst of replies, so a reply costs no system
 * call of its own. */
static int
read_all(struct mp_conn *c, void *p, size_t n)
{
    ssize_t r;
    size_t k;

    while (n > 0) {
        if (c->rpos == c->rlen) {
            if (n >= sizeof(c->rbuf)) { /* a large packet: straight in */
                r = read(c->fd, p, n);
            } else {
                r = read(c->fd, c->rbuf, sizeof(c->rbuf));
                if (r > 0) {
                    c->rpos = 0;
                    c->rlen = (size_t)r;
                    continue;
                }
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return fail(c, "read from the milter: %s", strerror(errno));
            if (r == 0)
                return fail(c, "the milter closed the connection");
            p = (char *)p + r;
            n -= (size_t)r;
            continue;
        }
        k = c->rlen - c->rpos < n ? c->rlen - c->rpos : n;
        memcpy(p, c->rbuf + c->rpos, k);
        c->rpos += k;
        p = (char *)p + k;
        n -= k;
    }
    return 0;
}

/*
 * Like Postfix's buffered stream: a packet is queued, and the queue goes
 * out when a reply is awaited (or when it is full), so the macros and
 * their command, or all the header fields and the body that need no
 * answer, reach the milter in one write.
 */
int
mp_send(struct mp_conn *c, char cmd, const void *data, size_t len)
{
    unsigned char hdr[5];
    uint32_t n = htonl((uint32_t)len + 1);

    memcpy(hdr, &n, 4);
    hdr[4] = (unsigned char)cmd;
    if (c->wlen + 5 + len > sizeof(c->wbuf)) {
        if (mp_flush(c) != 0)
            return -1;
        if (5 + len > sizeof(c->wbuf))
            return write_all(c, hdr, 5, data, len);
    }
    memcpy(c->wbuf + c->wlen, hdr, 5);
    if (len > 0)
        memcpy(c->wbuf + c->wlen + 5, data, len);
    c->wlen += 5 + len;
    return 0;
}

int
mp_recv(struct mp_conn *c)
{
    uint32_t n;
    char cmd;

    if (mp_flush(c) != 0 || read_all(c, &n, 4) != 0)
        return -1;
    n = ntohl(n);
    if (n == 0 || n > MAXPKT)
        return fail(c, "bad packet length %u from the milter", n);
    if (read_all(c, &cmd, 1) != 0)
        return -1;
    c->len = n - 1;
    if (c->len + 1 > c->cap) {
        char *b = realloc(c->buf, c->len + 1);
        if (b == NULL)
            return fail(c, "out of memory");
        c->buf = b;
        c->cap = c->len + 1;
    }
    if (read_all(c, c->buf, c->len) != 0)
        return -1;
    c->buf[c->len] = '\0';
    return (unsigned char)cmd;
}

/* The reply to a command, progress packets skipped. */
static int
reply(struct mp_conn *c)
{
    int r;

    while ((r = mp_recv(c)) == SMFIR_PROGRESS)
        ;
    return r;
}

/* Send a step unless the milter skips it; wait unless it does not answer. */
static int
step(struct mp_conn *c, uint32_t no, uint32_t nr, char cmd, const void *data,
     size_t len)
{
    if ((c->proto & no) != 0)
        return SMFIR_CONTINUE;
    if (mp_send(c, cmd, data, len) != 0)
        return -1;
    if ((c->proto & nr) != 0)
        return SMFIR_CONTINUE;
    return reply(c);
}

static int
dial(struct mp_conn *c, const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') {
        struct sockaddr_un sun;
        const char *path = spec[0] == '/' ? spec : spec + 5;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sun.sun_path))
            return fail(c, "unix socket path too long");
        memcpy(sun.sun_path, path, strlen(path) + 1);
        if ((c->fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
            connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
            return fail(c, "cannot connect to %s: %s", spec, strerror(errno));
    } else if (strncmp(spec, "inet:", 5) == 0) {
        char port[16], host[256];
        const char *at = strchr(spec, '@');
        struct addrinfo hints, *ai;
        int e, one = 1;
        if (at == NULL || (size_t)(at - spec - 5) >= sizeof(port))
            return fail(c, "socket must be inet:PORT@HOST");
        memcpy(port, spec + 5, (size_t)(at - spec - 5));
        port[at - spec - 5] = '\0';
        snprintf(host, sizeof(host), "%s", at + 1);
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if ((e = getaddrinfo(host, port, &hints, &ai)) != 0)
            return fail(c, "cannot resolve %s: %s", spec, gai_strerror(e));
        c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
        e = c->fd >= 0 ? connect(c->fd, ai->ai_addr, ai->ai_addrlen) : -1;
        if (e == 0) /* every packet is a whole request: send it now */
            (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
                             sizeof(one));
        freeaddrinfo(ai);
        if (e != 0)
            return fail(c, "cannot connect to %s: %s", spec, strerror(errno));
    } else {
        return fail(c, "socket must be inet:PORT@HOST or unix:PATH");
    }
    return 0;
}

int
mp_open(struct mp_conn *c, const char *spec, uint32_t offer)
{
    uint32_t v[3];

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    if (dial(c, spec) != 0)
        return -1;
    /* version 6, every action, the protocol steps offered */
    v[0] = htonl(SMFI_PROT_VERSION);
    v[1] = htonl(0x1ff);
    v[2] = htonl(offer);
    if (mp_send(c, SMFIC_OPTNEG, v, sizeof(v)) != 0)
        return -1;
    if (mp_recv(c) != SMFIC_OPTNEG || c->len < 12)
        return fail(c, "option negotiation failed%s%s", c->err[0] ? ": " : "",
                    c->err);
    memcpy(v, c->buf, 12);
    c->actions = ntohl(v[1]);
    c->proto = ntohl(v[2]);
    return 0;
}

void
mp_close(struct mp_conn *c)
{
    if (c->fd >= 0) {
        if (c->err[0] == '\0' && mp_send(c, SMFIC_QUIT, NULL, 0) == 0)
            (void)mp_flush(c);
        close(c->fd);
    }
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = 0;
}

int
mp_macros(struct mp_conn *c, char stage, char *const *nv, int n)
{
    char buf[8192];
    size_t o = 0;
    int i;

    if (n == 0)
        return 0;
    buf[o++] = stage;
    for (i = 0; i < n; i++) {
        const char *eq = strchr(nv[i], '=');
        size_t nl, vl;
        if (eq == NULL)
            return fail(c, "macro %s is not name=value", nv[i]);
        nl = (size_t)(eq - nv[i]);
        vl = strlen(eq + 1);
        if (o + nl + vl + 2 > sizeof(buf))
            return fail(c, "macros too long");
        memcpy(buf + o, nv[i], nl);
        o += nl;
        buf[o++] = '\0';
        memcpy(buf + o, eq + 1, vl + 1);
        o += vl + 1;
    }
    return mp_send(c, SMFIC_MACRO, buf, o);
}

int
mp_connect_info(struct mp_conn *c, const char *host, const char *ip,
                unsigned port)
{
    char cb[512];
    uint16_t p = htons((uint16_t)port);
    int l;

    l = snprintf(cb, sizeof(cb), "%s%c%c", host, '\0',
                 strchr(ip, ':') != NULL ? '6' : '4');
    if (l < 0 || (size_t)l + 3 + strlen(ip) > sizeof(cb))
        return fail(c, "client name or address too long");
    memcpy(cb + l, &p, 2);
    l += 2;
    l += snprintf(cb + l, sizeof(cb) - (size_t)l, "%s", ip) + 1;
    return step(c, SMFIP_NOCONNECT, SMFIP_NR_CONN, SMFIC_CONNECT, cb,
                (size_t)l);
}

static int
address(struct mp_conn *c, uint32_t no, uint32_t nr, char cmd, const char *a)
{
    char buf[16384];
    int l = snprintf(buf, sizeof(buf), "<%s>", a);

    if (l < 0 || (size_t)l >= sizeof(buf))
        return fail(c, "address too long");
    return step(c, no, nr, cmd, buf, (size_t)l + 1);
}

int
mp_mail(struct mp_conn *c, const char *from)
{
    c->skip_body = 0;
    return address(c, SMFIP_NOMAIL, SMFIP_NR_MAIL, SMFIC_MAIL, from);
}

int
mp_rcpt(struct mp_conn *c, const char *rcpt)
{
    return address(c, SMFIP_NORCPT, SMFIP_NR_RCPT, SMFIC_RCPT, rcpt);
}

int
mp_data(struct mp_conn *c)
{
    return step(c, SMFIP_NODATA, SMFIP_NR_DATA, SMFIC_DATA, NULL, 0);
}

/* The macros Postfix sends before every header field and body chunk. */
static int
msg_macro(struct mp_conn *c, uint32_t no, char stage)
{
    if (c->msg_macro == NULL || (c->proto & no) != 0)
        return 0;
    return mp_macros(c, stage, &c->msg_macro, 1);
}

int
mp_header(struct mp_conn *c, const char *name, const char *value)
{
    size_t nl = strlen(name), vl, lead;
    char *h;
    int r;

    /* without SMFIP_HDR_LEADSPC the MTA drops the space after the colon */
    lead = (c->proto & SMFIP_HDR_LEADSPC) != 0 ? 1 : 0;
    vl = strlen(value);
    if (msg_macro(c, SMFIP_NOHDRS, SMFIC_HEADER) != 0)
        return -1;
    if ((h = malloc(nl + vl + 3)) == NULL)
        return fail(c, "out of memory");
    memcpy(h, name, nl + 1);
    if (lead)
        h[nl + 1] = ' ';
    memcpy(h + nl + 1 + lead, value, vl + 1);
    r = step(c, SMFIP_NOHDRS, SMFIP_NR_HDR, SMFIC_HEADER, h,
             nl + vl + 2 + lead);
    free(h);
    return r;
}

int
mp_eoh(struct mp_conn *c)
{
    return step(c, SMFIP_NOEOH, SMFIP_NR_EOH, SMFIC_EOH, NULL, 0);
}

int
mp_body(struct mp_conn *c, const void *data, size_t len)
{
    const char *p = data;
    size_t n;
    int r;

    while (len > 0 && !c->skip_body) {
        n = len < MP_CHUNK ? len : MP_CHUNK;
        if (msg_macro(c, SMFIP_NOBODY, SMFIC_BODY) != 0)
            return -1;
        r = step(c, SMFIP_NOBODY, SMFIP_NR_BODY, SMFIC_BODY, p, n);
        if (r == SMFIR_SKIP) {
            c->skip_body = 1;
            return SMFIR_CONTINUE;
        }
        if (r != SMFIR_CONTINUE)
            return r;
        p += n;
        len -= n;
    }
    return SMFIR_CONTINUE;
}

int
mp_eom(struct mp_conn *c, mp_mod_fn *fn, void *arg)
{
    struct mp_mod m;
    int r;

    if (mp_send(c, SMFIC_BODYEOB, NULL, 0) != 0)
        return -1;
    for (;;) {
        if ((r = reply(c)) < 0)
            return -1;
        memset(&m, 0, sizeof(m));
        m.cmd = (char)r;
        switch (r) {
        case SMFIR_ADDHEADER:
            m.name = c->buf;
            m.value = c->buf + strlen(c->buf) + 1;
            if ((size_t)(m.value - c->buf) > c->len)
                return fail(c, "bad SMFIR_ADDHEADER packet");
            break;
        case SMFIR_CHGHEADER:
        case SMFIR_INSHEADER:
            if (c->len < 6)
                return fail(c, "short header change packet");
            memcpy(&m.index, c->buf, 4);
            m.index = ntohl(m.index);
            m.name = c->buf + 4;
            m.value = m.name + strlen(m.name) + 1;
            if ((size_t)(m.value - c->buf) > c->len)
                return fail(c, "bad header change packet");
            break;
        case SMFIR_REPLBODY:
            m.data = c->buf;
            m.len = c->len;
            break;
        case SMFIR_CHGFROM:
        case SMFIR_ADDRCPT:
        case SMFIR_ADDRCPT_PAR:
        case SMFIR_DELRCPT:
        case SMFIR_QUARANTINE:
            m.name = c->buf;
            break;
        default:
            return r; /* the final reply */
        }
        if (fn != NULL)
            fn(&m, arg);
    }
}

int
mp_abort(struct mp_conn *c)
{
    return mp_send(c, SMFIC_ABORT, NULL, 0) == 0 ? mp_flush(c) : -1;
}

int
mp_reset(struct mp_conn *c)
{
    return mp_send(c, SMFIC_ABORT, NULL, 0);
}
