/*
 * fuzz-outbound -- the outbound pipeline on one message.
 *
 * The input is a message as `smime-milter-ctl process --outbound` reads
 * it.  The sender (alice) has a signing key and both recipients have
 * certificates in the CertificateStore (bob: RSA, carol: EC), so
 * smm_pipeline_run() with SMM_DIR_OUTBOUND parses the MIME tree, makes
 * the canonical 7-bit form, signs it and encrypts the result (ktri and
 * kari recipients, EncryptToSelf).  A second state signs only
 * (EncryptionPolicy never), spills bodies over 512 bytes to a temporary
 * file and counts bodies over 4000 bytes as oversize, so both the signed
 * output and the encrypted output are written.
 */
#include "config.h"

#include <stdio.h>

#include "fuzz-util.h"

static struct smm_state *encrypt, *signonly;
static const char *const rcpts[] = {"bob@example.net", "carol@example.org",
                                    NULL};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = fuzz_setup();
    const char *pki = fuzz_pki();
    char conf[16384];

    snprintf(conf, sizeof(conf),
             "KeyStore %s/keys\n"
             "TrustAnchors %s/trust.pem\n"
             "CertificateStore %s/certs\n"
             "RequireTrustedRecipientCerts no\n"
             "TempDirectory %s\n"
             "MaxMemoryBody 256K\n"
             "LogLevel error\n",
             tmp, pki, tmp, tmp);
    encrypt = fuzz_state("outbound", conf);
    snprintf(conf, sizeof(conf),
             "KeyStore %s/keys\n"
             "TrustAnchors %s/trust.pem\n"
             "TempDirectory %s\n"
             "EncryptionPolicy never\n"
             "MaxMemoryBody 512\n"
             "MaxMessageSize 4000\n"
             "Cipher aes-256-gcm\n"
             "LogLevel error\n",
             tmp, pki, tmp);
    signonly = fuzz_state("outbound-sign", conf);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_pipeline(encrypt, SMM_DIR_OUTBOUND, "alice@example.org", rcpts, data,
                  size);
    fuzz_pipeline(signonly, SMM_DIR_OUTBOUND, "alice@example.org", rcpts, data,
                  size);
    return 0;
}
