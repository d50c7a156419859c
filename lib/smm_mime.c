/*
 * smm_mime -- MIME parsing and canonicalisation; see smm_mime.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <openssl/rand.h>

#include "smm_buf.h"
#include "smm_crlf.h"
#include "smm_mime.h"

int
smm_mime_is_content_header(const char *name)
{
    return strncasecmp(name, "Content-", 8) == 0;
}

/* A Content-Transfer-Encoding value that says binary (white space and a
 * comment around it allowed). */
int
smm_mime_cte_is_binary(const char *v)
{
    v += strspn(v, " \t");
    return strncasecmp(v, "binary", 6) == 0 &&
           (v[6] == '\0' || strchr(" \t\r(", v[6]) != NULL);
}

static int
ct_is(GMimeContentType *ct, const char *type, const char *sub)
{
    return g_mime_content_type_is_type(ct, type, sub);
}

static int
name_is_p7m(GMimeContentType *ct, const char *disposition)
{
    const char *name = g_mime_content_type_get_parameter(ct, "name");
    size_t n;

    if (name == NULL && disposition != NULL) {
        const char *f = strcasestr(disposition, "filename=");
        if (f != NULL)
            name = f + 9;
    }
    if (name == NULL)
        return 0;
    n = strcspn(name, "\";\r\n");
    return n >= 4 && (strncasecmp(name + n - 4, ".p7m", 4) == 0 ||
                      strncasecmp(name + n - 4, ".p7s", 4) == 0);
}

enum smm_protection
smm_mime_protection(const struct smm_message *m)
{
    const char *v = smm_message_header(m, "Content-Type", 0);
    GMimeContentType *ct;
    const char *proto;
    enum smm_protection p = SMM_PROT_NONE;

    if (v == NULL || (ct = g_mime_content_type_parse(NULL, v)) == NULL)
        return SMM_PROT_NONE;
    proto = g_mime_content_type_get_parameter(ct, "protocol");
    if (ct_is(ct, "multipart", "signed")) {
        if (proto != NULL &&
            (strcasecmp(proto, "application/pkcs7-signature") == 0 ||
             strcasecmp(proto, "application/x-pkcs7-signature") == 0))
            p = SMM_PROT_SMIME_SIGNED;
        else if (proto != NULL &&
                 strcasecmp(proto, "application/pgp-signature") == 0)
            p = SMM_PROT_PGP;
        else
            p = SMM_PROT_OTHER_SIGNED;
    } else if (ct_is(ct, "multipart", "encrypted")) {
        p = SMM_PROT_PGP;
    } else if (ct_is(ct, "application", "pkcs7-mime") ||
               ct_is(ct, "application", "x-pkcs7-mime")) {
        p = SMM_PROT_SMIME_OPAQUE;
    } else if (ct_is(ct, "application", "octet-stream") &&
               name_is_p7m(ct,
                           smm_message_header(m, "Content-Disposition", 0))) {
        p = SMM_PROT_SMIME_OPAQUE;
    }
    g_object_unref(ct);
    return p;
}

const char *
smm_protection_name(enum smm_protection p)
{
    switch (p) {
    case SMM_PROT_NONE:
        return "none";
    case SMM_PROT_SMIME_SIGNED:
        return "smime-signed";
    case SMM_PROT_SMIME_OPAQUE:
        return "smime-opaque";
    case SMM_PROT_PGP:
        return "pgp-mime";
    case SMM_PROT_OTHER_SIGNED:
        return "multipart-signed";
    }
    return "?";
}

/* A boundary that cannot occur in base64 or quoted-printable text. */
void
smm_mime_boundary(char *buf, size_t sz)
{
    unsigned char r[12];
    size_t i;
    int n;

    if (RAND_bytes(r, sizeof(r)) != 1)
        memset(r, 0x5a, sizeof(r));
    n = snprintf(buf, sz, "=_smm_");
    for (i = 0; i < sizeof(r) && (size_t)n + 2 < sz; i++)
        n += snprintf(buf + n, sz - (size_t)n, "%02x", r[i]);
}

/* Is the body valid UTF-8?  Is it 7-bit?  (for a missing Content-Type) */
static const char *
guess_charset(struct smm_spool *body)
{
    unsigned char buf[65536];
    size_t off = 0, i;
    ssize_t n;
    int eight = 0, cont = 0;

    while ((n = smm_spool_pread(body, buf, sizeof(buf), off)) > 0) {
        for (i = 0; i < (size_t)n; i++) {
            unsigned char c = buf[i];
            if (cont > 0) {
                if ((c & 0xc0) != 0x80)
                    return "unknown-8bit";
                cont--;
                continue;
            }
            if (c < 0x80)
                continue;
            eight = 1;
            if ((c & 0xe0) == 0xc0 && c >= 0xc2)
                cont = 1;
            else if ((c & 0xf0) == 0xe0)
                cont = 2;
            else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
                cont = 3;
            else
                return "unknown-8bit";
        }
        off += (size_t)n;
    }
    if (cont > 0)
        return "unknown-8bit";
    return eight ? "utf-8" : "us-ascii";
}

struct canon_limits {
    int max_depth, max_parts;
    int parts;
    int exceeded;
};

static void canon_object(GMimeObject *, int, struct canon_limits *);

/* Whether any byte of p[0..n) is NUL or 8-bit, eight bytes at a time: a
 * byte b has (b - 1) | b >= 0x80 exactly when b is 0 or b >= 0x80. */
