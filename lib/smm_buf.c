/*
 * smm_buf -- growable byte buffer; see smm_buf.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smm_buf.h"

static smm_status
buf_reserve(struct smm_buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > (size_t)-1 - b->len - 1)
        return SMM_ENOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return SMM_OK;
    ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
    if ((p = realloc(b->data, ncap)) == NULL)
        return SMM_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return SMM_OK;
}

smm_status
smm_buf_append(struct smm_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != SMM_OK)
        return SMM_ENOMEM;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SMM_OK;
}

smm_status
smm_buf_puts(struct smm_buf *b, const char *s)
{
    return smm_buf_append(b, s, strlen(s));
}

smm_status
smm_buf_printf(struct smm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != SMM_OK)
        return SMM_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SMM_OK;
}

void
smm_buf_reset(struct smm_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void
smm_buf_free(struct smm_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
