/*
 * smm_crlf -- the CRLF filter; see smm_crlf.h.
 */
#include "config.h"

#include <string.h>

#include "smm_crlf.h"

typedef struct {
    GMimeFilter parent;
    int cr; /* the last byte seen was a CR */
} SmmCrlf;

typedef struct {
    GMimeFilterClass parent_class;
} SmmCrlfClass;

GType smm_crlf_get_type(void);
G_DEFINE_TYPE(SmmCrlf, smm_crlf, GMIME_TYPE_FILTER)

static GMimeFilter *
crlf_copy(GMimeFilter *f)
{
    (void)f;
    return smm_crlf_filter_new();
}

static void
crlf_filter(GMimeFilter *f, char *in, size_t len, size_t prespace, char **out,
            size_t *outlen, size_t *outprespace)
{
    SmmCrlf *c = (SmmCrlf *)f;
    const char *p = in, *end = in + len, *lf;
    size_t bare = 0;
    char *o;

    /* count the LFs without a CR before them */
    for (p = in; (lf = memchr(p, '\n', (size_t)(end - p))) != NULL; p = lf + 1)
        if (lf > in ? lf[-1] != '\r' : !c->cr)
            bare++;
    if (bare == 0) {
        *out = in;
        *outlen = len;
        *outprespace = prespace;
    } else {
        g_mime_filter_set_size(f, len + bare, FALSE);
        o = f->outbuf;
        for (p = in; (lf = memchr(p, '\n', (size_t)(end - p))) != NULL;
             p = lf + 1) {
            memcpy(o, p, (size_t)(lf - p));
            o += lf - p;
            if (lf > in ? lf[-1] != '\r' : !c->cr)
                *o++ = '\r';
            *o++ = '\n';
        }
        memcpy(o, p, (size_t)(end - p));
        o += end - p;
        *out = f->outbuf;
        *outlen = (size_t)(o - f->outbuf);
        *outprespace = f->outpre;
    }
    if (len > 0)
        c->cr = in[len - 1] == '\r';
}

static void
crlf_reset(GMimeFilter *f)
{
    ((SmmCrlf *)f)->cr = 0;
}

static void
smm_crlf_class_init(SmmCrlfClass *klass)
{
    GMimeFilterClass *fc = GMIME_FILTER_CLASS(klass);

    fc->copy = crlf_copy;
    fc->filter = crlf_filter;
    fc->complete = crlf_filter;
    fc->reset = crlf_reset;
}

static void
smm_crlf_init(SmmCrlf *c)
{
    c->cr = 0;
}

GMimeFilter *
smm_crlf_filter_new(void)
{
    return g_object_new(smm_crlf_get_type(), NULL);
}
