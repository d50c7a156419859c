/*
 * t-b64: smm_b64_encode() gives RFC 4648's test vectors and, for random
 * input of every length from 0 to 300 and some longer ones, exactly what
 * OpenSSL's EVP_EncodeBlock() gives.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "smm_b64.h"
#include "tap.h"

static int
same_as_openssl(const unsigned char *in, size_t n)
{
    char *got = malloc(4 * ((n + 2) / 3) + 1);
    unsigned char *want = malloc(4 * ((n + 2) / 3) + 1);
    size_t len;
    int k, r;

    len = smm_b64_encode(got, in, n);
    k = EVP_EncodeBlock(want, in, (int)n);
    r = k >= 0 && len == (size_t)k && memcmp(got, want, len) == 0;
    free(got);
    free(want);
    return r;
}

int
main(void)
{
    static const struct {
        const char *in, *out;
    } rfc[] = {{"", ""},
               {"f", "Zg=="},
               {"fo", "Zm8="},
               {"foo", "Zm9v"},
               {"foob", "Zm9vYg=="},
               {"fooba", "Zm9vYmE="},
               {"foobar", "Zm9vYmFy"}};
    unsigned char buf[70000];
    char out[16];
    size_t i, n, len, bad = 0;

    for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        len = smm_b64_encode(out, (const unsigned char *)rfc[i].in,
                             strlen(rfc[i].in));
        ok(len == strlen(rfc[i].out) && memcmp(out, rfc[i].out, len) == 0,
           "RFC 4648 vector \"%s\" -> \"%s\"", rfc[i].in, rfc[i].out);
    }
    srand(4648);
    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(rand() & 0xff);
    for (n = 0; n <= 300; n++)
        if (!same_as_openssl(buf + n % 7, n))
            bad++;
    ok(bad == 0,
       "every length 0..300 (random bytes): as EVP_EncodeBlock "
       "(%zu differ)",
       bad);
    memset(buf, 0xff, 64);
    memset(buf + 64, 0, 64);
    ok(same_as_openssl(buf, 128), "all-ones and all-zero bytes");
    ok(same_as_openssl(buf + 1000, 57), "one line of 57 bytes");
    ok(same_as_openssl(buf + 7, 65536), "64 KiB");
    ok(same_as_openssl(buf + 3, 69997), "69997 bytes");
    return tap_done();
}
