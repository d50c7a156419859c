/*
 * t-mime-prescan: smm_mime_prescan() counts the parts and depth of a
 * MIME structure the way the GMime tree has them (every case within the
 * limits is checked against GMime's own parse; for broken ones its count
 * is a bound GMime stays under; a part's content, whatever it quotes,
 * counts for nothing), refuses a structure past
 * MaxMimeDepth or MaxMimeParts (and a part's Content-Type over 64 KB),
 * and does so for 20,000 parts without building anything.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmime/gmime.h>

#include "smm_buf.h"
#include "smm_state.h"
#include "smm_mime.h"
#include "smm_spool.h"
#include "tap.h"

/* Objects in the GMime tree: every part, multipart, message part and the
 * mime part of a message part; depth as smm_mime_canonical_entity counts
 * it. */
static int
gmime_count(GMimeObject *o, int depth, int *maxdepth)
{
    int i, n = 1;

    if (depth > *maxdepth)
        *maxdepth = depth;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        for (i = 0; i < g_mime_multipart_get_count(mp); i++)
            n += gmime_count(g_mime_multipart_get_part(mp, i), depth + 1,
                             maxdepth);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *inner =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (inner != NULL && g_mime_message_get_mime_part(inner) != NULL)
            n += gmime_count(g_mime_message_get_mime_part(inner), depth + 1,
                             maxdepth);
    }
    return n;
}

/* GMime's count for an entity "Content-Type: ct" + body (as
 * smm_mime_canonical_entity feeds it); -1 when it cannot parse. */
static int
gmime_parts(const char *ct, const char *body, size_t blen, int *maxdepth)
{
    struct smm_buf b = {0};
    GMimeStream *s;
    GMimeParser *p;
    GMimeObject *o;
    int n = -1;

    if (ct != NULL)
        smm_buf_printf(&b, "Content-Type: %s\r\n", ct);
    else
        smm_buf_puts(&b, "Content-Type: text/plain\r\n");
    smm_buf_puts(&b, "\r\n");
    smm_buf_append(&b, body, blen);
    s = g_mime_stream_mem_new_with_buffer(b.data, b.len);
    p = g_mime_parser_new_with_stream(s);
    g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
    *maxdepth = 0;
    if ((o = g_mime_parser_construct_part(p, NULL)) != NULL) {
        n = gmime_count(o, 0, maxdepth);
        g_object_unref(o);
    }
    g_object_unref(p);
    g_object_unref(s);
    smm_buf_free(&b);
    return n;
}

static smm_status
prescan(const char *ct, const char *body, size_t blen, int maxd, int maxp,
        int *nparts, struct smm_err *err)
{
    struct smm_spool *sp;
    smm_status st;

    if (smm_spool_new(1 << 20, "/tmp", &sp, err) != SMM_OK ||
        smm_spool_write(sp, body, blen, err) != SMM_OK)
        return SMM_ENOMEM;
    st = smm_mime_prescan(ct, sp, maxd, maxp, nparts, err);
    smm_spool_free(sp);
    return st;
}

/* Both counts for "multipart/mixed; boundary=p" + body, default limits:
 * the pre-scan's status and count, and GMime's count. */
static smm_status
both_p(const char *body, int *n, int *gn)
{
    const char *ct = "multipart/mixed; boundary=p";
    struct smm_err err;
    int depth;

    *gn = gmime_parts(ct, body, strlen(body), &depth);
    return prescan(ct, body, strlen(body), 32, 1000, n, &err);
}

#define MIX "multipart/mixed; boundary=\"b\""
#define TXT "Content-Type: text/plain\r\n\r\nx\r\n"

