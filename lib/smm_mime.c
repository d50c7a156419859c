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
 * Whether GMime's best-encoding filter would find nothing to encode in the
 * part's content (no NUL, no 8-bit byte, no line over 998 bytes, no line
 * starting with "From "), so that it can be asked only about the rest.
 * The common plain-text part is decided here at memchr speed; any doubt
 * returns 0 and GMime decides, so the result is always GMime's.
 */
static int
clean_7bit(GMimePart *part)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GMimeStream *s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
    unsigned char buf[16384 + 8];
    const unsigned char *p, *end, *nl, *stop;
    size_t carry = 0, linelen = 0;
    ssize_t n;
    int atstart = 1, clean = 0;

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
                if (end - p >= 5 && memcmp(p, "From ", 5) == 0)
                    goto out;
                atstart = 0;
            }
            nl = memchr(p, '\n', (size_t)(end - p));
            stop = nl != NULL ? nl : end;
            if (has_nul_or_8bit(p, (size_t)(stop - p)) ||
                (linelen += (size_t)(stop - p)) > 998)
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
    clean = 1;
out:
    (void)g_mime_stream_reset(s);
    return clean;
}

static void
canon_part(GMimePart *part)
{
    GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
    GMimeContentEncoding best;

    switch (enc) {
    case GMIME_CONTENT_ENCODING_BASE64:
    case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
    case GMIME_CONTENT_ENCODING_UUENCODE:
        return; /* already 7-bit safe */
    default:
        break;
    }
    if (g_mime_part_get_content(part) == NULL)
        return;
    best = clean_7bit(part) ? GMIME_CONTENT_ENCODING_DEFAULT
                            : g_mime_part_get_best_content_encoding(
                                  part, GMIME_ENCODING_CONSTRAINT_7BIT);
    if (best != GMIME_CONTENT_ENCODING_7BIT)
        g_mime_part_set_content_encoding(part, best);
    else if (enc == GMIME_CONTENT_ENCODING_8BIT ||
             enc == GMIME_CONTENT_ENCODING_BINARY)
        g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_7BIT);
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
    /* signed or encrypted content must stay byte for byte */
    if (GMIME_IS_MULTIPART_SIGNED(o) || GMIME_IS_MULTIPART_ENCRYPTED(o) ||
        GMIME_IS_APPLICATION_PKCS7_MIME(o) ||
        (ct != NULL && ct_is(ct, "multipart", "signed")))
        return;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        g_mime_multipart_set_epilogue(mp, NULL);
        n = g_mime_multipart_get_count(mp);
        for (i = 0; i < n && !lim->exceeded; i++)
            canon_object(g_mime_multipart_get_part(mp, i), depth + 1, lim);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
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

smm_status
smm_mime_canonical_entity(struct smm_message *m, int max_depth, int max_parts,
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
    smm_status st = SMM_OK;

    for (i = 0; i < m->nhdrs; i++) {
        if (!smm_mime_is_content_header(m->hdrs[i].name))
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
