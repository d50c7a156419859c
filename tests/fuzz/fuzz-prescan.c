/*
 * fuzz-prescan -- smm_mime_prescan(), the outbound pre-scan of the MIME
 * structure, against GMime's own parse.
 *
 * The input's first line is the top-level Content-Type value, the rest
 * the body.  With small limits (MaxMimeDepth 6, MaxMimeParts 40), a
 * structure the pre-scan lets through must not have more than 40 parts in
 * the GMime tree: otherwise GMime would build more objects than the
 * limit (the memory the pre-scan is there to save).  That aborts.
 *
 * Depth is not compared, nor the other way round: in a header block with
 * lines that are no field GMime has rules of its own (some such lines end
 * the header, some are skipped, a delimiter among them may go unseen), so
 * there the pre-scan may count more parts than GMime or see a level less;
 * smm_mime_canonical_entity still checks both limits on the GMime tree,
 * so the verdict is the same, and t-mime-prescan checks that both agree
 * on well-formed structures.  With SMM_FUZZ_VERBOSE set, both counts are
 * printed.  (A part's Content-Type over 64 KB is refused by the pre-scan
 * alone and is left out.)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "fuzz-util.h"
#include "smm_mime.h"
#include "smm_spool.h"

#define MAX_DEPTH 6
#define MAX_PARTS 40

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    return 0;
}

/* Objects in the GMime tree as smm_mime_canonical_entity counts them,
 * giving up past MAX_PARTS. */
static void
count(GMimeObject *o, int depth, int *n, int *deepest)
{
    int i;

    if (depth > *deepest)
        *deepest = depth;
    if (++*n > MAX_PARTS)
        return;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        for (i = 0; i < g_mime_multipart_get_count(mp) && *n <= MAX_PARTS; i++)
            count(g_mime_multipart_get_part(mp, i), depth + 1, n, deepest);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *m =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (m != NULL && g_mime_message_get_mime_part(m) != NULL)
            count(g_mime_message_get_mime_part(m), depth + 1, n, deepest);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ctlen = nl != NULL ? (size_t)(nl - data) : size;
    const uint8_t *body = nl != NULL ? nl + 1 : data + size;
    size_t blen = size - (size_t)(body - data);
    char *ct = fuzz_cstr(data, ctlen);
    struct smm_spool *sp = NULL;
    struct smm_err err;
    GMimeStream *s;
    GMimeParser *p;
    GMimeObject *o;
    char *whole;
    size_t wlen;
    smm_status st;
    int n = 0, deepest = 0, refused, beyond;

    /* a header value from the MTA holds no NUL; CR is dropped by
     * smm_mime_canonical_entity, not by the pre-scan: leave both out */
    if (strlen(ct) != ctlen || strchr(ct, '\r') != NULL ||
        smm_spool_new(1 << 20, "/tmp", &sp, &err) != SMM_OK ||
        smm_spool_write(sp, body, blen, &err) != SMM_OK)
        goto out;
    st = smm_mime_prescan(*ct != '\0' ? ct : NULL, sp, MAX_DEPTH, MAX_PARTS,
                          NULL, &err);
    if (st == SMM_EPARSE && strstr(err.msg, "longer than") != NULL)
        goto out;
    refused = st == SMM_EPARSE;

    /* what smm_mime_canonical_entity hands GMime */
    wlen = strlen(ct) + blen + 32;
    if ((whole = malloc(wlen)) == NULL)
        goto out;
    wlen = (size_t)snprintf(whole, wlen, "Content-Type: %s\r\n\r\n",
                            *ct != '\0' ? ct : "text/plain");
    memcpy(whole + wlen, body, blen);
    wlen += blen;
    s = g_mime_stream_mem_new_with_buffer(whole, wlen);
    p = g_mime_parser_new_with_stream(s);
    g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
    if ((o = g_mime_parser_construct_part(p, NULL)) != NULL) {
        count(o, 0, &n, &deepest);
        beyond = n > MAX_PARTS;
        if (getenv("SMM_FUZZ_VERBOSE") != NULL)
            fprintf(stderr,
                    "fuzz-prescan: pre-scan %s, GMime tree %d parts, "
                    "depth %d\n",
                    refused ? "refused" : "allowed", n, deepest);
        if (!refused && beyond) {
            fprintf(stderr,
                    "fuzz-prescan: pre-scan %s, GMime tree %d parts, depth "
                    "%d\n",
                    refused ? "refused" : "allowed", n, deepest);
            abort();
        }
        g_object_unref(o);
    }
    g_object_unref(p);
    g_object_unref(s);
    free(whole);
out:
    smm_spool_free(sp);
    free(ct);
    return 0;
}