static const struct {
    const char *name, *ct, *body;
    int parts; /* want, and GMime must agree; negative: -want, and GMime
                  may count fewer (a broken structure, the bound) */
} cases[] = {
    {"text/plain", "text/plain", "hello\r\n--b\r\n", 1},
    {"no Content-Type", NULL, "hello\r\n", 1},
    {"three parts", MIX, "--b\r\n" TXT "--b\r\n" TXT "--b\r\n" TXT "--b--\r\n",
     4},
    /* a delimiter after the close delimiter: GMime ignores it, the
     * pre-scan's bound takes it */
    {"preamble and epilogue", MIX,
     "pre\r\n--b\r\n" TXT "--b--\r\nepilogue\r\n--b\r\n" TXT, -3},
    {"LF line ends", MIX, "--b\nContent-Type: text/plain\n\nx\n--b--\n", 2},
    {"blanks after delimiters", MIX,
     "--b  \r\n" TXT "--b\t\r\n" TXT "--b-- \r\n", 3},
    {"no close delimiter", MIX, "--b\r\n" TXT "--b\r\n" TXT, 3},
    {"boundary never appears", MIX, "just text\r\n--c\r\n", 1},
    {"nested two levels", MIX,
     "--b\r\nContent-Type: multipart/alternative; boundary=\"c\"\r\n\r\n"
     "--c\r\n" TXT "--c\r\n" TXT "--c--\r\n--b\r\n" TXT "--b--\r\n",
     5},
    {"inner boundary a prefix of the outer", "multipart/mixed; boundary=\"ab\"",
     "--ab\r\nContent-Type: multipart/mixed; boundary=\"a\"\r\n\r\n--a\r\n" TXT
     "--ab\r\n" TXT "--ab--\r\n",
     4},
    {"outer boundary a prefix of the inner", MIX,
     "--b\r\nContent-Type: multipart/mixed; boundary=\"bb\"\r\n\r\n--bb\r\n" TXT
     "--bb\r\n" TXT "--bb--\r\n--b--\r\n",
     4},
    {"inner left open, outer goes on", MIX,
     "--b\r\nContent-Type: multipart/mixed; boundary=\"c\"\r\n\r\n--c\r\n" TXT
     "--b\r\n" TXT "--b--\r\n",
     4},
    {"folded Content-Type, boundary on the continuation", MIX,
     "--b\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"c\"\r\n\r\n"
     "--c\r\n" TXT "--c--\r\n--b--\r\n",
     3},
    {"multipart/signed inside is counted", MIX,
     "--b\r\nContent-Type: multipart/signed; protocol=\"application/"
     "pkcs7-signature\"; boundary=\"s\"\r\n\r\n--s\r\n" TXT
     "--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n"
     "--s--\r\n--b--\r\n",
     4},
    {"message/rfc822 holding a multipart", "message/rfc822",
     "Subject: inner\r\nContent-Type: " MIX "\r\n\r\n--b\r\n" TXT "--b\r\n" TXT
     "--b--\r\n",
     4},
    {"message/rfc822 part in a multipart", MIX,
     "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nhi\r\n"
     "--b--\r\n",
     3},
    {"digest: parts are messages by default",
     "multipart/digest; boundary=\"b\"",
     "--b\r\n\r\nSubject: one\r\n\r\n1\r\n--b\r\n\r\nSubject: two\r\n\r\n2\r\n"
     "--b--\r\n",
     5},
    {"multipart without boundary", "multipart/mixed", "--b\r\n" TXT, 1},
    {"delimiter inside a part's header block", MIX,
     "--b\r\nContent-Type: text/plain\r\n--b\r\n" TXT "--b--\r\n", 3},
    {"empty body", MIX, "", 1},
    /* GMime takes the last; the bound counts both boundaries */
    {"two Content-Type fields: the last counts for the depth", MIX,
     "--b\r\nContent-Type: multipart/mixed; boundary=c\r\nContent-Type: "
     "text/plain\r\n\r\n--c\r\n" TXT "--c--\r\n--b--\r\n",
     -3},
    {"a line that is no field inside a header block", "message/rfc822",
     "garbage line\r\nContent-Type: " MIX "\r\n\r\n--b\r\n" TXT "--b--\r\n", 3},
    {"blanks before the colon", MIX,
     "--b\r\nContent-Type  : multipart/mixed; boundary=c\r\n\r\n--c\r\n" TXT
     "--c--\r\n--b--\r\n",
     3},
    /* GMime drops every CR in a header block (fuzz-prescan finding) */
    {"CRs inside a Content-Type field", MIX,
     "--b\r\nContent-Type: multipart/mixed;\r\n\tbo\r\r\rundary=\"c\"\r\n"
     "\r\n--c\r\n" TXT "--c\r\n" TXT "--c--\r\n--b--\r\n",
     4},
    /* (GMime then misses the delimiter right after it) */
    {"a line of CRs ends a header block", MIX,
     "--b\r\nContent-Type: multipart/mixed; boundary=c\r\r\r\n\r\r\n--c\r\n" TXT
     "--c--\r\n--b--\r\n",
     -3},
    {"RFC 2231 boundary", "multipart/mixed; boundary*=''r2231",
     "--r2231\r\n" TXT "--r2231--\r\n", 2},
    /* a part's content is no header block, whatever it quotes */
    {"a Content-Type line quoted in a text part", MIX,
     "--b\r\nContent-Type: text/plain\r\n\r\nHTTP/1.1 200 OK\r\n"
     "Content-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q\r\n" TXT
     "--q\r\n" TXT "--q--\r\n--b--\r\n",
     2},
    {"a mailbox attachment", MIX,
     "--b\r\n" TXT "--b\r\nContent-Type: application/mbox\r\n\r\n"
     "From a@example.org Mon Jan  1 00:00:00 2024\r\nSubject: one\r\n"
     "Content-Type: multipart/mixed; boundary=\"m1\"\r\n\r\n--m1\r\n" TXT
     "--m1\r\n" TXT "--m1--\r\n--b--\r\n",
     3},
    /* but after a delimiter of any boundary met, one may begin */
    {"a delimiter of a closed multipart starts a header block", MIX,
     "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n" TXT
     "--c--\r\n--b\r\nContent-Type: text/plain\r\n\r\n--c\r\n"
     "Content-Type: multipart/mixed; boundary=d\r\n\r\n--d\r\n--d\r\n"
     "--b--\r\n",
     -7},
};

