/*
 * smm_err -- status codes and the caller-supplied error struct.
 *
 * Every library call that can fail returns an smm_status and, when given a
 * non-NULL struct smm_err, fills it with one human sentence.  Temporary and
 * permanent failures have different codes because the milter maps them to
 * tempfail and reject/accept respectively (smm_status_is_temp()).
 *
 * smm_err_ossl() drains the calling thread's OpenSSL error queue into the
 * message, so that a stale error never leaks into the next message handled
 * on the same thread.  smm_err_prefix() puts context in front of a message
 * already set.  Thread-safe: no shared state.
 */
#ifndef SMM_ERR_H
#define SMM_ERR_H

#include <stddef.h>

typedef enum {
    SMM_OK = 0,
    SMM_ENOMEM,  /* out of memory (temporary) */
    SMM_EINVAL,  /* bad argument or configuration value */
    SMM_EPARSE,  /* malformed input (message, file, blob) */
    SMM_ECRYPTO, /* a cryptographic operation failed (temporary) */
    SMM_ENOCERT, /* no usable certificate or key */
    SMM_ETEMP,   /* transient trouble: directory down, timeout */
    SMM_EPOLICY, /* policy forbids the operation */
    SMM_EIO,     /* file system or I/O error (temporary) */
} smm_status;

#define SMM_ERR_MSGLEN 512

struct smm_err {
    smm_status status;
    char msg[SMM_ERR_MSGLEN];
};

smm_status smm_err_set(struct smm_err *, smm_status, const char *, ...)
    __attribute__((format(printf, 3, 4)));
smm_status smm_err_ossl(struct smm_err *, smm_status, const char *, ...)
    __attribute__((format(printf, 3, 4)));
void smm_err_prefix(struct smm_err *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void smm_ossl_clear(void);
const char *smm_status_str(smm_status);
int smm_status_is_temp(smm_status);

#endif
