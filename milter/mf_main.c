/*
 * mf_main -- smime-milter: options, logging, supervisor, privileges.
 *
 * Process model: the process started by the admin (or systemd) is a small
 * supervisor.  It checks the configuration, writes the PID file, and forks
 * the worker that loads the key store, opens the milter socket, drops
 * privileges and runs libmilter.  libmilter reserves SIGHUP for itself (it
 * stops the filter), so the supervisor catches SIGHUP and forwards it to
 * the worker as SIGUSR1, which reloads without dropping connections.
 * SIGTERM/SIGINT are forwarded as SIGTERM: the worker stops accepting and
 * finishes the messages in flight.  A worker that dies unexpectedly is
 * restarted (with back-off), so a crash never leaves the MTA without its
 * filter for long.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif
#if defined(HAVE_MALLOC_H) && defined(HAVE_MALLOPT)
#include <malloc.h>
#endif

#include "mf.h"
#include "smm_ldap.h"
#include "smm_log.h"

#define MF_DRAIN_SECONDS 60

static int use_stderr;
int mf_verbose;
static const char *progname = "smime-milter";

void
mf_log_line(int level, const char *line, void *arg)
{
    (void)arg;
    if (use_stderr) {
        struct timespec ts;
        struct tm tm;
        char tbuf[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ld %s[%ld]: %s: %s\n", tbuf,
                ts.tv_nsec / 1000000, progname, (long)getpid(),
                smm_log_level_name(level), line);
        fflush(stderr);
    } else {
        syslog(level, "%s", line);
    }
}

static int
facility_code(const char *name)
{
    static const struct {
        const char *n;
        int f;
    } tab[] = {
        {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
        {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
        {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
        {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };
    size_t i;

    for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcasecmp(name, tab[i].n) == 0)
            return tab[i].f;
    return LOG_MAIL;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: %s [-fnvV] [-c conffile] [-p socket] [-u user] "
            "[-P pidfile]\n"
            "  -c conffile  configuration (default %s)\n"
            "  -p socket    milter socket, overrides Socket "
            "(unix:/path or inet:port@host)\n"
            "  -u user      run as this user, overrides UserID\n"
            "  -P pidfile   write the PID here, overrides PidFile\n"
            "  -f           stay in the foreground, log to stderr\n"
            "  -n           check configuration and key store, then exit\n"
            "  -v           verbose (LogLevel debug)\n"
            "  -V           print the version and exit\n",
            progname, SMM_DEFAULT_CONFIG);
    exit(2);
}

/* -n: load everything, print every problem, exit 0 (fine) or 1. */
static int
check_config(const char *conffile)
{
    struct smm_diag diag = {0};
    struct smm_err err;
    struct smm_state *s;
    size_t i, nerr;

    /* every syntax error in the file, not only the first */
    if (smm_config_check(conffile, &diag, &err) != SMM_OK && diag.n > 0) {
        for (i = 0; i < diag.n; i++)
            fprintf(stderr, "%s: %s: %s\n", progname,
                    smm_log_level_name(diag.levels[i]), diag.msgs[i]);
        printf("%s: %s: problems found, 0 keys, %zu errors, 0 warnings\n",
               progname, conffile, diag.n);
        smm_diag_free(&diag);
        return 1;
    }
    smm_diag_free(&diag);
    memset(&diag, 0, sizeof(diag));
    if (smm_state_load(conffile, &s, &diag, &err) != SMM_OK) {
        for (i = 0; i < diag.n; i++)
            fprintf(stderr, "%s: %s: %s\n", progname,
                    smm_log_level_name(diag.levels[i]), diag.msgs[i]);
        fprintf(stderr, "%s: error: %s\n", progname, err.msg);
        smm_diag_free(&diag);
        return 1;
    }
    if (s->ldap != NULL) {
        if (smm_ldap_check(s->ldap, &err) != SMM_OK)
            smm_diag_add(&diag, SMM_LOG_ERR, "LDAP: %s", err.msg);
        else
            printf("%s: LDAP: connected and bound\n", progname);
    }
    for (i = 0; i < diag.n; i++)
        fprintf(stderr, "%s: %s: %s\n", progname,
                smm_log_level_name(diag.levels[i]), diag.msgs[i]);
    nerr = smm_diag_count(&diag, SMM_LOG_ERR);
    printf("%s: %s: %s, %zu keys, %zu errors, %zu warnings\n", progname,
           conffile, nerr ? "problems found" : "OK", smm_keystore_count(s->ks),
           nerr, diag.n - nerr);
    smm_diag_free(&diag);
    smm_state_unref(s);
    return nerr ? 1 : 0;
}