static int
has_nul_or_8bit(const unsigned char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, high = ones << 7;
    uint64_t w, bad = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        bad |= ((w - ones) | w) & high;
    }
    for (; i < n; i++)
        bad |= (uint64_t)(p[i] >= 0x80 || p[i] == 0);
    return bad != 0;
}

/*
 * Scan the part's content.  SCAN_CLEAN: whether GMime's best-encoding
 * filter would find nothing to encode (no NUL, no 8-bit byte, no line
 * over 998 bytes, no line starting with "From "), so that it can be asked
 * only about the rest; the common plain-text part is decided here at
 * memchr speed, and any doubt returns 0 so that GMime decides.
 * SCAN_FROM: whether a line starts with "From ".
 */
enum scan { SCAN_CLEAN, SCAN_FROM };

static int
scan_content(GMimePart *part, enum scan what)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GMimeStream *s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
    unsigned char buf[16384 + 8];
    const unsigned char *p, *end, *nl, *stop;
    size_t carry = 0, linelen = 0;
    ssize_t n;
    int atstart = 1, found = 0;

    if (s == NULL || g_mime_stream_reset(s) != 0)
        return 0;
    for (;;) {
        n = g_mime_stream_read(s, (char *)buf + carry, sizeof(buf) - 8 - carry);
        if (n < 0 && !g_mime_stream_eos(s))
            goto out;
        if (n < 0) /* (a concatenated stream says -1 at its end) */
            n = 0;
        p = buf;
        end = buf + carry + (size_t)n;
        while (p < end) {
            if (atstart) {
                if (end - p < 5 && n > 0)
                    break; /* "From " may go on in the next block */
                if (end - p >= 5 && memcmp(p, "From ", 5) == 0) {
                    found = what == SCAN_FROM;
                    goto out;
                }
                atstart = 0;
            }
            nl = memchr(p, '\n', (size_t)(end - p));
            stop = nl != NULL ? nl : end;
            if (what == SCAN_CLEAN && (has_nul_or_8bit(p, (size_t)(stop - p)) ||
                                       (linelen += (size_t)(stop - p)) > 998))
                goto out;
            if (nl != NULL) {
                linelen = 0;
                atstart = 1;
            }
            p = nl != NULL ? nl + 1 : end;
        }
        carry = (size_t)(end - p);
        memmove(buf, p, carry);
        if (n == 0)
            break;
    }
    found = what == SCAN_CLEAN;
out:
    (void)g_mime_stream_reset(s);
    return found;
}

/* Feed bytes of an encoded form to a "From " at a line start matcher:
 * *k is how much of "From " the current line has begun with so far, -1
 * when it does not begin with it (0 at the start). */
static int
from_line_step(const char *p, size_t n, int *k)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (p[i] == '\n')
            *k = 0;
        else if (*k >= 0 && p[i] == "From "[*k]) {
            if (++*k == 5)
                return 1;
        } else
            *k = -1;
    }
    return 0;
}

/*
 * Whether the quoted-printable form GMime will write of the part's content
 * has a line starting with "From ".  Its encoder breaks lines at 76
 * columns wherever it must, so a "From " in the middle of a long line can
 * start an encoded one.  Only content holding "From " at all is encoded
 * here, a block at a time with GMime's own encoder (the one its writer
 * uses), so memory stays bounded whatever the part's size.
 */
static int
qp_makes_from_line(GMimePart *part)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GMimeStream *s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
    GMimeEncoding qp;
    char buf[16384 + 4], *out;
    size_t carry = 0, i;
    ssize_t n;
    int seen = 0, found = 0, k = 0;

    if (s == NULL || g_mime_stream_reset(s) != 0)
        return 1; /* in doubt: base64 */
    /* a "From " anywhere in the decoded content?  (here the wrapper's
     * encoding is 7bit, 8bit or binary: its bytes are the content) */
    while (!seen &&
           (n = g_mime_stream_read(s, buf + carry, sizeof(buf) - carry)) > 0) {
        size_t len = carry + (size_t)n;
        for (i = 0; i + 5 <= len && !seen; i++)
            seen = memcmp(buf + i, "From ", 5) == 0;
        carry = len < 4 ? len : 4;
        memmove(buf, buf + len - carry, carry);
    }
    if (!seen || g_mime_stream_reset(s) != 0) {
        (void)g_mime_stream_reset(s);
        return seen;
    }
    g_mime_encoding_init_encode(&qp, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    if ((out = malloc(g_mime_encoding_outlen(&qp, sizeof(buf)))) == NULL) {
        (void)g_mime_stream_reset(s);
        return 1;
    }
    while (!found && (n = g_mime_stream_read(s, buf, sizeof(buf))) > 0)
        found = from_line_step(
            out, g_mime_encoding_step(&qp, buf, (size_t)n, out), &k);
    if (!found)
        found =
            from_line_step(out, g_mime_encoding_flush(&qp, buf, 0, out), &k);
    free(out);
    (void)g_mime_stream_reset(s);
    return found;
}

