/*
 * smm_result -- what the pipeline decided for one message.
 *
 * A plain struct: the action (deliver, tempfail, reject, hold), the SMTP
 * reply for the refusals, the header edits in the order they must be
 * applied, an optional replacement body (a spool, CRLF line ends) and the
 * key=value fields of the summary log line.  The milter turns it into
 * smfi_* calls; smime-milter-ctl applies it to the message with
 * smm_result_write().  Header edit indexes follow libmilter: 1-based among
 * the fields with the same name (case-insensitive), counted in the
 * message as it stands when the edit is applied.  An edit's value never
 * starts a header field of its own: smm_result_edit() folds a line break
 * that is not followed by white space and drops empty lines and lone CRs
 * (input can carry them).  Owned by the caller;
 * smm_result_free() releases everything but the struct itself.
 */
#ifndef SMM_RESULT_H
#define SMM_RESULT_H

#include <stdio.h>

#include "smm_buf.h"
#include "smm_err.h"
#include "smm_message.h"
#include "smm_spool.h"

enum smm_action {
    SMM_ACT_DELIVER = 0, /* accept, with the edits below */
    SMM_ACT_TEMPFAIL,
    SMM_ACT_REJECT,
    SMM_ACT_HOLD, /* deliver to the hold (quarantine) queue */
};

enum smm_edit_op {
    SMM_EDIT_CHANGE, /* replace the index-th field's value */
    SMM_EDIT_DELETE, /* delete the index-th field */
    SMM_EDIT_ADD,    /* append a field at the end */
    SMM_EDIT_INSERT, /* insert a field before the index-th field of all
                        (0 = at the top) */
};

struct smm_edit {
    enum smm_edit_op op;
    char *name;
    int index;
    char *value;
};

struct smm_result {
    enum smm_action action;
    char rcode[4];  /* "451", "550" */
    char xcode[12]; /* "4.7.1" */
    char *reply;    /* reply text for tempfail/reject */
    char *hold_reason;
    struct smm_edit *edits;
    size_t nedits;
    struct smm_spool *body; /* replacement body, or NULL */
    struct smm_buf log;     /* " key=value ..." for the summary line */
    const char *verdict;    /* short word for the log: signed, skipped */
};

smm_status smm_result_edit(struct smm_result *, enum smm_edit_op, const char *,
                           int, const char *);
smm_status smm_result_refuse(struct smm_result *, enum smm_action, const char *,
                             const char *, const char *, ...)
    __attribute__((format(printf, 5, 6)));
smm_status smm_result_delete_all(struct smm_result *,
                                 const struct smm_message *, const char *);
smm_status smm_result_content_headers(struct smm_result *,
                                      const struct smm_message *,
                                      const char *const *);
smm_status smm_result_write(const struct smm_result *,
                            const struct smm_message *, FILE *,
                            struct smm_err *);
void smm_result_free(struct smm_result *);

#endif
