/*
 * smm_diag -- load problem list; see smm_diag.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smm_diag.h"
#include "smm_log.h"

/* Record a problem (and send it to the log). Out of memory: log only. */
void
smm_diag_add(struct smm_diag *d, int level, const char *fmt, ...)
{
    va_list ap;
    char buf[1024], **nm;
    int *nl;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    smm_log(level, "%s", buf);
    if (d == NULL)
        return;
    if ((nm = realloc(d->msgs, (d->n + 1) * sizeof(*nm))) == NULL)
        return;
    d->msgs = nm;
    if ((nl = realloc(d->levels, (d->n + 1) * sizeof(*nl))) == NULL)
        return;
    d->levels = nl;
    if ((d->msgs[d->n] = strdup(buf)) == NULL)
        return;
    d->levels[d->n] = level;
    d->n++;
}

/* How many problems at level or more severe. */
size_t
smm_diag_count(const struct smm_diag *d, int level)
{
    size_t i, c = 0;

    for (i = 0; i < d->n; i++)
        if (d->levels[i] <= level)
            c++;
    return c;
}

void
smm_diag_free(struct smm_diag *d)
{
    size_t i;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    free(d->levels);
    d->msgs = NULL;
    d->levels = NULL;
    d->n = 0;
}