static void
canon_part(GMimePart *part)
{
    GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
    GMimeContentEncoding best;

    switch (enc) {
    case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
        /* the client's quoted-printable, with a line starting "From "
         * (nothing obliges an encoder to write it =46rom): a mailbox
         * writer would make it ">From " and break the signature */
        if (g_mime_part_get_content(part) != NULL &&
            scan_content(part, SCAN_FROM))
            g_mime_part_set_content_encoding(part,
                                             GMIME_CONTENT_ENCODING_BASE64);
        return;
    case GMIME_CONTENT_ENCODING_BASE64:
    case GMIME_CONTENT_ENCODING_UUENCODE:
        return; /* already 7-bit safe */
    case GMIME_CONTENT_ENCODING_BINARY:
        /* labelled binary: its bytes are the content, line ends included
         * (quoted-printable or 7bit would let them become CRLF) */
        if (g_mime_part_get_content(part) != NULL)
            g_mime_part_set_content_encoding(part,
                                             GMIME_CONTENT_ENCODING_BASE64);
        return;
    default:
        break;
    }
    if (g_mime_part_get_content(part) == NULL)
        return;
    if (scan_content(part, SCAN_CLEAN))
        best = GMIME_CONTENT_ENCODING_DEFAULT;
    else if ((best = g_mime_part_get_best_content_encoding(
                  part, GMIME_ENCODING_CONSTRAINT_7BIT)) !=
                 GMIME_CONTENT_ENCODING_BASE64 &&
             (scan_content(part, SCAN_FROM) ||
              (best == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
               qp_makes_from_line(part))))
        /* a line starting with "From ": a mailbox writer on the way
         * (Postfix's local delivery, an MDA) would make it ">From " and
         * break the signature, and GMime's quoted-printable leaves it as
         * it is (its best-encoding filter even misses such a line across
         * its 16 KiB blocks), or makes one with a soft line break: base64 */
        best = GMIME_CONTENT_ENCODING_BASE64;
    if (best != GMIME_CONTENT_ENCODING_7BIT)
        g_mime_part_set_content_encoding(part, best);
    else if (enc == GMIME_CONTENT_ENCODING_8BIT ||
             enc == GMIME_CONTENT_ENCODING_BINARY)
        g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_7BIT);
}

/* A multipart or message/rfc822 labelled binary (RFC 2045 6.4 allows 7bit,
 * 8bit or binary there): once every leaf inside is in a 7-bit encoding
 * the label must not travel by SMTP.  8bit, not 7bit: a signed part inside
 * stays as it came, and a message's header may hold UTF-8 (RFC 6532). */
static void
relabel_binary(GMimeObject *o)
{
    const char *v = g_mime_object_get_header(o, "Content-Transfer-Encoding");

    if (v != NULL && smm_mime_cte_is_binary(v))
        g_mime_object_set_header(o, "Content-Transfer-Encoding", "8bit", NULL);
}

static void
canon_object(GMimeObject *o, int depth, struct canon_limits *lim)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    GMimeMessage *inner;
    int i, n;

    if (depth > lim->max_depth || ++lim->parts > lim->max_parts) {
        lim->exceeded = 1;
        return;
    }
    /* signed or encrypted content must stay byte for byte; a CMS part's
     * DER in a binary or 8bit transfer encoding goes in base64, which
     * leaves the DER as it is */
    if (GMIME_IS_APPLICATION_PKCS7_MIME(o)) {
        GMimePart *p = GMIME_PART(o);
        GMimeContentEncoding e = g_mime_part_get_content_encoding(p);
        if (g_mime_part_get_content(p) != NULL &&
            (e == GMIME_CONTENT_ENCODING_BINARY ||
             e == GMIME_CONTENT_ENCODING_8BIT ||
             ((e == GMIME_CONTENT_ENCODING_DEFAULT ||
               e == GMIME_CONTENT_ENCODING_7BIT) &&
              !scan_content(p, SCAN_CLEAN))))
            g_mime_part_set_content_encoding(p, GMIME_CONTENT_ENCODING_BASE64);
        return;
    }
    if (GMIME_IS_MULTIPART_SIGNED(o) || GMIME_IS_MULTIPART_ENCRYPTED(o) ||
        (ct != NULL && ct_is(ct, "multipart", "signed")))
        return;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        g_mime_multipart_set_epilogue(mp, NULL);
        relabel_binary(o);
        n = g_mime_multipart_get_count(mp);
        for (i = 0; i < n && !lim->exceeded; i++)
            canon_object(g_mime_multipart_get_part(mp, i), depth + 1, lim);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        relabel_binary(o);
        inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (inner != NULL && g_mime_message_get_mime_part(inner) != NULL)
            canon_object(g_mime_message_get_mime_part(inner), depth + 1, lim);
    } else if (GMIME_IS_PART(o)) {
        canon_part(GMIME_PART(o));
    }
}

/* "Name: value" with folding turned back into CRLF + white space. */
static smm_status
put_header(struct smm_buf *b, const char *name, const char *value)
{
    const char *p;

    if (smm_buf_printf(b, "%s: ", name) != SMM_OK)
        return SMM_ENOMEM;
    for (p = value; *p != '\0'; p++) {
        if (*p == '\n') {
            if (smm_buf_puts(b, "\r\n") != SMM_OK)
                return SMM_ENOMEM;
        } else if (*p != '\r' && smm_buf_append(b, p, 1) != SMM_OK) {
            return SMM_ENOMEM;
        }
    }
    return smm_buf_puts(b, "\r\n");
}

