/*
 * smm_pipeline -- end-of-message processing; see smm_pipeline.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <openssl/evp.h>

#include "smm_cms.h"
#include "smm_log.h"
#include "smm_mime.h"
#include "smm_pipeline.h"
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

/* Delete every field called name (last first, so indexes stay valid). */
static smm_status
delete_all(struct smm_result *r, const struct smm_message *m, const char *name)
{
    size_t i;
    int count = 0;

    for (i = 0; i < m->nhdrs; i++)
        if (strcasecmp(m->hdrs[i].name, name) == 0)
            count++;
    for (; count > 0; count--)
        if (smm_result_edit(r, SMM_EDIT_DELETE, name, count, NULL) != SMM_OK)
            return SMM_ENOMEM;
    return SMM_OK;
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

/* Base64 with CRLF every 76 characters. */
static smm_status
put_base64(struct smm_spool *o, const unsigned char *der, size_t len,
           struct smm_err *err)
{
    unsigned char line[80];
    size_t off;
    int n;
    smm_status st;

    for (off = 0; off < len; off += 57) {
        size_t chunk = len - off < 57 ? len - off : 57;
        n = EVP_EncodeBlock(line, der + off, (int)chunk);
        line[n++] = '\r';
        line[n++] = '\n';
        if ((st = smm_spool_write(o, line, (size_t)n, err)) != SMM_OK)
            return st;
    }
    return SMM_OK;
}

static smm_status
spool_puts(struct smm_spool *o, const char *s, struct smm_err *err)
{
    return smm_spool_write(o, s, strlen(s), err);
}

/* Make the header edits that turn the message into multipart/signed. */
static smm_status
signed_header_edits(struct smm_result *r, const struct smm_message *m,
                    const char *ctype)
{
    size_t i, j;
    int count, seen_ct = 0;

    /* move every Content-* field inside: delete them outside, keeping the
     * position of the first Content-Type for the new one */
    for (i = 0; i < m->nhdrs; i++) {
        const char *name = m->hdrs[i].name;
        if (!smm_mime_is_content_header(name))
            continue;
        for (j = 0; j < i; j++)
            if (strcasecmp(m->hdrs[j].name, name) == 0)
                break;
        if (j < i)
            continue; /* this name was handled already */
        count = 0;
        for (j = 0; j < m->nhdrs; j++)
            if (strcasecmp(m->hdrs[j].name, name) == 0)
                count++;
        for (; count > 0; count--) {
            if (count == 1 && strcasecmp(name, "Content-Type") == 0) {
                seen_ct = 1;
                if (smm_result_edit(r, SMM_EDIT_CHANGE, "Content-Type", 1,
                                    ctype) != SMM_OK)
                    return SMM_ENOMEM;
            } else if (smm_result_edit(r, SMM_EDIT_DELETE, name, count, NULL) !=
                       SMM_OK) {
                return SMM_ENOMEM;
            }
        }
    }
    if (smm_message_header(m, "MIME-Version", 0) == NULL &&
        smm_result_edit(r, SMM_EDIT_ADD, "MIME-Version", 0, "1.0") != SMM_OK)
        return SMM_ENOMEM;
    if (!seen_ct &&
        smm_result_edit(r, SMM_EDIT_ADD, "Content-Type", 0, ctype) != SMM_OK)
        return SMM_ENOMEM;
    return SMM_OK;
}

/*
 * Sign m with key k: build the canonical entity, sign it, and assemble the
 * multipart/signed body in r->body.
 */
static smm_status
sign_message(const struct smm_state *s, struct smm_message *m,
             const struct smm_key *k, const struct smm_key *enc,
             const struct smm_run_opts *o, struct smm_result *r,
             struct smm_err *err)
{
    struct smm_spool *canon = NULL, *out = NULL;
    BIO *bio = NULL;
    unsigned char *der = NULL;
    size_t derlen = 0;
    char boundary[64], ctype[256];
    size_t mem = smm_spool_spilled(m->body) ? 0 : s->cfg->max_memory_body;
    smm_status st;

    if ((st = smm_spool_new(mem, s->cfg->temp_dir, &canon, err)) != SMM_OK)
        goto out;
    if ((st = smm_mime_canonical_entity(m, canon, err)) != SMM_OK)
        goto out;
    if ((bio = smm_spool_bio(canon, err)) == NULL) {
        st = err->status;
        goto out;
    }
    if ((st = smm_cms_sign(k, enc, bio, o->signing_time, &der, &derlen, err)) !=
        SMM_OK)
        goto out;
    smm_mime_boundary(boundary, sizeof(boundary));
    if ((st = smm_spool_new(mem, s->cfg->temp_dir, &out, err)) != SMM_OK)
        goto out;
    if ((st = spool_puts(out,
                         "This is a cryptographically signed message "
                         "in MIME format.\r\n\r\n--",
                         err)) != SMM_OK ||
        (st = spool_puts(out, boundary, err)) != SMM_OK ||
        (st = spool_puts(out, "\r\n", err)) != SMM_OK ||
        (st = smm_spool_copy(out, canon, err)) != SMM_OK ||
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
    snprintf(ctype, sizeof(ctype),
             "multipart/signed; protocol=\"application/pkcs7-signature\"; "
             "micalg=sha-256; boundary=\"%s\"",
             boundary);
    if (signed_header_edits(r, m, ctype) != SMM_OK) {
        st = smm_err_set(err, SMM_ENOMEM, "out of memory");
        goto out;
    }
    r->body = out;
    out = NULL;
out:
    BIO_free(bio);
    OPENSSL_free(der);
    smm_spool_free(canon);
    smm_spool_free(out);
    return st;
}

static smm_status
run_outbound(const struct smm_state *s, struct smm_message *m,
             const struct smm_run_opts *o, struct smm_result *r,
             struct smm_err *err)
{
    enum smm_protection prot;
    const struct smm_key *k, *enc;
    char *from = NULL;
    char esc[256];
    smm_status st = SMM_OK;
    struct smm_err serr;
    size_t i;
    int domain_key;

    if (m->oversize) {
        r->verdict = "skipped";
        smm_buf_printf(&r->log, " reason=too-large size=%zu", m->body_len);
        return stamp(s, r, "skipped=too-large");
    }
    if ((prot = smm_mime_protection(m)) != SMM_PROT_NONE) {
        r->verdict = "skipped";
        smm_buf_printf(&r->log, " reason=already-protected protection=%s",
                       smm_protection_name(prot));
        return stamp(s, r, "skipped=already-protected");
    }
    from = smm_message_from_address(m);
    /* not a signing oracle: a client may only get its own From signed */
    if (from != NULL && s->cfg->require_from_match &&
        strcasecmp(from, m->env_from != NULL ? m->env_from : "") != 0) {
        r->verdict = "unsigned";
        smm_buf_printf(&r->log, " from_hdr=<%s> reason=from-mismatch",
                       smm_log_escape(esc, sizeof(esc), from));
        st = stamp(s, r, "signed=no; reason=from-mismatch");
        goto out;
    }
    k = from != NULL
            ? smm_keystore_signer(s->ks, from, o->now, s->cfg->sign_domain_keys)
            : NULL;
    if (k == NULL) {
        r->verdict = "unsigned";
        smm_buf_printf(&r->log, " from_hdr=<%s> reason=no-signing-key",
                       smm_log_escape(esc, sizeof(esc), from));
        st = stamp(s, r, "signed=no; reason=no-signing-key");
        goto out;
    }
    enc = smm_keystore_encryption(s->ks, from, o->now);
    st = sign_message(s, m, k, enc, o, r, &serr);
    if (st == SMM_EPARSE) {
        /* never lose mail for a parse problem: send it unsigned */
        r->verdict = "unsigned";
        smm_buf_printf(&r->log, " reason=unparseable error=\"%s\"",
                       smm_log_escape(esc, sizeof(esc), serr.msg));
        st = stamp(s, r, "signed=no; reason=unparseable");
        goto out;
    }
    if (st != SMM_OK) {
        smm_result_free(r);
        r->verdict = "tempfail";
        smm_buf_printf(&r->log, " reason=sign-failed error=\"%s\"",
                       smm_log_escape(esc, sizeof(esc), serr.msg));
        st = smm_result_refuse(r, SMM_ACT_TEMPFAIL, "451", "4.7.0",
                               "S/MIME signing failed temporarily, try "
                               "again later");
        goto out;
    }
    domain_key = 1;
    for (i = 0; i < k->addrs.n; i++)
        if (smm_addr_equal(k->addrs.v[i], from))
            domain_key = 0;
    r->verdict = "signed";
    smm_buf_printf(&r->log, " signer=%s serial=%s key=%s",
                   smm_log_escape(esc, sizeof(esc), from), k->serial,
                   domain_key ? "domain" : "user");
    if (enc != NULL && enc != k)
        smm_buf_printf(&r->log, " enc_pref=%s", enc->serial);
    st = stamp(s, r, "signed=%s%s", smm_log_escape(esc, sizeof(esc), from),
               domain_key ? " (domain key)" : "");
out:
    free(from);
    return st;
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
    /* a stamp that did not come from us is a forgery, whatever the way */
    if ((st = delete_all(r, m, SMM_STAMP_HEADER)) != SMM_OK)
        return smm_err_set(err, st, "out of memory");
    if (dir == SMM_DIR_OUTBOUND)
        st = run_outbound(s, m, &o, r, err);
    else {
        r->verdict = "passed";
        st = SMM_OK;
    }
    smm_ossl_clear();
    if (st == SMM_ENOMEM)
        return smm_err_set(err, st, "out of memory");
    return st;
}
