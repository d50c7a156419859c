/*
 * t-canon: the entity that gets signed is 7-bit, CRLF, keeps its content,
 * drops epilogues, and leaves nested signed parts byte for byte.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "smm_message.h"
#include "smm_mime.h"
#include "tap.h"

/* The canonical entity of msg, its body and the output kept in memory or
 * (mem 0) in temp files. */
static char *
canon_in(const char *msg, size_t *outlen, size_t mem)
{
    struct smm_message *m;
    struct smm_spool *sp;
    struct smm_err err;
    FILE *fp = fmemopen((void *)msg, strlen(msg), "r");
    char *out;
    size_t len;

    smm_message_new(mem, 0, "/tmp", &m, &err);
    smm_message_read(fp, m, &err);
    fclose(fp);
    smm_spool_new(mem, "/tmp", &sp, &err);
    if (smm_mime_canonical_entity(m, 32, 1000, sp, &err) != SMM_OK) {
        printf("# canonical_entity: %s\n", err.msg);
        smm_spool_free(sp);
        smm_message_free(m);
        return NULL;
    }
    len = smm_spool_len(sp);
    out = malloc(len + 1);
    smm_spool_pread(sp, out, len, 0);
    out[len] = '\0';
    *outlen = len;
    smm_spool_free(sp);
    smm_message_free(m);
    return out;
}

static char *
canon(const char *msg, size_t *outlen)
{
    return canon_in(msg, outlen, 1 << 20);
}

/* every LF preceded by CR, every byte 7-bit and non-NUL, lines <= 998 */
static int
is_canonical(const char *s, size_t len, const char **why)
{
    size_t i, linelen = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c == 0) {
            *why = "8-bit or NUL byte";
            return 0;
        }
        if (c == '\n') {
            if (i == 0 || s[i - 1] != '\r') {
                *why = "bare LF";
                return 0;
            }
            linelen = 0;
            continue;
        }
        if (++linelen > 999) {
            *why = "line longer than 998";
            return 0;
        }
    }
    *why = "";
    return 1;
}

/* Decoded content of the first leaf part whose type is type/sub. */
static char *
decoded_leaf(GMimeObject *o, const char *type, const char *sub)
{
    int i;
    char *r;

    if (GMIME_IS_MULTIPART(o)) {
        for (i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(o)); i++)
            if ((r = decoded_leaf(
                     g_mime_multipart_get_part(GMIME_MULTIPART(o), i), type,
                     sub)) != NULL)
                return r;
        return NULL;
    }
    if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *m =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        return decoded_leaf(g_mime_message_get_mime_part(m), type, sub);
    }
    if (GMIME_IS_PART(o) && g_mime_content_type_is_type(
                                g_mime_object_get_content_type(o), type, sub)) {
        GMimeStream *s = g_mime_stream_mem_new();
        GByteArray *ba;
        g_mime_data_wrapper_write_to_stream(
            g_mime_part_get_content(GMIME_PART(o)), s);
        ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
        r = strndup((char *)ba->data, ba->len);
        g_object_unref(s);
        return r;
    }
    return NULL;
}

static GMimeObject *
parse(const char *s)
{
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(s, strlen(s));
    GMimeParser *p = g_mime_parser_new_with_stream(st);
    GMimeObject *o = g_mime_parser_construct_part(p, NULL);
    g_object_unref(p);
    g_object_unref(st);
    return o;
}

