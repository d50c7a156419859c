/*
 * smm_spool -- bytes kept in memory up to a limit, then in a temp file.
 *
 * Message bodies (incoming and rewritten) live in spools so that memory use
 * per message is bounded by MaxMemoryBody whatever the message size.  The
 * temp file is created with mkstemp() in the configured directory, mode
 * 0600, and unlinked at once: a crash leaves nothing behind and no other
 * process can open it.
 *
 * Memory mode keeps a GByteArray so GMime can read it without a copy.
 * smm_spool_gmime_stream() and smm_spool_bio() return new reading (or, for
 * the GMime stream, writing) objects owned by the caller; they share the
 * spool's storage, so use one at a time and do not free the spool before
 * them.  smm_spool_wbio() returns a write-only BIO that appends to the
 * spool, smm_spool_pieces_bio() a read-only BIO over pieces of it (the
 * caller frees them, before the spool; smm_spool_bio()'s with
 * BIO_free_all()).  A spool is owned by one
 * thread at a time.
 *
 * In file mode small writes gather in a 64 KiB buffer, so a write error
 * may only show when the buffer goes to the file.  smm_spool_finish()
 * sends it there and reports the error: call it when a spool's writing
 * is done, before it is read.  The readers flush too (smm_spool_pread
 * returns -1, smm_spool_gmime_stream and smm_spool_bio NULL), and a
 * failed write makes every later access of the spool fail.
 */
#ifndef SMM_SPOOL_H
#define SMM_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include <gmime/gmime.h>
#include <openssl/bio.h>
#include <openssl/evp.h>

#include "smm_err.h"

struct smm_spool;

smm_status smm_spool_new(size_t, const char *, struct smm_spool **,
                         struct smm_err *);
smm_status smm_spool_write(struct smm_spool *, const void *, size_t,
                           struct smm_err *);
size_t smm_spool_len(struct smm_spool *);
smm_status smm_spool_finish(struct smm_spool *, struct smm_err *);
int smm_spool_spilled(const struct smm_spool *);
ssize_t smm_spool_pread(struct smm_spool *, void *, size_t, size_t);
GMimeStream *smm_spool_gmime_stream(struct smm_spool *, struct smm_err *);
BIO *smm_spool_bio(struct smm_spool *, struct smm_err *);
BIO *smm_spool_wbio(struct smm_spool *, struct smm_err *);
BIO *smm_spool_pieces_bio(struct smm_spool *, const size_t *, const size_t *,
                          size_t, struct smm_err *);
/* Append all of src to dst, and to the digest md unless it is NULL. */
smm_status smm_spool_copy(struct smm_spool *, struct smm_spool *, EVP_MD_CTX *,
                          struct smm_err *);
void smm_spool_free(struct smm_spool *);

#endif
