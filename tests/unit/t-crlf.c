/*
 * t-crlf: the CRLF filter gives what GMime's unix2dos filter gives, for
 * random text of CR, LF and letters written in random pieces (so that a
 * CR at the end of one write and its LF at the start of the next meet),
 * and passes CRLF text through untouched.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "smm_crlf.h"
#include "tap.h"

/* text written through filter f in pieces of 1..maxpiece bytes */
static GByteArray *
through(GMimeFilter *f, const char *text, size_t len, size_t maxpiece,
        unsigned seed)
{
    GByteArray *out = g_byte_array_new();
    GMimeStream *mem = g_mime_stream_mem_new();
    GMimeStream *fs = g_mime_stream_filter_new(mem);
    size_t off = 0, n;

    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(mem), out);
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
    srand(seed);
    while (off < len) {
        n = 1 + (size_t)rand() % maxpiece;
        if (n > len - off)
            n = len - off;
        g_mime_stream_write(fs, text + off, n);
        off += n;
    }
    g_mime_stream_flush(fs);
    g_object_unref(fs);
    g_object_unref(mem);
    return out;
}

int
main(void)
{
    static const char alphabet[] = "ab\r\n\n \r";
    char text[4096];
    int round, same = 0, untouched = 1;
    size_t i, len;

    g_mime_init();
    srand(1);
    for (round = 0; round < 500; round++) {
        GMimeFilter *ours = smm_crlf_filter_new();
        GMimeFilter *gm = g_mime_filter_unix2dos_new(FALSE);
        GByteArray *a, *b;
        unsigned seed = (unsigned)rand();

        len = (size_t)rand() % sizeof(text);
        for (i = 0; i < len; i++)
            text[i] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
        a = through(ours, text, len, 1 + (size_t)round % 300, seed);
        b = through(gm, text, len, 1 + (size_t)round % 300, seed);
        same += a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
        g_byte_array_free(a, TRUE);
        g_byte_array_free(b, TRUE);
        g_object_unref(ours);
        g_object_unref(gm);
    }
    is_int(same, 500, "random text in random pieces: same bytes as unix2dos");

    for (round = 0; round < 50; round++) {
        GMimeFilter *ours = smm_crlf_filter_new();
        GByteArray *a;

        for (len = 0; len + 8 < sizeof(text);) {
            text[len++] = 'x';
            if (rand() % 5 == 0) {
                text[len++] = '\r';
                text[len++] = '\n';
            }
        }
        a = through(ours, text, len, 1 + (size_t)round * 7, (unsigned)round);
        untouched &= a->len == len && memcmp(a->data, text, len) == 0;
        g_byte_array_free(a, TRUE);
        g_object_unref(ours);
    }
    ok(untouched, "CRLF text passes through unchanged");
    return tap_done();
}