static int
write_pidfile(const char *path)
{
    FILE *fp;

    if (path == NULL || *path == '\0')
        return 0;
    if ((fp = fopen(path, "w")) == NULL) {
        smm_log(SMM_LOG_ERR, "PidFile %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "%ld\n", (long)getpid());
    fclose(fp);
    return 0;
}

/* unix:/path, local:/path or a bare path -> the path; else NULL. */
static const char *
unix_socket_path(const char *sock)
{
    if (strncmp(sock, "unix:", 5) == 0)
        return sock + 5;
    if (strncmp(sock, "local:", 6) == 0)
        return sock + 6;
    if (sock[0] == '/')
        return sock;
    return NULL;
}

static int allow_cores; /* AllowCoreDumps, read at start-up */

static int
drop_privileges(const char *user, const char *sock)
{
    struct passwd *pw;
    const char *path;

    if (user == NULL || *user == '\0') {
        if (geteuid() != 0)
            return 0;
        smm_log(SMM_LOG_ERR,
                "refusing to run as root: set UserID (or -u) to the "
                "unprivileged user the filter should run as (UserID root "
                "keeps root)");
        return -1;
    }
    if ((pw = getpwnam(user)) == NULL) {
        smm_log(SMM_LOG_ERR, "UserID %s: no such user", user);
        return -1;
    }
    if (pw->pw_uid == 0) {
        smm_log(SMM_LOG_WARNING, "UserID %s: running as root by request", user);
        return 0;
    }
    if ((path = unix_socket_path(sock)) != NULL &&
        chown(path, pw->pw_uid, pw->pw_gid) != 0)
        smm_log(SMM_LOG_WARNING, "chown %s: %s", path, strerror(errno));
    if (getuid() == pw->pw_uid)
        return 0;
    if (setgid(pw->pw_gid) != 0 || initgroups(user, pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        smm_log(SMM_LOG_ERR, "cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        smm_log(SMM_LOG_ERR, "privileges not dropped: still root");
        return -1;
    }
#ifdef HAVE_PRCTL
    /* a change of user resets the flag to fs.suid_dumpable: set it again */
    (void)prctl(PR_SET_DUMPABLE, allow_cores ? 1 : 0, 0, 0, 0);
#endif
    return 0;
}

/*
 * No core dumps while private keys are in memory, unless AllowCoreDumps:
 * a zero core size and, on Linux, a process that is not dumpable (which
 * also keeps other processes of the same user from ptrace and
 * /proc/PID/mem).
 */
static void
limit_core_dumps(int allow)
{
    struct rlimit rl;

    allow_cores = allow;
    if (allow)
        return;
    rl.rlim_cur = rl.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        smm_log(SMM_LOG_WARNING, "setrlimit(RLIMIT_CORE): %s", strerror(errno));
#ifdef HAVE_PRCTL
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

/*
 * libmilter's listener notices smfi_stop() only when its poll() times out
 * (every 5 s) or is interrupted, and smfi_stop() itself waits for the lock
 * the listener holds while it polls.  So while the control thread is in
 * smfi_stop() a second thread sends the listening thread MF_SIG_WAKE,
 * whose handler does nothing, until smfi_main() has returned: the worker
 * stops at once, not 5 s later.
 */
#define MF_SIG_WAKE SIGALRM
static pthread_t listener_tid;
static pthread_mutex_t listener_lock = PTHREAD_MUTEX_INITIALIZER;
static int listener_done;

static int
listener_running(void)
{
    int r;

    pthread_mutex_lock(&listener_lock);
    r = !listener_done;
    pthread_mutex_unlock(&listener_lock);
    return r;
}

static void
on_wake(int sig)
{
    (void)sig;
}

static void *
wake_listener(void *arg)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    int i;

    (void)arg;
    for (i = 0; i < 500 && listener_running(); i++) {
        (void)pthread_kill(listener_tid, MF_SIG_WAKE);
        (void)nanosleep(&pause, NULL);
    }
    return NULL;
}

/*
 * Worker thread: SIGUSR1 means "reload", SIGUSR2 "drain and stop",
 * MF_SIG_STATS "write and log the counters"; every StatsInterval seconds
 * the counters are written too.
 */
static void *
control_thread(void *arg)
{
    sigset_t set;
    struct timespec tmo;
    struct smm_state *s;
    pthread_t waker;
    int sig, left, every;
    time_t next = 0, now;

    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, MF_SIG_STATS);
    for (;;) {
        s = mf_state_get();
        every = s->cfg->stats_interval;
        smm_state_unref(s);
        now = time(NULL);
        if (every > 0 && next == 0)
            next = now + every;
        tmo.tv_sec = every > 0 ? (next > now ? next - now : 0) : 3600;
        tmo.tv_nsec = 0;
        sig = sigtimedwait(&set, NULL, &tmo);
        if (sig < 0) {
            if (every > 0 && time(NULL) >= next) {
                s = mf_state_get();
                mf_stats_write(s, 0);
                smm_state_unref(s);
                next = 0;
            }
            continue;
        }
        if (sig == SIGUSR1) {
            (void)mf_state_reload();
        } else if (sig == MF_SIG_STATS) {
            s = mf_state_get();
            mf_stats_write(s, 1);
            smm_state_unref(s);
        } else if (sig == SIGUSR2) {
            smm_log(SMM_LOG_NOTICE, "stopping: finishing the messages in "
                                    "flight, refusing new ones (tempfail)");
            if ((left = mf_drain(MF_DRAIN_SECONDS)) > 0)
                smm_log(SMM_LOG_WARNING,
                        "%d messages still in flight after %d s; the MTA "
                        "will retry them",
                        left, MF_DRAIN_SECONDS);
            s = mf_state_get();
            mf_stats_write(s, 1);
            smm_state_unref(s);
            if (pthread_create(&waker, NULL, wake_listener, NULL) == 0)
                (void)pthread_detach(waker);
            (void)smfi_stop();
            return NULL;
        }
    }
    return NULL;
}

/*
 * glibc gives memory back to the kernel as soon as more than 128 KiB is
 * free at the top of a thread's arena, so every message that freed its
 * result body (a few tens of KiB) paid madvise() and the page faults to
 * get the memory back for the next one, and on several cores a TLB
 * shootdown each time.  Keep up to a few MiB per arena; blocks up to the
 * usual MaxMemoryBody come from the arenas, not from mmap().
 */
static void
tune_malloc(void)
{
#if defined(HAVE_MALLOC_H) && defined(HAVE_MALLOPT) && defined(M_TRIM_THRESHOLD)
    (void)mallopt(M_MMAP_THRESHOLD, 2 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 4 << 20);
#endif
}

/*
 * libmilter writes every reply and modification as a packet of its own;
 * over TCP, with Nagle's algorithm on, the small final reply then waits
 * for the MTA to acknowledge the previous packet, which the MTA delays
 * (40 ms on Linux): every message waited ~40 ms.  libmilter does not let
 * us at the sockets, so once smfi_opensocket() has made the listening
 * socket -- the only listening socket this process has -- find it among
 * the descriptors and turn Nagle off there; Linux hands TCP_NODELAY on to
 * the connections accepted from it.  Returns how many sockets it set.
 */
static int
nodelay_listener(void)
{
    int fd, on = 1, acc, n = 0;
    socklen_t len;
    struct sockaddr_storage ss;

    for (fd = 0; fd < 1024; fd++) {
        len = sizeof(acc);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc)
            continue;
        len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
            n++;
    }
    return n;
}

static int
worker(const char *conffile, const char *sockopt, const char *useropt)
{
    struct smm_state *s;
    const char *sock, *user, *path;
    sigset_t set;
    struct sigaction sa;
    pthread_t tid;
    int rc, left;

    /* the supervisor's handlers must not run here */
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    /* a temp file that outgrows RLIMIT_FSIZE must fail its write (EFBIG:
     * that message is tempfailed), not kill every message in flight */
    signal(SIGXFSZ, SIG_IGN);
    tune_malloc();
    if (mf_state_init(conffile) != 0)
        return 78; /* EX_CONFIG: the supervisor will not retry */
    s = mf_state_get();
    smm_log_set(mf_log_line, NULL,
                mf_verbose ? SMM_LOG_DEBUG : s->cfg->log_level);
    sock = sockopt != NULL ? sockopt : s->cfg->socket;
    user = useropt != NULL ? useropt : s->cfg->user_id;
    if ((path = unix_socket_path(sock)) != NULL)
        umask(007);
    if (smfi_setconn((char *)sock) != MI_SUCCESS ||
        smfi_register(mf_desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        smm_log(SMM_LOG_ERR, "cannot open milter socket %s", sock);
        smm_state_unref(s);
        return 71;
    }
    if (path != NULL)
        (void)chmod(path, 0660);
    else if (nodelay_listener() != 1)
        smm_log(SMM_LOG_WARNING,
                "could not turn Nagle's algorithm off on "
                "%s: replies may wait for delayed ACKs",
                sock);
    if (drop_privileges(user, sock) != 0) {
        smm_state_unref(s);
        return 78;
    }
    smm_state_unref(s);
    (void)smfi_settimeout(300);
    (void)smfi_setbacklog(128);

    /* Block what libmilter's signal thread will wait for (SIGTERM stops
     * it gracefully) before any thread of ours exists, or a thread of
     * ours could take the default action and kill the worker mid-message;
     * SIGUSR1 is for our reload thread. */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, MF_SIG_STATS);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* no SA_RESTART: the listener's poll() must return EINTR */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_wake;
    sigemptyset(&sa.sa_mask);
    sigaction(MF_SIG_WAKE, &sa, NULL);
    listener_tid = pthread_self();
    mf_stats_init();
    if (mf_prefetch_init() != 0 ||
        pthread_create(&tid, NULL, control_thread, NULL) != 0) {
        smm_log(SMM_LOG_ERR, "cannot start the control thread");
        return 71;
    }
    smm_log(SMM_LOG_NOTICE, "%s %s listening on %s", progname, PACKAGE_VERSION,
            sock);
    rc = smfi_main();
    pthread_mutex_lock(&listener_lock);
    listener_done = 1;
    pthread_mutex_unlock(&listener_lock);
    /* messages are done (drained); idle MTA connections need no wait */
    left = mf_conn_wait(1);
    if (left > 0)
        smm_log(SMM_LOG_INFO, "closing %d idle connections", left);
    smm_log(SMM_LOG_NOTICE, "stopped");
    if (path != NULL)
        (void)unlink(path);
    return rc == MI_SUCCESS ? 0 : 1;
}

static volatile sig_atomic_t got_hup, got_term, got_chld, got_usr1;

/* Start (first call) or check the stop deadline: drain time plus a margin.
 * Returns 1 once it has passed. */
static int
stop_deadline(time_t *deadline)
{
    time_t now = time(NULL);

    if (*deadline == 0)
        *deadline = now + MF_DRAIN_SECONDS + 15;
    return now > *deadline;
}

static void
sup_handler(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else if (sig == SIGUSR1)
        got_usr1 = 1;
    else if (sig == SIGCHLD)
        got_chld = 1;
    else
        got_term = 1;
}

/*
 * The supervisor loop: run the worker, forward signals, restart it when
 * it dies (not when it refused its configuration).
 */
static int
supervise(const char *conffile, const char *sockopt, const char *useropt,
          const char *pidfile, int foreground)
{
    struct sigaction sa;
    sigset_t block, old;
    pid_t child = -1, w;
    int status, fast_fails = 0;
    time_t started = 0, deadline = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sup_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGCHLD);
    /* only the worker takes these; blocked here, the worker is born with
     * them blocked, so that one sent right after the fork waits */
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, MF_SIG_STATS);
    sigprocmask(SIG_BLOCK, &block, &old);

    if (foreground && write_pidfile(pidfile) != 0)
        return 1;
    for (;;) {
        if (child < 0) {
            started = time(NULL);
            if ((child = fork()) < 0) {
                smm_log(SMM_LOG_ERR, "fork: %s", strerror(errno));
                return 1;
            }
            if (child == 0) {
                /* what the supervisor passes on (reload, stats, stop)
                 * waits, pending, for the worker's control thread: a
                 * worker just forked must neither die of MF_SIG_STATS
                 * nor lose a reload to the supervisor's handler */
                sigaddset(&old, SIGUSR1);
                sigaddset(&old, SIGUSR2);
                sigaddset(&old, MF_SIG_STATS);
                sigprocmask(SIG_SETMASK, &old, NULL);
                _exit(worker(conffile, sockopt, useropt));
            }
        }
        while (!got_hup && !got_term && !got_chld && !got_usr1)
            sigsuspend(&old);
        if (got_usr1) {
            got_usr1 = 0;
            (void)kill(child, MF_SIG_STATS);
        }
        if (got_hup) {
            got_hup = 0;
            smm_log(SMM_LOG_INFO, "SIGHUP: reloading");
            (void)kill(child, SIGUSR1);
        }
        if (got_term) {
            /* ask the worker to drain; kill it if it hangs */
            (void)kill(child, SIGUSR2);
            for (w = 0; w == 0;) {
                w = waitpid(child, &status, WNOHANG);
                if (w == 0 && stop_deadline(&deadline))
                    (void)kill(child, SIGKILL);
                if (w == 0)
                    (void)usleep(50000);
            }
            if (pidfile != NULL && *pidfile != '\0')
                (void)unlink(pidfile);
            return 0;
        }
        if (got_chld) {
            got_chld = 0;
            w = waitpid(child, &status, WNOHANG);
            if (w != child)
                continue;
            child = -1;
            if (WIFEXITED(status) &&
                (WEXITSTATUS(status) == 78 || WEXITSTATUS(status) == 71)) {
                smm_log(SMM_LOG_ERR, "worker could not start; giving up");
                if (pidfile != NULL && *pidfile != '\0')
                    (void)unlink(pidfile);
                return 1;
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                /* we did not ask it to stop: someone signalled the worker
                 * itself (libmilter stops on SIGHUP); keep filtering */
                smm_log(SMM_LOG_WARNING,
                        "worker stopped without being asked (a signal sent "
                        "to the worker instead of pid %ld?); restarting",
                        (long)getpid());
                continue;
            }
            smm_log(SMM_LOG_ERR, "worker died (%s %d); restarting",
                    WIFSIGNALED(status) ? "signal" : "exit",
                    WIFSIGNALED(status) ? WTERMSIG(status)
                                        : WEXITSTATUS(status));
            fast_fails = time(NULL) - started < 10 ? fast_fails + 1 : 0;
            if (fast_fails >= 5) {
                smm_log(SMM_LOG_ERR, "worker keeps dying; giving up");
                if (pidfile != NULL && *pidfile != '\0')
                    (void)unlink(pidfile);
                return 1;
            }
            sleep(fast_fails > 0 ? (unsigned)fast_fails : 1);
        }
    }
}

