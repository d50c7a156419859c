/*
 * smm_b64 -- base64 (RFC 4648 section 4: the standard alphabet, '='
 * padding), without line breaks.
 *
 * smm_b64_encode() writes 4 * ((n + 2) / 3) characters for n bytes (no
 * NUL) and returns that count.  It does what OpenSSL's EVP_EncodeBlock()
 * does, with two table look-ups per three bytes instead of a call per
 * character: the outbound pipeline base64-encodes every message it signs
 * or encrypts.
 */
#ifndef SMM_B64_H
#define SMM_B64_H

#include <stddef.h>

size_t smm_b64_encode(char *out, const unsigned char *in, size_t n);

#endif
