/*
 * fuzz-inbound -- the whole inbound pipeline on one message.
 *
 * The input is a message as `smime-milter-ctl process --inbound` reads it
 * (header, empty line, body).  It goes through smm_pipeline_run() with
 * SMM_DIR_INBOUND twice: with the default inbound options, and with
 * UnwrapOpaqueSigned, StripSignatures, Harvest on and
 * DecryptForRecipientsOnly off (the sender, alice,
 * has no key there, so her good signatures are harvested) and bodies over
 * 512 bytes spilled to a temporary file.  The key store holds keys for
 * the envelope recipients (bob: RSA, carol: EC) and the trust anchors
 * are the test root, so MIME parsing, the multipart split, base64, CMS
 * parsing, decryption (ktri and kari) and signature verification are all
 * reachable.  Set SMM_FUZZ_PKI to a tests/pki/mkpki.sh directory to use
 * the keys the seeds of tests/fuzz/make-seeds.sh are encrypted to.
 */
#include "config.h"

#include <stdio.h>

#include "fuzz-util.h"

static struct smm_state *plain, *unwrap;
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
             "AuthservID mx.fuzz.example\n"
             "TempDirectory %s\n"
             "MaxMemoryBody 256K\n"
             "LocalDomains example.net example.org\n"
             "LogLevel error\n",
             tmp, pki, tmp);
    plain = fuzz_state("inbound", conf);
    snprintf(conf, sizeof(conf),
             "KeyStore %s/rcptkeys\n"
             "TrustAnchors %s/trust.pem\n"
             "AuthservID mx.fuzz.example\n"
             "TempDirectory %s\n"
             "MaxMemoryBody 512\n"
             "UnwrapOpaqueSigned yes\n"
             "StripSignatures yes\n"
             "AllowSHA1Signatures yes\n"
             "Harvest yes\n"
             "HarvestStore %s/harvest\n"
             "DecryptForRecipientsOnly no\n"
             "LogLevel error\n",
             tmp, pki, tmp, tmp);
    unwrap = fuzz_state("inbound-unwrap", conf);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_pipeline(plain, SMM_DIR_INBOUND, "alice@example.org", rcpts, data,
                  size);
    fuzz_pipeline(unwrap, SMM_DIR_INBOUND, "alice@example.org", rcpts, data,
                  size);
    return 0;
}
