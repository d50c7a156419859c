/*
 * milter-client -- act as the MTA towards a milter, over the milter
 * protocol (version 6), for one message; print the message as the MTA
 * would deliver it after the milter's changes.
 *
 *   milter-client -s inet:PORT@HOST|unix:PATH [-i client-ip]
 *       [-C name=value]... (macros sent with CONNECT)
 *       [-M name=value]... (macros sent with MAIL)
 *       [-E name=value]... (macros sent with EOM)
 *       [-x command] (run with system() just before EOM)
 *       -f sender -r rcpt [-r rcpt]... < message > result
 *
 * stderr gets one line "reply=<word> [code text]" and one line per
 * modification ("add Name: value", "insert[i] Name: value", "change Name[i]:
 * value", "delete Name[i]", "body N bytes", "quarantine reason"). Exit: 0
 * continue/accept, 1 tempfail, 2 reject, 3 discard, 4 protocol or I/O error.
 *
 * The changes are applied with the project's own result writer (the same
 * libmilter index semantics as smime-milter-ctl), so the output can be
 * verified by the S/MIME engines like mail caught behind Postfix.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "smm_message.h"
#include "smm_result.h"

#define MAXPKT (1024 * 1024)

static int fd = -1;

static void
die(const char *msg)
{
    fprintf(stderr, "milter-client: %s\n", msg);
    exit(4);
}

static void
send_pkt(char cmd, const void *data, size_t len)
{
    unsigned char hdr[5];
    uint32_t n = htonl((uint32_t)len + 1);

    memcpy(hdr, &n, 4);
    hdr[4] = (unsigned char)cmd;
    if (write(fd, hdr, 5) != 5 ||
        (len > 0 && write(fd, data, len) != (ssize_t)len))
        die("write to milter failed");
}

static void
read_all(void *p, size_t n)
{
    size_t got = 0;
    ssize_t r;

    while (got < n) {
        r = read(fd, (char *)p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("milter closed the connection");
        got += (size_t)r;
    }
}

/* Read one packet; returns its command, data in *buf (NUL-terminated). */
static char
recv_pkt(char **buf, size_t *len)
{
    uint32_t n;
    char cmd;

    read_all(&n, 4);
    n = ntohl(n);
    if (n == 0 || n > MAXPKT)
        die("bad packet length from milter");
    read_all(&cmd, 1);
    *len = n - 1;
    *buf = realloc(*buf, *len + 1);
    if (*buf == NULL)
        die("out of memory");
    read_all(*buf, *len);
    (*buf)[*len] = '\0';
    return cmd;
}

struct kv {
    char *v[32];
    int n;
};

static void
send_macros(char stage, const struct kv *m)
{
    char buf[8192];
    size_t o = 0;
    int i;

    if (m->n == 0)
        return;
    buf[o++] = stage;
    for (i = 0; i < m->n; i++) {
        char *eq = strchr(m->v[i], '=');
        size_t nl = (size_t)(eq - m->v[i]), vl = strlen(eq + 1);
        if (o + nl + vl + 2 > sizeof(buf))
            die("macros too long");
        memcpy(buf + o, m->v[i], nl);
        o += nl;
        buf[o++] = '\0';
        memcpy(buf + o, eq + 1, vl + 1);
        o += vl + 1;
    }
    send_pkt('D', buf, o);
}

/* Wait for the reply to a command: 'c' goes on; anything else ends. */
static char
reply(char **rbuf, size_t *rlen)
{
    char c;

    for (;;) {
        c = recv_pkt(rbuf, rlen);
        if (c != 'p') /* progress */
            return c;
    }
}

static int
finish(char c, const char *text)
{
    switch (c) {
    case 'c':
        fprintf(stderr, "reply=continue\n");
        return 0;
    case 'a':
        fprintf(stderr, "reply=accept\n");
        return 0;
    case 't':
        fprintf(stderr, "reply=tempfail\n");
        return 1;
    case 'r':
        fprintf(stderr, "reply=reject\n");
        return 2;
    case 'd':
        fprintf(stderr, "reply=discard\n");
        return 3;
    case 'y':
        fprintf(stderr, "reply=%s %s\n", text[0] == '4' ? "tempfail" : "reject",
                text);
        return text[0] == '4' ? 1 : 2;
    }
    fprintf(stderr, "reply=unknown(%c)\n", c);
    return 4;
}

