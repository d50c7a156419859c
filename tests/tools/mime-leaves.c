/*
 * mime-leaves FILE -- print the decoded content of every leaf MIME part of
 * a message (or entity), depth first, each preceded by a line
 * "== type/subtype", with CR removed.  Descends into multipart/signed's
 * first part and into message/rfc822; skips signature parts.  Used by the
 * tests to prove that signing kept every part's content.
 */
#include <stdio.h>
#include <string.h>

#include <gmime/gmime.h>

static void
leaves(GMimeObject *o, int depth)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    int i, n;

    if (depth > 50)
        return;
    if (GMIME_IS_MULTIPART(o)) {
        n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
        if (g_mime_content_type_is_type(ct, "multipart", "signed"))
            n = n > 0 ? 1 : 0;
        for (i = 0; i < n; i++)
            leaves(g_mime_multipart_get_part(GMIME_MULTIPART(o), i),
                   depth + 1);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *m =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (m != NULL && g_mime_message_get_mime_part(m) != NULL)
            leaves(g_mime_message_get_mime_part(m), depth + 1);
    } else if (GMIME_IS_PART(o)) {
        GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
        GMimeStream *s = g_mime_stream_mem_new();
        GByteArray *ba;
        guint j;

        printf("== %s/%s\n", g_mime_content_type_get_media_type(ct),
               g_mime_content_type_get_media_subtype(ct));
        if (w != NULL)
            g_mime_data_wrapper_write_to_stream(w, s);
        ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
        for (j = 0; j < ba->len; j++)
            if (ba->data[j] != '\r')
                putchar(ba->data[j]);
        printf("\n");
        g_object_unref(s);
    }
}

int
main(int argc, char **argv)
{
    GMimeStream *s;
    GMimeParser *p;
    GMimeObject *o;
    FILE *fp;

    if (argc != 2 || (fp = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: mime-leaves FILE\n");
        return 2;
    }
    g_mime_init();
    s = g_mime_stream_file_new(fp);
    p = g_mime_parser_new_with_stream(s);
    if ((o = g_mime_parser_construct_part(p, NULL)) == NULL) {
        fprintf(stderr, "mime-leaves: cannot parse %s\n", argv[1]);
        return 1;
    }
    leaves(o, 0);
    g_object_unref(o);
    g_object_unref(p);
    g_object_unref(s);
    return 0;
}