/*
 * What g_mime_object_write_to_stream() writes, for an output that ends
 * every line in CRLF itself: a leaf part whose content keeps its encoding
 * is written as its header block and its content bytes, without the
 * newline filter GMime puts on the content (it would do what the output
 * does, one byte at a time).  Anything else goes to GMime.
 */
static ssize_t
write_entity(GMimeObject *obj, GMimeFormatOptions *fmt, GMimeStream *out)
{
    GMimeDataWrapper *w;
    GMimeStream *content;
    ssize_t h, nl, c;

    if (!GMIME_IS_PART(obj) || obj->ensure_newline ||
        (w = g_mime_part_get_content(GMIME_PART(obj))) == NULL ||
        g_mime_part_get_content_encoding(GMIME_PART(obj)) !=
            g_mime_data_wrapper_get_encoding(w) ||
        (content = g_mime_data_wrapper_get_stream(w)) == NULL)
        return g_mime_object_write_to_stream(obj, fmt, out);
    if ((h = g_mime_header_list_write_to_stream(
             g_mime_object_get_header_list(obj), fmt, out)) < 0 ||
        (nl = g_mime_stream_write_string(
             out, g_mime_format_options_get_newline(fmt))) < 0)
        return -1;
    (void)g_mime_stream_reset(content);
    c = g_mime_stream_write_to_stream(content, out);
    (void)g_mime_stream_reset(content);
    return c < 0 ? -1 : h + nl + c;
}

/* smm_mime_canonical_entity(), smm_mime_seven_bit(): the latter keeps
 * every header field, not only the Content-* ones */
static smm_status
canonical(struct smm_message *m, int all_fields, int max_depth, int max_parts,
          struct smm_spool *out, struct smm_err *err)
{
    struct canon_limits lim = {max_depth, max_parts, 0, 0};
    struct smm_buf hb = {0};
    GMimeStream *hs = NULL, *bs = NULL, *cat = NULL, *os = NULL;
    GMimeStream *filtered = NULL;
    GMimeFilter *dos = NULL;
    GMimeParser *parser = NULL;
    GMimeObject *obj = NULL;
    GMimeFormatOptions *fmt = NULL;
    size_t i;
    int have_ct = 0;
    const char *ct = NULL;
    smm_status st;

    /* the limits first, before GMime builds the whole tree (from the
     * fields below: the last Content-Type counts) */
    for (i = 0; i < m->nhdrs; i++)
        if (strcasecmp(m->hdrs[i].name, "Content-Type") == 0)
            ct = m->hdrs[i].value;
    if ((st = smm_mime_prescan(ct, m->body, max_depth, max_parts, NULL, err)) !=
        SMM_OK)
        return st;
    for (i = 0; i < m->nhdrs; i++) {
        if (!all_fields && !smm_mime_is_content_header(m->hdrs[i].name))
            continue;
        if (strcasecmp(m->hdrs[i].name, "Content-Type") == 0)
            have_ct = 1;
        if (put_header(&hb, m->hdrs[i].name, m->hdrs[i].value) != SMM_OK)
            goto nomem;
    }
    if (!have_ct && smm_buf_printf(&hb,
                                   "Content-Type: text/plain; "
                                   "charset=%s\r\n",
                                   guess_charset(m->body)) != SMM_OK)
        goto nomem;
    if (smm_buf_puts(&hb, "\r\n") != SMM_OK)
        goto nomem;

    hs = g_mime_stream_mem_new_with_buffer(hb.data, hb.len);
    if ((bs = smm_spool_gmime_stream(m->body, err)) == NULL) {
        st = err != NULL ? err->status : SMM_EIO;
        goto out;
    }
    cat = g_mime_stream_cat_new();
    g_mime_stream_cat_add_source(GMIME_STREAM_CAT(cat), hs);
    g_mime_stream_cat_add_source(GMIME_STREAM_CAT(cat), bs);
    parser = g_mime_parser_new_with_stream(cat);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    if ((obj = g_mime_parser_construct_part(parser, NULL)) == NULL) {
        st = smm_err_set(err, SMM_EPARSE, "cannot parse the MIME structure");
        goto out;
    }
    canon_object(obj, 0, &lim);
    if (lim.exceeded) {
        st = smm_err_set(err, SMM_EPARSE,
                         "MIME structure beyond MaxMimeDepth %d or "
                         "MaxMimeParts %d",
                         max_depth, max_parts);
        goto out;
    }

    fmt = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fmt, GMIME_NEWLINE_FORMAT_DOS);
    if ((os = smm_spool_gmime_stream(out, err)) == NULL) {
        st = err != NULL ? err->status : SMM_EIO;
        goto out;
    }
    /* GMime leaves some raw text (e.g. nested epilogues) as it came:
     * force CRLF everywhere. */
    filtered = g_mime_stream_filter_new(os);
    dos = smm_crlf_filter_new();
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), dos);
    if (write_entity(obj, fmt, filtered) < 0 ||
        g_mime_stream_flush(filtered) != 0) {
        st = smm_err_set(err, SMM_EIO, "cannot write the canonical entity");
        goto out;
    }
    goto out;
nomem:
    st = smm_err_set(err, SMM_ENOMEM, "out of memory");
out:
    if (fmt != NULL)
        g_mime_format_options_free(fmt);
    if (dos != NULL)
        g_object_unref(dos);
    if (filtered != NULL)
        g_object_unref(filtered);
    if (os != NULL)
        g_object_unref(os);
    if (obj != NULL)
        g_object_unref(obj);
    if (parser != NULL)
        g_object_unref(parser);
    if (cat != NULL)
        g_object_unref(cat);
    if (bs != NULL)
        g_object_unref(bs);
    if (hs != NULL)
        g_object_unref(hs);
    smm_buf_free(&hb);
    return st;
}

