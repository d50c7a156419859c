/*
 * smm_pipeline -- end-of-message processing; see smm_pipeline.h.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <openssl/evp.h>

#include "smm_certblob.h"
#include "smm_b64.h"
#include "smm_cms.h"
#include "smm_inbound.h"
#include "smm_log.h"
#include "smm_mime.h"
#include "smm_resolver.h"
#include "smm_pipeline.h"
#include "smm_policy.h"
#include "smm_x509.h"

/*
 * The address in the From field (the first mailbox), or the envelope
 * sender when there is no usable From.  A new string, or NULL.
 */
char *
smm_message_from_address(const struct smm_message *m)
{
    const char *v = smm_message_header(m, "From", 0);
    InternetAddressList *l;
    InternetAddress *a;
    const char *addr = NULL;
    char *out = NULL;
    int i;

    if (v != NULL && (l = internet_address_list_parse(NULL, v)) != NULL) {
        for (i = 0; addr == NULL && i < internet_address_list_length(l); i++) {
            a = internet_address_list_get_address(l, i);
            if (INTERNET_ADDRESS_IS_MAILBOX(a))
                addr = internet_address_mailbox_get_addr(
                    INTERNET_ADDRESS_MAILBOX(a));
        }
        if (addr != NULL && strchr(addr, '@') != NULL)
            out = strdup(addr);
        g_object_unref(l);
    }
    if (out == NULL && m->env_from != NULL && *m->env_from != '\0')
        out = strdup(m->env_from);
    return out;
}

/*
 * Why the From field names no single author, or NULL: a second From
 * field (RFC 5322 allows one), or more than one mailbox in it.  A mail
 * reader may show another address than the one a signature was checked
 * against.
 */
const char *
smm_message_from_problem(const struct smm_message *m)
{
    const char *v = smm_message_header(m, "From", 0);
    InternetAddressList *l;
    InternetAddress *a;
    int i, n = 0;

    if (v == NULL)
        return NULL;
    if (smm_message_header(m, "From", 1) != NULL)
        return "more than one From field";
    if ((l = internet_address_list_parse(NULL, v)) == NULL)
        return NULL;
    for (i = 0; i < internet_address_list_length(l); i++) {
        a = internet_address_list_get_address(l, i);
        n += INTERNET_ADDRESS_IS_MAILBOX(a)
                 ? 1
                 : 2; /* a group: any number of mailboxes */
    }
    g_object_unref(l);
    return n > 1 ? "more than one From address" : NULL;
}

