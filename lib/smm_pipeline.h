/*
 * smm_pipeline -- the end-of-message decision and transformation.
 *
 * smm_pipeline_run() takes a complete message, its direction and a state
 * snapshot, and fills a result (see smm_result.h).  It never touches the
 * MTA: the milter and smime-milter-ctl apply the result.  Outbound it
 * removes forged X-SMIME-Milter fields, passes already-protected mail
 * untouched, and signs mail whose From address has a signing key
 * (multipart/signed, RFC 8551).  Inbound see smm_inbound.h.
 *
 * Failure mapping: a transient problem (I/O, crypto, memory) gives
 * SMM_ACT_TEMPFAIL so the MTA retries; a message that cannot be parsed is
 * delivered unsigned with the reason in the log.  The return value is
 * SMM_OK whenever res is meaningful.  Thread-safe given distinct messages
 * and results.
 */
#ifndef SMM_PIPELINE_H
#define SMM_PIPELINE_H

#include <time.h>

#include "smm_message.h"
#include "smm_policy.h"
#include "smm_result.h"
#include "smm_state.h"

#define SMM_STAMP_HEADER "X-SMIME-Milter"

struct smm_run_opts {
    time_t now;          /* 0 = time(NULL); certificate validity */
    time_t signing_time; /* 0 = now; fixed in byte-comparing tests */
};

smm_status smm_pipeline_run(const struct smm_state *, struct smm_message *,
                            enum smm_direction, const struct smm_run_opts *,
                            struct smm_result *, struct smm_err *);
char *smm_message_from_address(const struct smm_message *);
const char *smm_message_from_problem(const struct smm_message *);

/* SplitRecipients: the class of a recipient at RCPT time. */
enum smm_rcpt_class {
    SMM_RCPT_PLAIN = 0,   /* would get plaintext (no certificate, never) */
    SMM_RCPT_ENCRYPT = 1, /* has a usable certificate */
    SMM_RCPT_UNKNOWN = 2, /* directory trouble: let the end decide */
};
enum smm_rcpt_class smm_rcpt_classify(const struct smm_state *, const char *,
                                      time_t);

#endif
