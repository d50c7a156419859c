/*
 * smm_message -- one message as the MTA hands it over.
 *
 * Owns: the envelope (sender, recipients), the header fields in arrival
 * order (name and value; a folded value keeps its line breaks as "\n"
 * followed by the original white space, and CRLF from the MTA is stored
 * as "\n"), and the body in a spool (memory up to MaxMemoryBody, then an
 * unlinked temp file).  Bodies beyond the size limit are counted but not
 * stored (msg->oversize is set), so a huge message never fills memory or
 * disk.  One owner at a time; smm_message_free() accepts NULL.
 */
#ifndef SMM_MESSAGE_H
#define SMM_MESSAGE_H

#include <stddef.h>
#include <stdio.h>

#include "smm_err.h"
#include "smm_spool.h"

struct smm_header {
    char *name;
    char *value;
};

struct smm_message {
    char *queue_id; /* for logs; may be NULL */
    char *env_from; /* envelope sender without <> ("" = null) */
    char **rcpts;   /* envelope recipients without <> */
    size_t nrcpts;
    struct smm_header *hdrs;
    size_t nhdrs;
    size_t hdrs_cap;
    struct smm_spool *body;
    size_t body_len; /* bytes offered, stored or not */
    size_t max_size; /* 0 = no limit */
    int oversize;    /* body_len went past max_size */
};

smm_status smm_message_new(size_t, size_t, const char *, struct smm_message **,
                           struct smm_err *);
smm_status smm_message_set_queue_id(struct smm_message *, const char *);
smm_status smm_message_set_from(struct smm_message *, const char *);
smm_status smm_message_add_rcpt(struct smm_message *, const char *);
smm_status smm_message_add_header(struct smm_message *, const char *,
                                  const char *);
smm_status smm_message_add_body(struct smm_message *, const void *, size_t,
                                struct smm_err *);
const char *smm_message_header(const struct smm_message *, const char *, int);
smm_status smm_message_read(FILE *, struct smm_message *, struct smm_err *);
char *smm_addr_strip(const char *);
void smm_message_free(struct smm_message *);

#endif