static smm_status stamp(const struct smm_state *s, struct smm_result *r,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static smm_status
stamp(const struct smm_state *s, struct smm_result *r, const char *fmt, ...)
{
    va_list ap;
    char buf[512];

    if (!s->cfg->stamp_header)
        return SMM_OK;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return smm_result_edit(r, SMM_EDIT_ADD, SMM_STAMP_HEADER, 0, buf);
}

/*
 * Base64 with CRLF every 76 characters, written as the bytes come (any
 * number of b64_write calls, then b64_end) into a spool.
 */
struct b64 {
    struct smm_spool *o;
    unsigned char in[57]; /* an incomplete line of input */
    size_t inlen;
    unsigned char out[79 * 208]; /* whole lines waiting to be written */
    size_t outlen;
};

static smm_status
b64_line(struct b64 *b, const unsigned char *p, size_t n, struct smm_err *err)
{
    smm_status st;

    if (b->outlen + 80 > sizeof(b->out)) {
        if ((st = smm_spool_write(b->o, b->out, b->outlen, err)) != SMM_OK)
            return st;
        b->outlen = 0;
    }
    b->outlen += smm_b64_encode((char *)b->out + b->outlen, p, n);
    b->out[b->outlen++] = '\r';
    b->out[b->outlen++] = '\n';
    return SMM_OK;
}

static smm_status
b64_write(struct b64 *b, const void *data, size_t len, struct smm_err *err)
{
    const unsigned char *p = data;
    size_t take;
    smm_status st;

    if (b->inlen > 0) {
        take = sizeof(b->in) - b->inlen < len ? sizeof(b->in) - b->inlen : len;
        memcpy(b->in + b->inlen, p, take);
        b->inlen += take;
        p += take;
        len -= take;
        if (b->inlen < sizeof(b->in))
            return SMM_OK;
        if ((st = b64_line(b, b->in, b->inlen, err)) != SMM_OK)
            return st;
        b->inlen = 0;
    }
    for (; len >= sizeof(b->in); p += sizeof(b->in), len -= sizeof(b->in))
        if ((st = b64_line(b, p, sizeof(b->in), err)) != SMM_OK)
            return st;
    memcpy(b->in, p, len);
    b->inlen = len;
    return SMM_OK;
}

static smm_status
b64_end(struct b64 *b, struct smm_err *err)
{
    smm_status st;

    if (b->inlen > 0 && (st = b64_line(b, b->in, b->inlen, err)) != SMM_OK)
        return st;
    b->inlen = 0;
    st = smm_spool_write(b->o, b->out, b->outlen, err);
    b->outlen = 0;
    return st;
}

static smm_status
put_base64(struct smm_spool *o, const unsigned char *der, size_t len,
           struct smm_err *err)
{
    struct b64 *b;
    smm_status st;

    if ((b = malloc(sizeof(*b))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    b->o = o;
    b->inlen = b->outlen = 0;
    if ((st = b64_write(b, der, len, err)) == SMM_OK)
        st = b64_end(b, err);
    free(b);
    return st;
}

static smm_status
spool_puts(struct smm_spool *o, const char *s, struct smm_err *err)
{
    return smm_spool_write(o, s, strlen(s), err);
}

/*
 * Sign the canonical entity with key k; *outp gets the multipart/signed
 * body and ctype its Content-Type value.  The entity is read once: its
 * digest is made as it is copied into the first part.
 */
static smm_status
sign_entity(const struct smm_state *s, struct smm_spool *canon, size_t mem,
            const struct smm_key *k, const struct smm_key *enc,
            const struct smm_run_opts *o, struct smm_spool **outp, char *ctype,
            size_t ctypesz, struct smm_err *err)
{
    struct smm_spool *out = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    char boundary[64];
    smm_status st;

    if ((md = smm_cms_digest_new(err)) == NULL) {
        st = err->status;
        goto out;
    }
    smm_mime_boundary(boundary, sizeof(boundary));
    if ((st = smm_spool_new(mem, s->cfg->temp_dir, &out, err)) != SMM_OK)
        goto out;
    if ((st = spool_puts(out,
                         "This is a cryptographically signed message "
                         "in MIME format.\r\n\r\n--",
                         err)) != SMM_OK ||
        (st = spool_puts(out, boundary, err)) != SMM_OK ||
        (st = spool_puts(out, "\r\n", err)) != SMM_OK ||
        (st = smm_spool_copy(out, canon, md, err)) != SMM_OK ||
        (st = smm_cms_sign(k, enc, md, o->signing_time, &der, &derlen, err)) !=
            SMM_OK ||
        (st = spool_puts(out, "\r\n--", err)) != SMM_OK ||
        (st = spool_puts(out, boundary, err)) != SMM_OK ||
        (st = spool_puts(out,
                         "\r\nContent-Type: application/pkcs7-signature; "
                         "name=\"smime.p7s\"\r\n"
                         "Content-Transfer-Encoding: base64\r\n"
                         "Content-Disposition: attachment; "
                         "filename=\"smime.p7s\"\r\n"
                         "Content-Description: S/MIME Cryptographic "
                         "Signature\r\n\r\n",
                         err)) != SMM_OK ||
        (st = put_base64(out, der, derlen, err)) != SMM_OK ||
        (st = spool_puts(out, "\r\n--", err)) != SMM_OK ||
        (st = spool_puts(out, boundary, err)) != SMM_OK ||
        (st = spool_puts(out, "--\r\n", err)) != SMM_OK)
        goto out;
    snprintf(ctype, ctypesz,
             "multipart/signed; protocol=\"application/pkcs7-signature\"; "
             "micalg=sha-256; boundary=\"%s\"",
             boundary);
    *outp = out;
    out = NULL;
out:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    smm_spool_free(out);
    return st;
}

/* What to do about encryption, decided from every recipient's policy and
 * certificates. */
struct plan {
    enum { PLAN_ENCRYPT, PLAN_PLAIN, PLAN_MISSING, PLAN_DIRFAIL } what;
    const char *why;         /* PLAN_PLAIN: the stamp's reason */
    char addr[320];          /* PLAN_MISSING / PLAN_DIRFAIL: who */
    char reason[256];        /* PLAN_MISSING: why no certificate */
    STACK_OF(X509) * recips; /* PLAN_ENCRYPT: recipients' certificates */
    int nrcpt_enc;           /* envelope recipients encrypted to */
    unsigned caps;           /* capabilities every recipient published */
    struct smm_buf fps;      /* "addr:fingerprint" for the log */
};

static void
plan_free(struct plan *p)
{
    sk_X509_pop_free(p->recips, X509_free);
    smm_buf_free(&p->fps);
}

static void
add_fps(struct plan *p, const char *addr, STACK_OF(X509) * certs)
{
    int i;
    char *fp, esc[320];

    smm_log_escape(esc, sizeof(esc), addr);
    for (i = 0; i < sk_X509_num(certs); i++) {
        fp = smm_x509_fingerprint(sk_X509_value(certs, i));
        smm_buf_printf(&p->fps, "%s%s:%.8s", p->fps.len ? "," : "", esc,
                       fp != NULL ? fp : "?");
        free(fp);
    }
}

static smm_status
make_plan(const struct smm_state *s, const struct smm_message *m, int trigger,
          time_t now, struct plan *p)
{
    struct smm_lookup l;
    struct smm_err e;
    size_t i;
    int pol, mandatory = 0, never = 0, lacking = 0, dirfail = 0, j;
    smm_status st;

    memset(p, 0, sizeof(*p));
    p->caps = ~0U;
    if ((p->recips = sk_X509_new_null()) == NULL)
        return SMM_ENOMEM;
    for (i = 0; i < m->nrcpts; i++) {
        pol = trigger ? SMM_POLICY_MANDATORY
                      : smm_policymap_lookup(s->policymap, m->rcpts[i],
                                             s->cfg->encryption_policy);
        mandatory |= pol == SMM_POLICY_MANDATORY;
        never |= pol == SMM_POLICY_NEVER;
    }
    if (!mandatory && (never || m->nrcpts == 0)) {
        p->what = PLAN_PLAIN;
        p->why = "policy-never";
        return SMM_OK;
    }
    for (i = 0; i < m->nrcpts; i++) {
        st = smm_resolve(s, m->rcpts[i], now, 0, &l, &e);
        if (st == SMM_ENOMEM)
            return st;
        if (st != SMM_OK) {
            if (!dirfail++)
                snprintf(p->addr, sizeof(p->addr), "%s", m->rcpts[i]);
        } else if (sk_X509_num(l.usable) == 0) {
            if (!lacking++ && !(dirfail && mandatory)) {
                snprintf(p->addr, sizeof(p->addr), "%s", m->rcpts[i]);
                snprintf(p->reason, sizeof(p->reason), "%s",
                         l.n > 0 && l.c[0].refused != NULL
                             ? l.c[0].refused
                             : "no certificate found");
            }
        } else {
            p->nrcpt_enc++;
            p->caps &= l.caps;
            add_fps(p, m->rcpts[i], l.usable);
            for (j = 0; j < sk_X509_num(l.usable); j++) {
                X509 *x = sk_X509_value(l.usable, j);
                if (X509_up_ref(x) && !sk_X509_push(p->recips, x))
                    X509_free(x);
            }
        }
        smm_lookup_free(&l);
    }
    if (dirfail && (mandatory ||
                    s->cfg->directory_failure_action == SMM_DIRFAIL_TEMPFAIL)) {
        p->what = PLAN_DIRFAIL;
        return SMM_OK;
    }
    if (dirfail || lacking) {
        if (mandatory) {
            if (!lacking) { /* directory failure with "continue" */
                snprintf(p->reason, sizeof(p->reason), "directory unavailable");
            }
            p->what = PLAN_MISSING;
        } else {
            p->what = PLAN_PLAIN;
            p->why = "missing-certificate";
        }
        return SMM_OK;
    }
    p->what = PLAN_ENCRYPT;
    return SMM_OK;
}

/* The Subject without the trigger tag (and the blank before it). */
static char *
strip_tag(const char *subj, const char *tag)
{
    const char *at = strstr(subj, tag);
    size_t pre, tl = strlen(tag);
    char *out;

    if (at == NULL || (out = malloc(strlen(subj) + 1)) == NULL)
        return NULL;
    pre = (size_t)(at - subj);
    memcpy(out, subj, pre);
    at += tl;
    if (pre > 0 && out[pre - 1] == ' ' && (*at == ' ' || *at == '\0'))
        pre--;
    else if (pre == 0 && *at == ' ')
        at++;
    strcpy(out + pre, at);
    return out;
}

static smm_status
refuse_missing(const struct smm_state *s, struct smm_result *r,
               const struct plan *p)
{
    char esc[400], rsn[300];

    smm_log_escape(esc, sizeof(esc), p->addr);
    smm_log_escape(rsn, sizeof(rsn), p->reason);
    smm_buf_printf(&r->log,
                   " encrypted=no reason=missing-certificate "
                   "rcpt=<%s> why=\"%s\"",
                   esc, rsn);
    switch (s->cfg->missing_cert_action) {
    case SMM_MISSING_TEMPFAIL:
        r->verdict = "tempfail";
        return smm_result_refuse(r, SMM_ACT_TEMPFAIL, "451", "4.7.1",
                                 "no valid S/MIME certificate for %s: %s", esc,
                                 rsn);
    case SMM_MISSING_HOLD:
        r->verdict = "hold";
        r->action = SMM_ACT_HOLD;
        free(r->hold_reason);
        if (asprintf(&r->hold_reason,
                     "smime-milter: no valid S/MIME certificate for %s: %s",
                     esc, rsn) < 0)
            r->hold_reason = NULL;
        return SMM_OK;
    default:
        r->verdict = "reject";
        return smm_result_refuse(r, SMM_ACT_REJECT, "550", "5.7.1",
                                 "no valid S/MIME certificate for %s: %s", esc,
                                 rsn);
    }
}

/* (the cipher BIO has no puts) */
static int
bio_puts(BIO *b, const char *str)
{
    int n = (int)strlen(str);

    return BIO_write(b, str, n) == n ? 0 : -1;
}

/* Write all of a spool to a BIO. */
static smm_status
spool_to_bio(struct smm_spool *sp, BIO *b, struct smm_err *err)
{
    char buf[16384];
    size_t off = 0;
    ssize_t n;

    while ((n = smm_spool_pread(sp, buf, sizeof(buf), off)) > 0) {
        if (BIO_write(b, buf, (int)n) != (int)n)
            return smm_err_ossl(err, SMM_ECRYPTO, "encrypting");
        off += (size_t)n;
    }
    if (n < 0)
        return smm_err_set(err, SMM_EIO, "read temp file: %s", strerror(errno));
    return SMM_OK;
}

/* Base64 of head || all of a spool || tail, appended to o. */
static smm_status
put_base64_parts(struct smm_spool *o, const unsigned char *head, size_t headlen,
                 struct smm_spool *mid, const unsigned char *tail,
                 size_t taillen, struct smm_err *err)
{
    struct b64 *b;
    unsigned char buf[16384];
    size_t off = 0;
    ssize_t n = 0;
    smm_status st;

    if ((b = malloc(sizeof(*b))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    b->o = o;
    b->inlen = b->outlen = 0;
    st = b64_write(b, head, headlen, err);
    while (st == SMM_OK &&
           (n = smm_spool_pread(mid, buf, sizeof(buf), off)) > 0) {
        st = b64_write(b, buf, (size_t)n, err);
        off += (size_t)n;
    }
    if (st == SMM_OK && n < 0)
        st = smm_err_set(err, SMM_EIO, "read temp file: %s", strerror(errno));
    if (st == SMM_OK && (st = b64_write(b, tail, taillen, err)) == SMM_OK)
        st = b64_end(b, err);
    free(b);
    return st;
}

/*
 * Encrypt entity (a MIME entity: its header lines, if any, are in the
 * spool or given by ctype) into an application/pkcs7-mime body.  The
 * content streams through the cipher into a spool of ciphertext, which is
 * then base64-encoded between the DER before and after it: memory stays
 * within the spools' limits whatever the size of the message.
 */
static smm_status
encrypt_entity(const struct smm_state *s, size_t mem, int cipher,
               const char *ctype, struct smm_spool *entity,
               STACK_OF(X509) * recips, struct smm_spool **outp,
               struct smm_err *err)
{
    struct smm_spool *ctext = NULL, *out = NULL;
    struct smm_cms_enc e = {0};
    BIO *sink = NULL;
    unsigned char *head = NULL, *tail = NULL;
    size_t headlen = 0, taillen = 0;
    smm_status st;

    if ((st = smm_spool_new(mem, s->cfg->temp_dir, &ctext, err)) != SMM_OK)
        goto out;
    if ((sink = smm_spool_wbio(ctext, err)) == NULL) {
        st = err->status;
        goto out;
    }
    if ((st = smm_cms_encrypt_begin(recips, cipher, s->cfg->rsa_oaep, sink, &e,
                                    err)) != SMM_OK)
        goto out;
    if (ctype != NULL &&
        (bio_puts(e.in, "Content-Type: ") != 0 || bio_puts(e.in, ctype) != 0 ||
         bio_puts(e.in, "\r\n\r\n") != 0)) {
        st = smm_err_ossl(err, SMM_ECRYPTO, "encrypting");
        goto out;
    }
    if ((st = spool_to_bio(entity, e.in, err)) != SMM_OK ||
        (st = smm_cms_encrypt_end(&e, &head, &headlen, &tail, &taillen, err)) !=
            SMM_OK)
        goto out;
    if ((st = smm_spool_new(mem, s->cfg->temp_dir, &out, err)) != SMM_OK ||
        (st = put_base64_parts(out, head, headlen, ctext, tail, taillen,
                               err)) != SMM_OK)
        goto out;
    *outp = out;
    out = NULL;
out:
    smm_cms_encrypt_free(&e);
    BIO_free(sink);
    OPENSSL_free(head);
    OPENSSL_free(tail);
    smm_spool_free(ctext);
    smm_spool_free(out);
    return st;
}

/* multipart/encrypted (PGP/MIME) or a real S/MIME EnvelopedData */
static int
already_encrypted(const struct smm_message *m, enum smm_protection prot)
{
    const char *ct = smm_message_header(m, "Content-Type", 0);

    if (prot == SMM_PROT_PGP && ct != NULL) {
        while (*ct == ' ' || *ct == '\t' || *ct == '\r' || *ct == '\n')
            ct++;
        return strncasecmp(ct, "multipart/encrypted", 19) == 0;
    }
    return prot == SMM_PROT_SMIME_OPAQUE && smm_inbound_is_encrypted(m);
}

/*
 * The message as it is (its Content-* fields, CRLF line ends, and the body
 * untouched) as a MIME entity: what is encrypted when the client signed
 * the message itself, so that its signature still verifies inside.
 */
static smm_status
entity_as_is(const struct smm_state *s, const struct smm_message *m, size_t mem,
             struct smm_spool **outp, struct smm_err *err)
{
    struct smm_spool *o;
    const char *v;
    smm_status st;
    size_t i;

    if ((st = smm_spool_new(mem, s->cfg->temp_dir, &o, err)) != SMM_OK)
        return st;
    for (i = 0; i < m->nhdrs && st == SMM_OK; i++) {
        if (strncasecmp(m->hdrs[i].name, "Content-", 8) != 0)
            continue;
        if ((st = spool_puts(o, m->hdrs[i].name, err)) != SMM_OK ||
            (st = spool_puts(o, ": ", err)) != SMM_OK)
            break;
        for (v = m->hdrs[i].value; *v != '\0' && st == SMM_OK; v++) {
            if (*v == '\r')
                continue;
            st = *v == '\n' ? spool_puts(o, "\r\n", err)
                            : smm_spool_write(o, v, 1, err);
        }
        if (st == SMM_OK)
            st = spool_puts(o, "\r\n", err);
    }
    if (st == SMM_OK && (st = spool_puts(o, "\r\n", err)) == SMM_OK)
        st = smm_spool_copy(o, m->body, NULL, err);
    if (st != SMM_OK) {
        smm_spool_free(o);
        return st;
    }
    *outp = o;
    return SMM_OK;
}

static smm_status
run_outbound(const struct smm_state *s, struct smm_message *m,
             const struct smm_run_opts *o, struct smm_result *r,
             struct smm_err *err)
{
    enum smm_protection prot;
    const struct smm_key *k = NULL, *enc = NULL;
    char *from = NULL, *newsubj = NULL;
    char esc[256], ctype[256], stampbuf[512];
    const char *signed_why = NULL, *subj;
    struct smm_spool *canon = NULL, *signedb = NULL, *out = NULL;
    struct plan p;
    struct smm_err serr;
    smm_status st = SMM_OK;
    size_t i, mem = smm_spool_spilled(m->body) ? 0 : s->cfg->max_memory_body;
    int domain_key = 0, trigger = 0, j, cipher;

    memset(&p, 0, sizeof(p));
    if (m->oversize) {
        r->verdict = "skipped";
        smm_buf_printf(&r->log, " reason=too-large size=%zu", m->body_len);
        return stamp(s, r, "skipped=too-large");
    }
    /* Encrypted already: untouched.  Signed by the client (or only
     * labelled S/MIME): not signed again, but policy still decides whether
     * it must be encrypted -- a label never lets plaintext out. */
    if ((prot = smm_mime_protection(m)) != SMM_PROT_NONE &&
        already_encrypted(m, prot)) {
        r->verdict = "skipped";
        smm_buf_printf(&r->log, " reason=already-protected protection=%s",
                       smm_protection_name(prot));
        return stamp(s, r, "skipped=already-protected");
    }
    from = smm_message_from_address(m);

    /* the signing key, unless this client may not sign as From */
    if (from != NULL && s->cfg->require_from_match &&
        strcasecmp(from, m->env_from != NULL ? m->env_from : "") != 0)
        signed_why = "from-mismatch";
    else if (from == NULL ||
             (k = smm_keystore_signer(s->ks, from, o->now,
                                      s->cfg->sign_domain_keys)) == NULL)
        signed_why = "no-signing-key";
    if (from != NULL)
        enc = smm_keystore_encryption(s->ks, from, o->now);

    /* a subject tag makes the message mandatory for everyone */
    subj = smm_message_header(m, "Subject", 0);
    if (s->cfg->subject_trigger[0] != '\0' && subj != NULL &&
        strstr(subj, s->cfg->subject_trigger) != NULL) {
        trigger = 1;
        if ((newsubj = strip_tag(subj, s->cfg->subject_trigger)) == NULL ||
            smm_result_edit(r, SMM_EDIT_CHANGE, "Subject", 1, newsubj) !=
                SMM_OK) {
            st = SMM_ENOMEM;
            goto out;
        }
    }

    if ((st = make_plan(s, m, trigger, o->now, &p)) != SMM_OK)
        goto out;
    if (p.what == PLAN_DIRFAIL) {
        smm_log_escape(esc, sizeof(esc), p.addr);
        r->verdict = "tempfail";
        smm_buf_printf(&r->log, " reason=directory-failure rcpt=<%s>", esc);
        st = smm_result_refuse(r, SMM_ACT_TEMPFAIL, "451", "4.4.3",
                               "directory lookup failed for %s, try again "
                               "later",
                               esc);
        goto out;
    }
    if (p.what == PLAN_MISSING) {
        st = refuse_missing(s, r, &p);
        goto out;
    }
    /* GCM only for recipients known to read it (Outlook cannot) */
    cipher = s->cfg->cipher;
    if (cipher >= SMM_CIPHER_AES128_GCM && s->cfg->cipher_from_caps) {
        unsigned need =
            cipher == SMM_CIPHER_AES128_GCM ? SMM_CAP_GCM128 : SMM_CAP_GCM256;
        if (!(p.caps & SMM_CAP_KNOWN) || !(p.caps & need))
            cipher = SMM_CIPHER_AES256_CBC;
    }
    if (prot != SMM_PROT_NONE && p.what != PLAN_ENCRYPT) {
        r->verdict = "skipped";
        smm_buf_printf(&r->log,
                       " reason=already-protected protection=%s "
                       "encrypted=no (%s)",
                       smm_protection_name(prot), p.why);
        st = stamp(s, r, "skipped=already-protected");
        goto out;
    }
    if (prot != SMM_PROT_NONE) {
        k = NULL; /* the client's own signature stays; no second one */
        signed_why = "already-signed";
    }
    if (k == NULL && p.what != PLAN_ENCRYPT) {
        /* nothing to do to the body */
        r->verdict = "unsigned";
        smm_buf_printf(&r->log, " from_hdr=<%s> reason=%s encrypted=no (%s)",
                       smm_log_escape(esc, sizeof(esc), from), signed_why,
                       p.why);
        st =
            stamp(s, r, "signed=no (%s); encrypted=no (%s)", signed_why, p.why);
        goto out;
    }

    if (prot != SMM_PROT_NONE) {
        if ((st = entity_as_is(s, m, mem, &canon, &serr)) != SMM_OK)
            goto fail;
    } else if ((st = smm_spool_new(mem, s->cfg->temp_dir, &canon, &serr)) !=
                   SMM_OK ||
               (st = smm_mime_canonical_entity(m, s->cfg->max_mime_depth,
                                               s->cfg->max_mime_parts, canon,
                                               &serr)) != SMM_OK)
        goto fail;
    if (k != NULL && (st = sign_entity(s, canon, mem, k, enc, o, &signedb,
                                       ctype, sizeof(ctype), &serr)) != SMM_OK)
        goto fail;
    if (p.what == PLAN_ENCRYPT) {
        const char *smime_type = cipher >= SMM_CIPHER_AES128_GCM
                                     ? "authEnveloped-data"
                                     : "enveloped-data";
        char ect[160];
        const char *hdrs[] = {"Content-Type",
                              ect,
                              "Content-Transfer-Encoding",
                              "base64",
                              "Content-Disposition",
                              "attachment; filename=\"smime.p7m\"",
                              "Content-Description",
                              "S/MIME Encrypted Message",
                              NULL};
        if (s->cfg->encrypt_to_self && enc != NULL && X509_up_ref(enc->cert) &&
            !sk_X509_push(p.recips, enc->cert))
            X509_free(enc->cert);
        for (j = 0; j < sk_X509_num(s->archive); j++) {
            X509 *x = sk_X509_value(s->archive, j);
            if (X509_up_ref(x) && !sk_X509_push(p.recips, x))
                X509_free(x);
        }
        if ((st = encrypt_entity(s, mem, cipher, k != NULL ? ctype : NULL,
                                 k != NULL ? signedb : canon, p.recips, &out,
                                 &serr)) != SMM_OK)
            goto fail;
        snprintf(ect, sizeof(ect),
                 "application/pkcs7-mime; smime-type=%s; name=\"smime.p7m\"",
                 smime_type);
        if (smm_result_content_headers(r, m, hdrs) != SMM_OK) {
            st = SMM_ENOMEM;
            goto out;
        }
    } else {
        const char *hdrs[] = {"Content-Type", ctype, NULL};
        out = signedb;
        signedb = NULL;
        if (smm_result_content_headers(r, m, hdrs) != SMM_OK) {
            st = SMM_ENOMEM;
            goto out;
        }
    }
    /* a write error in the last buffered piece shows here, not when the
     * MTA is sent the body */
    if ((st = smm_spool_finish(out, &serr)) != SMM_OK)
        goto fail;
    r->body = out;
    out = NULL;

    /* stamp and log */
    if (k != NULL) {
        domain_key = 1;
        for (i = 0; i < k->addrs.n; i++)
            if (smm_addr_equal(k->addrs.v[i], from))
                domain_key = 0;
        smm_buf_printf(&r->log, " signer=%s serial=%s key=%s",
                       smm_log_escape(esc, sizeof(esc), from), k->serial,
                       domain_key ? "domain" : "user");
        if (enc != NULL && enc != k)
            smm_buf_printf(&r->log, " enc_pref=%s", enc->serial);
        snprintf(stampbuf, sizeof(stampbuf), "signed=%s%s", esc,
                 domain_key ? " (domain key)" : "");
    } else {
        smm_buf_printf(&r->log, " signed=no reason=%s", signed_why);
        snprintf(stampbuf, sizeof(stampbuf), "signed=no (%s)", signed_why);
    }
    if (p.what == PLAN_ENCRYPT) {
        r->verdict = k != NULL ? "signed+encrypted" : "encrypted";
        smm_buf_printf(&r->log, " encrypted=%d/%zu cipher=%s certs=%s%s",
                       p.nrcpt_enc, m->nrcpts, smm_cipher_name(cipher),
                       p.fps.data, trigger ? " trigger=subject" : "");
        st = stamp(s, r, "%s; encrypted=%d/%zu; cipher=%s", stampbuf,
                   p.nrcpt_enc, m->nrcpts, smm_cipher_name(cipher));
    } else {
        r->verdict = "signed";
        smm_buf_printf(&r->log, " encrypted=no (%s)", p.why);
        st = stamp(s, r, "%s; encrypted=no (%s)", stampbuf, p.why);
    }
    goto out;
fail:
    if (st == SMM_EPARSE && p.what != PLAN_ENCRYPT) {
        /* never lose mail for a parse problem: send it as it is */
        smm_result_free(r);
        r->action = SMM_ACT_DELIVER;
        (void)smm_result_delete_all(r, m, SMM_STAMP_HEADER);
        r->verdict = "unsigned";
        smm_buf_printf(&r->log, " reason=unparseable error=\"%s\"",
                       smm_log_escape(esc, sizeof(esc), serr.msg));
        st = stamp(s, r, "signed=no (unparseable); encrypted=no (unparseable)");
        goto out;
    }
    smm_result_free(r);
    /* a structure that cannot be parsed never will be: refused for good */
    r->verdict = st == SMM_EPARSE ? "reject" : "tempfail";
    smm_buf_printf(&r->log, " reason=%s error=\"%s\"",
                   st == SMM_EPARSE ? "unparseable" : "crypto-or-io",
                   smm_log_escape(esc, sizeof(esc), serr.msg));
    if (st == SMM_EPARSE) /* must be encrypted but cannot be parsed */
        st = smm_result_refuse(r, SMM_ACT_REJECT, "550", "5.6.0",
                               "message must be encrypted but its MIME "
                               "structure cannot be parsed");
    else
        st = smm_result_refuse(r, SMM_ACT_TEMPFAIL, "451", "4.7.0",
                               "S/MIME processing failed temporarily, try "
                               "again later");
out:
    plan_free(&p);
    smm_spool_free(canon);
    smm_spool_free(signedb);
    smm_spool_free(out);
    free(newsubj);
    free(from);
    return st;
}

/*
 * Which transaction a recipient belongs in when SplitRecipients is on:
 * with encryption or without.  Mandatory recipients always count as
 * "encrypt" (without a certificate they are refused at the end anyway).
 */
enum smm_rcpt_class
smm_rcpt_classify(const struct smm_state *s, const char *addr, time_t now)
{
    struct smm_lookup l;
    struct smm_err e;
    enum smm_rcpt_class c;
    int pol =
        smm_policymap_lookup(s->policymap, addr, s->cfg->encryption_policy);

    if (pol == SMM_POLICY_NEVER)
        return SMM_RCPT_PLAIN;
    if (pol == SMM_POLICY_MANDATORY)
        return SMM_RCPT_ENCRYPT;
    if (smm_resolve(s, addr, now, 0, &l, &e) != SMM_OK)
        return SMM_RCPT_UNKNOWN;
    c = sk_X509_num(l.usable) > 0 ? SMM_RCPT_ENCRYPT : SMM_RCPT_PLAIN;
    smm_lookup_free(&l);
    return c;
}

smm_status
smm_pipeline_run(const struct smm_state *s, struct smm_message *m,
                 enum smm_direction dir, const struct smm_run_opts *opts,
                 struct smm_result *r, struct smm_err *err)
{
    struct smm_run_opts o = {0};
    smm_status st;

    if (opts != NULL)
        o = *opts;
    if (o.now == 0)
        o.now = time(NULL);
    memset(r, 0, sizeof(*r));
    r->action = SMM_ACT_DELIVER;
    smm_ossl_clear();
    /* the last piece of a body in a temp file may still be buffered */
    if ((st = smm_spool_finish(m->body, err)) != SMM_OK)
        return st;
    /* a stamp that did not come from us is a forgery, whatever the way */
    if ((st = smm_result_delete_all(r, m, SMM_STAMP_HEADER)) != SMM_OK)
        return smm_err_set(err, st, "out of memory");
    if (dir == SMM_DIR_OUTBOUND) {
        char idbuf[256];
        st = run_outbound(s, m, &o, r, err);
        /* whatever the verdict, when the message goes: a Bcc field never
         * leaves (Postfix drops it before milters; other MTAs and
         * smime-milter-ctl may not), and an Authentication-Results field
         * claiming our authserv-id is a forgery here too */
        if (st == SMM_OK &&
            (r->action == SMM_ACT_DELIVER || r->action == SMM_ACT_HOLD) &&
            ((st = smm_result_delete_all(r, m, "Bcc")) != SMM_OK ||
             (st = smm_ar_strip_ours(
                  r, m, smm_authserv_id(s->cfg, idbuf, sizeof(idbuf)))) !=
                 SMM_OK))
            return smm_err_set(err, st, "out of memory");
    } else {
        char text[512];
        st = smm_inbound_run(s, m, &o, r, text, sizeof(text), err);
        if (st == SMM_OK)
            st = stamp(s, r, "%s", text);
        else if (st != SMM_ENOMEM) {
            /* transient trouble: the MTA retries; nothing is lost */
            char esc[300];
            smm_result_free(r);
            r->verdict = "tempfail";
            smm_buf_printf(&r->log, " reason=crypto-or-io error=\"%s\"",
                           smm_log_escape(esc, sizeof(esc), err->msg));
            st = smm_result_refuse(r, SMM_ACT_TEMPFAIL, "451", "4.7.0",
                                   "S/MIME processing failed temporarily, "
                                   "try again later");
        }
    }
    smm_ossl_clear();
    if (st == SMM_ENOMEM)
        return smm_err_set(err, st, "out of memory");
    return st;
}
