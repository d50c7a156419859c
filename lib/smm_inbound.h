/*
 * smm_inbound -- decrypt, verify and stamp mail coming in.
 *
 * smm_inbound_run() is the inbound half of smm_pipeline_run(): it removes
 * Authentication-Results fields that claim our authserv-id, decrypts
 * application/pkcs7-mime enveloped or authEnveloped data found at the top
 * of the message (through any opaque signed layers around it) when the key
 * store has a key for it and every envelope recipient is local, verifies
 * every S/MIME signature layer (multipart/signed and opaque signed-data,
 * also inside decrypted content and in parts of multipart messages) and
 * adds one Authentication-Results field (RFC 7281) per layer.  The
 * decrypted entity replaces the body and the Content-* fields.
 * Certificates of signatures that pass may be harvested (smm_harvest.h).
 * smm_ar_strip_ours() adds to a result the deletion of every
 * Authentication-Results field claiming authserv-id id (the outbound
 * pipeline uses it too: our stamps come from us only).
 *
 * stamp receives the X-SMIME-Milter text ("decrypted=...; verified=...").
 * Nothing is ever lost: a message that cannot be parsed is delivered as it
 * came with a permerror result; only transient trouble (memory, I/O) gives
 * an error, which the caller turns into a tempfail.
 */
#ifndef SMM_INBOUND_H
#define SMM_INBOUND_H

#include <stddef.h>

#include "smm_message.h"
#include "smm_pipeline.h"
#include "smm_result.h"
#include "smm_state.h"

smm_status smm_inbound_run(const struct smm_state *, struct smm_message *,
                           const struct smm_run_opts *, struct smm_result *,
                           char *, size_t, struct smm_err *);
int smm_ar_is_ours(const char *, const char *);
int smm_inbound_is_encrypted(const struct smm_message *);
smm_status smm_ar_strip_ours(struct smm_result *, const struct smm_message *,
                             const char *);
const char *smm_authserv_id(const struct smm_config *, char *, size_t);

#endif
