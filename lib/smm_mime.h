/*
 * smm_mime -- GMime glue: what a message is, and its canonical form.
 *
 * smm_mime_protection() tells whether a message is already S/MIME or
 * PGP/MIME protected (by its top-level Content-Type).
 *
 * smm_mime_canonical_entity() builds the entity to be signed from the
 * message's Content-* header fields and body: every leaf part gets a 7-bit
 * transfer encoding (kept when it already has one, else quoted-printable
 * or base64 as GMime judges best), multipart epilogues are dropped
 * (Outlook refuses signatures that cover them), nested signed or
 * encrypted parts are left byte for byte, and every line ends in CRLF.
 * The result is written to a spool; the same bytes must then be sent.
 * A structure nested deeper than max_depth or with more than max_parts
 * parts is SMM_EPARSE.
 *
 * smm_mime_cte_is_binary() tells whether a Content-Transfer-Encoding value
 * says binary.
 *
 * smm_mime_seven_bit() is the same transformation for an entity that is
 * to be delivered rather than signed (decrypted content): every header
 * field of m is kept, not only the Content-* ones.
 *
 * smm_mime_prescan() enforces those limits before anything is parsed: a
 * streaming pass over the body that follows the boundaries (and
 * message/rfc822 parts) with the top-level Content-Type value given,
 * counting parts and depth the way the GMime tree would, nested signed
 * parts included (GMime parses them too).  Where a header block holds
 * lines that are no field GMime has rules of its own: there the pre-scan
 * may count more parts, or a level less, than GMime (the limits are
 * checked on the GMime tree again), but GMime never gets more than
 * max_parts parts to build.  Its memory is bounded by
 * max_depth and the field length limit, whatever the body; a part's
 * Content-Type field longer than 64 KB is SMM_EPARSE as well.
 * smm_mime_canonical_entity() calls it first, so a message with 20,000
 * parts is refused before GMime builds 20,000 objects.  *nparts (may be
 * NULL) gets the number of parts counted.
 *
 * GMime objects are created and released inside each call; nothing is
 * shared between threads.  g_mime_init() must have been called.
 */
#ifndef SMM_MIME_H
#define SMM_MIME_H

#include "smm_err.h"
#include "smm_message.h"
#include "smm_spool.h"

enum smm_protection {
    SMM_PROT_NONE = 0,
    SMM_PROT_SMIME_SIGNED, /* multipart/signed, pkcs7-signature */
    SMM_PROT_SMIME_OPAQUE, /* application/pkcs7-mime or *.p7m */
    SMM_PROT_PGP,          /* PGP/MIME signed or encrypted */
    SMM_PROT_OTHER_SIGNED, /* multipart/signed, other protocol */
};

enum smm_protection smm_mime_protection(const struct smm_message *);
const char *smm_protection_name(enum smm_protection);
int smm_mime_is_content_header(const char *);
int smm_mime_cte_is_binary(const char *);
smm_status smm_mime_canonical_entity(struct smm_message *, int, int,
                                     struct smm_spool *, struct smm_err *);
smm_status smm_mime_seven_bit(struct smm_message *, int, int,
                              struct smm_spool *, struct smm_err *);
smm_status smm_mime_prescan(const char *, struct smm_spool *, int, int, int *,
                            struct smm_err *);
void smm_mime_boundary(char *, size_t);

#endif
