/*
 * milter-client -- act as the MTA towards a milter, over the milter
 * protocol (version 6), for one message; print the message as the MTA
 * would deliver it after the milter's changes.
 *
 *   milter-client -s inet:PORT@HOST|unix:PATH [-i client-ip]
 *       [-C name=value]... (macros sent with CONNECT)
 *       [-M name=value]... (macros sent with MAIL)
 *       [-E name=value]... (macros sent with EOM)
 *       [-y command] (run with system() once the milter has accepted
 *       the connection, before MAIL)
 *       [-x command] (run with system() just before EOM, once what
 *       came before it has been sent)
 *       [-A] (offer no no-reply steps, as an MTA older than Sendmail
 *       8.14 / Postfix 2.6: every step is answered, so with -x the
 *       milter has surely started the message before the command runs)
 *       [-H 'Name: value']... (fields sent after the message's own; C
 *       escapes \r \n \t \\ \xNN in the value, for what a file cannot
 *       hold, such as a bare LF; the protocol cannot carry NUL)
 *       -f sender -r rcpt [-r rcpt]... < message > result
 *
 * stderr gets one line "noreply=STEP,..." (the steps the milter asked
 * not to answer: conn, helo, mail, rcpt, data, unknown, eoh, header,
 * body; "noreply=" when none), one line "reply=<word> [code text]" and
 * one line per
 * modification ("add Name: value", "insert[i] Name: value", "change Name[i]:
 * value", "delete Name[i]", "body N bytes", "quarantine reason"). Exit: 0
 * continue/accept, 1 tempfail, 2 reject, 3 discard, 4 protocol or I/O error.
 *
 * The changes are applied with the project's own result writer (the same
 * libmilter index semantics as smime-milter-ctl), so the output can be
 * verified by the S/MIME engines like mail caught behind Postfix.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfdef.h>

#include "milter-proto.h"
#include "smm_message.h"
#include "smm_result.h"

static struct mp_conn conn;

static void
die(const char *msg)
{
    fprintf(stderr, "milter-client: %s\n", msg);
    exit(4);
}

/* a protocol step's result: -1 is fatal (exit 4) */
static int
chk(int r)
{
    if (r < 0)
        die(conn.err);
    return r;
}

struct kv {
    char *v[32];
    int n;
};

/* Undo C escapes in place (\r \n \t \\ \xNN; \x00 is refused). */
static void
unescape(char *s)
{
    char *o = s;
    unsigned v;

    for (; *s != '\0'; s++) {
        if (*s != '\\' || s[1] == '\0') {
            *o++ = *s;
            continue;
        }
        switch (*++s) {
        case 'r':
            *o++ = '\r';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'x':
            if (sscanf(s + 1, "%2x", &v) != 1 || v == 0)
                die("-H: \\x needs two hex digits, not 00");
            *o++ = (char)v;
            s += 2;
            break;
        default:
            *o++ = *s;
        }
    }
    *o = '\0';
}

static int
finish(int c, const char *text)
{
    switch (c) {
    case SMFIR_CONTINUE:
        fprintf(stderr, "reply=continue\n");
        return 0;
    case SMFIR_ACCEPT:
        fprintf(stderr, "reply=accept\n");
        return 0;
    case SMFIR_TEMPFAIL:
        fprintf(stderr, "reply=tempfail\n");
        return 1;
    case SMFIR_REJECT:
        fprintf(stderr, "reply=reject\n");
        return 2;
    case SMFIR_DISCARD:
        fprintf(stderr, "reply=discard\n");
        return 3;
    case SMFIR_REPLYCODE:
        fprintf(stderr, "reply=%s %s\n", text[0] == '4' ? "tempfail" : "reject",
                text);
        return text[0] == '4' ? 1 : 2;
    }
    fprintf(stderr, "reply=unknown(%c)\n", c);
    return 4;
}

/* one modification action at end of message, into the result */
static void
on_mod(const struct mp_mod *m, void *arg)
{
    struct smm_result *res = arg;
    struct smm_err err;

    switch (m->cmd) {
    case SMFIR_ADDHEADER:
        fprintf(stderr, "add %s: %s\n", m->name, m->value);
        smm_result_edit(res, SMM_EDIT_ADD, m->name, 0, m->value);
        break;
    case SMFIR_INSHEADER:
        fprintf(stderr, "insert[%u] %s: %s\n", m->index, m->name, m->value);
        smm_result_edit(res, SMM_EDIT_INSERT, m->name, (int)m->index, m->value);
        break;
    case SMFIR_CHGHEADER:
        if (*m->value == '\0') {
            fprintf(stderr, "delete %s[%u]\n", m->name, m->index);
            smm_result_edit(res, SMM_EDIT_DELETE, m->name, (int)m->index, NULL);
        } else {
            fprintf(stderr, "change %s[%u]: %s\n", m->name, m->index, m->value);
            smm_result_edit(res, SMM_EDIT_CHANGE, m->name, (int)m->index,
                            m->value);
        }
        break;
    case SMFIR_REPLBODY:
        if (res->body == NULL &&
            smm_spool_new(64 * 1024 * 1024, "/tmp", &res->body, &err) != SMM_OK)
            die("out of memory");
        smm_spool_write(res->body, m->data, m->len, &err);
        break;
    case SMFIR_QUARANTINE:
        fprintf(stderr, "quarantine %s\n", m->name);
        break;
    default:
        fprintf(stderr, "unhandled modification '%c'\n", m->cmd);
    }
}

