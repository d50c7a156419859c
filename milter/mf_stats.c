/*
 * mf_stats -- counters since start, for smime-milter-ctl stats.
 *
 * Every message adds to a few named counters (by direction, action,
 * result, error reason, signature verdict, decryption outcome); the
 * worker writes them, with the certificate cache's figures, to StatsFile
 * every StatsInterval seconds and when the supervisor receives SIGUSR1,
 * and logs them in one line then.  The file is replaced atomically (temp
 * file and rename), one "name value" per line, sorted.  Thread-safe (one
 * mutex; a handful of updates per message).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mf.h"
#include "smm_buf.h"
#include "smm_cache.h"
#include "smm_log.h"

#define MF_MAX_COUNTERS 256

struct counter {
    char name[64];
    unsigned long value;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct counter counters[MF_MAX_COUNTERS];
static int ncounters;
static time_t started;
static int warned;

void
mf_stats_init(void)
{
    started = time(NULL);
}

/* Add to a counter; the caller holds the lock. */
static void
bump(const char *name)
{
    int i;

    for (i = 0; i < ncounters; i++)
        if (strcmp(counters[i].name, name) == 0) {
            counters[i].value++;
            return;
        }
    if (ncounters < MF_MAX_COUNTERS) {
        snprintf(counters[ncounters].name, sizeof(counters[0].name), "%s",
                 name);
        counters[ncounters++].value = 1;
    }
}

/* Every value of " key=" in a log text (a word: up to a blank). */
static void
bump_words(const char *log, const char *key, const char *prefix)
{
    const char *p = log;
    char name[64];
    size_t kl = strlen(key), n;

    while (p != NULL && (p = strstr(p, key)) != NULL) {
        p += kl;
        n = strcspn(p, " \"");
        if (n > 0 && n < 32) {
            snprintf(name, sizeof(name), "%s%.*s", prefix, (int)n, p);
            bump(name);
        }
    }
}

void
mf_stats_connection(void)
{
    pthread_mutex_lock(&lock);
    bump("connections");
    pthread_mutex_unlock(&lock);
}

void
mf_stats_message(const char *dir, const char *action,
                 const struct smm_result *r)
{
    char name[64];
    const char *log = r->log.data != NULL ? r->log.data : "";

    pthread_mutex_lock(&lock);
    snprintf(name, sizeof(name), "messages.%s", dir);
    bump(name);
    snprintf(name, sizeof(name), "action.%s.%s", dir, action);
    bump(name);
    snprintf(name, sizeof(name), "result.%s.%s", dir,
             r->verdict != NULL ? r->verdict : "none");
    bump(name);
    if (strcmp(action, "deliver") != 0 || strstr(log, " error=") != NULL)
        bump_words(log, " reason=", "error.");
    bump_words(log, " sig1=", "signature.");
    bump_words(log, " sig2=", "signature.");
    bump_words(log, " decrypted=no reason=", "decrypt.no.");
    if (strstr(log, " harvested=") != NULL)
        bump("harvested");
    pthread_mutex_unlock(&lock);
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(((const struct counter *)a)->name,
                  ((const struct counter *)b)->name);
}

/* Write the counters to the StatsFile of s; log them when loud. */
void
mf_stats_write(const struct smm_state *s, int loud)
{
    struct counter copy[MF_MAX_COUNTERS];
    struct smm_cache_stats cs = {0};
    struct smm_buf line = {0};
    char tmp[4200];
    const char *path = s->cfg->stats_file;
    time_t now = time(NULL);
    FILE *fp = NULL;
    int i, n, fd = -1;

    pthread_mutex_lock(&lock);
    n = ncounters;
    memcpy(copy, counters, (size_t)n * sizeof(copy[0]));
    pthread_mutex_unlock(&lock);
    qsort(copy, (size_t)n, sizeof(copy[0]), by_name);
    if (s->cache != NULL)
        smm_cache_stats(s->cache, &cs);
    smm_buf_printf(&line, "uptime=%ld", (long)(now - started));
    for (i = 0; i < n; i++)
        smm_buf_printf(&line, " %s=%lu", copy[i].name, copy[i].value);
    smm_buf_printf(&line,
                   " cache.hits=%lu cache.negative_hits=%lu cache.misses=%lu "
                   "cache.evictions=%lu cache.entries=%zu",
                   cs.hits, cs.negative_hits, cs.misses, cs.evictions,
                   cs.entries);
    if (loud)
        smm_log(SMM_LOG_INFO, "stats: %s", line.data != NULL ? line.data : "");
    smm_buf_free(&line);
    if (path == NULL || *path == '\0')
        return;
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0 || fchmod(fd, 0644) != 0 ||
        (fp = fdopen(fd, "w")) == NULL) {
        if (!warned++)
            smm_log(SMM_LOG_WARNING, "StatsFile %s: cannot write: %s", path,
                    strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return;
    }
    fprintf(fp, "started %ld\nwritten %ld\nuptime %ld\n", (long)started,
            (long)now, (long)(now - started));
    for (i = 0; i < n; i++)
        fprintf(fp, "%s %lu\n", copy[i].name, copy[i].value);
    fprintf(fp,
            "cache.hits %lu\ncache.negative_hits %lu\ncache.misses %lu\n"
            "cache.evictions %lu\ncache.entries %zu\n",
            cs.hits, cs.negative_hits, cs.misses, cs.evictions, cs.entries);
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        if (!warned++)
            smm_log(SMM_LOG_WARNING, "StatsFile %s: cannot write: %s", path,
                    strerror(errno));
        unlink(tmp);
    }
}