smm_status
smm_mime_canonical_entity(struct smm_message *m, int max_depth, int max_parts,
                          struct smm_spool *out, struct smm_err *err)
{
    return canonical(m, 0, max_depth, max_parts, out, err);
}

smm_status
smm_mime_seven_bit(struct smm_message *m, int max_depth, int max_parts,
                   struct smm_spool *out, struct smm_err *err)
{
    return canonical(m, 1, max_depth, max_parts, out, err);
}

/* ------------------------------------------------------------ prescan */

/*
 * Two things are kept while the body goes by, line by line:
 *
 * - the part count, as an upper bound of GMime's: every Content-Type
 *   field met in a header block -- wherever one could begin: after a
 *   delimiter line of any boundary in the set, whether or not the
 *   structure has that multipart open, and at the start of a message
 *   held in a part -- puts its multipart boundary into a set, or counts
 *   one part when it is a message/rfc822; every delimiter line of a
 *   boundary in the set counts one part (two in a digest, whose parts are
 *   messages).  GMime can only make a part of a delimiter of a boundary
 *   it took from a field in such a block, so it never counts more,
 *   whatever it makes of broken header blocks.  Lines of a leaf part's
 *   content (a quoted "Content-Type:" line, a mailbox attachment full of
 *   messages) are no header block, and do not count.  In a header block
 *   every CR is dropped first, as GMime's parser does;
 * - the depth, following the structure: a stack of open multiparts, the
 *   header block of each part (the last Content-Type field counts, lines
 *   that are no field are skipped, as GMime does), message/rfc822 parts.
 *   Exact for well-formed structures; GMime's depth is bounded by its
 *   count anyway, and smm_mime_canonical_entity checks it again.
 */

#define PS_FIELD_MAX 65536     /* longest Content-Type field followed */
#define PS_SET_BYTES (1 << 20) /* boundaries kept, all together */

struct ps_bound {
    char *b; /* the boundary */
    size_t len;
    int depth;  /* of the multipart */
    int digest; /* multipart/digest: parts default to message/rfc822 */
};

struct prescan {
    int max_depth, max_parts, parts;
    /* the set of boundaries (open addressing, cap a power of 2) */
    struct ps_bound *set;
    size_t nset, capset, setbytes;
    /* the structure: open multiparts, innermost last */
    struct ps_bound *stack;
    int n, cap;
    size_t maxb;   /* longest boundary in the set */
    int in_header; /* reading a part's header block */
    int hdr_depth, hdr_digest;
    int in_ct, have_ct; /* the block's Content-Type field (the last) */
    struct smm_buf ct;
    int coll; /* collecting a Content-Type field, in any header block */
    struct smm_buf cv;
    struct smm_buf nocr; /* a header line without its CRs */
    /* in a header block for the count: one that may begin after any
     * delimiter of the set (blk_digest: of a digest), or at the start of
     * a message (blk_msg: the block had a message/rfc822 field; blk_ct:
     * it had a Content-Type field) */
    int blk, blk_digest, blk_msg, blk_ct;
    char *line; /* the start of the current line */
    size_t llen, lcap, keep;
    int line_long;  /* the line has more bytes than kept */
    int tail_blank; /* the bytes not kept are blanks */
    int exceeded, too_long, nomem;
};

static int
ps_lwsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int
ps_blanks(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!ps_lwsp(p[i]))
            return 0;
    return 1;
}

static size_t
ps_hash(const char *b, size_t len)
{
    size_t h = 2166136261u, i;

    for (i = 0; i < len; i++)
        h = (h ^ (unsigned char)b[i]) * 16777619u;
    return h;
}

/* The set's slot for boundary b (blanks at the end do not count: GMime
 * takes them after a delimiter anyway). */
static struct ps_bound *
ps_slot(const struct prescan *ps, const char *b, size_t len)
{
    size_t i;

    if (ps->capset == 0)
        return NULL;
    for (i = ps_hash(b, len) & (ps->capset - 1);;
         i = (i + 1) & (ps->capset - 1))
        if (ps->set[i].b == NULL ||
            (ps->set[i].len == len && memcmp(ps->set[i].b, b, len) == 0))
            return &ps->set[i];
}

static void
ps_set_add(struct prescan *ps, const char *b, int digest)
{
    size_t len = strlen(b), i;
    struct ps_bound *e, *old = ps->set, *ns;
    size_t oldcap = ps->capset;

    while (len > 0 && ps_lwsp(b[len - 1]))
        len--;
    if ((e = ps_slot(ps, b, len)) != NULL && e->b != NULL) {
        e->digest |= digest;
        return;
    }
    if (ps->nset >= (size_t)ps->max_parts ||
        ps->setbytes + len > PS_SET_BYTES) {
        /* more multiparts than parts allowed, or boundaries of megabytes */
        ps->exceeded = 1;
        return;
    }
    if (2 * (ps->nset + 1) > ps->capset) { /* grow, rehash */
        size_t nc = ps->capset ? ps->capset * 2 : 16;
        if ((ns = calloc(nc, sizeof(*ns))) == NULL) {
            ps->nomem = 1;
            return;
        }
        ps->set = ns;
        ps->capset = nc;
        for (i = 0; i < oldcap; i++)
            if (old[i].b != NULL)
                *ps_slot(ps, old[i].b, old[i].len) = old[i];
        free(old);
    }
    e = ps_slot(ps, b, len);
    if ((e->b = malloc(len + 1)) == NULL) {
        ps->nomem = 1;
        return;
    }
    memcpy(e->b, b, len);
    e->b[len] = '\0';
    e->len = len;
    e->digest = digest;
    ps->nset++;
    ps->setbytes += len;
    if (len > ps->maxb)
        ps->maxb = len;
}

