/*
 * smm_harvest -- certificates harvested from signed mail (HarvestStore).
 *
 * One file per correspondent in the HarvestStore directory, named after
 * the address (lower case; characters other than letters, digits and
 * ".@_+-" as %XX), holding comment lines (address, capabilities, when)
 * and the certificate in PEM.  smm_harvest_store() keeps the newest
 * usable encryption certificate of an address (usable as a recipient
 * certificate would be: smm_certsel rules, with the signature's
 * certificates as possible intermediates, which are stored beside it)
 * and writes atomically (temp
 * file and rename), so concurrent readers never see half a file; it
 * returns 1 when the file changed, 0 when not (same or older certificate,
 * or not usable), -1 on error with err set.  smm_harvest_read() appends
 * what is stored for an address and its SMM_CAP_* bits; it reads the file
 * at each call, so a certificate harvested by one message serves the next
 * without a reload.  Thread-safe.
 */
#ifndef SMM_HARVEST_H
#define SMM_HARVEST_H

#include <time.h>

#include <openssl/x509.h>

#include "smm_err.h"

struct smm_state;

int smm_harvest_store(const struct smm_state *, const char *, X509 *,
                      STACK_OF(X509) *, unsigned, time_t, struct smm_err *);
int smm_harvest_path(const char *, const char *, char *, size_t);
int smm_harvest_read(const char *, const char *, STACK_OF(X509) *, unsigned *);

#endif
