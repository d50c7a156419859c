/*
 * smm_log -- the library's optional log callback.
 *
 * The library never calls syslog: it formats a line and hands it to the
 * callback installed once at start-up by the program (the milter sends it
 * to syslog, smime-milter-ctl to stderr).  Levels use syslog's numbers.
 * smm_log_set() must be called before threads start; smm_log() itself is
 * thread-safe.  Control characters in logged data are escaped with
 * smm_log_escape(), so an address or subject can never forge a log line.
 */
#ifndef SMM_LOG_H
#define SMM_LOG_H

#include <stddef.h>

enum {
    SMM_LOG_ERR = 3,
    SMM_LOG_WARNING = 4,
    SMM_LOG_NOTICE = 5,
    SMM_LOG_INFO = 6,
    SMM_LOG_DEBUG = 7,
};

typedef void smm_log_fn(int level, const char *line, void *arg);

void smm_log_set(smm_log_fn *, void *, int);
void smm_log(int, const char *, ...) __attribute__((format(printf, 2, 3)));
char *smm_log_escape(char *, size_t, const char *);
int smm_log_level_parse(const char *);
const char *smm_log_level_name(int);

#endif