/* Parts counted: one more past max_parts is enough. */
static void
ps_count(struct prescan *ps, int n)
{
    ps->parts += n;
    if (ps->parts > ps->max_parts)
        ps->exceeded = 1;
}

static void
ps_depth(struct prescan *ps, int depth)
{
    if (depth > ps->max_depth)
        ps->exceeded = 1;
}

/* A Content-Type field value, wherever met: the bound. */
static void
ps_field(struct prescan *ps, const char *value)
{
    GMimeContentType *ct = g_mime_content_type_parse(NULL, value);
    const char *b;

    if (ct == NULL)
        return;
    if (ct_is(ct, "multipart", "*")) {
        if ((b = g_mime_content_type_get_parameter(ct, "boundary")) != NULL)
            ps_set_add(ps, b, ct_is(ct, "multipart", "digest"));
    } else if (ct_is(ct, "message", "rfc822") || ct_is(ct, "message", "news") ||
               ct_is(ct, "message", "global")) {
        ps_count(ps, 1);
        ps->blk_msg = 1; /* its body starts with the message's header */
    }
    g_object_unref(ct);
}

/* A header block for the count begins (digest: after a digest's
 * delimiter, where a part without Content-Type is a message). */
static void
ps_blk_start(struct prescan *ps, int digest)
{
    ps->blk = 1;
    ps->blk_digest = digest;
    ps->blk_msg = ps->blk_ct = 0;
}

static void
ps_pop(struct prescan *ps, int to)
{
    while (ps->n > to)
        free(ps->stack[--ps->n].b);
}

static void
ps_header_start(struct prescan *ps, int depth, int digest)
{
    ps->in_header = 1;
    ps->hdr_depth = depth;
    ps->hdr_digest = digest;
    ps->in_ct = ps->have_ct = 0;
    smm_buf_reset(&ps->ct);
}

/* The body of an entity at depth with Content-Type ctype (NULL: none)
 * starts: open its boundary, or the message it holds (the structure). */
static void
ps_entity_body(struct prescan *ps, int depth, const char *ctype, int digest)
{
    GMimeContentType *ct = NULL;
    const char *b;
    struct ps_bound *ns;

    if (ctype != NULL)
        ct = g_mime_content_type_parse(NULL, ctype);
    if (ct == NULL) {
        /* RFC 2046 5.1.5: in a digest the default is message/rfc822 */
        if (digest) {
            ps_depth(ps, depth + 1);
            ps_header_start(ps, depth + 1, 0);
        }
        return;
    }
    if (ct_is(ct, "multipart", "*")) {
        b = g_mime_content_type_get_parameter(ct, "boundary");
        if (b != NULL && *b != '\0') {
            if (ps->n == ps->cap) {
                int nc = ps->cap ? ps->cap * 2 : 8;
                if ((ns = realloc(ps->stack, (size_t)nc * sizeof(*ns))) ==
                    NULL) {
                    ps->nomem = 1;
                    goto out;
                }
                ps->stack = ns;
                ps->cap = nc;
            }
            ns = &ps->stack[ps->n];
            if ((ns->b = strdup(b)) == NULL) {
                ps->nomem = 1;
                goto out;
            }
            ns->len = strlen(b);
            ns->depth = depth;
            ns->digest = ct_is(ct, "multipart", "digest");
            ps->n++;
        }
    } else if (ct_is(ct, "message", "rfc822") || ct_is(ct, "message", "news") ||
               ct_is(ct, "message", "global")) {
        ps_depth(ps, depth + 1);
        ps_header_start(ps, depth + 1, 0);
    }
out:
    g_object_unref(ct);
}

/* Is the line a delimiter (1) or close delimiter (2) of bound? */
static int
ps_match(const struct prescan *ps, const char *d, size_t len,
         const struct ps_bound *bd)
{
    const char *rest;
    size_t rlen;

    if (len < 2 + bd->len || memcmp(d + 2, bd->b, bd->len) != 0 ||
        (ps->line_long && !ps->tail_blank))
        return 0;
    rest = d + 2 + bd->len;
    rlen = len - 2 - bd->len;
    if (rlen >= 2 && rest[0] == '-' && rest[1] == '-' &&
        ps_blanks(rest + 2, rlen - 2))
        return 2;
    return ps_blanks(rest, rlen) ? 1 : 0;
}

/* "Content-Type" [blanks] ":" at the start of d: the value, or NULL */
static const char *
ps_is_ct(const char *d, size_t len)
{
    size_t i = 12;

    if (len < 13 || strncasecmp(d, "Content-Type", 12) != 0)
        return NULL;
    while (i < len && (d[i] == ' ' || d[i] == '\t'))
        i++;
    return i < len && d[i] == ':' ? d + i + 1 : NULL;
}