static char *
repeat(const char *unit, int n, const char *head, const char *tail)
{
    struct smm_buf b = {0};
    int i;

    smm_buf_puts(&b, head);
    for (i = 0; i < n; i++)
        smm_buf_puts(&b, unit);
    smm_buf_puts(&b, tail);
    return b.data;
}

/* n nested multiparts: boundaries b0 (the top, given by ct) .. bn */
static char *
nest(int n)
{
    struct smm_buf b = {0};
    int i;

    for (i = 0; i < n; i++)
        smm_buf_printf(&b,
                       "--b%d\r\nContent-Type: multipart/mixed; "
                       "boundary=\"b%d\"\r\n\r\n",
                       i, i + 1);
    smm_buf_printf(&b, "--b%d\r\n" TXT "--b%d--\r\n", n, n);
    return b.data;
}

int
main(void)
{
    struct smm_err err;
    smm_status st;
    size_t i;
    int n, gn, gdepth;
    char *body, *ct;
    struct timespec t0, t1;
    double ms;

    if (smm_init(&err) != SMM_OK)
        return 1;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t blen = strlen(cases[i].body);
        int want = cases[i].parts < 0 ? -cases[i].parts : cases[i].parts;
        st = prescan(cases[i].ct, cases[i].body, blen, 32, 1000, &n, &err);
        gn = gmime_parts(cases[i].ct, cases[i].body, blen, &gdepth);
        ok(st == SMM_OK && n == want, "%s: %d parts (want %d, status %d)",
           cases[i].name, n, want, st);
        if (cases[i].parts < 0)
            ok(gn <= n, "%s: GMime's tree has no more (%d)", cases[i].name, gn);
        else
            is_int(n, gn, "%s: as many parts as GMime's tree", cases[i].name);
    }

    /* the limits, at the edge: the same decision as GMime's tree */
    body = repeat("--p\r\n" TXT, 999, "", "--p--\r\n");
    st = prescan("multipart/mixed; boundary=p", body, strlen(body), 32, 1000,
                 &n, &err);
    ok(st == SMM_OK && n == 1000, "999 parts + the multipart = 1000: allowed");
    free(body);
    body = repeat("--p\r\n" TXT, 1000, "", "--p--\r\n");
    st = prescan("multipart/mixed; boundary=p", body, strlen(body), 32, 1000,
                 &n, &err);
    ok(st == SMM_EPARSE, "1001 parts, MaxMimeParts 1000: SMM_EPARSE");
    ok(strstr(err.msg, "MaxMimeParts 1000") != NULL, "the error says why: %s",
       err.msg);
    free(body);
    for (n = 30; n <= 32; n++) {
        int want_ok;
        body = nest(n);
        gn = gmime_parts("multipart/mixed; boundary=b0", body, strlen(body),
                         &gdepth);
        want_ok = gdepth <= 32;
        st = prescan("multipart/mixed; boundary=b0", body, strlen(body), 32,
                     1000, NULL, &err);
        ok((st == SMM_OK) == want_ok,
           "%d nested multiparts (leaf at depth %d): %s, as GMime's tree", n,
           gdepth, want_ok ? "allowed" : "SMM_EPARSE");
        free(body);
    }
    body = nest(20);
    st = prescan("multipart/mixed; boundary=b0", body, strlen(body), 10, 1000,
                 NULL, &err);
    ok(st == SMM_EPARSE && strstr(err.msg, "MaxMimeDepth 10") != NULL,
       "MaxMimeDepth 10: 20 levels refused");
    free(body);

    /* 20,000 parts: refused, quickly, having counted no further */
    body = repeat("--p\r\n" TXT, 20000, "", "--p--\r\n");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = prescan("multipart/mixed; boundary=p", body, strlen(body), 32, 1000,
                 &n, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
         (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ok(st == SMM_EPARSE && n == 1001, "20,000 parts: refused at part %d", n);
    ok(ms < 1000, "20,000 parts: %.1f ms", ms);
    free(body);
    body = nest(10000);
    st = prescan("multipart/mixed; boundary=b0", body, strlen(body), 32, 1000,
                 &n, &err);
    ok(st == SMM_EPARSE && n == 34,
       "10,000 nested: refused at depth 33, %d parts counted", n);
    free(body);

    /* what real mail holds: a text part quoting a long folded field, a
     * mailbox attachment of 600 multipart messages */
    body = repeat("\r\n  \"key\": \"value\",", 8000,
                  "--p\r\n" TXT "--p\r\nContent-Type: text/plain\r\n\r\n"
                  "Content-Type: application/json",
                  "\r\n--p--\r\n");
    st = both_p(body, &n, &gn);
    ok(st == SMM_OK && n == 3 && gn == n,
       "a quoted Content-Type line followed by 140 KB of indented lines (%d, "
       "GMime %d)",
       n, gn);
    free(body);
    body = repeat("From a@example.org Mon Jan  1 00:00:00 2024\r\n"
                  "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"
                  "--m\r\n" TXT "--m\r\n" TXT "--m--\r\n\r\n",
                  600,
                  "--p\r\n" TXT "--p\r\nContent-Type: application/mbox\r\n"
                  "Content-Transfer-Encoding: 7bit\r\n\r\n",
                  "--p--\r\n");
    st = both_p(body, &n, &gn);
    ok(st == SMM_OK && n == 3 && gn == n,
       "a mailbox of 600 multipart messages, 7bit (%d, GMime %d)", n, gn);
    free(body);

    /* a part's Content-Type over 64 KB; a long boundary; long lines */
    body = repeat("\r\n\tx=y;", 20000, "--p\r\nContent-Type: text/plain;",
                  "\r\n\r\nx\r\n--p--\r\n");
    st = prescan("multipart/mixed; boundary=p", body, strlen(body), 32, 1000,
                 &n, &err);
    ok(st == SMM_EPARSE && strstr(err.msg, "longer than") != NULL,
       "a part's Content-Type of 120 KB: SMM_EPARSE (%s)", err.msg);
    free(body);
    ct = repeat("q", 10000, "multipart/mixed; boundary=\"", "\"");
    body = repeat("q", 10000, "--", "\r\n" TXT);
    n = 0;
    st = prescan(ct, body, strlen(body), 32, 1000, &n, &err);
    ok(st == SMM_OK && n == 2, "a 10,000-character boundary is followed (%d)",
       n);
    free(body);
    free(ct);
    body = repeat("-", 1 << 20, "--p\r\n" TXT, "\r\n--p\r\n" TXT "--p--\r\n");
    st = prescan("multipart/mixed; boundary=p", body, strlen(body), 32, 1000,
                 &n, &err);
    ok(st == SMM_OK && n == 3, "a 1 MB line of dashes is no delimiter (%d)", n);
    free(body);
    body = repeat(" ", 1 << 20, "--p\r\n" TXT "--p", "\r\n" TXT "--p--\r\n");
    st = both_p(body, &n, &gn);
    ok(st == SMM_OK && n == 3 && gn == n,
       "a delimiter followed by 1 MB of blanks still is one (%d, GMime %d)", n,
       gn);
    free(body);
    return tap_done();
}
