/*
 * smm_inbound -- decrypt, verify and stamp inbound mail; see smm_inbound.h.
 *
 * An entity is a region of a spool: the body of the message (its header
 * fields come from the MTA), or a header block plus body inside a spool
 * made here (decrypted or unwrapped content, always with CRLF line ends).
 * Signed parts are verified on their exact bytes, with bare LF taken as
 * CRLF.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "smm_cms.h"
#include "smm_harvest.h"
#include "smm_inbound.h"
#include "smm_log.h"
#include "smm_mime.h"
#include "smm_pipeline.h"
#include "smm_resolver.h"
#include "smm_x509.h"
#include "smm_certstore.h"

#define IN_MAX_LAYERS 16      /* Authentication-Results fields */
#define IN_MAX_CMS (64 << 20) /* biggest CMS blob decoded */

struct ent {
    struct smm_spool *sp; /* not owned */
    size_t off, len;      /* the body */
    char *ctype, *cte, *cdisp;
    char *subject;           /* the entity's own Subject field, if any */
    struct smm_header *hdrs; /* Content-* fields (nested entities only) */
    size_t nhdrs;
};

struct layer {
    struct smm_sig sig;
    char part[64]; /* MIME part number inside a multipart, or "" */
};

struct in_ctx {
    const struct smm_state *s;
    struct smm_message *m;
    const struct smm_run_opts *o;
    char *from;
    const char *from_why; /* smm_message_from_problem(), or NULL */
    size_t mem;
    struct smm_spool **owned;
    size_t nowned;
    struct layer layers[IN_MAX_LAYERS];
    int nlayers;
    int parts;
    int exceeded; /* MaxMimeDepth or MaxMimeParts reached */
    const struct smm_key *dec_key;
    char cipher[64];
    const char *dec_no; /* decrypted=no (reason) */
    char dec_error[SMM_ERR_MSGLEN];
    int unreadable; /* encrypted content we could not open */
    int reencoded;  /* content rebuilt in 7-bit encodings (content_of) */
    STACK_OF(X509) * sender_certs;
};

/* ------------------------------------------------------------ helpers */

static void
ent_free(struct ent *e)
{
    size_t i;

    free(e->ctype);
    free(e->cte);
    free(e->cdisp);
    free(e->subject);
    for (i = 0; i < e->nhdrs; i++) {
        free(e->hdrs[i].name);
        free(e->hdrs[i].value);
    }
    free(e->hdrs);
    memset(e, 0, sizeof(*e));
}

