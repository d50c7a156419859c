/*
 * smm_x509 -- small questions asked of an X.509 certificate.
 *
 * Which mail addresses it names (SAN rfc822Name, else the legacy
 * emailAddress attribute of the subject; folded to lower case, the form
 * smm_addr_fold() gives and every address index keeps, as mail
 * addresses are compared without regard to case), whether its key usage allows
 * signing or encryption for S/MIME, whether it is valid at a time, and
 * printable forms (serial, issuer, SHA-256 fingerprint).  No ownership is
 * taken of any argument; returned strings are the caller's to free().
 * Thread-safe as long as the certificate has been fully decoded (call
 * smm_x509_usage() once at load time, which caches OpenSSL's extension
 * data, before sharing it between threads).
 */
#ifndef SMM_X509_H
#define SMM_X509_H

#include <time.h>

#include <openssl/x509.h>

#include "smm_config.h"

#define SMM_USE_SIGN 0x01    /* digitalSignature/nonRepudiation, or no KU */
#define SMM_USE_ENCRYPT 0x02 /* keyEncipherment (RSA) / keyAgreement (EC) */
#define SMM_USE_EMAIL 0x04   /* EKU emailProtection or anyEKU, or no EKU */

smm_status smm_x509_addresses(X509 *, struct smm_strlist *);
unsigned smm_x509_usage(X509 *);
int smm_x509_valid_at(X509 *, time_t);
time_t smm_x509_not_before(X509 *);
time_t smm_x509_not_after(X509 *);
char *smm_x509_serial_hex(X509 *);
char *smm_x509_name_oneline(const X509_NAME *);
char *smm_x509_subject(X509 *);
char *smm_x509_issuer(X509 *);
char *smm_x509_fingerprint(X509 *);
int smm_addr_equal(const char *, const char *);
void smm_addr_fold(char *);
int smm_addr_is_domain(const char *);
const char *smm_addr_domain(const char *);

#endif
