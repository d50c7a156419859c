/*
 * null-milter -- the control for the benchmarks: a milter that does no
 * work but costs what any body-rewriting milter costs in the protocol.
 * It buffers the body and at end of message replaces the body with the
 * same bytes (smfi_replacebody), changing nothing else.
 *
 *   null-milter -p inet:PORT@HOST|unix:PATH
 *
 * Runs in the foreground until SIGTERM or SIGINT.  One buffer per
 * connection, reset at end of message and on abort.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

struct body {
    unsigned char *p;
    size_t len;
    size_t cap;
};

static struct body *
get(SMFICTX *ctx)
{
    struct body *b = smfi_getpriv(ctx);

    if (b == NULL && (b = calloc(1, sizeof(*b))) != NULL &&
        smfi_setpriv(ctx, b) != MI_SUCCESS) {
        free(b);
        b = NULL;
    }
    return b;
}

static sfsistat
cb_body(SMFICTX *ctx, unsigned char *p, size_t n)
{
    struct body *b = get(ctx);

    if (b == NULL)
        return SMFIS_TEMPFAIL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        unsigned char *q;
        while (cap < b->len + n)
            cap *= 2;
        if ((q = realloc(b->p, cap)) == NULL)
            return SMFIS_TEMPFAIL;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return SMFIS_CONTINUE;
}

static sfsistat
cb_eom(SMFICTX *ctx)
{
    struct body *b = get(ctx);
    size_t o, n;

    if (b == NULL)
        return SMFIS_TEMPFAIL;
    for (o = 0; o < b->len; o += n) {
        n = b->len - o < 65535 ? b->len - o : 65535;
        if (smfi_replacebody(ctx, b->p + o, (int)n) != MI_SUCCESS)
            return SMFIS_TEMPFAIL;
    }
    b->len = 0;
    return SMFIS_CONTINUE;
}

static sfsistat
cb_abort(SMFICTX *ctx)
{
    struct body *b = smfi_getpriv(ctx);

    if (b != NULL)
        b->len = 0;
    return SMFIS_CONTINUE;
}

static sfsistat
cb_close(SMFICTX *ctx)
{
    struct body *b = smfi_getpriv(ctx);

    if (b != NULL) {
        free(b->p);
        free(b);
        (void)smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "null-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_CHGBODY,
    .xxfi_body = cb_body,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
};

int
main(int argc, char **argv)
{
    const char *sock = NULL;
    int c;

    while ((c = getopt(argc, argv, "p:")) != -1) {
        if (c != 'p') {
            fprintf(stderr, "usage: null-milter -p SOCKET\n");
            return 2;
        }
        sock = optarg;
    }
    if (sock == NULL || optind != argc) {
        fprintf(stderr, "usage: null-milter -p SOCKET\n");
        return 2;
    }
    if (smfi_setconn((char *)sock) != MI_SUCCESS ||
        smfi_register(desc) != MI_SUCCESS || smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "null-milter: cannot listen on %s\n", sock);
        return 1;
    }
    (void)smfi_setbacklog(128);
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
