/*
 * smm_err -- status codes and error messages; see smm_err.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "smm_err.h"

static __attribute__((format(printf, 3, 0))) void
err_vset(struct smm_err *err, smm_status st, const char *fmt, va_list ap)
{
    err->status = st;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

smm_status
smm_err_set(struct smm_err *err, smm_status st, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return st;
    va_start(ap, fmt);
    err_vset(err, st, fmt, ap);
    va_end(ap);
    return st;
}

/*
 * Like smm_err_set(), then append the OpenSSL error queue (reason strings
 * only, oldest first) and leave the queue empty.
 */
smm_status
smm_err_ossl(struct smm_err *err, smm_status st, const char *fmt, ...)
{
    va_list ap;
    unsigned long e;
    size_t len;
    char buf[256];

    if (err == NULL) {
        ERR_clear_error();
        return st;
    }
    va_start(ap, fmt);
    err_vset(err, st, fmt, ap);
    va_end(ap);
    while ((e = ERR_get_error()) != 0) {
        len = strlen(err->msg);
        ERR_error_string_n(e, buf, sizeof(buf));
        if (len + 3 < sizeof(err->msg))
            snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", buf);
    }
    return st;
}

/* Put printf-style context in front of the message; keep the status. */
void
smm_err_prefix(struct smm_err *err, const char *fmt, ...)
{
    va_list ap;
    char msg[SMM_ERR_MSGLEN];
    int n;

    if (err == NULL)
        return;
    memcpy(msg, err->msg, sizeof(msg));
    va_start(ap, fmt);
    n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(err->msg))
        snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%s", msg);
}

void
smm_ossl_clear(void)
{
    ERR_clear_error();
}

const char *
smm_status_str(smm_status st)
{
    switch (st) {
    case SMM_OK:
        return "ok";
    case SMM_ENOMEM:
        return "out of memory";
    case SMM_EINVAL:
        return "invalid argument";
    case SMM_EPARSE:
        return "parse error";
    case SMM_ECRYPTO:
        return "cryptographic failure";
    case SMM_ENOCERT:
        return "no certificate";
    case SMM_ETEMP:
        return "temporary failure";
    case SMM_EPOLICY:
        return "policy";
    case SMM_EIO:
        return "I/O error";
    }
    return "unknown";
}

/* Failures after which the MTA should retry the message later. */
int
smm_status_is_temp(smm_status st)
{
    return st == SMM_ENOMEM || st == SMM_ECRYPTO || st == SMM_ETEMP ||
           st == SMM_EIO;
}
