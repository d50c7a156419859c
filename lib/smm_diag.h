/*
 * smm_diag -- a list of problems found while loading files.
 *
 * Loading the key store or the trust anchors does not stop at the first
 * bad file: every problem is collected here (one sentence each, naming the
 * file), logged by the daemon and printed by "smime-milter -n", which
 * exits 1 when the list is not empty.  Owned by the caller.
 */
#ifndef SMM_DIAG_H
#define SMM_DIAG_H

#include <stddef.h>

struct smm_diag {
    char **msgs;
    int *levels; /* SMM_LOG_* */
    size_t n;
};

void smm_diag_add(struct smm_diag *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
size_t smm_diag_count(const struct smm_diag *, int);
void smm_diag_free(struct smm_diag *);

#endif