static const struct {
    const char *name;
    const char *in;
    const char *type, *sub;   /* leaf whose decoded content we check */
    const char *want_decoded; /* with CRLF */
    const char *want_in_out;  /* substring that must be in the output */
    const char *not_in_out;   /* substring that must not be */
} cases[] = {
    {"no MIME headers, ascii", "Subject: x\n\nhello\nworld\n", "text", "plain",
     "hello\r\nworld\r\n",
     "Content-Type: text/plain; "
     "charset=us-ascii\r\n\r\nhello\r\n",
     "Subject"},
    {"no MIME headers, utf-8", "Subject: x\n\nh\xc3\xa9llo w\xc3\xb6rld\n",
     "text", "plain", "h\xc3\xa9llo w\xc3\xb6rld\r\n", "charset=utf-8", NULL},
    {"no MIME headers, latin-1", "Subject: x\n\nh\xe9llo\n", "text", "plain",
     "h\xe9llo\r\n", "charset=unknown-8bit", NULL},
    {"8bit declared",
     "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
     "Content-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9f"
     "e aus K\xc3\xb6ln, this line is mostly ascii text\n",
     "text", "plain",
     "Gr\xc3\xbc\xc3\x9f"
     "e aus K\xc3\xb6ln, this line is mostly ascii text\r\n",
     "Content-Transfer-Encoding: quoted-printable", "8bit"},
    {"long line", NULL, "text", "plain", NULL,
     "Content-Transfer-Encoding: quoted-printable", NULL},
    /* GMime's quoted-printable would leave "From " for a mailbox writer
     * to turn into ">From ": base64 */
    {"a line starting with From",
     "Content-Type: text/plain\n\nhello\nFrom "
     "here on\n",
     "text", "plain", "hello\r\nFrom here on\r\n",
     "Content-Transfer-Encoding: base64", "\nFrom "},
    {"8-bit text with a line starting with From",
     "Content-Type: text/plain; charset=utf-8\n\nGr\xc3\xbc\xc3\x9f"
     "e\nFrom K\xc3\xb6ln\n",
     "text", "plain",
     "Gr\xc3\xbc\xc3\x9f"
     "e\r\nFrom K\xc3\xb6ln\r\n",
     "Content-Transfer-Encoding: base64", "\nFrom "},
    /* ... nor a client's quoted-printable with such a line */
    {"a client's quoted-printable with a line starting with From",
     "Content-Type: text/plain; charset=utf-8\n"
     "Content-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe\n"
     "From here=\n on\n",
     "text", "plain",
     "Gr\xc3\xbc\xc3\x9f"
     "e\r\nFrom here on\r\n",
     "Content-Transfer-Encoding: base64", "\nFrom "},
    {"a client's quoted-printable without one is kept",
     "Content-Type: text/plain; charset=utf-8\n"
     "Content-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe, "
     "from here on\n",
     "text", "plain",
     "Gr\xc3\xbc\xc3\x9f"
     "e, from here on\r\n",
     "Content-Transfer-Encoding: quoted-printable", NULL},
    /* =C3=BC and 69 a's fill the 76 columns: a soft line break, and the
     * next encoded line would start with "From " */
    {"quoted-printable would start a line with From",
     "Content-Type: text/plain; charset=utf-8\n\n\xc3\xbc"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "From here on\n",
     "text", "plain",
     "\xc3\xbc"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "From here on\r\n",
     "Content-Transfer-Encoding: base64", "\nFrom "},
    {"From inside a line is no matter",
     "Content-Type: text/plain; charset=utf-8\n\nGr\xc3\xbc\xc3\x9f"
     "e aus K\xc3\xb6ln, From this line on mostly ascii text\n",
     "text", "plain",
     "Gr\xc3\xbc\xc3\x9f"
     "e aus K\xc3\xb6ln, From this line on mostly ascii text\r\n",
     "Content-Transfer-Encoding: quoted-printable", NULL},
    {"7bit declared, 7-bit content",
     "Content-Type: text/plain\nContent-Transfer-Encoding: 7bit\n\nplain "
     "text\n",
     "text", "plain", "plain text\r\n", "\r\n\r\nplain text\r\n",
     "Content-Transfer-Encoding"},
    {"multipart with binary attachment and epilogue",
     "Content-Type: multipart/mixed; boundary=\"b1\"\n\npreamble\n--b1\n"
     "Content-Type: text/plain\n\nbody text\n--b1\n"
     "Content-Type: application/octet-stream\n"
     "Content-Transfer-Encoding: binary\n\n\x01\x02\xff\xfe\x00\x80zz\n"
     "--b1--\nepilogue text\n",
     "application", "octet-stream", "\x01\x02\xff\xfe", "base64",
     "epilogue text"},
    {"nested message/rfc822 with 8-bit body",
     "Content-Type: multipart/mixed; boundary=\"b2\"\n\n--b2\n"
     "Content-Type: text/plain\n\nsee attached\n--b2\n"
     "Content-Type: message/rfc822\n\nSubject: inner\n"
     "Content-Type: text/html; charset=utf-8\n"
     "Content-Transfer-Encoding: 8bit\n\n<p>\xc3\xa9t\xc3\xa9 "
     "et \xc3\xa9t\xc3\xa9</p>\n--b2--\n",
     "text", "html", "<p>\xc3\xa9t\xc3\xa9 et \xc3\xa9t\xc3\xa9</p>",
     "Subject: inner", NULL},
    {"message/rfc822 labelled binary: 8bit once its parts are 7-bit",
     "Content-Type: multipart/mixed; boundary=\"b3\"\n\n--b3\n"
     "Content-Type: message/rfc822\nContent-Transfer-Encoding: binary\n\n"
     "Subject: inner\nContent-Type: application/octet-stream\n"
     "Content-Transfer-Encoding: binary\n\n\x01\x02\xff\xfe\n--b3--\n",
     "application", "octet-stream", "\x01\x02\xff\xfe",
     "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n",
     "binary"},
    {"nested multipart/signed kept byte for byte",
     "Content-Type: multipart/mixed; boundary=\"o\"\n\n--o\n"
     "Content-Type: multipart/signed; protocol=\"application/"
     "pkcs7-signature\"; micalg=sha-256; boundary=\"s\"\n\n--s\n"
     "Content-Type: text/plain\n\nsigned   \n--s\n"
     "Content-Type: application/pkcs7-signature\n"
     "Content-Transfer-Encoding: base64\n\nAAAA\n--s--\ninner epilogue\n"
     "--o--\n",
     "text", "plain", "signed   ", "signed   \r\n--s\r\n", NULL},
};

/* The Content-Transfer-Encoding GMime itself picks for the body of msg,
 * as the header line the canonical entity must carry ("" for none). */
