/*
 * mf -- the smime-milter daemon's shared declarations.
 *
 * milter/ is the only code that includes libmilter.  It never calls
 * OpenSSL, LDAP or GMime: everything it needs is in lib/ (smm_*).
 *
 *   mf_main.c       arguments, logging set-up, supervisor, privileges
 *   mf_state.c      the current state snapshot, reload on SIGUSR1
 *   mf_callbacks.c  libmilter callbacks: collect, hand off, apply
 *   mf_apply.c      turn a struct smm_result into smfi_* calls
 *   mf_prefetch.c   recipient lookups started at RCPT time
 *   mf_stats.c      counters since start, StatsFile
 */
#ifndef MF_H
#define MF_H

#include <signal.h>

#include <libmilter/mfapi.h>

#include "smm_result.h"
#include "smm_state.h"

extern struct smfiDesc mf_desc;

/* mf_state.c */
int mf_state_init(const char *);
struct smm_state *mf_state_get(void);
int mf_state_reload(void);
void mf_state_shutdown(void);
void mf_conn_enter(void);
void mf_conn_leave(void);
int mf_conn_wait(int);
int mf_msg_enter(void);
void mf_msg_leave(void);
int mf_draining(void);
int mf_drain(int);

/* mf_prefetch.c */
int mf_prefetch_init(void);
void mf_prefetch(struct smm_state *, const char *);
void mf_prefetch_wait(const struct smm_state *, char *const *, size_t, int);

/* mf_stats.c; the supervisor forwards SIGUSR1 to the worker as this */
#define MF_SIG_STATS (SIGRTMIN + 1)
void mf_stats_init(void);
void mf_stats_connection(void);
void mf_stats_message(const char *, const char *, const struct smm_result *);
void mf_stats_write(const struct smm_state *, int);

/* mf_apply.c */
sfsistat mf_apply(SMFICTX *, const struct smm_result *);

/* mf_main.c */
extern int mf_verbose;
void mf_log_line(int, const char *, void *);

#endif
