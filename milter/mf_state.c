/*
 * mf_state -- the current snapshot (config, trust, keys) and its reload.
 *
 * One global pointer guarded by a mutex (the OpenDKIM "curconf" pattern):
 * mf_state_get() returns a new reference that the caller drops with
 * smm_state_unref() when its message is done; mf_state_reload() builds a
 * complete new snapshot and swaps it in only if it loaded, so a broken
 * configuration keeps the old state.  Also counts open connections so
 * that shutdown can wait for messages in flight: while draining, new
 * connections and transactions are refused (tempfail) and the messages
 * already started run to their end.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mf.h"
#include "smm_log.h"

static pthread_mutex_t st_lock = PTHREAD_MUTEX_INITIALIZER;
static struct smm_state *st_current;
static char st_conffile[4096];

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cond = PTHREAD_COND_INITIALIZER;
static int conn_count;
static int msg_count;
static int draining;

static void
log_diag(const struct smm_diag *d)
{
    (void)d; /* each problem was logged when it was found */
}

/* Load the first snapshot.  Returns 0, or -1 after logging why. */
int
mf_state_init(const char *conffile)
{
    struct smm_diag diag = {0};
    struct smm_err err;
    struct smm_state *s;

    snprintf(st_conffile, sizeof(st_conffile), "%s", conffile);
    if (smm_state_load(st_conffile, &s, &diag, &err) != SMM_OK) {
        smm_log(SMM_LOG_ERR, "%s", err.msg);
        smm_diag_free(&diag);
        return -1;
    }
    log_diag(&diag);
    smm_diag_free(&diag);
    pthread_mutex_lock(&st_lock);
    st_current = s;
    pthread_mutex_unlock(&st_lock);
    return 0;
}

struct smm_state *
mf_state_get(void)
{
    struct smm_state *s;

    pthread_mutex_lock(&st_lock);
    s = smm_state_ref(st_current);
    pthread_mutex_unlock(&st_lock);
    return s;
}

/* Rebuild the snapshot from the config file; keep the old one on error. */
int
mf_state_reload(void)
{
    struct smm_diag diag = {0};
    struct smm_err err;
    struct smm_state *s, *old;

    if (smm_state_load(st_conffile, &s, &diag, &err) != SMM_OK) {
        smm_log(SMM_LOG_ERR,
                "reload failed, keeping the running "
                "configuration: %s",
                err.msg);
        smm_diag_free(&diag);
        return -1;
    }
    pthread_mutex_lock(&st_lock);
    old = st_current;
    if (old != NULL) {
        if (strcmp(old->cfg->socket, s->cfg->socket) != 0)
            smm_log(SMM_LOG_WARNING, "reload: a new Socket takes effect "
                                     "only after a restart");
        if (strcmp(old->cfg->user_id, s->cfg->user_id) != 0)
            smm_log(SMM_LOG_WARNING, "reload: a new UserID takes effect "
                                     "only after a restart");
        if (old->cfg->allow_core_dumps != s->cfg->allow_core_dumps)
            smm_log(SMM_LOG_WARNING, "reload: a new AllowCoreDumps takes "
                                     "effect only after a restart");
    }
    st_current = s;
    pthread_mutex_unlock(&st_lock);
    smm_log_set(mf_log_line, NULL,
                mf_verbose ? SMM_LOG_DEBUG : s->cfg->log_level);
    smm_log(SMM_LOG_NOTICE, "reloaded %s: %zu keys, %zu problems", st_conffile,
            smm_keystore_count(s->ks), diag.n);
    smm_diag_free(&diag);
    smm_state_unref(old);
    return 0;
}

void
mf_state_shutdown(void)
{
    pthread_mutex_lock(&st_lock);
    smm_state_unref(st_current);
    st_current = NULL;
    pthread_mutex_unlock(&st_lock);
}

void
mf_conn_enter(void)
{
    pthread_mutex_lock(&conn_lock);
    conn_count++;
    pthread_mutex_unlock(&conn_lock);
}

void
mf_conn_leave(void)
{
    pthread_mutex_lock(&conn_lock);
    if (--conn_count == 0)
        pthread_cond_broadcast(&conn_cond);
    pthread_mutex_unlock(&conn_lock);
}

/* Wait up to secs for open connections to finish; returns how many are
 * left. */
int
mf_conn_wait(int secs)
{
    struct timespec ts;
    int left;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(&conn_lock);
    while (conn_count > 0)
        if (pthread_cond_timedwait(&conn_cond, &conn_lock, &ts) != 0)
            break;
    left = conn_count;
    pthread_mutex_unlock(&conn_lock);
    return left;
}

/* A transaction starts (MAIL FROM).  Returns -1 when draining. */
int
mf_msg_enter(void)
{
    int ok;

    pthread_mutex_lock(&conn_lock);
    ok = !draining;
    if (ok)
        msg_count++;
    pthread_mutex_unlock(&conn_lock);
    return ok ? 0 : -1;
}

void
mf_msg_leave(void)
{
    pthread_mutex_lock(&conn_lock);
    if (--msg_count == 0)
        pthread_cond_broadcast(&conn_cond);
    pthread_mutex_unlock(&conn_lock);
}

int
mf_draining(void)
{
    int d;

    pthread_mutex_lock(&conn_lock);
    d = draining;
    pthread_mutex_unlock(&conn_lock);
    return d;
}

/* Stop taking new messages; wait up to secs for the ones in flight.
 * Returns how many are left. */
int
mf_drain(int secs)
{
    struct timespec ts;
    int left;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(&conn_lock);
    draining = 1;
    while (msg_count > 0)
        if (pthread_cond_timedwait(&conn_cond, &conn_lock, &ts) != 0)
            break;
    left = msg_count;
    pthread_mutex_unlock(&conn_lock);
    return left;
}