/* A new spool that lives as long as the context. */
static smm_status
new_spool(struct in_ctx *c, struct smm_spool **out, struct smm_err *err)
{
    struct smm_spool **no;
    smm_status st;

    if ((no = realloc(c->owned, (c->nowned + 1) * sizeof(*no))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    c->owned = no;
    if ((st = smm_spool_new(c->mem, c->s->cfg->temp_dir, out, err)) != SMM_OK)
        return st;
    c->owned[c->nowned++] = *out;
    return SMM_OK;
}

/* Write with bare LF turned into CRLF; *cr carries a CR across calls. */
static smm_status
put_crlf(struct smm_spool *o, const char *p, size_t n, int *cr,
         struct smm_err *err)
{
    const char *start = p, *end = p + n, *lf;
    smm_status st;

    for (lf = p; (lf = memchr(lf, '\n', (size_t)(end - lf))) != NULL; lf++) {
        if (lf > p ? lf[-1] != '\r' : !*cr) {
            if ((st = smm_spool_write(o, start, (size_t)(lf - start), err)) !=
                    SMM_OK ||
                (st = smm_spool_write(o, "\r", 1, err)) != SMM_OK)
                return st;
            start = lf;
        }
    }
    if (n > 0)
        *cr = p[n - 1] == '\r';
    return smm_spool_write(o, start, (size_t)(end - start), err);
}

/* A copy of a region into a new spool: canonical (CRLF), or as it is. */
static smm_status
region_copy(struct in_ctx *c, struct smm_spool *sp, size_t off, size_t len,
            int crlf, struct smm_spool **out, struct smm_err *err)
{
    char buf[65536];
    size_t done = 0;
    ssize_t n;
    int cr = 0;
    smm_status st;

    if ((st = new_spool(c, out, err)) != SMM_OK)
        return st;
    while (done < len) {
        n = smm_spool_pread(sp, buf,
                            len - done < sizeof(buf) ? len - done : sizeof(buf),
                            off + done);
        if (n <= 0)
            return smm_err_set(err, SMM_EIO, "reading the message body");
        if ((st = crlf ? put_crlf(*out, buf, (size_t)n, &cr, err)
                       : smm_spool_write(*out, buf, (size_t)n, err)) != SMM_OK)
            return st;
        done += (size_t)n;
    }
    return SMM_OK;
}

static smm_status
canon_copy(struct in_ctx *c, struct smm_spool *sp, size_t off, size_t len,
           struct smm_spool **out, struct smm_err *err)
{
    return region_copy(c, sp, off, len, 1, out, err);
}

/* A line reader over a region of a spool. */
struct rr {
    struct smm_spool *sp;
    size_t pos, end;
    char buf[8192];
    size_t bpos, blen; /* buffered bytes start at file offset bpos */
};

/*
 * The next line: *start is its offset, *total its length with the line
 * end, *eol the length of the line end (0 at the end of the region).  At
 * most sz-1 bytes of it (without the line end) go to line.  0 at the end.
 */
static int
rr_line(struct rr *r, char *line, size_t sz, size_t *start, size_t *total,
        size_t *eol)
{
    size_t got = 0, n = 0, avail, take, keep;
    const char *b, *nl;
    ssize_t rd;

    if (r->pos >= r->end)
        return 0;
    *start = r->pos;
    *eol = 0;
    while (r->pos < r->end) {
        if (r->pos < r->bpos || r->pos >= r->bpos + r->blen) {
            size_t want = r->end - r->pos;
            rd = smm_spool_pread(r->sp, r->buf,
                                 want < sizeof(r->buf) ? want : sizeof(r->buf),
                                 r->pos);
            if (rd <= 0) {
                r->end = r->pos;
                break;
            }
            r->bpos = r->pos;
            r->blen = (size_t)rd;
        }
        /* the buffered bytes up to the line end, or all of them */
        b = r->buf + (r->pos - r->bpos);
        avail = r->bpos + r->blen - r->pos;
        if (avail > r->end - r->pos)
            avail = r->end - r->pos;
        nl = memchr(b, '\n', avail);
        take = nl != NULL ? (size_t)(nl - b) : avail;
        keep = got + 1 < sz ? sz - 1 - got : 0;
        if (keep > take)
            keep = take;
        memcpy(line + got, b, keep);
        got += keep;
        r->pos += take;
        n += take;
        if (nl != NULL) {
            r->pos++;
            n++;
            *eol = got > 0 && line[got - 1] == '\r' ? 2 : 1;
            if (*eol == 2)
                got--;
            break;
        }
    }
    line[got < sz ? got : sz - 1] = '\0';
    *total = n;
    return 1;
}

/* "Name:" with a printable name (RFC 5322 ftext) */
static int
is_field(const char *line)
{
    const char *p;

    for (p = line; *p != ':'; p++)
        if (*p == '\0' || (unsigned char)*p <= 32 || (unsigned char)*p >= 127)
            return 0;
    return p > line;
}

static int
is_content_field(const char *name)
{
    return strncasecmp(name, "Content-", 8) == 0;
}

/* Append text to a growing string. */
static int
grow(char **s, size_t *len, const char *add, size_t n)
{
    char *ns = realloc(*s, *len + n + 1);

    if (ns == NULL)
        return -1;
    memcpy(ns + *len, add, n);
    *len += n;
    ns[*len] = '\0';
    *s = ns;
    return 0;
}

/*
 * Parse the header block at the start of [off, off+len) into e: the
 * Content-* fields (unfolded), and the body region after the blank line.
 * A region without a blank line is all header.
 */
static smm_status
ent_parse(struct smm_spool *sp, size_t off, size_t len, struct ent *e,
          struct smm_err *err)
{
    struct rr r = {.sp = sp, .pos = off, .end = off + len};
    char line[4096];
    char *name = NULL, *value = NULL;
    size_t start, total, eol, vlen = 0;
    struct smm_header *nh;
    int fields = 0;
    smm_status st;

    memset(e, 0, sizeof(*e));
    e->sp = sp;
    e->off = off + len;
    /* what was written last may still be buffered (smm_spool.h) */
    if ((st = smm_spool_finish(sp, err)) != SMM_OK)
        return st;
    for (;;) {
        int more = rr_line(&r, line, sizeof(line), &start, &total, &eol);
        int cont = more && (line[0] == ' ' || line[0] == '\t');
        if (cont && value != NULL) {
            if (grow(&value, &vlen, " ", 1) < 0 ||
                grow(&value, &vlen, line + strspn(line, " \t"),
                     strlen(line + strspn(line, " \t"))) < 0)
                goto nomem;
            continue;
        }
        if (name != NULL && strcasecmp(name, "Subject") == 0) {
            if (e->subject == NULL) { /* the first counts */
                e->subject = value;
                value = NULL;
            }
            free(name);
            free(value);
            name = value = NULL;
        } else if (name != NULL) { /* the previous field is complete */
            if ((nh = realloc(e->hdrs, (e->nhdrs + 1) * sizeof(*nh))) == NULL)
                goto nomem;
            e->hdrs = nh;
            e->hdrs[e->nhdrs].name = name;
            e->hdrs[e->nhdrs].value = value;
            e->nhdrs++;
            name = value = NULL;
        }
        if (!more || line[0] == '\0') {
            if (more)
                e->off = start + total;
            break;
        }
        if (cont && fields > 0)
            continue;
        if (cont || !is_field(line)) {
            /* not a header field: the header ends, the body starts here
             * (content without any header is all body, RFC 2045 types) */
            e->off = start;
            break;
        }
        fields++;
        {
            char *colon = strchr(line, ':');
            *colon = '\0';
            /* Subject too: header protection keeps the real one here */
            if (!is_content_field(line) && strcasecmp(line, "Subject") != 0)
                continue;
            if ((name = strdup(line)) == NULL)
                goto nomem;
            colon++;
            colon += strspn(colon, " \t");
            vlen = 0;
            value = NULL;
            if (grow(&value, &vlen, colon, strlen(colon)) < 0)
                goto nomem;
        }
    }
    e->len = off + len - e->off;
    for (vlen = 0; vlen < e->nhdrs; vlen++) {
        char **slot = NULL;
        if (strcasecmp(e->hdrs[vlen].name, "Content-Type") == 0)
            slot = &e->ctype;
        else if (strcasecmp(e->hdrs[vlen].name, "Content-Transfer-Encoding") ==
                 0)
            slot = &e->cte;
        else if (strcasecmp(e->hdrs[vlen].name, "Content-Disposition") == 0)
            slot = &e->cdisp;
        if (slot != NULL && *slot == NULL &&
            (*slot = strdup(e->hdrs[vlen].value)) == NULL)
            goto nomem;
    }
    return SMM_OK;
nomem:
    free(name);
    free(value);
    ent_free(e);
    return smm_err_set(err, SMM_ENOMEM, "out of memory");
}

/* ------------------------------------------------------ classification */

enum kind { K_LEAF, K_SIGNED, K_PKCS7, K_MULTI };

struct ctinfo {
    enum kind kind;
    char boundary[256];
};

static int
ends_with_p7m(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    return n >= 4 && strcasecmp(s + n - 4, ".p7m") == 0;
}

static void
classify(const struct ent *e, struct ctinfo *ci)
{
    GMimeContentType *ct;
    GMimeContentDisposition *cd;
    const char *type, *sub, *p;

    memset(ci, 0, sizeof(*ci));
    ci->kind = K_LEAF;
    if (e->ctype == NULL ||
        (ct = g_mime_content_type_parse(NULL, e->ctype)) == NULL)
        return;
    type = g_mime_content_type_get_media_type(ct);
    sub = g_mime_content_type_get_media_subtype(ct);
    if (type == NULL || sub == NULL) {
        g_object_unref(ct);
        return;
    }
    if (strcasecmp(type, "multipart") == 0) {
        p = g_mime_content_type_get_parameter(ct, "boundary");
        if (p != NULL && *p != '\0' && strlen(p) < sizeof(ci->boundary)) {
            snprintf(ci->boundary, sizeof(ci->boundary), "%s", p);
            ci->kind = K_MULTI;
            if (strcasecmp(sub, "signed") == 0 &&
                (p = g_mime_content_type_get_parameter(ct, "protocol")) !=
                    NULL &&
                (strcasecmp(p, "application/pkcs7-signature") == 0 ||
                 strcasecmp(p, "application/x-pkcs7-signature") == 0))
                ci->kind = K_SIGNED;
        }
    } else if (strcasecmp(type, "application") == 0) {
        if (strcasecmp(sub, "pkcs7-mime") == 0 ||
            strcasecmp(sub, "x-pkcs7-mime") == 0) {
            ci->kind = K_PKCS7;
        } else if (strcasecmp(sub, "octet-stream") == 0) {
            if (ends_with_p7m(g_mime_content_type_get_parameter(ct, "name")))
                ci->kind = K_PKCS7;
            else if (e->cdisp != NULL && (cd = g_mime_content_disposition_parse(
                                              NULL, e->cdisp)) != NULL) {
                if (ends_with_p7m(g_mime_content_disposition_get_parameter(
                        cd, "filename")))
                    ci->kind = K_PKCS7;
                g_object_unref(cd);
            }
        }
    }
    g_object_unref(ct);
}

/* ------------------------------------------------------------ decoding */

/* Undo e's Content-Transfer-Encoding, handing the bytes to sink as they
 * come. */
typedef smm_status (*decode_sink)(void *arg, const char *p, size_t n,
                                  struct smm_err *err);

static smm_status
decode_each(const struct ent *e, decode_sink sink, void *arg,
            struct smm_err *err)
{
    GMimeContentEncoding enc = e->cte != NULL
                                   ? g_mime_content_encoding_from_string(e->cte)
                                   : GMIME_CONTENT_ENCODING_DEFAULT;
    GMimeEncoding gs;
    char in[16384], dec[2 * sizeof(in) + 64];
    size_t done = 0, n_out;
    ssize_t n;
    int decode = enc == GMIME_CONTENT_ENCODING_BASE64 ||
                 enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
                 enc == GMIME_CONTENT_ENCODING_UUENCODE;
    smm_status st;

    if (e->len > IN_MAX_CMS * 2)
        return smm_err_set(err, SMM_EPARSE, "CMS object too large");
    if (decode)
        g_mime_encoding_init_decode(&gs, enc);
    while (done < e->len) {
        size_t want = e->len - done < sizeof(in) ? e->len - done : sizeof(in);
        if ((n = smm_spool_pread(e->sp, in, want, e->off + done)) <= 0)
            return smm_err_set(err, SMM_EIO, "reading the message body");
        done += (size_t)n;
        n_out =
            decode ? g_mime_encoding_step(&gs, in, (size_t)n, dec) : (size_t)n;
        if ((st = sink(arg, decode ? dec : in, n_out, err)) != SMM_OK)
            return st;
    }
    if (decode) {
        n_out = g_mime_encoding_flush(&gs, NULL, 0, dec);
        if ((st = sink(arg, dec, n_out, err)) != SMM_OK)
            return st;
    }
    return SMM_OK;
}

static smm_status
to_buf(void *arg, const char *p, size_t n, struct smm_err *err)
{
    if (smm_buf_append(arg, p, n) != SMM_OK)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    return SMM_OK;
}

static smm_status
to_spool(void *arg, const char *p, size_t n, struct smm_err *err)
{
    return smm_spool_write(arg, p, n, err);
}

/* The decoded body of e (Content-Transfer-Encoding undone), in memory. */
static smm_status
decode_body(const struct ent *e, unsigned char **out, size_t *outlen,
            struct smm_err *err)
{
    struct smm_buf b = {0};
    smm_status st;

    *out = NULL;
    *outlen = 0;
    if ((st = decode_each(e, to_buf, &b, err)) != SMM_OK) {
        smm_buf_free(&b);
        return st;
    }
    *out = (unsigned char *)b.data; /* the caller frees it */
    *outlen = b.len;
    return SMM_OK;
}

/* decode_body(), into a new spool: for the ciphertext of a large message */
static smm_status
decode_to_spool(struct in_ctx *c, const struct ent *e, struct smm_spool **out,
                struct smm_err *err)
{
    smm_status st;

    if (e->len > IN_MAX_CMS * 2)
        return smm_err_set(err, SMM_EPARSE, "CMS object too large");
    if ((st = new_spool(c, out, err)) != SMM_OK)
        return st;
    return decode_each(e, to_spool, *out, err);
}

/* ------------------------------------------------------------- layers */

static struct layer *
new_layer(struct in_ctx *c, const char *part)
{
    struct layer *l;

    if (c->nlayers >= IN_MAX_LAYERS)
        return NULL;
    l = &c->layers[c->nlayers++];
    memset(l, 0, sizeof(*l));
    snprintf(l->part, sizeof(l->part), "%s", part != NULL ? part : "");
    return l;
}

static void
layer_error(struct in_ctx *c, const char *part, enum smm_sig_result r,
            const char *why)
{
    struct layer *l = new_layer(c, part);

    if (l != NULL) {
        l->sig.result = r;
        snprintf(l->sig.reason, sizeof(l->sig.reason), "%s", why);
    }
}

/* Certificates we know for the sender (local and harvested stores, the
 * key store, the trust anchors): for signatures that do not carry their
 * signer's certificate.  Made when the first signature is met. */
static STACK_OF(X509) *
    sender_certs(const struct smm_state *s, const char *from, time_t now)
{
    STACK_OF(X509) *out = sk_X509_new_null(), *cas;
    const struct smm_key *k;
    unsigned caps;
    int i, n;

    if (out == NULL || from == NULL)
        return out;
    for (n = 0; s->trust != NULL && n < sk_X509_num(s->trust->certs); n++)
        if (X509_up_ref(sk_X509_value(s->trust->certs, n)) &&
            !sk_X509_push(out, sk_X509_value(s->trust->certs, n)))
            X509_free(sk_X509_value(s->trust->certs, n));
    for (i = 0; i < 2; i++) {
        k = i == 0 ? smm_keystore_signer(s->ks, from, now, 0)
                   : smm_keystore_encryption(s->ks, from, now);
        if (k != NULL && X509_up_ref(k->cert) && !sk_X509_push(out, k->cert))
            X509_free(k->cert);
    }
    (void)smm_certstore_find(s->certstore, from, out);
    if (smm_harvest_read(s->cfg->harvest_store, from, out, &caps) == 0)
        (void)smm_certstore_find(s->harvest, from, out);
    /* the intermediates of the local store, for signers that send only
     * their own certificate */
    cas = smm_certstore_cas(s->certstore);
    for (n = 0; n < sk_X509_num(cas); n++)
        if (X509_up_ref(sk_X509_value(cas, n)) &&
            !sk_X509_push(out, sk_X509_value(cas, n)))
            X509_free(sk_X509_value(cas, n));
    return out;
}

static void
verify_opts(struct in_ctx *c, struct smm_verify_opts *vo)
{
    if (c->sender_certs == NULL)
        c->sender_certs = sender_certs(c->s, c->from, c->o->now);
    memset(vo, 0, sizeof(*vo));
    vo->trust = c->s->trust;
    vo->extra = c->sender_certs;
    vo->now = c->o->now;
    vo->from = c->from;
    vo->from_why = c->from_why;
    vo->min_key_bits = c->s->cfg->min_key_bits;
    vo->allow_sha1 = c->s->cfg->allow_sha1;
}

/* A spool's contents as a new entity (header block and body). */
static smm_status
ent_of_spool(struct smm_spool *sp, struct ent *e, struct smm_err *err)
{
    return ent_parse(sp, 0, smm_spool_len(sp), e, err);
}

/* Copy a memory BIO's bytes into a new canonical spool. */
static smm_status
bio_to_spool(struct in_ctx *c, BIO *b, struct smm_spool **out,
             struct smm_err *err)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    int cr = 0;
    smm_status st;

    if ((st = new_spool(c, out, err)) != SMM_OK)
        return st;
    return n > 0 ? put_crlf(*out, data, (size_t)n, &cr, err) : SMM_OK;
}

/*
 * Whether content, once its lines end in CRLF, can go on by SMTP as it is:
 * no NUL, no line over 998 bytes, no part in Content-Transfer-Encoding
 * binary.  RFC 8551 3.1.2 lets a sender use binary inside the protection,
 * where no transport sees it; after decryption its bytes must neither be
 * given CRLF line ends nor be sent by SMTP.  Fed in pieces.
 */
struct smtp_scan {
    size_t line; /* bytes of the current line so far, without its LF */
    char last;   /* its last byte */
    char head[40];
    size_t hl;
    int bad;
};

static void
scan_line_end(struct smtp_scan *s)
{
    static const char cte[] = "content-transfer-encoding:";

    if (s->line - (s->line > 0 && s->last == '\r') > 998)
        s->bad = 1;
    s->head[s->hl] = '\0';
    if (s->hl > sizeof(cte) - 1 &&
        strncasecmp(s->head, cte, sizeof(cte) - 1) == 0 &&
        smm_mime_cte_is_binary(s->head + sizeof(cte) - 1))
        s->bad = 1;
    s->line = s->hl = 0;
}

static void
scan_smtp(struct smtp_scan *s, const char *p, size_t n)
{
    const char *end = p + n, *nl, *stop;
    size_t k;

    while (p < end && !s->bad) {
        nl = memchr(p, '\n', (size_t)(end - p));
        stop = nl != NULL ? nl : end;
        if (memchr(p, '\0', (size_t)(stop - p)) != NULL) {
            s->bad = 1;
            return;
        }
        k = (size_t)(stop - p);
        if (s->hl < sizeof(s->head) - 1) {
            size_t take = sizeof(s->head) - 1 - s->hl;
            memcpy(s->head + s->hl, p, k < take ? k : take);
            s->hl += k < take ? k : take;
        }
        s->line += k;
        if (k > 0)
            s->last = stop[-1];
        if (s->line > 999) { /* 998 bytes and the CR of the line end */
            s->bad = 1;
            return;
        }
        if (nl == NULL)
            return;
        scan_line_end(s);
        p = nl + 1;
    }
}

/*
 * The canonical (CRLF) form of decrypted or unwrapped content, from the
 * spool raw or, when raw is NULL, the memory BIO mem, in a new spool *out.
 * Content that cannot go on by SMTP as it is (scan_smtp) is rebuilt with
 * every leaf part in a 7-bit transfer encoding, as outbound mail is before
 * signing (smm_mime_seven_bit: signed parts inside stay byte for byte).
 */
static smm_status
content_of(struct in_ctx *c, struct smm_spool *raw, BIO *mem,
           struct smm_spool **out, struct smm_err *err)
{
    struct smtp_scan scan = {0};
    struct smm_message tm = {0};
    struct smm_header *h = NULL;
    struct smm_spool *body = NULL;
    struct ent e = {0};
    struct smm_err e2;
    char *data = NULL, buf[65536], subj[] = "Subject";
    long n = 0;
    size_t off = 0, i;
    ssize_t rd;
    smm_status st;

    if (raw == NULL) {
        if ((n = BIO_get_mem_data(mem, &data)) > 0)
            scan_smtp(&scan, data, (size_t)n);
    } else {
        if ((st = smm_spool_finish(raw, err)) != SMM_OK)
            return st;
        while (!scan.bad &&
               (rd = smm_spool_pread(raw, buf, sizeof(buf), off)) > 0) {
            scan_smtp(&scan, buf, (size_t)rd);
            off += (size_t)rd;
        }
    }
    if (!scan.bad)
        scan_line_end(&scan);
    if (!scan.bad)
        return raw != NULL ? canon_copy(c, raw, 0, smm_spool_len(raw), out, err)
                           : bio_to_spool(c, mem, out, err);
    if (raw == NULL && ((st = new_spool(c, &raw, err)) != SMM_OK ||
                        (n > 0 && (st = smm_spool_write(raw, data, (size_t)n,
                                                        err)) != SMM_OK)))
        return st;
    if ((st = ent_of_spool(raw, &e, err)) != SMM_OK ||
        (st = region_copy(c, raw, e.off, e.len, 0, &body, err)) != SMM_OK ||
        (st = smm_spool_finish(body, err)) != SMM_OK)
        goto out;
    if ((h = calloc(e.nhdrs + 1, sizeof(*h))) == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < e.nhdrs; i++)
        h[tm.nhdrs++] = e.hdrs[i];
    if (e.subject != NULL) {
        h[tm.nhdrs].name = subj;
        h[tm.nhdrs++].value = e.subject;
    }
    tm.hdrs = h;
    tm.body = body;
    if ((st = new_spool(c, out, err)) != SMM_OK)
        goto out;
    st = smm_mime_seven_bit(&tm, c->s->cfg->max_mime_depth,
                            c->s->cfg->max_mime_parts, *out, &e2);
    if (st == SMM_OK) {
        c->reencoded = 1;
    } else if (st == SMM_EPARSE) {
        /* beyond the MIME limits: as it is, where the walk will stop */
        st = canon_copy(c, raw, 0, smm_spool_len(raw), out, err);
    } else {
        *err = e2;
    }
out:
    free(h);
    ent_free(&e);
    return st;
}

/*
 * The address a recipient's keys are looked up by: with RecipientDelimiter,
 * bob+lists@example.org is bob@example.org, unless a key of the store names
 * bob+lists@example.org itself.  NULL when out of memory.
 */
static char *
key_address(const struct smm_state *s, const char *rcpt)
{
    const char *delim = s->cfg->recipient_delimiter;
    const char *at = strrchr(rcpt, '@');
    const struct smm_key *k;
    size_t n, i, j;
    char *r;

    if (delim == NULL || *delim == '\0' || at == NULL ||
        (n = strcspn(rcpt, delim)) == 0 || rcpt + n >= at)
        return strdup(rcpt);
    for (i = 0; s->ks != NULL && (k = smm_keystore_get(s->ks, i)) != NULL; i++)
        for (j = 0; j < k->addrs.n; j++)
            if (smm_addr_equal(k->addrs.v[j], rcpt))
                return strdup(rcpt);
    if ((r = malloc(n + strlen(at) + 1)) == NULL)
        return NULL;
    memcpy(r, rcpt, n);
    strcpy(r + n, at);
    return r;
}

static void
free_list(char **v, size_t n)
{
    size_t i;

    for (i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static smm_status walk(struct in_ctx *, struct ent *, int, const char *, int,
                       struct smm_spool **, struct smm_err *);

/*
 * application/pkcs7-mime.  *repl gets the entity that should replace e
 * (may_change only): decrypted content, or unwrapped signed content.
 */
static smm_status
do_pkcs7(struct in_ctx *c, struct ent *e, int may_change, const char *part,
         int depth, struct smm_spool **repl, struct smm_err *err)
{
    unsigned char *der = NULL;
    size_t derlen = 0;
    CMS_ContentInfo *cms = NULL;
    enum smm_cms_kind kind;
    struct smm_err perr;
    struct smm_spool *content = NULL, *inner_repl = NULL;
    struct ent inner = {0};
    struct smm_verify_opts vo;
    struct layer *l;
    const struct smm_key *k = NULL;
    BIO *mem = NULL;
    smm_status st;
    size_t i;
    int top = may_change && c->dec_no == NULL && c->dec_key == NULL;
    STACK_OF(X509) *certs = NULL;
    struct smm_spool *derspool = NULL, *plain = NULL;
    struct smm_cms_env env = {0};
    BIO *dcont = NULL, *sink = NULL;
    char **ka = NULL; /* the recipients' key addresses (key_address) */

    /* A large message (its body went to disk): the DER goes to a spool
     * and only the structure around the ciphertext is parsed, so that the
     * message is decrypted from the spool, never held in memory. */
    if (top && c->mem == 0) {
        if ((st = decode_to_spool(c, e, &derspool, err)) != SMM_OK) {
            if (st != SMM_EPARSE)
                return st;
            snprintf(c->dec_error, sizeof(c->dec_error), "%s", err->msg);
            goto corrupt;
        }
        if (smm_cms_env_split(derspool, smm_spool_len(derspool), &env) == 0) {
            if ((cms = smm_cms_parse(env.skel, env.skellen, &kind, &perr)) ==
                NULL) {
                snprintf(c->dec_error, sizeof(c->dec_error), "%s", perr.msg);
                goto corrupt;
            }
        }
    }
    if (cms == NULL) {
        if ((st = decode_body(e, &der, &derlen, err)) != SMM_OK) {
            if (st != SMM_EPARSE)
                return st;
            snprintf(c->dec_error, sizeof(c->dec_error), "%s", err->msg);
            goto corrupt;
        }
        if ((cms = smm_cms_parse_cached(der, derlen, c->s->x509cache, &kind,
                                        &certs, &perr)) == NULL) {
            snprintf(c->dec_error, sizeof(c->dec_error), "%s", perr.msg);
            goto corrupt;
        }
    }
    if ((mem = BIO_new(BIO_s_mem())) == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    switch (kind) {
    case SMM_CMS_ENVELOPED:
    case SMM_CMS_AUTH_ENVELOPED:
        if (!top) { /* nested encrypted parts are the client's business */
            if (c->dec_key == NULL && c->dec_no == NULL)
                c->dec_no = "nested";
            goto out;
        }
        if (env.skel != NULL)
            smm_cms_cipher_name(env.skel, env.skellen, c->cipher,
                                sizeof(c->cipher));
        else
            smm_cms_cipher_name(der, derlen, c->cipher, sizeof(c->cipher));
        for (i = 0; c->cipher[i] != '\0'; i++)
            c->cipher[i] = (char)tolower((unsigned char)c->cipher[i]);
        if (!c->s->cfg->decrypt) {
            c->dec_no = "disabled";
            c->unreadable = 1;
            goto out;
        }
        for (i = 0; i < c->m->nrcpts; i++) {
            const char *dom = smm_addr_domain(c->m->rcpts[i]);
            size_t j;
            int local = 0;
            if (c->s->cfg->local_domains.n == 0)
                local = dom != NULL && smm_keystore_has_domain(c->s->ks, dom);
            for (j = 0; dom != NULL && j < c->s->cfg->local_domains.n; j++)
                if (strcasecmp(c->s->cfg->local_domains.v[j], dom) == 0)
                    local = 1;
            if (!local) {
                c->dec_no = "relayed";
                c->unreadable = 1;
                snprintf(c->dec_error, sizeof(c->dec_error),
                         "recipient %.200s is not local", c->m->rcpts[i]);
                goto out;
            }
        }
        if (env.skel != NULL &&
            ((st = new_spool(c, &plain, err)) != SMM_OK ||
             (dcont = smm_spool_pieces_bio(derspool, env.off, env.len, env.n,
                                           err)) == NULL ||
             (sink = smm_spool_wbio(plain, err)) == NULL)) {
            st = err->status;
            goto out;
        }
        if ((ka = calloc(c->m->nrcpts + 1, sizeof(*ka))) == NULL) {
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
        for (i = 0; i < c->m->nrcpts; i++)
            if ((ka[i] = key_address(c->s, c->m->rcpts[i])) == NULL) {
                st = smm_err_set(err, SMM_ENOMEM, "out of memory");
                goto out;
            }
        if (c->s->cfg->decrypt_rcpt_only) {
            /* no key of one recipient opens it: that recipient was not
             * meant to read it, and must not get it decrypted */
            int known, u = smm_cms_unserved_rcpt(cms, c->s->ks, ka,
                                                 c->m->nrcpts, &known);
            if (u >= 0 && known) {
                c->dec_no = "not-for-recipient";
                c->unreadable = 1;
                snprintf(c->dec_error, sizeof(c->dec_error),
                         "recipient %.200s has no key it was encrypted to",
                         c->m->rcpts[u]);
                goto out;
            }
        }
        st = smm_cms_decrypt(cms, c->s->ks, ka, c->m->nrcpts,
                             !c->s->cfg->decrypt_rcpt_only, dcont,
                             sink != NULL ? sink : mem, &k, &perr);
        if (st == SMM_ENOCERT) {
            c->dec_no = "no-key";
            c->unreadable = 1;
            snprintf(c->dec_error, sizeof(c->dec_error), "%s", perr.msg);
            st = SMM_OK;
            goto out;
        }
        if (st == SMM_EPARSE) {
            /* well-formed, but the key that fits does not open it (bad
             * padding, a failed GCM tag): as unreadable as without a
             * key, and no signature was seen to give a verdict on */
            c->dec_no = "corrupt";
            c->unreadable = 1;
            snprintf(c->dec_error, sizeof(c->dec_error), "%s", perr.msg);
            st = SMM_OK;
            goto out;
        }
        if (st != SMM_OK) {
            *err = perr;
            goto out;
        }
        c->dec_key = k;
        if ((st = content_of(c, plain, mem, &content, err)) != SMM_OK ||
            (st = ent_of_spool(content, &inner, err)) != SMM_OK)
            goto out;
        if ((st = walk(c, &inner, 1, part, depth + 1, &inner_repl, err)) !=
            SMM_OK)
            goto out;
        *repl = inner_repl != NULL ? inner_repl : content;
        break;
    case SMM_CMS_SIGNED:
        if (!c->s->cfg->verify)
            goto out;
        if ((l = new_layer(c, part)) == NULL)
            goto out;
        verify_opts(c, &vo);
        vo.msg_certs = certs;
        if ((st = smm_cms_verify(cms, NULL, mem, &vo, &l->sig, err)) != SMM_OK)
            goto out;
        if (l->sig.result == SMM_SIG_PERMERROR)
            goto out;
        if ((st = content_of(c, NULL, mem, &content, err)) != SMM_OK ||
            (st = ent_of_spool(content, &inner, err)) != SMM_OK)
            goto out;
        if ((st = walk(c, &inner, may_change, part, depth + 1, &inner_repl,
                       err)) != SMM_OK)
            goto out;
        if (inner_repl != NULL)
            *repl = inner_repl;
        else if (may_change && c->s->cfg->unwrap_opaque &&
                 l->sig.result <= SMM_SIG_NEUTRAL)
            *repl = content; /* a failed signature stays around its
                                content, for the client to show */
        break;
    default:
        break; /* certs-only and the like: nothing to check */
    }
    goto out;
corrupt:
    if (top) {
        c->dec_no = "corrupt";
        c->unreadable = 1;
    }
    layer_error(c, part, SMM_SIG_PERMERROR, "unparseable CMS");
    st = SMM_OK;
out:
    free_list(ka, c->m->nrcpts);
    ent_free(&inner);
    BIO_free(mem);
    BIO_free(dcont);
    BIO_free(sink);
    smm_cms_env_free(&env);
    CMS_ContentInfo_free(cms);
    sk_X509_pop_free(certs, X509_free);
    free(der);
    return st;
}

/* The parts of a multipart body: offsets of each part's bytes. */
struct partlist {
    size_t *off, *len;
    int n;
};

static void
partlist_free(struct partlist *pl)
{
    free(pl->off);
    free(pl->len);
    memset(pl, 0, sizeof(*pl));
}

static smm_status
part_add(struct partlist *pl, size_t off, size_t len, struct smm_err *err)
{
    size_t *no, *nl;

    if ((no = realloc(pl->off, (size_t)(pl->n + 1) * sizeof(*no))) != NULL)
        pl->off = no;
    if ((nl = realloc(pl->len, (size_t)(pl->n + 1) * sizeof(*nl))) != NULL)
        pl->len = nl;
    if (no == NULL || nl == NULL) {
        partlist_free(pl);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    pl->off[pl->n] = off;
    pl->len[pl->n] = len;
    pl->n++;
    return SMM_OK;
}

/*
 * Split [off, off+len) at "--boundary" lines (RFC 2046 5.1.1): a part
 * ends before the line end that precedes the next delimiter.  At most max
 * parts are recorded (*more is set when there were others).
 */
static smm_status
split_parts(struct smm_spool *sp, size_t off, size_t len, const char *boundary,
            int max, struct partlist *pl, int *more, struct smm_err *err)
{
    struct rr r = {.sp = sp, .pos = off, .end = off + len};
    char line[512];
    size_t start, total, eol, blen = strlen(boundary), prev_eol = 0;
    size_t part_start = 0;
    int in_part = 0;

    memset(pl, 0, sizeof(*pl));
    *more = 0;
    while (rr_line(&r, line, sizeof(line), &start, &total, &eol)) {
        if (line[0] == '-' && line[1] == '-' && total - eol < sizeof(line) &&
            strncmp(line + 2, boundary, blen) == 0) {
            const char *rest = line + 2 + blen;
            int close = rest[0] == '-' && rest[1] == '-';
            if (close)
                rest += 2;
            if (rest[strspn(rest, " \t")] == '\0') {
                if (in_part && pl->n >= max) {
                    *more = 1;
                    return SMM_OK;
                }
                if (in_part &&
                    part_add(pl, part_start,
                             (start >= part_start + prev_eol ? start - prev_eol
                                                             : part_start) -
                                 part_start,
                             err) != SMM_OK)
                    return SMM_ENOMEM;
                if (close)
                    return SMM_OK;
                in_part = 1;
                part_start = start + total;
                prev_eol = eol;
                continue;
            }
        }
        prev_eol = eol;
    }
    /* no close delimiter: the last part runs to the end (as clients read
     * it) */
    if (in_part && pl->n < max && part_start < off + len) {
        if (part_add(pl, part_start, off + len - part_start, err) != SMM_OK)
            return SMM_ENOMEM;
    } else if (in_part && pl->n >= max) {
        *more = 1;
    }
    return SMM_OK;
}

/* multipart/signed: verify part 1 against part 2. */
static smm_status
do_signed(struct in_ctx *c, struct ent *e, const struct ctinfo *ci,
          int may_change, const char *part, int depth, struct smm_spool **repl,
          struct smm_err *err)
{
    struct partlist pl = {0};
    struct ent sigent = {0}, inner = {0};
    struct smm_spool *signed_part = NULL, *inner_repl = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    CMS_ContentInfo *cms = NULL;
    enum smm_cms_kind kind;
    struct smm_verify_opts vo;
    struct smm_err perr;
    struct layer *l;
    BIO *dcont = NULL, *mem = NULL;
    STACK_OF(X509) *certs = NULL;
    smm_status st = SMM_OK;

    int more;

    if (!c->s->cfg->verify)
        return SMM_OK;
    if ((st = split_parts(e->sp, e->off, e->len, ci->boundary, 2, &pl, &more,
                          err)) != SMM_OK)
        return st;
    if (pl.n < 2 || more) {
        /* RFC 1847 2.1: exactly two; a third would pass unsigned content
         * off as signed */
        layer_error(c, part, SMM_SIG_PERMERROR,
                    more ? "multipart/signed with more than two parts"
                         : "multipart/signed without two parts");
        goto out;
    }
    if ((l = new_layer(c, part)) == NULL)
        goto out;
    if ((st = canon_copy(c, e->sp, pl.off[0], pl.len[0], &signed_part, err)) !=
            SMM_OK ||
        (st = ent_parse(e->sp, pl.off[1], pl.len[1], &sigent, err)) != SMM_OK)
        goto out;
    if ((st = decode_body(&sigent, &der, &derlen, &perr)) != SMM_OK) {
        if (st != SMM_EPARSE) {
            *err = perr;
            goto out;
        }
        st = SMM_OK;
        l->sig.result = SMM_SIG_PERMERROR;
        snprintf(l->sig.reason, sizeof(l->sig.reason), "%s", perr.msg);
        goto out;
    }
    if ((cms = smm_cms_parse_cached(der, derlen, c->s->x509cache, &kind, &certs,
                                    &perr)) == NULL ||
        kind != SMM_CMS_SIGNED) {
        l->sig.result = SMM_SIG_PERMERROR;
        snprintf(l->sig.reason, sizeof(l->sig.reason), "%s",
                 cms == NULL ? "unparseable signature" : "not a signature");
        goto out;
    }
    verify_opts(c, &vo);
    vo.msg_certs = certs;
    if ((dcont = smm_spool_bio(signed_part, err)) == NULL) {
        st = err->status;
        goto out;
    }
    if (CMS_is_detached(cms)) {
        st = smm_cms_verify(cms, dcont, NULL, &vo, &l->sig, err);
    } else {
        /* the signature carries content of its own: it must be the part */
        char *a;
        long alen;
        size_t plen = smm_spool_len(signed_part), off = 0;
        char buf[16384];
        ssize_t n;
        int same;

        if ((mem = BIO_new(BIO_s_mem())) == NULL) {
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
        if ((st = smm_cms_verify(cms, NULL, mem, &vo, &l->sig, err)) != SMM_OK)
            goto out;
        alen = BIO_get_mem_data(mem, &a);
        same = alen >= 0 && (size_t)alen == plen;
        while (same &&
               (n = smm_spool_pread(signed_part, buf, sizeof(buf), off)) > 0) {
            same = memcmp(buf, a + off, (size_t)n) == 0;
            off += (size_t)n;
        }
        if (!same && l->sig.result < SMM_SIG_FAIL) {
            l->sig.result = SMM_SIG_FAIL;
            snprintf(l->sig.reason, sizeof(l->sig.reason),
                     "signature covers other content than the signed part");
        }
    }
    if (st != SMM_OK)
        goto out;
    /* look inside the signed part for more layers */
    if ((st = ent_of_spool(signed_part, &inner, err)) != SMM_OK)
        goto out;
    {
        int strip = may_change && c->s->cfg->strip_signatures &&
                    l->sig.result == SMM_SIG_PASS;
        if ((st = walk(c, &inner, strip, part, depth + 1, &inner_repl, err)) !=
            SMM_OK)
            goto out;
        if (strip)
            *repl = inner_repl != NULL ? inner_repl : signed_part;
    }
out:
    partlist_free(&pl);
    ent_free(&sigent);
    ent_free(&inner);
    BIO_free_all(dcont);
    BIO_free(mem);
    CMS_ContentInfo_free(cms);
    sk_X509_pop_free(certs, X509_free);
    free(der);
    return st;
}

/* Other multiparts: look for signed parts (never change them). */
static smm_status
do_multi(struct in_ctx *c, struct ent *e, const struct ctinfo *ci,
         const char *part, int depth, struct smm_err *err)
{
    struct partlist pl;
    struct ent child;
    struct smm_spool *ignored = NULL;
    char num[64];
    smm_status st;
    int i, more;

    if (!c->s->cfg->verify)
        return SMM_OK;
    if ((st = split_parts(e->sp, e->off, e->len, ci->boundary,
                          c->s->cfg->max_mime_parts - c->parts, &pl, &more,
                          err)) != SMM_OK)
        return st;
    if (more)
        c->exceeded = 1;
    for (i = 0; i < pl.n; i++) {
        c->parts++;
        snprintf(num, sizeof(num), "%s%s%d", part != NULL ? part : "",
                 part != NULL && *part != '\0' ? "." : "", i + 1);
        if ((st = ent_parse(e->sp, pl.off[i], pl.len[i], &child, err)) !=
            SMM_OK)
            break;
        st = walk(c, &child, 0, num, depth + 1, &ignored, err);
        ent_free(&child);
        if (st != SMM_OK)
            break;
    }
    partlist_free(&pl);
    return st;
}

static smm_status
walk(struct in_ctx *c, struct ent *e, int may_change, const char *part,
     int depth, struct smm_spool **repl, struct smm_err *err)
{
    struct ctinfo ci;

    *repl = NULL;
    if (depth > c->s->cfg->max_mime_depth ||
        c->parts >= c->s->cfg->max_mime_parts) {
        c->exceeded = 1;
        return SMM_OK;
    }
    classify(e, &ci);
    switch (ci.kind) {
    case K_PKCS7:
        return do_pkcs7(c, e, may_change, part, depth, repl, err);
    case K_SIGNED:
        return do_signed(c, e, &ci, may_change, part, depth, repl, err);
    case K_MULTI:
        return do_multi(c, e, &ci, part, depth, err);
    default:
        return SMM_OK;
    }
}

/* ----------------------------------------------- Authentication-Results */

/* The host name, read once per process (a system call per message
 * otherwise). */
static char host_name[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void
read_host_name(void)
{
    if (gethostname(host_name, sizeof(host_name)) != 0 || host_name[0] == '\0')
        snprintf(host_name, sizeof(host_name), "localhost");
    host_name[sizeof(host_name) - 1] = '\0';
}

/* The authserv-id: AuthservID, else the host name. */
const char *
smm_authserv_id(const struct smm_config *cfg, char *buf, size_t sz)
{
    if (cfg->authserv_id != NULL && *cfg->authserv_id != '\0')
        return cfg->authserv_id;
    (void)pthread_once(&host_once, read_host_name);
    snprintf(buf, sz, "%s", host_name);
    return buf;
}

/* Skip white space and (nested) comments. */
static const char *
skip_cfws(const char *p)
{
    int depth;

    for (;;) {
        p += strspn(p, " \t\r\n");
        if (*p != '(')
            return p;
        for (depth = 0; *p != '\0'; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '(')
                depth++;
            else if (*p == ')' && --depth == 0) {
                p++;
                break;
            }
        }
    }
}

/*
 * Whether an Authentication-Results value names id as its authserv-id
 * (RFC 8601: CFWS, then a token or quoted string, case-insensitive).
 */
int
smm_ar_is_ours(const char *value, const char *id)
{
    const char *p = skip_cfws(value);
    char got[256];
    size_t n = 0;

    if (*p == '"') {
        for (p++; *p != '\0' && *p != '"' && n + 1 < sizeof(got); p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            got[n++] = *p;
        }
    } else {
        while (*p != '\0' && *p != ';' && *p != '(' && *p != ' ' &&
               *p != '\t' && *p != '\r' && *p != '\n' && n + 1 < sizeof(got))
            got[n++] = *p++;
    }
    got[n] = '\0';
    return n > 0 && strcasecmp(got, id) == 0;
}

/* Quote a value for a header (RFC 5322 quoted-string). */
static void
quote(struct smm_buf *b, const char *s)
{
    smm_buf_printf(b, "\"");
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            smm_buf_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20 || *s == 0x7f)
            smm_buf_printf(b, " ");
        else
            smm_buf_printf(b, "%c", *s);
    }
    smm_buf_printf(b, "\"");
}

/* The signer's address for smime-identifier: the one matching From. */
static char *
signer_address(X509 *x, const char *from)
{
    struct smm_strlist l = {0};
    char *out = NULL;
    size_t i;

    if (smm_x509_addresses(x, &l) == SMM_OK) {
        for (i = 0; out == NULL && from != NULL && i < l.n; i++)
            if (smm_addr_equal(l.v[i], from))
                out = strdup(l.v[i]);
        if (out == NULL && l.n > 0 && strchr(l.v[0], '@') != NULL &&
            l.v[0][0] != '@')
            out = strdup(l.v[0]);
    }
    smm_strlist_free(&l);
    return out;
}

static int
token_safe(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
            strchr("()<>,;:\\\"[]", *s) != NULL)
            return 0;
    return 1;
}

static smm_status
ar_value(struct in_ctx *c, const char *id, const struct layer *l,
         struct smm_buf *b)
{
    char *addr = NULL, *issuer = NULL, *serial = NULL;

    smm_buf_free(b);
    smm_buf_printf(b, "%s;\n\tsmime=%s", id,
                   smm_sig_result_name(l->sig.result));
    if (l->sig.result != SMM_SIG_PASS && l->sig.reason[0] != '\0') {
        smm_buf_printf(b, " reason=");
        quote(b, l->sig.reason);
    }
    if (l->part[0] != '\0')
        smm_buf_printf(b, "\n\tbody.smime-part=%s", l->part);
    if (l->sig.signer != NULL) {
        addr = signer_address(l->sig.signer, c->from);
        serial = smm_x509_serial_hex(l->sig.signer);
        issuer = smm_x509_issuer(l->sig.signer);
        if (addr != NULL) {
            smm_buf_printf(b, "\n\tbody.smime-identifier=");
            if (token_safe(addr))
                smm_buf_printf(b, "%s", addr);
            else
                quote(b, addr);
        }
        if (serial != NULL)
            smm_buf_printf(b, "\n\tbody.smime-serial=%s", serial);
        if (issuer != NULL) {
            smm_buf_printf(b, "\n\tbody.smime-issuer=");
            quote(b, issuer);
        }
    }
    free(addr);
    free(serial);
    free(issuer);
    return b->data != NULL ? SMM_OK : SMM_ENOMEM;
}

/* ----------------------------------------------------------- the run */

/* Remove forged fields: our A-R (every X-SMIME-Milter: done by caller). */
smm_status
smm_ar_strip_ours(struct smm_result *r, const struct smm_message *m,
                  const char *id)
{
    size_t i;
    int count = 0, *ours, n = 0;

    for (i = 0; i < m->nhdrs; i++)
        if (strcasecmp(m->hdrs[i].name, "Authentication-Results") == 0)
            count++;
    if (count == 0)
        return SMM_OK;
    if ((ours = calloc((size_t)count, sizeof(*ours))) == NULL)
        return SMM_ENOMEM;
    for (i = 0; i < m->nhdrs; i++)
        if (strcasecmp(m->hdrs[i].name, "Authentication-Results") == 0)
            ours[n++] = smm_ar_is_ours(m->hdrs[i].value, id);
    for (; n > 0; n--) /* last first: indexes stay valid */
        if (ours[n - 1] &&
            smm_result_edit(r, SMM_EDIT_DELETE, "Authentication-Results", n,
                            NULL) != SMM_OK) {
            free(ours);
            return SMM_ENOMEM;
        }
    free(ours);
    return SMM_OK;
}

/*
 * Header protection (RFC 9788 hp="cipher"/"clear", and the
 * protected-headers="v1" of its drafts, which Thunderbird writes): the
 * real Subject is inside, the outer one may be a placeholder ("[...]",
 * "...").  The decrypted entity is delivered without its own header
 * fields, so its Subject becomes the message's.
 */
static smm_status
protected_subject(struct in_ctx *c, const struct ent *e, struct smm_result *r)
{
    GMimeContentType *ct;
    const char *outer;
    int hp;

    if (e->subject == NULL || e->ctype == NULL ||
        (ct = g_mime_content_type_parse(NULL, e->ctype)) == NULL)
        return SMM_OK;
    hp = g_mime_content_type_get_parameter(ct, "hp") != NULL ||
         g_mime_content_type_get_parameter(ct, "protected-headers") != NULL;
    g_object_unref(ct);
    if (!hp)
        return SMM_OK;
    outer = smm_message_header(c->m, "Subject", 0);
    if (outer != NULL && strcmp(outer + strspn(outer, " \t"), e->subject) == 0)
        return SMM_OK;
    return smm_result_edit(r, outer != NULL ? SMM_EDIT_CHANGE : SMM_EDIT_ADD,
                           "Subject", outer != NULL ? 1 : 0, e->subject);
}

/* Replace the message's Content-* fields and body by entity sp. */
static smm_status
apply_replacement(struct in_ctx *c, struct smm_spool *sp, struct smm_result *r,
                  struct smm_err *err)
{
    struct ent e;
    const char **hdrs = NULL;
    size_t i, n = 0;
    int have_ct = 0;
    smm_status st;
    struct smm_spool *body = NULL;

    if ((st = ent_of_spool(sp, &e, err)) != SMM_OK)
        return st;
    if ((hdrs = calloc(e.nhdrs * 2 + 3, sizeof(*hdrs))) == NULL) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    /* Content-Type first (RFC 2045 default when the entity has none) */
    hdrs[n++] = "Content-Type";
    hdrs[n++] = e.ctype != NULL ? e.ctype : "text/plain; charset=us-ascii";
    for (i = 0; i < e.nhdrs; i++) {
        if (strcasecmp(e.hdrs[i].name, "Content-Type") == 0 && !have_ct) {
            have_ct = 1;
            continue;
        }
        hdrs[n++] = e.hdrs[i].name;
        hdrs[n++] = e.hdrs[i].value;
    }
    hdrs[n] = NULL;
    if (smm_result_content_headers(r, c->m, hdrs) != SMM_OK ||
        protected_subject(c, &e, r) != SMM_OK) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    /* the body: a copy of the region, owned by the result */
    if ((st = smm_spool_new(c->mem, c->s->cfg->temp_dir, &body, err)) != SMM_OK)
        goto out;
    {
        char buf[65536];
        size_t done = 0;
        ssize_t rd;
        while (done < e.len) {
            rd = smm_spool_pread(sp, buf,
                                 e.len - done < sizeof(buf) ? e.len - done
                                                            : sizeof(buf),
                                 e.off + done);
            if (rd <= 0) {
                st = smm_err_set(err, SMM_EIO, "reading decrypted content");
                goto out;
            }
            if ((st = smm_spool_write(body, buf, (size_t)rd, err)) != SMM_OK)
                goto out;
            done += (size_t)rd;
        }
    }
    if ((st = smm_spool_finish(body, err)) != SMM_OK)
        goto out;
    smm_spool_free(r->body);
    r->body = body;
    body = NULL;
out:
    smm_spool_free(body);
    free(hdrs);
    ent_free(&e);
    return st;
}

/* Harvest the certificates of good signatures from the From address. */
static void
harvest(struct in_ctx *c, struct smm_buf *log)
{
    struct smm_err e;
    char esc[320];
    int i;

    if (!c->s->cfg->harvest || c->s->cfg->harvest_store[0] == '\0' ||
        c->from == NULL)
        return;
    /* our own users' certificates are known already */
    if (smm_keystore_signer(c->s->ks, c->from, c->o->now, 0) != NULL ||
        smm_keystore_encryption(c->s->ks, c->from, c->o->now) != NULL)
        return;
    for (i = 0; i < c->nlayers; i++) {
        const struct smm_sig *sg = &c->layers[i].sig;
        X509 *x;
        int changed;
        if (sg->result != SMM_SIG_PASS || sg->signer == NULL)
            continue;
        x = sg->enc_cert != NULL ? sg->enc_cert : sg->signer;
        changed = smm_harvest_store(c->s, c->from, x, sg->certs, sg->caps,
                                    c->o->now, &e);
        if (changed < 0)
            smm_buf_printf(log, " harvest_error=\"%s\"",
                           smm_log_escape(esc, sizeof(esc), e.msg));
        else if (changed > 0)
            smm_buf_printf(log, " harvested=%s",
                           smm_log_escape(esc, sizeof(esc), c->from));
        break;
    }
}

/*
 * Is the message itself encrypted: application/pkcs7-mime (or a *.p7m)
 * whose content really is CMS EnvelopedData or AuthEnvelopedData?  The
 * label alone proves nothing; outbound policy relies on the answer.
 */
int
smm_inbound_is_encrypted(const struct smm_message *m)
{
    struct ent top = {0};
    struct ctinfo ci;
    struct smm_err err;
    unsigned char *der = NULL;
    size_t derlen = 0;
    enum smm_cms_kind kind = SMM_CMS_OTHER;
    CMS_ContentInfo *cms;

    top.sp = m->body;
    top.len = smm_spool_len(m->body);
    top.ctype = (char *)smm_message_header(m, "Content-Type", 0);
    top.cte = (char *)smm_message_header(m, "Content-Transfer-Encoding", 0);
    top.cdisp = (char *)smm_message_header(m, "Content-Disposition", 0);
    classify(&top, &ci);
    if (ci.kind != K_PKCS7 || decode_body(&top, &der, &derlen, &err) != SMM_OK)
        return 0;
    if ((cms = smm_cms_parse(der, derlen, &kind, &err)) == NULL)
        kind = SMM_CMS_OTHER;
    CMS_ContentInfo_free(cms);
    free(der);
    return kind == SMM_CMS_ENVELOPED || kind == SMM_CMS_AUTH_ENVELOPED;
}

smm_status
smm_inbound_run(const struct smm_state *s, struct smm_message *m,
                const struct smm_run_opts *o, struct smm_result *r, char *stamp,
                size_t stampsz, struct smm_err *err)
{
    struct in_ctx c;
    struct ent top = {0};
    struct smm_spool *repl = NULL;
    char idbuf[256], esc[300];
    const char *id = smm_authserv_id(s->cfg, idbuf, sizeof(idbuf));
    struct smm_buf ar = {0}, verified = {0};
    smm_status st;
    size_t i;
    int j;

    memset(&c, 0, sizeof(c));
    c.s = s;
    c.m = m;
    c.o = o;
    c.mem = smm_spool_spilled(m->body) ? 0 : s->cfg->max_memory_body;
    if (smm_ar_strip_ours(r, m, id) != SMM_OK)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    if (m->oversize) {
        r->verdict = "skipped";
        smm_buf_printf(&r->log, " reason=too-large size=%zu", m->body_len);
        snprintf(stamp, stampsz, "decrypted=no (too-large); verified=none");
        return SMM_OK;
    }
    c.from = smm_message_from_address(m);
    c.from_why = smm_message_from_problem(m);
    top.sp = m->body;
    top.off = 0;
    top.len = smm_spool_len(m->body);
    top.ctype = (char *)smm_message_header(m, "Content-Type", 0);
    top.cte = (char *)smm_message_header(m, "Content-Transfer-Encoding", 0);
    top.cdisp = (char *)smm_message_header(m, "Content-Disposition", 0);
    st = walk(&c, &top, 1, "", 0, &repl, err);
    if (st != SMM_OK)
        goto out;
    if (repl != NULL && (st = apply_replacement(&c, repl, r, err)) != SMM_OK)
        goto out;
    if (c.exceeded) { /* not everything could be looked at */
        layer_error(&c, NULL, SMM_SIG_PERMERROR,
                    "MIME structure beyond MaxMimeDepth or MaxMimeParts");
        smm_buf_printf(&r->log, " limits=exceeded");
    }

    /* Authentication-Results at the top, outermost layer first */
    if (c.nlayers == 0 && !c.unreadable && s->cfg->verify) {
        smm_buf_printf(&ar, "%s; smime=none", id);
        if (ar.data == NULL ||
            smm_result_edit(r, SMM_EDIT_INSERT, "Authentication-Results", 0,
                            ar.data) != SMM_OK) {
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (j = c.nlayers - 1; j >= 0; j--) {
        if (ar_value(&c, id, &c.layers[j], &ar) != SMM_OK ||
            smm_result_edit(r, SMM_EDIT_INSERT, "Authentication-Results", 0,
                            ar.data) != SMM_OK) {
            st = smm_err_set(err, SMM_ENOMEM, "out of memory");
            goto out;
        }
    }
    harvest(&c, &r->log);

    /* the log line and the stamp */
    if (c.dec_key != NULL) {
        const char *who =
            c.dec_key->addrs.n > 0 ? c.dec_key->addrs.v[0] : c.dec_key->serial;
        smm_buf_printf(&r->log, " decrypted=%s key=%s cipher=%s",
                       smm_log_escape(esc, sizeof(esc), who), c.dec_key->serial,
                       c.cipher);
        if (c.reencoded)
            smm_buf_puts(&r->log, " reencoded=7bit");
        snprintf(stamp, stampsz, "decrypted=%s (%s)", esc, c.cipher);
    } else {
        const char *why = c.dec_no != NULL ? c.dec_no : "not-encrypted";
        smm_buf_printf(&r->log, " decrypted=no reason=%s", why);
        if (c.dec_error[0] != '\0')
            smm_buf_printf(&r->log, " error=\"%s\"",
                           smm_log_escape(esc, sizeof(esc), c.dec_error));
        snprintf(stamp, stampsz, "decrypted=no (%s)", why);
    }
    for (j = 0; j < c.nlayers; j++) {
        const struct smm_sig *sg = &c.layers[j].sig;
        char *addr =
            sg->signer != NULL ? signer_address(sg->signer, c.from) : NULL;
        char *serial =
            sg->signer != NULL ? smm_x509_serial_hex(sg->signer) : NULL;
        smm_buf_printf(&verified, "%s%s", j ? "," : "",
                       smm_sig_result_name(sg->result));
        smm_buf_printf(&r->log, " sig%d=%s", j + 1,
                       smm_sig_result_name(sg->result));
        if (addr != NULL)
            smm_buf_printf(&r->log, " signer%d=%s", j + 1,
                           smm_log_escape(esc, sizeof(esc), addr));
        if (serial != NULL)
            smm_buf_printf(&r->log, " serial%d=%s", j + 1, serial);
        if (sg->signing_time != 0) {
            struct tm tm;
            char when[32];
            gmtime_r(&sg->signing_time, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            smm_buf_printf(&r->log, " signed%d=%s", j + 1, when);
        }
        if (sg->result != SMM_SIG_PASS)
            smm_buf_printf(&r->log, " why%d=\"%s\"", j + 1,
                           smm_log_escape(esc, sizeof(esc), sg->reason));
        if (c.layers[j].part[0] != '\0')
            smm_buf_printf(&r->log, " part%d=%s", j + 1, c.layers[j].part);
        free(addr);
        free(serial);
    }
    i = strlen(stamp);
    snprintf(stamp + i, stampsz - i, "; verified=%s",
             verified.data != NULL ? verified.data : "none");
    r->verdict = c.dec_key != NULL
                     ? (c.nlayers > 0 ? "decrypted+verified" : "decrypted")
                     : (c.nlayers > 0 ? "verified" : "passed");
out:
    for (i = 0; i < c.nowned; i++)
        smm_spool_free(c.owned[i]);
    free(c.owned);
    for (j = 0; j < c.nlayers; j++)
        smm_sig_clear(&c.layers[j].sig);
    sk_X509_pop_free(c.sender_certs, X509_free);
    smm_buf_free(&ar);
    smm_buf_free(&verified);
    free(c.from);
    return st;
}