static void
print_noreply(uint32_t proto)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } nr[] = {{SMFIP_NR_CONN, "conn"}, {SMFIP_NR_HELO, "helo"},
              {SMFIP_NR_MAIL, "mail"}, {SMFIP_NR_RCPT, "rcpt"},
              {SMFIP_NR_DATA, "data"}, {SMFIP_NR_UNKN, "unknown"},
              {SMFIP_NR_EOH, "eoh"},   {SMFIP_NR_HDR, "header"},
              {SMFIP_NR_BODY, "body"}};
    const char *sep = "";
    size_t i;

    fprintf(stderr, "noreply=");
    for (i = 0; i < sizeof(nr) / sizeof(nr[0]); i++)
        if (proto & nr[i].bit) {
            fprintf(stderr, "%s%s", sep, nr[i].name);
            sep = ",";
        }
    fprintf(stderr, "\n");
}

int
main(int argc, char **argv)
{
    struct kv cmac = {0}, mmac = {0}, emac = {0}, hdrs = {0};
    const char *sock = NULL, *ip = "127.0.0.1", *from = NULL, *pre = NULL,
               *pre_mail = NULL;
    char *rcpts[64], buf[65536];
    int nrcpt = 0, c, i, rc, r;
    uint32_t offer = MP_OFFER_ALL;
    size_t off;
    struct smm_message *m;
    struct smm_result res;
    struct smm_err err;
    ssize_t n;

    while ((c = getopt(argc, argv, "s:i:C:M:E:x:y:Af:r:H:")) != -1) {
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
        case 'y':
            pre_mail = optarg;
            break;
        case 'A':
            offer &= ~(uint32_t)(SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL |
                                 SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN |
                                 SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_HDR);
            break;
        case 'H':
            if (strchr(optarg, ':') == NULL || hdrs.n == 32)
                die("-H takes 'Name: value'");
            unescape(optarg);
            hdrs.v[hdrs.n++] = optarg;
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
    memset(&res, 0, sizeof(res));
    for (i = 0; i < hdrs.n; i++) {
        char *colon = strchr(hdrs.v[i], ':'), *v = colon + 1;
        *colon = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        if (smm_message_add_header(m, hdrs.v[i], v) != SMM_OK)
            die("out of memory");
    }
    chk(mp_open(&conn, sock, offer));
    print_noreply(conn.proto);
    chk(mp_macros(&conn, SMFIC_CONNECT, cmac.v, cmac.n));
    if ((r = chk(mp_connect_info(&conn, "client.example", ip, 12345))) !=
        SMFIR_CONTINUE)
        goto refused;
    if (pre_mail != NULL && system(pre_mail) != 0)
        fprintf(stderr, "milter-client: -y command failed\n");
    chk(mp_macros(&conn, SMFIC_MAIL, mmac.v, mmac.n));
    if ((r = chk(mp_mail(&conn, from))) != SMFIR_CONTINUE)
        goto refused;
    for (i = 0; i < nrcpt; i++)
        if ((r = chk(mp_rcpt(&conn, rcpts[i]))) != SMFIR_CONTINUE)
            goto refused;
    for (off = 0; off < m->nhdrs; off++)
        if ((r = chk(mp_header(&conn, m->hdrs[off].name,
                               m->hdrs[off].value))) != SMFIR_CONTINUE)
            goto refused;
    if ((r = chk(mp_eoh(&conn))) != SMFIR_CONTINUE)
        goto refused;
    for (off = 0; (n = smm_spool_pread(m->body, buf, sizeof(buf), off)) > 0;
         off += (size_t)n)
        if ((r = chk(mp_body(&conn, buf, (size_t)n))) != SMFIR_CONTINUE)
            goto refused;
    if (pre != NULL && chk(mp_flush(&conn)) == 0 && system(pre) != 0)
        fprintf(stderr, "milter-client: -x command failed\n");
    chk(mp_macros(&conn, SMFIC_BODYEOB, emac.v, emac.n));
    r = chk(mp_eom(&conn, on_mod, &res));
    if (res.body != NULL)
        fprintf(stderr, "body %zu bytes\n", smm_spool_len(res.body));
    rc = finish(r, conn.buf);
    if (rc == 0)
        smm_result_write(&res, m, stdout, &err);
    goto out;
refused: /* an answer other than "continue" before the end of message */
    rc = finish(r, conn.buf);
out:
    mp_close(&conn);
    smm_result_free(&res);
    smm_message_free(m);
    return rc;
}