static void
connect_to(const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", spec + 5);
        if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
            connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
            die("cannot connect to the unix socket");
    } else if (strncmp(spec, "inet:", 5) == 0) {
        char port[16], host[256];
        const char *at = strchr(spec, '@');
        struct addrinfo hints, *ai;
        if (at == NULL || (size_t)(at - spec - 5) >= sizeof(port))
            die("socket must be inet:PORT@HOST");
        memcpy(port, spec + 5, (size_t)(at - spec - 5));
        port[at - spec - 5] = '\0';
        snprintf(host, sizeof(host), "%s", at + 1);
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, port, &hints, &ai) != 0)
            die("cannot resolve the milter address");
        if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0 ||
            connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
            die("cannot connect to the milter");
        freeaddrinfo(ai);
    } else {
        die("socket must be inet:PORT@HOST or unix:PATH");
    }
}

int
main(int argc, char **argv)
{
    struct kv cmac = {0}, mmac = {0}, emac = {0};
    const char *sock = NULL, *ip = "127.0.0.1", *from = NULL, *pre = NULL;
    char *rcpts[64], *rbuf = NULL, buf[65536];
    int nrcpt = 0, c, i, rc;
    size_t rlen, off;
    uint32_t v[3];
    unsigned char opt[12];
    struct smm_message *m;
    struct smm_result res;
    struct smm_err err;
    ssize_t n;
    char rc_c;

    while ((c = getopt(argc, argv, "s:i:C:M:E:x:f:r:")) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 'i':
            ip = optarg;
            break;
        case 'C':
        case 'M':
        case 'E': {
            struct kv *k = c == 'C' ? &cmac : c == 'M' ? &mmac : &emac;
            if (strchr(optarg, '=') == NULL || k->n == 32)
                die("macros are name=value");
            k->v[k->n++] = optarg;
            break;
        }
        case 'x':
            pre = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 'r':
            if (nrcpt < 64)
                rcpts[nrcpt++] = optarg;
            break;
        default:
            die("bad usage (see the comment at the top of milter-client.c)");
        }
    }
    if (sock == NULL || from == NULL || nrcpt == 0)
        die("needs -s, -f and -r");
    if (smm_message_new(64 * 1024 * 1024, 0, "/tmp", &m, &err) != SMM_OK ||
        smm_message_read(stdin, m, &err) != SMM_OK)
        die("cannot read the message");
    connect_to(sock);

    /* negotiate: version 6, every action, every protocol step offered */
    v[0] = htonl(6);
    v[1] = htonl(0x1ff);
    v[2] = htonl(0x1fffff);
    memcpy(opt, v, 12);
    send_pkt('O', opt, 12);
    if (recv_pkt(&rbuf, &rlen) != 'O' || rlen < 12)
        die("option negotiation failed");
    memcpy(v, rbuf, 12);
    v[2] = ntohl(v[2]);

    send_macros('C', &cmac);
    {
        char cb[512];
        int l = snprintf(cb, sizeof(cb), "client.example%c%c", '\0',
                         strchr(ip, ':') != NULL ? '6' : '4');
        uint16_t port = htons(12345);
        memcpy(cb + l, &port, 2);
        l += 2;
        l += snprintf(cb + l, sizeof(cb) - (size_t)l, "%s", ip) + 1;
        send_pkt('C', cb, (size_t)l);
        if ((rc_c = reply(&rbuf, &rlen)) != 'c')
            return finish(rc_c, rbuf);
    }
    send_macros('M', &mmac);
    snprintf(buf, sizeof(buf), "<%s>", from);
    send_pkt('M', buf, strlen(buf) + 1);
    if ((rc_c = reply(&rbuf, &rlen)) != 'c')
        return finish(rc_c, rbuf);
    for (i = 0; i < nrcpt; i++) {
        snprintf(buf, sizeof(buf), "<%s>", rcpts[i]);
        send_pkt('R', buf, strlen(buf) + 1);
        if ((rc_c = reply(&rbuf, &rlen)) != 'c')
            return finish(rc_c, rbuf);
    }
    for (off = 0; off < m->nhdrs; off++) {
        size_t nl = strlen(m->hdrs[off].name), vl = strlen(m->hdrs[off].value);
        char *h = malloc(nl + vl + 2);
        memcpy(h, m->hdrs[off].name, nl + 1);
        memcpy(h + nl + 1, m->hdrs[off].value, vl + 1);
        send_pkt('L', h, nl + vl + 2);
        free(h);
        if ((rc_c = reply(&rbuf, &rlen)) != 'c')
            return finish(rc_c, rbuf);
    }
    send_pkt('N', NULL, 0);
    if ((rc_c = reply(&rbuf, &rlen)) != 'c')
        return finish(rc_c, rbuf);
    for (off = 0; (n = smm_spool_pread(m->body, buf, 65535, off)) > 0;
         off += (size_t)n) {
        send_pkt('B', buf, (size_t)n);
        if ((rc_c = reply(&rbuf, &rlen)) != 'c')
            return finish(rc_c, rbuf);
    }
    if (pre != NULL && system(pre) != 0)
        fprintf(stderr, "milter-client: -x command failed\n");
    send_macros('E', &emac);
    send_pkt('E', NULL, 0);

    memset(&res, 0, sizeof(res));
    for (;;) {
        rc_c = reply(&rbuf, &rlen);
        if (rc_c == 'h') { /* SMFIR_ADDHEADER */
            char *val = rbuf + strlen(rbuf) + 1;
            fprintf(stderr, "add %s: %s\n", rbuf, val);
            smm_result_edit(&res, SMM_EDIT_ADD, rbuf, 0, val);
        } else if (rc_c == 'm') { /* SMFIR_CHGHEADER */
            uint32_t idx;
            char *name = rbuf + 4, *val;
            memcpy(&idx, rbuf, 4);
            idx = ntohl(idx);
            val = name + strlen(name) + 1;
            if (*val == '\0') {
                fprintf(stderr, "delete %s[%u]\n", name, idx);
                smm_result_edit(&res, SMM_EDIT_DELETE, name, (int)idx, NULL);
            } else {
                fprintf(stderr, "change %s[%u]: %s\n", name, idx, val);
                smm_result_edit(&res, SMM_EDIT_CHANGE, name, (int)idx, val);
            }
        } else if (rc_c == 'i') { /* SMFIR_INSHEADER */
            uint32_t idx;
            char *name = rbuf + 4, *val;
            memcpy(&idx, rbuf, 4);
            idx = ntohl(idx);
            val = name + strlen(name) + 1;
            fprintf(stderr, "insert[%u] %s: %s\n", idx, name, val);
            smm_result_edit(&res, SMM_EDIT_INSERT, name, (int)idx, val);
        } else if (rc_c == 'b') {
            if (res.body == NULL && smm_spool_new(64 * 1024 * 1024, "/tmp",
                                                  &res.body, &err) != SMM_OK)
                die("out of memory");
            smm_spool_write(res.body, rbuf, rlen, &err);
        } else if (rc_c == 'q') {
            fprintf(stderr, "quarantine %s\n", rbuf);
        } else if (rc_c == 'e' || rc_c == '-' || rc_c == '2' || rc_c == '+') {
            fprintf(stderr, "unhandled modification '%c'\n", rc_c);
        } else {
            break;
        }
    }
    if (res.body != NULL)
        fprintf(stderr, "body %zu bytes\n", smm_spool_len(res.body));
    rc = finish(rc_c, rbuf);
    if (rc == 0)
        smm_result_write(&res, m, stdout, &err);
    send_pkt('Q', NULL, 0);
    close(fd);
    smm_result_free(&res);
    smm_message_free(m);
    free(rbuf);
    return rc;
}
