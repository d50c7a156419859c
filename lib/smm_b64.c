/*
 * smm_b64.c -- base64 encoding; see smm_b64.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "smm_b64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* pairs[v] = the two characters of the 12-bit value v */
static char pairs[4096][2];
static pthread_once_t pairs_once = PTHREAD_ONCE_INIT;

static void
make_pairs(void)
{
    unsigned v;

    for (v = 0; v < 4096; v++) {
        pairs[v][0] = alphabet[v >> 6];
        pairs[v][1] = alphabet[v & 63];
    }
}

size_t
smm_b64_encode(char *out, const unsigned char *in, size_t n)
{
    char *o = out;
    uint32_t v;

    (void)pthread_once(&pairs_once, make_pairs);
    for (; n >= 3; n -= 3, in += 3, o += 4) {
        v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
        memcpy(o, pairs[v >> 12], 2); /* (one 16-bit move each) */
        memcpy(o + 2, pairs[v & 4095], 2);
    }
    if (n > 0) {
        v = (uint32_t)in[0] << 16 | (n == 2 ? (uint32_t)in[1] << 8 : 0);
        o[0] = alphabet[v >> 18];
        o[1] = alphabet[(v >> 12) & 63];
        o[2] = n == 2 ? alphabet[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    return (size_t)(o - out);
}
