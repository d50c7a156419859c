/*
 * smm_buf -- a growable byte buffer, always NUL-terminated.
 *
 * Owns its storage; smm_buf_free() releases it and accepts a zeroed or
 * already-freed buffer.  Not thread-safe (one owner at a time).
 */
#ifndef SMM_BUF_H
#define SMM_BUF_H

#include <stddef.h>

#include "smm_err.h"

struct smm_buf {
    char *data;
    size_t len;
    size_t cap;
};

smm_status smm_buf_append(struct smm_buf *, const void *, size_t);
smm_status smm_buf_puts(struct smm_buf *, const char *);
smm_status smm_buf_printf(struct smm_buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void smm_buf_reset(struct smm_buf *);
void smm_buf_free(struct smm_buf *);

#endif