/*
 * Detach.  The process that was started waits until the daemon has
 * written its PID file, so that a service manager reading the file right
 * after we return finds it.
 */
static int
daemonize(const char *pidfile)
{
    pid_t pid;
    int fd, p[2];
    char c;

    if (pipe(p) != 0 || (pid = fork()) < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(p[0]);
    if (setsid() < 0)
        return -1;
    if ((pid = fork()) < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        return -1;
    if ((fd = open("/dev/null", O_RDWR)) >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    if (write_pidfile(pidfile) != 0)
        return -1;
    close(p[1]); /* let the starting process exit */
    return 0;
}

int
main(int argc, char **argv)
{
    const char *conffile = SMM_DEFAULT_CONFIG;
    const char *sockopt = NULL, *useropt = NULL, *pidopt = NULL;
    int c, foreground = 0, check = 0;
    struct smm_config *cfg = NULL;
    struct smm_err err;
    char *pidfile;
    static char abspath[4096];
    int rc;

    while ((c = getopt(argc, argv, "c:p:u:P:fnvVh")) != -1) {
        switch (c) {
        case 'c':
            conffile = optarg;
            break;
        case 'p':
            sockopt = optarg;
            break;
        case 'u':
            useropt = optarg;
            break;
        case 'P':
            pidopt = optarg;
            break;
        case 'f':
            foreground = 1;
            break;
        case 'n':
            check = 1;
            break;
        case 'v':
            mf_verbose = 1;
            break;
        case 'V':
            printf("%s %s\n", progname, PACKAGE_VERSION);
            return 0;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    /* the daemon changes to / : keep finding the file */
    if (conffile[0] != '/' && realpath(conffile, abspath) != NULL)
        conffile = abspath;
    use_stderr = 1;
    smm_log_set(mf_log_line, NULL, SMM_LOG_INFO);
    if (smm_init(&err) != SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        return 1;
    }
    if (check) {
        smm_log_set(NULL, NULL, SMM_LOG_ERR); /* check_config prints */
        return check_config(conffile);
    }
    /* fail early, on the terminal, if the configuration is broken */
    if (smm_config_load(conffile, &cfg, &err) != SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        return 1;
    }
    if (!foreground) {
        use_stderr = 0;
        openlog(progname, LOG_PID | LOG_NDELAY,
                facility_code(cfg->syslog_facility));
    }
    smm_log_set(mf_log_line, NULL, mf_verbose ? SMM_LOG_DEBUG : cfg->log_level);
    if (geteuid() == 0 && useropt == NULL && cfg->user_id[0] == '\0') {
        smm_log(SMM_LOG_ERR,
                "%s: refusing to run as root: set UserID (or -u) to the "
                "unprivileged user the filter should run as (UserID root "
                "keeps root)",
                conffile);
        smm_config_free(cfg);
        return 1;
    }
    limit_core_dumps(cfg->allow_core_dumps);
    pidfile = strdup(pidopt != NULL ? pidopt : cfg->pid_file);
    smm_config_free(cfg);
    if (pidfile == NULL)
        return 1;
    if (!foreground && daemonize(pidfile) != 0) {
        smm_log(SMM_LOG_ERR, "cannot daemonize: %s", strerror(errno));
        return 1;
    }
    rc = supervise(conffile, sockopt, useropt, pidfile, foreground);
    free(pidfile);
    return rc;
}
