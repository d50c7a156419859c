/*
 * smm_result -- pipeline result; see smm_result.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smm_mime.h"
#include "smm_result.h"

/*
 * A copy of a header value that cannot start a field of its own, whatever
 * came in (a Subject with a bare LF, decrypted Content-* fields with a
 * CR): every line break is followed by white space (folded), lines of
 * nothing but white space and line breaks at the end go, and a CR that
 * is not part of CRLF becomes a space.  Folding that is already right
 * ("\n\t") is kept as it is.
 */
static char *
safe_value(const char *v)
{
    char *out = malloc(2 * strlen(v) + 1), *o = out;
    const char *p, *next;
    size_t n;

    if (out == NULL)
        return NULL;
    for (p = v;; p = next + 1) {
        next = strchr(p, '\n');
        n = next != NULL ? (size_t)(next - p) : strlen(p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (p != v && strspn(p, " \t\r") >= n) {
            /* an empty line would end the header */
        } else {
            if (p != v) {
                *o++ = '\n';
                if (*p != ' ' && *p != '\t')
                    *o++ = '\t';
            }
            for (; n > 0; n--, p++)
                *o++ = *p == '\r' ? ' ' : *p;
        }
        if (next == NULL)
            break;
    }
    *o = '\0';
    return out;
}

smm_status
smm_result_edit(struct smm_result *r, enum smm_edit_op op, const char *name,
                int index, const char *value)
{
    struct smm_edit *ne, *e;

    if ((ne = realloc(r->edits, (r->nedits + 1) * sizeof(*ne))) == NULL)
        return SMM_ENOMEM;
    r->edits = ne;
    e = &r->edits[r->nedits];
    memset(e, 0, sizeof(*e));
    e->op = op;
    e->index = index;
    if ((e->name = strdup(name)) == NULL)
        return SMM_ENOMEM;
    if (value != NULL && (e->value = safe_value(value)) == NULL) {
        free(e->name);
        return SMM_ENOMEM;
    }
    r->nedits++;
    return SMM_OK;
}

/* Set a refusal (tempfail, reject) or hold with its reply. */
smm_status
smm_result_refuse(struct smm_result *r, enum smm_action a, const char *rcode,
                  const char *xcode, const char *fmt, ...)
{
    va_list ap;
    char buf[512];

    r->action = a;
    snprintf(r->rcode, sizeof(r->rcode), "%s", rcode);
    snprintf(r->xcode, sizeof(r->xcode), "%s", xcode);
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(r->reply);
    if ((r->reply = strdup(buf)) == NULL)
        return SMM_ENOMEM;
    return SMM_OK;
}

/* A working copy of the header list, to apply edits to. */
struct hlist {
    const char **name;
    const char **value;
    size_t n;
};

/* Delete every field called name (last first, so indexes stay valid). */
smm_status
smm_result_delete_all(struct smm_result *r, const struct smm_message *m,
                      const char *name)
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

/*
 * Replace the message's Content-* fields by the given ones (name, value
 * pairs, NULL-terminated; the first must be Content-Type, which takes the
 * place of the old one) and add MIME-Version when missing.
 */
smm_status
smm_result_content_headers(struct smm_result *r, const struct smm_message *m,
                           const char *const *hdrs)
{
    size_t i, j;
    int count, seen_ct = 0;

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
                                    hdrs[1]) != SMM_OK)
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
        smm_result_edit(r, SMM_EDIT_ADD, "Content-Type", 0, hdrs[1]) != SMM_OK)
        return SMM_ENOMEM;
    for (i = 2; hdrs[i] != NULL; i += 2)
        if (smm_result_edit(r, SMM_EDIT_ADD, hdrs[i], 0, hdrs[i + 1]) != SMM_OK)
            return SMM_ENOMEM;
    return SMM_OK;
}

static int
hl_find(const struct hlist *h, const char *name, int index)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        if (h->name[i] != NULL && strcasecmp(h->name[i], name) == 0 &&
            --index == 0)
            return (int)i;
    return -1;
}

static void
write_header(FILE *fp, const char *name, const char *value)
{
    const char *p;

    fprintf(fp, "%s: ", name);
    for (p = value; *p != '\0'; p++) {
        if (*p == '\n')
            fputs("\r\n", fp);
        else if (*p != '\r')
            fputc(*p, fp);
    }
    fputs("\r\n", fp);
}

/*
 * Write the message as the MTA would deliver it after applying r: header
 * fields with the edits applied, a blank line, the (new) body.  CRLF line
 * ends throughout.
 */
smm_status
smm_result_write(const struct smm_result *r, const struct smm_message *m,
                 FILE *fp, struct smm_err *err)
{
    struct hlist h = {0};
    size_t i, cap = m->nhdrs + r->nedits + 1, off = 0;
    int at;
    char buf[65536];
    ssize_t n;
    struct smm_spool *body = r->body != NULL ? r->body : m->body;

    h.name = calloc(cap, sizeof(*h.name));
    h.value = calloc(cap, sizeof(*h.value));
    if (h.name == NULL || h.value == NULL) {
        free(h.name);
        free(h.value);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    for (i = 0; i < m->nhdrs; i++) {
        h.name[i] = m->hdrs[i].name;
        h.value[i] = m->hdrs[i].value;
    }
    h.n = m->nhdrs;
    for (i = 0; i < r->nedits; i++) {
        const struct smm_edit *e = &r->edits[i];
        switch (e->op) {
        case SMM_EDIT_ADD:
            h.name[h.n] = e->name;
            h.value[h.n] = e->value;
            h.n++;
            break;
        case SMM_EDIT_CHANGE:
            if ((at = hl_find(&h, e->name, e->index)) >= 0)
                h.value[at] = e->value;
            else { /* libmilter: changing a missing field adds it */
                h.name[h.n] = e->name;
                h.value[h.n] = e->value;
                h.n++;
            }
            break;
        case SMM_EDIT_DELETE:
            if ((at = hl_find(&h, e->name, e->index)) >= 0)
                h.name[at] = NULL;
            break;
        case SMM_EDIT_INSERT:
            at = e->index < 0 || (size_t)e->index > h.n ? (int)h.n : e->index;
            memmove(h.name + at + 1, h.name + at,
                    (h.n - (size_t)at) * sizeof(*h.name));
            memmove(h.value + at + 1, h.value + at,
                    (h.n - (size_t)at) * sizeof(*h.value));
            h.name[at] = e->name;
            h.value[at] = e->value;
            h.n++;
            break;
        }
    }
    for (i = 0; i < h.n; i++)
        if (h.name[i] != NULL)
            write_header(fp, h.name[i], h.value[i]);
    fputs("\r\n", fp);
    free(h.name);
    free(h.value);
    if (!m->oversize || r->body != NULL) {
        while ((n = smm_spool_pread(body, buf, sizeof(buf), off)) > 0) {
            if (fwrite(buf, 1, (size_t)n, fp) != (size_t)n)
                return smm_err_set(err, SMM_EIO, "write error");
            off += (size_t)n;
        }
        if (n < 0)
            return smm_err_set(err, SMM_EIO, "read error");
    }
    if (fflush(fp) != 0)
        return smm_err_set(err, SMM_EIO, "write error");
    return SMM_OK;
}

void
smm_result_free(struct smm_result *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->nedits; i++) {
        free(r->edits[i].name);
        free(r->edits[i].value);
    }
    free(r->edits);
    free(r->reply);
    free(r->hold_reason);
    smm_spool_free(r->body);
    smm_buf_free(&r->log);
    memset(r, 0, sizeof(*r));
}