/* Collect Content-Type fields in header blocks: d is a whole line. */
static void
ps_collect(struct prescan *ps, const char *d, size_t len)
{
    const char *v;

    if (ps->coll && len > 0 && (d[0] == ' ' || d[0] == '\t')) {
        if (ps->line_long || ps->cv.len + len > PS_FIELD_MAX)
            ps->too_long = 1;
        else if (smm_buf_append(&ps->cv, d, len) != SMM_OK)
            ps->nomem = 1;
        return;
    }
    if (ps->coll) {
        ps->coll = 0;
        ps_field(ps, ps->cv.data != NULL ? ps->cv.data : "");
    }
    if (!ps->blk)
        return;
    if (len == 0 && !ps->line_long) {
        /* the block ends; a message's header may follow */
        if (ps->blk_msg || (ps->blk_digest && !ps->blk_ct))
            ps_blk_start(ps, 0);
        else
            ps->blk = 0;
        return;
    }
    if ((v = ps_is_ct(d, len)) != NULL) {
        ps->blk_ct = 1;
        ps->coll = 1;
        smm_buf_reset(&ps->cv);
        if (ps->line_long)
            ps->too_long = 1;
        else if (smm_buf_append(&ps->cv, v, len - (size_t)(v - d)) != SMM_OK)
            ps->nomem = 1;
    }
}

/* GMime's parser drops every CR in a header block, also inside a line
 * ("bo\r\rundary=" is "boundary=", a line of CRs is the blank line that
 * ends the block): *h, *hlen are the line as GMime reads it there. */
static void
ps_header_line(struct prescan *ps, const char *d, size_t len, const char **h,
               size_t *hlen)
{
    const char *cr;

    *h = len > 0 ? d : "";
    *hlen = len;
    if (len == 0 || (cr = memchr(d, '\r', len)) == NULL)
        return;
    smm_buf_reset(&ps->nocr);
    while (cr != NULL) {
        if (smm_buf_append(&ps->nocr, d, (size_t)(cr - d)) != SMM_OK) {
            ps->nomem = 1;
            return;
        }
        len -= (size_t)(cr - d) + 1;
        d = cr + 1;
        cr = memchr(d, '\r', len);
    }
    if (smm_buf_append(&ps->nocr, d, len) != SMM_OK) {
        ps->nomem = 1;
        return;
    }
    *h = ps->nocr.data != NULL ? ps->nocr.data : "";
    *hlen = ps->nocr.len;
}

/* One complete line (without its LF). */
static void
ps_line(struct prescan *ps)
{
    const char *d = ps->line, *colon, *h = "";
    size_t len = ps->llen, nl, blen, hlen = 0;
    struct ps_bound *e;
    int k, r;

    if (!ps->line_long && len > 0 && d[len - 1] == '\r')
        len--;
    if (ps->blk || ps->coll || ps->in_header) {
        ps_header_line(ps, d, len, &h, &hlen);
        ps_collect(ps, h, hlen);
    }
    /* the count: a delimiter of any boundary met */
    if (len >= 2 && d[0] == '-' && d[1] == '-' &&
        (!ps->line_long || ps->tail_blank)) {
        for (blen = len - 2; blen > 0 && ps_lwsp(d[2 + blen - 1]); blen--)
            ;
        if ((e = ps_slot(ps, d + 2, blen)) != NULL && e->b != NULL) {
            ps_count(ps, e->digest ? 2 : 1);
            ps_blk_start(ps, e->digest);
        }
    }
    /* the structure */
    if (ps->n > 0 && len >= 2 && d[0] == '-' && d[1] == '-') {
        for (k = ps->n - 1; k >= 0; k--) {
            if ((r = ps_match(ps, d, len, &ps->stack[k])) == 0)
                continue;
            if (r == 2) { /* the multipart ends: back in its parent */
                ps_pop(ps, k);
                ps->in_header = 0;
            } else { /* a new part of it */
                int depth = ps->stack[k].depth + 1;
                int digest = ps->stack[k].digest;
                ps_pop(ps, k + 1);
                ps_depth(ps, depth);
                ps_header_start(ps, depth, digest);
            }
            return;
        }
    }
    if (!ps->in_header)
        return;
    d = h; /* the header line as GMime reads it */
    len = hlen;
    if (len == 0 && !ps->line_long) {
        ps->in_header = 0;
        ps_entity_body(ps, ps->hdr_depth, ps->have_ct ? ps->ct.data : NULL,
                       ps->hdr_digest);
        return;
    }
    if (d[0] == ' ' || d[0] == '\t') { /* folded */
        if (!ps->in_ct)
            return;
        if (ps->line_long || ps->ct.len + len > PS_FIELD_MAX)
            ps->too_long = 1;
        else if (smm_buf_append(&ps->ct, d, len) != SMM_OK)
            ps->nomem = 1;
        return;
    }
    if ((colon = memchr(d, ':', len)) == NULL) {
        /* not a header field: GMime skips it, the header goes on */
        ps->in_ct = 0;
        return;
    }
    nl = (size_t)(colon - d);
    while (nl > 0 && (d[nl - 1] == ' ' || d[nl - 1] == '\t'))
        nl--;
    /* as GMime: the last Content-Type field counts */
    ps->in_ct = nl == 12 && strncasecmp(d, "Content-Type", 12) == 0;
    if (!ps->in_ct)
        return;
    ps->have_ct = 1;
    smm_buf_reset(&ps->ct);
    nl = (size_t)(colon - d) + 1;
    if (ps->line_long)
        ps->too_long = 1;
    else if (smm_buf_append(&ps->ct, colon + 1, len - nl) != SMM_OK)
        ps->nomem = 1;
}

