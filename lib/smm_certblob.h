/*
 * smm_certblob -- certificates out of a directory attribute value.
 *
 * Understands what directories hold in userSMIMECertificate and
 * userCertificate: a PKCS#7 SignedData "certs-only" blob (RFC 2798; what
 * Outlook publishes, the user's certificates with their chain), a single
 * DER certificate, PEM text, and Microsoft's tag-length-value format
 * (MS-OXOABK: records of a 2-byte little-endian tag, a 2-byte
 * little-endian length that counts the 4 header bytes, and the value;
 * every record whose value is a DER certificate is taken).  Appends the
 * certificates it finds to a stack; never fails on junk, it just finds
 * nothing.  smm_certblob_caps() reads the SMIMECapabilities attribute of a
 * PKCS#7 blob's signer infos (Outlook signs its blob, advertising the
 * ciphers the user's client can read).  Thread-safe.
 */
#ifndef SMM_CERTBLOB_H
#define SMM_CERTBLOB_H

#include <stddef.h>

#include <openssl/x509.h>

#include "smm_err.h"

/* SMIMECapabilities found in a PKCS#7 blob's signer infos */
#define SMM_CAP_KNOWN 0x01  /* the blob carried a capability list */
#define SMM_CAP_GCM128 0x02 /* id-aes128-GCM */
#define SMM_CAP_GCM256 0x04 /* id-aes256-GCM */

int smm_certblob_parse(const unsigned char *, size_t, STACK_OF(X509) *);
unsigned smm_smimecaps_bits(const STACK_OF(X509_ALGOR) *);
unsigned smm_certblob_caps(const unsigned char *, size_t);
const char *smm_certblob_format(const unsigned char *, size_t);

#endif
