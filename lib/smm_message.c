/*
 * smm_message -- the buffered message; see smm_message.h.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smm_buf.h"
#include "smm_message.h"

smm_status
smm_message_new(size_t max_mem, size_t max_size, const char *tmpdir,
                struct smm_message **out, struct smm_err *err)
{
    struct smm_message *m;
    smm_status st;

    *out = NULL;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    m->max_size = max_size;
    if ((st = smm_spool_new(max_mem, tmpdir, &m->body, err)) != SMM_OK) {
        free(m);
        return st;
    }
    *out = m;
    return SMM_OK;
}

static smm_status
set_str(char **dst, const char *src)
{
    char *p;

    if ((p = strdup(src != NULL ? src : "")) == NULL)
        return SMM_ENOMEM;
    free(*dst);
    *dst = p;
    return SMM_OK;
}

smm_status
smm_message_set_queue_id(struct smm_message *m, const char *id)
{
    return set_str(&m->queue_id, id);
}

/*
 * "<a@b>" or "a@b" (with ESMTP parameters already removed by the MTA) ->
 * "a@b".  Returns a new string.
 */
char *
smm_addr_strip(const char *a)
{
    size_t len;

    if (a == NULL)
        return strdup("");
    while (isspace((unsigned char)*a))
        a++;
    len = strlen(a);
    while (len > 0 && isspace((unsigned char)a[len - 1]))
        len--;
    if (len >= 2 && a[0] == '<' && a[len - 1] == '>') {
        a++;
        len -= 2;
    }
    return strndup(a, len);
}

smm_status
smm_message_set_from(struct smm_message *m, const char *addr)
{
    char *p;

    if ((p = smm_addr_strip(addr)) == NULL)
        return SMM_ENOMEM;
    free(m->env_from);
    m->env_from = p;
    return SMM_OK;
}

smm_status
smm_message_add_rcpt(struct smm_message *m, const char *addr)
{
    char **nv, *p;

    if ((p = smm_addr_strip(addr)) == NULL)
        return SMM_ENOMEM;
    if ((nv = realloc(m->rcpts, (m->nrcpts + 1) * sizeof(*nv))) == NULL) {
        free(p);
        return SMM_ENOMEM;
    }
    m->rcpts = nv;
    m->rcpts[m->nrcpts++] = p;
    return SMM_OK;
}

/* Store a header; CRLF inside the value becomes LF. */
smm_status
smm_message_add_header(struct smm_message *m, const char *name,
                       const char *value)
{
    struct smm_header *nh;
    char *n, *v, *o;
    const char *s;

    if (m->nhdrs == m->hdrs_cap) {
        size_t ncap = m->hdrs_cap ? m->hdrs_cap * 2 : 32;
        if ((nh = realloc(m->hdrs, ncap * sizeof(*nh))) == NULL)
            return SMM_ENOMEM;
        m->hdrs = nh;
        m->hdrs_cap = ncap;
    }
    if ((n = strdup(name)) == NULL)
        return SMM_ENOMEM;
    if ((v = malloc(strlen(value) + 1)) == NULL) {
        free(n);
        return SMM_ENOMEM;
    }
    for (s = value, o = v; *s != '\0'; s++)
        if (!(s[0] == '\r' && s[1] == '\n'))
            *o++ = *s;
    *o = '\0';
    m->hdrs[m->nhdrs].name = n;
    m->hdrs[m->nhdrs].value = v;
    m->nhdrs++;
    return SMM_OK;
}

smm_status
smm_message_add_body(struct smm_message *m, const void *p, size_t n,
                     struct smm_err *err)
{
    if (m->oversize || (m->max_size > 0 && m->body_len + n > m->max_size)) {
        /* count, don't keep: the pipeline passes it on untouched */
        m->oversize = 1;
        m->body_len += n;
        return SMM_OK;
    }
    m->body_len += n;
    return smm_spool_write(m->body, p, n, err);
}

/* The value of the idx-th (0-based) header called name, or NULL. */
const char *
smm_message_header(const struct smm_message *m, const char *name, int idx)
{
    size_t i;

    for (i = 0; i < m->nhdrs; i++)
        if (strcasecmp(m->hdrs[i].name, name) == 0 && idx-- == 0)
            return m->hdrs[i].value;
    return NULL;
}

/*
 * Read a whole RFC 5322 message (LF or CRLF line ends) from fp into m the
 * way an MTA would hand it to a milter: header fields split into name and
 * value (leading white space of the value removed, folding kept), the body
 * with CRLF line ends.  Used by smime-milter-ctl and the tests.
 */
smm_status
smm_message_read(FILE *fp, struct smm_message *m, struct smm_err *err)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    struct smm_buf name = {0}, value = {0};
    int in_headers = 1, have = 0;
    smm_status st = SMM_OK;
    char *colon, *v;

    while ((n = getline(&line, &cap, fp)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (in_headers) {
            if (len > 0 && (line[0] == ' ' || line[0] == '\t') && have) {
                /* continuation of the previous field */
                if (smm_buf_puts(&value, "\n") != SMM_OK ||
                    smm_buf_append(&value, line, len) != SMM_OK)
                    goto nomem;
                continue;
            }
            if (have) {
                if (smm_message_add_header(m, name.data, value.data) != SMM_OK)
                    goto nomem;
                have = 0;
            }
            if (len == 0) {
                in_headers = 0;
                continue;
            }
            line[len] = '\0';
            if ((colon = strchr(line, ':')) == NULL || colon == line) {
                /* not a header: treat it as the start of the body */
                in_headers = 0;
                line[len] = '\n';
                goto body;
            }
            smm_buf_reset(&name);
            smm_buf_reset(&value);
            if (smm_buf_append(&name, line, (size_t)(colon - line)) != SMM_OK)
                goto nomem;
            for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
                ;
            if (smm_buf_puts(&value, v) != SMM_OK)
                goto nomem;
            have = 1;
            continue;
        }
    body:
        if ((st = smm_message_add_body(m, line, len, err)) != SMM_OK ||
            (st = smm_message_add_body(m, "\r\n", 2, err)) != SMM_OK)
            goto out;
    }
    if (have && smm_message_add_header(m, name.data, value.data) != SMM_OK)
        goto nomem;
    if (ferror(fp))
        st = smm_err_set(err, SMM_EIO, "read error");
    goto out;
nomem:
    st = smm_err_set(err, SMM_ENOMEM, "out of memory");
out:
    free(line);
    smm_buf_free(&name);
    smm_buf_free(&value);
    return st;
}

void
smm_message_free(struct smm_message *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->nhdrs; i++) {
        free(m->hdrs[i].name);
        free(m->hdrs[i].value);
    }
    for (i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free(m->hdrs);
    free(m->rcpts);
    free(m->queue_id);
    free(m->env_from);
    smm_spool_free(m->body);
    free(m);
}
