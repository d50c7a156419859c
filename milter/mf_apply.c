/*
 * mf_apply -- apply a pipeline result to the message in the MTA.
 *
 * Header edits in order (smfi_chgheader / smfi_addheader), then the
 * replacement body in chunks (smfi_replacebody), then the verdict.  Any
 * failing smfi_* call turns the verdict into a tempfail, so a half-applied
 * change is never delivered: the MTA throws the transaction away and the
 * client retries.  A refusal's reply text goes out with every '%'
 * doubled (set_reply), as libmilter's MTAs read it as a format.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <libmilter/mfdef.h>

#include "mf.h"
#include "smm_log.h"

/* libmilter sends at most MILTER_CHUNK_SIZE (65535) bytes per packet: a
 * bigger piece would go out as a full packet plus a tiny one */
#define MF_BODY_CHUNK MILTER_CHUNK_SIZE
#define MF_REPLY_MAX 900 /* libmilter refuses reply texts over 980 bytes */

/*
 * The reply text as libmilter wants it: the MTA takes it as a format (a
 * lone '%' makes Sendmail drop the text and Postfix drop the '%'), so a
 * '%' is doubled; it cannot hold CR or LF (the library escaped those).
 */
static void
set_reply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
    char rc[4], xc[12], buf[MF_REPLY_MAX + 1];
    size_t o = 0;

    snprintf(rc, sizeof(rc), "%s", rcode);
    snprintf(xc, sizeof(xc), "%s", xcode);
    for (; text != NULL && *text != '\0' && o + 2 < sizeof(buf); text++) {
        if (*text == '%')
            buf[o++] = '%';
        buf[o++] = *text == '\r' || *text == '\n' ? ' ' : *text;
    }
    buf[o] = '\0';
    if (smfi_setreply(ctx, rc, xc, buf) != MI_SUCCESS)
        smm_log(SMM_LOG_WARNING,
                "smfi_setreply %s %s failed: the MTA "
                "gives its default reply",
                rc, xc);
}

static sfsistat
tempfail(SMFICTX *ctx, const char *what)
{
    smm_log(SMM_LOG_ERR, "%s failed; message tempfailed", what);
    (void)smfi_setreply(ctx, "451", "4.3.0",
                        "temporary failure applying S/MIME changes");
    return SMFIS_TEMPFAIL;
}

sfsistat
mf_apply(SMFICTX *ctx, const struct smm_result *r)
{
    size_t i, off = 0;
    ssize_t n;
    unsigned char buf[MF_BODY_CHUNK];

    switch (r->action) {
    case SMM_ACT_TEMPFAIL:
        set_reply(ctx, r->rcode, r->xcode, r->reply);
        return SMFIS_TEMPFAIL;
    case SMM_ACT_REJECT:
        set_reply(ctx, r->rcode, r->xcode, r->reply);
        return SMFIS_REJECT;
    case SMM_ACT_HOLD:
        if (smfi_quarantine(ctx, r->hold_reason != NULL
                                     ? r->hold_reason
                                     : (char *)"smime-milter") != MI_SUCCESS)
            return tempfail(ctx, "smfi_quarantine");
        break;
    case SMM_ACT_DELIVER:
        break;
    }
    for (i = 0; i < r->nedits; i++) {
        const struct smm_edit *e = &r->edits[i];
        int rc;
        switch (e->op) {
        case SMM_EDIT_ADD:
            rc = smfi_addheader(ctx, e->name, e->value);
            break;
        case SMM_EDIT_CHANGE:
            rc = smfi_chgheader(ctx, e->name, e->index, e->value);
            break;
        case SMM_EDIT_INSERT:
            rc = smfi_insheader(ctx, e->index, e->name, e->value);
            break;
        case SMM_EDIT_DELETE:
        default:
            rc = smfi_chgheader(ctx, e->name, e->index, NULL);
            break;
        }
        if (rc != MI_SUCCESS)
            return tempfail(ctx, "header change");
    }
    if (r->body != NULL) {
        while ((n = smm_spool_pread(r->body, buf, sizeof(buf), off)) > 0) {
            if (smfi_replacebody(ctx, buf, (int)n) != MI_SUCCESS)
                return tempfail(ctx, "smfi_replacebody");
            off += (size_t)n;
        }
        if (n < 0)
            return tempfail(ctx, "reading the new body");
    }
    return SMFIS_CONTINUE;
}
