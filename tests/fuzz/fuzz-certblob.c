/*
 * fuzz-certblob -- a directory attribute value (userSMIMECertificate,
 * userCertificate;binary) through smm_certblob_format(),
 * smm_certblob_parse() (PKCS#7 certs-only, DER, PEM, MS-OXOABK TLV) and
 * smm_certblob_caps() (SMIMECapabilities of the blob's signer infos).
 */
#include "config.h"

#include <stdio.h>

#include <openssl/x509.h>

#include "fuzz-util.h"
#include "smm_certblob.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    const char *fmt;
    int i;

    if (sk == NULL)
        return 0;
    fmt = smm_certblob_format(data, size);
    smm_certblob_parse(data, size, sk);
    smm_certblob_caps(data, size);
    /* touch what was found, as the resolver does */
    for (i = 0; i < sk_X509_num(sk); i++)
        if (X509_get_subject_name(sk_X509_value(sk, i)) == NULL && fmt == NULL)
            abort();
    sk_X509_pop_free(sk, X509_free);
    return 0;
}