/* Add bytes of the current line: up to keep are kept, then only whether
 * the rest is blank is remembered. */
static void
ps_add(struct prescan *ps, const char *p, size_t n)
{
    size_t take, i;

    if (ps->llen == 0 && !ps->line_long && n > 0) {
        /* a header line, a Content-Type field or its continuation is
         * kept whole (up to the field limit); a delimiter only as far as
         * the longest boundary could go */
        int field = ps->in_header || ps->blk ||
                    (ps->coll && (p[0] == ' ' || p[0] == '\t'));
        ps->keep = field ? PS_FIELD_MAX + 16 : ps->maxb + 5;
    }
    take = ps->llen < ps->keep ? ps->keep - ps->llen : 0;
    if (take > n)
        take = n;
    if (take > 0) {
        if (ps->llen + take > ps->lcap) {
            size_t nc = ps->keep + 1;
            char *nb = realloc(ps->line, nc);
            if (nb == NULL) {
                ps->nomem = 1;
                return;
            }
            ps->line = nb;
            ps->lcap = nc;
        }
        memcpy(ps->line + ps->llen, p, take);
        ps->llen += take;
    }
    if (take < n) {
        ps->line_long = 1;
        for (i = take; ps->tail_blank && i < n; i++)
            if (!ps_lwsp(p[i]))
                ps->tail_blank = 0;
    }
}

static void
ps_line_start(struct prescan *ps)
{
    ps->llen = 0;
    ps->line_long = 0;
    ps->tail_blank = 1;
}

/* Can this line matter?  (Its first byte; body lines mostly cannot.) */
static int
ps_wanted(const struct prescan *ps, char c)
{
    return ps->in_header || ps->blk || c == '-' ||
           (ps->coll && (c == ' ' || c == '\t'));
}

smm_status
smm_mime_prescan(const char *ctype, struct smm_spool *body, int max_depth,
                 int max_parts, int *nparts, struct smm_err *err)
{
    struct prescan ps;
    char buf[65536];
    size_t off = 0, i, end;
    ssize_t n = 0;
    int skip = 0; /* the rest of this line does not matter */
    smm_status st = SMM_OK;

    memset(&ps, 0, sizeof(ps));
    ps.max_depth = max_depth;
    ps.max_parts = max_parts;
    ps_count(&ps, 1);
    if (ctype != NULL)
        ps_field(&ps, ctype);
    if (ps.blk_msg) /* a message: its header first */
        ps_blk_start(&ps, 0);
    ps_entity_body(&ps, 0, ctype, 0);
    ps_line_start(&ps);
    /* a leaf at the top: GMime reads no structure in it */
    while (!ps.exceeded && !ps.too_long && !ps.nomem &&
           (ps.nset > 0 || ps.n > 0 || ps.in_header || ps.blk) &&
           (n = smm_spool_pread(body, buf, sizeof(buf), off)) > 0) {
        off += (size_t)n;
        for (i = 0; i < (size_t)n && !ps.exceeded && !ps.too_long && !ps.nomem;
             i = end + 1) {
            const char *nl = memchr(buf + i, '\n', (size_t)n - i);
            end = nl != NULL ? (size_t)(nl - buf) : (size_t)n;
            if (ps.llen == 0 && !ps.line_long && !skip && end > i &&
                !ps_wanted(&ps, buf[i]))
                skip = 1;
            if (!skip)
                ps_add(&ps, buf + i, end - i);
            if (nl == NULL)
                break;
            if (!skip)
                ps_line(&ps);
            else if (ps.coll) /* a line that ends a field being collected */
                ps_collect(&ps, "", 0);
            skip = 0;
            ps_line_start(&ps);
        }
    }
    if (n < 0 && off < smm_spool_len(body))
        st = smm_err_set(err, SMM_EIO, "reading the message body");
    else if (!skip && (ps.llen > 0 || ps.line_long) && !ps.exceeded &&
             !ps.too_long && !ps.nomem)
        ps_line(&ps); /* the last line, without a line end */
    if (st == SMM_OK && ps.coll && !ps.exceeded && !ps.too_long && !ps.nomem)
        ps_collect(&ps, "", 0); /* a field at the very end */
    if (st != SMM_OK)
        ;
    else if (ps.nomem)
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
    else if (ps.exceeded)
        st = smm_err_set(err, SMM_EPARSE,
                         "MIME structure beyond MaxMimeDepth %d or "
                         "MaxMimeParts %d",
                         max_depth, max_parts);
    else if (ps.too_long)
        st = smm_err_set(err, SMM_EPARSE,
                         "a Content-Type field in the MIME structure is "
                         "longer than %d bytes",
                         PS_FIELD_MAX);
    if (nparts != NULL)
        *nparts = ps.parts;
    ps_pop(&ps, 0);
    free(ps.stack);
    for (i = 0; i < ps.capset; i++)
        free(ps.set[i].b);
    free(ps.set);
    free(ps.line);
    smm_buf_free(&ps.ct);
    smm_buf_free(&ps.cv);
    smm_buf_free(&ps.nocr);
    return st;
}