static const char *
gmime_choice(const char *msg)
{
    GMimeObject *o = parse(msg);
    GMimeContentEncoding e = GMIME_CONTENT_ENCODING_DEFAULT;

    if (o != NULL && GMIME_IS_PART(o))
        e = g_mime_part_get_best_content_encoding(
            GMIME_PART(o), GMIME_ENCODING_CONSTRAINT_7BIT);
    if (o != NULL)
        g_object_unref(o);
    return e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
               ? "Content-Transfer-Encoding: quoted-printable"
           : e == GMIME_CONTENT_ENCODING_BASE64
               ? "Content-Transfer-Encoding: base64"
               : "";
}

/*
 * The encoding chosen for a plain-text part is the one GMime's own
 * best-encoding filter chooses, but base64 whenever a line starts with
 * "From " (GMime's filter misses some of those across its blocks): a
 * "From " line, an 8-bit byte or a NUL placed around the ends of the
 * blocks in which content is scanned (4 and 16 KiB), and lines of 998 and
 * 999 bytes.
 */
static void
same_as_gmime(void)
{
    static const char *const what[] = {"From ", "\xe9", "", "long"};
    char *msg = malloc(40000), *out;
    size_t w, at, off, head, len;
    int bad = 0, n = 0;
    const char *want;

    for (w = 0; w < sizeof(what) / sizeof(what[0]); w++)
        for (at = 16370; at < 16392; at++) {
            head = (size_t)sprintf(msg, "Content-Type: text/plain\r\n\r\n");
            off = head;
            /* 79-byte lines (CRLF included) up to offset at */
            while (off - head + 79 <= at) {
                memset(msg + off, 'x', 77);
                off += 77;
                msg[off++] = '\r';
                msg[off++] = '\n';
            }
            memset(msg + off, 'y', at - (off - head));
            off = head + at;
            if (strcmp(what[w], "long") == 0) {
                /* a line of 998 or 999 bytes starts at offset at */
                off += (size_t)sprintf(msg + off, "\r\n");
                memset(msg + off, 'z', 998 + at % 2);
                off += 998 + at % 2;
                off += (size_t)sprintf(msg + off, "\r\n");
            } else if (*what[w] != '\0') {
                off += (size_t)sprintf(msg + off, "\r\n%s", what[w]);
            } else {
                msg[off++] = '\0'; /* a NUL */
            }
            off += (size_t)sprintf(msg + off, "tail\r\nbye\r\n");
            msg[off] = '\0';
            /* (the NUL case: canon() and parse() stop at it; still a check
             * that both agree on what they see) */
            want = strcmp(what[w], "From ") == 0
                       ? "Content-Transfer-Encoding: base64"
                       : gmime_choice(msg);
            if ((out = canon(msg, &len)) == NULL ||
                (*want != '\0'
                     ? strstr(out, want) == NULL
                     : strstr(out, "Content-Transfer-Encoding") != NULL)) {
                if (bad++ < 3)
                    printf("# %s at %zu: want \"%s\"\n", what[w], at, want);
            }
            n++;
            free(out);
        }
    ok(bad == 0, "%d bodies: the encoding is the one GMime chooses", n);
    free(msg);
}

int
main(void)
{
    size_t i, len;
    char *out, *dec, *longmsg;
    const char *why = "";
    GMimeObject *o;

    g_mime_init();
    /* a 2000-character line declared 7bit */
    longmsg = malloc(2200);
    strcpy(longmsg, "Content-Type: text/plain\n\n");
    memset(longmsg + strlen(longmsg), 'x', 2000);
    strcpy(longmsg + 26 + 2000, "\n");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in != NULL ? cases[i].in : longmsg;
        out = canon(in, &len);
        if (!ok(out != NULL, "%s: canonicalised", cases[i].name))
            continue;
        ok(is_canonical(out, len, &why), "%s: 7-bit CRLF (%s)", cases[i].name,
           why);
        if (cases[i].want_in_out != NULL)
            has_str(out, cases[i].want_in_out, "%s: output has %s",
                    cases[i].name, cases[i].want_in_out);
        if (cases[i].not_in_out != NULL)
            ok(strstr(out, cases[i].not_in_out) == NULL,
               "%s: output lacks \"%s\"", cases[i].name, cases[i].not_in_out);
        {
            size_t flen = 0;
            char *f = canon_in(in, &flen, 0);
            ok(f != NULL && flen == len && memcmp(f, out, len) == 0,
               "%s: the same bytes with the message in temp files",
               cases[i].name);
            free(f);
        }
        o = parse(out);
        dec = o != NULL ? decoded_leaf(o, cases[i].type, cases[i].sub) : NULL;
        if (cases[i].want_decoded != NULL) {
            ok(dec != NULL && strncmp(dec, cases[i].want_decoded,
                                      strlen(cases[i].want_decoded)) == 0,
               "%s: content survives", cases[i].name);
        } else {
            ok(dec != NULL && strlen(dec) >= 2000 && strspn(dec, "x") == 2000,
               "%s: content survives", cases[i].name);
        }
        free(dec);
        if (o != NULL)
            g_object_unref(o);
        free(out);
    }
    free(longmsg);
    same_as_gmime();
    return tap_done();
}
