/*
 * smm_result -- pipeline result; see smm_result.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smm_result.h"

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
    if (value != NULL && (e->value = strdup(value)) == NULL) {
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
