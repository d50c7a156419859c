/*
 * fuzz-cms -- CMS parsing, decryption and verification from raw DER.
 *
 * fuzz-inbound sees CMS only through base64 inside a message, so its
 * mutations rarely make a DER structure that is wrong in an interesting
 * way.  Here the fuzzer mutates the DER itself; the target wraps it the
 * way a client sends it and runs the inbound pipeline, as fuzz-inbound
 * does.  The first input byte picks the wrapping (the rest is the DER):
 *   0  application/pkcs7-mime; smime-type=enveloped-data
 *   1  application/pkcs7-mime; smime-type=signed-data
 *   2  application/pkcs7-mime; smime-type=authEnveloped-data
 *   3  multipart/signed: the DER is the detached signature of the seed
 *      entity below (the entity tests/fuzz/make-seeds.sh signs)
 * The key store holds bob's (RSA) and carol's (EC) keys, any of which
 * decrypts (DecryptForRecipientsOnly no), and the trust anchors are the
 * test root, so with SMM_FUZZ_PKI set to the PKI of
 * make-seeds.sh the seeds decrypt and verify (make-seeds.sh writes them
 * to OUTDIR/cms with that first byte).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "smm_b64.h"

/* byte for byte the entity make-seeds.sh signs */
static const char entity[] = "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n"
                             "\r\n"
                             "Gr=C3=BC=C3=9Fe from the fuzz seeds.\r\n"
                             "-- \r\n"
                             "sig\r\n";

static const char header[] = "From: <alice@example.org>\r\n"
                             "To: <bob@example.net>\r\n"
                             "Subject: cms\r\n"
                             "Message-ID: <cms@fuzz>\r\n"
                             "MIME-Version: 1.0\r\n";

static const char *const smime_type[] = {"enveloped-data", "signed-data",
                                         "authEnveloped-data"};

static struct smm_state *state;
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
             "LocalDomains example.net example.org\n"
             "AllowSHA1Signatures yes\n"
             "DecryptForRecipientsOnly no\n"
             "LogLevel error\n",
             tmp, pki, tmp);
    state = fuzz_state("cms", conf);
    return 0;
}

/* b64_lines: DER as base64 in 76-character CRLF lines at *p; returns the end */
static char *
b64_lines(char *p, const uint8_t *der, size_t n)
{
    size_t off;

    for (off = 0; off < n; off += 57) {
        p += smm_b64_encode(p, der + off, n - off < 57 ? n - off : 57);
        *p++ = '\r';
        *p++ = '\n';
    }
    return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap, n;
    unsigned form;
    char *msg, *p;

    if (size < 1)
        return 0;
    form = data[0] % 4;
    data++;
    size--;
    cap = sizeof(header) + sizeof(entity) + 512 + (size + 56) / 57 * 78;
    if ((msg = malloc(cap)) == NULL)
        abort();
    p = msg;
    memcpy(p, header, sizeof(header) - 1);
    p += sizeof(header) - 1;
    if (form < 3) {
        n = (size_t)sprintf(p,
                            "Content-Type: application/pkcs7-mime; "
                            "smime-type=%s; name=smime.p7m\r\n"
                            "Content-Transfer-Encoding: base64\r\n\r\n",
                            smime_type[form]);
        p = b64_lines(p + n, data, size);
    } else {
        n = (size_t)sprintf(p,
                            "Content-Type: multipart/signed; "
                            "protocol=\"application/pkcs7-signature\"; "
                            "micalg=sha-256; boundary=\"s1\"\r\n\r\n"
                            "--s1\r\n%s\r\n--s1\r\n"
                            "Content-Type: application/pkcs7-signature\r\n"
                            "Content-Transfer-Encoding: base64\r\n\r\n",
                            entity);
        p = b64_lines(p + n, data, size);
        memcpy(p, "\r\n--s1--\r\n", 10);
        p += 10;
    }
    fuzz_pipeline(state, SMM_DIR_INBOUND, "alice@example.org", rcpts,
                  (const uint8_t *)msg, (size_t)(p - msg));
    free(msg);
    return 0;
}
