/*
 * smime-milter-ctl -- the admin tool.
 *
 *   process  run the milter's pipeline offline on a message (stdin ->
 *            stdout), with the same configuration and key store
 *   keys     list the key store, warn about certificates near expiry
 *
 * Uses only lib/ (no libmilter, no direct OpenSSL or GMime calls).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smm_keystore.h"
#include "smm_log.h"
#include "smm_message.h"
#include "smm_pipeline.h"
#include "smm_resolver.h"
#include "smm_state.h"
#include "smm_x509.h"

#define EX_TEMPFAIL_ 75

static const char *progname = "smime-milter-ctl";

static void
log_stderr(int level, const char *line, void *arg)
{
    (void)arg;
    fprintf(stderr, "%s: %s: %s\n", progname, smm_log_level_name(level), line);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: %s [-c conffile] COMMAND [options]\n"
            "commands:\n"
            "  process --outbound|--inbound --from ADDR --rcpt ADDR "
            "[--rcpt ADDR ...]\n"
            "          [--signing-time EPOCH] [--now EPOCH] < message > "
            "result\n"
            "  keys [--now EPOCH]\n"
            "  lookup [--now EPOCH] ADDRESS [ADDRESS ...]\n"
            "  stats\n"
            "every command accepts -c conffile (default %s)\n",
            progname, SMM_DEFAULT_CONFIG);
    exit(2);
}

static struct smm_state *
load_state(const char *conffile, int quiet)
{
    struct smm_state *s;
    struct smm_diag diag = {0};
    struct smm_err err;

    smm_log_set(log_stderr, NULL, quiet ? SMM_LOG_ERR : SMM_LOG_WARNING);
    if (smm_state_load(conffile, &s, &diag, &err) != SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        smm_diag_free(&diag);
        return NULL;
    }
    smm_diag_free(&diag);
    return s;
}

static time_t
parse_epoch(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);

    if (*end != '\0' || v <= 0) {
        fprintf(stderr, "%s: bad time \"%s\" (seconds since 1970)\n", progname,
                s);
        exit(2);
    }
    return (time_t)v;
}

static int
cmd_process(const char *conffile, int argc, char **argv)
{
    static const struct option opts[] = {
        {"outbound", no_argument, NULL, 'o'},
        {"inbound", no_argument, NULL, 'i'},
        {"from", required_argument, NULL, 'f'},
        {"rcpt", required_argument, NULL, 'r'},
        {"signing-time", required_argument, NULL, 's'},
        {"now", required_argument, NULL, 'n'},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    struct smm_state *s = NULL;
    struct smm_message *m = NULL;
    struct smm_result r;
    struct smm_err err = {SMM_OK, "out of memory"};
    struct smm_run_opts ro = {0};
    const char *from = NULL;
    char **rcpts = NULL;
    int nrcpts = 0, dir = -1, c, rc = 1, i;

    memset(&r, 0, sizeof(r));
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            dir = SMM_DIR_OUTBOUND;
            break;
        case 'i':
            dir = SMM_DIR_INBOUND;
            break;
        case 'f':
            from = optarg;
            break;
        case 'r':
            rcpts = realloc(rcpts, (size_t)(nrcpts + 1) * sizeof(*rcpts));
            if (rcpts == NULL)
                return 1;
            rcpts[nrcpts++] = optarg;
            break;
        case 's':
            ro.signing_time = parse_epoch(optarg);
            break;
        case 'n':
            ro.now = parse_epoch(optarg);
            break;
        case 'c':
            conffile = optarg;
            break;
        default:
            usage();
        }
    }
    if (dir < 0 || from == NULL || nrcpts == 0 || optind != argc) {
        fprintf(stderr,
                "%s process: needs --outbound or --inbound, --from "
                "and at least one --rcpt\n",
                progname);
        free(rcpts);
        return 2;
    }
    if ((s = load_state(conffile, 1)) == NULL)
        goto out;
    smm_log_set(log_stderr, NULL, s->cfg->log_level);
    if (smm_message_new(s->cfg->max_memory_body, s->cfg->max_message_size,
                        s->cfg->temp_dir, &m, &err) != SMM_OK ||
        smm_message_set_from(m, from) != SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        goto out;
    }
    for (i = 0; i < nrcpts; i++)
        if (smm_message_add_rcpt(m, rcpts[i]) != SMM_OK)
            goto out;
    if (smm_message_read(stdin, m, &err) != SMM_OK) {
        fprintf(stderr, "%s: reading the message: %s\n", progname, err.msg);
        if (smm_status_is_temp(err.status))
            rc = EX_TEMPFAIL_; /* the milter would tempfail too */
        goto out;
    }
    if (smm_pipeline_run(s, m, (enum smm_direction)dir, &ro, &r, &err) !=
        SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        rc = EX_TEMPFAIL_;
        goto out;
    }
    fprintf(stderr, "%s: %s result=%s%s\n", progname,
            smm_direction_name((enum smm_direction)dir),
            r.verdict != NULL ? r.verdict : "-",
            r.log.data != NULL ? r.log.data : "");
    switch (r.action) {
    case SMM_ACT_TEMPFAIL:
        fprintf(stderr, "%s: tempfail: %s %s %s\n", progname, r.rcode, r.xcode,
                r.reply);
        rc = EX_TEMPFAIL_;
        goto out;
    case SMM_ACT_REJECT:
        fprintf(stderr, "%s: reject: %s %s %s\n", progname, r.rcode, r.xcode,
                r.reply);
        rc = 3;
        goto out;
    case SMM_ACT_HOLD:
        fprintf(stderr, "%s: hold: %s\n", progname,
                r.hold_reason != NULL ? r.hold_reason : "");
        break;
    case SMM_ACT_DELIVER:
        break;
    }
    if (m->oversize)
        fprintf(stderr,
                "%s: warning: the body is over MaxMessageSize and "
                "was not kept; the output has the headers only\n",
                progname);
    if (smm_result_write(&r, m, stdout, &err) != SMM_OK) {
        fprintf(stderr, "%s: writing the result: %s\n", progname, err.msg);
        goto out;
    }
    rc = r.action == SMM_ACT_HOLD ? 4 : 0;
out:
    smm_result_free(&r);
    smm_message_free(m);
    smm_state_unref(s);
    free(rcpts);
    return rc;
}

/* The options keys and lookup share: --now EPOCH, -c/--config FILE. */
static void
parse_now_config(int argc, char **argv, const char **conffile, time_t *now)
{
    static const struct option opts[] = {
        {"now", required_argument, NULL, 'n'},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c == 'n')
            *now = parse_epoch(optarg);
        else if (c == 'c')
            *conffile = optarg;
        else
            usage();
    }
}

static void
fmt_time(time_t t, char *buf, size_t sz)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, sz, "%Y-%m-%d", &tm);
}

static int
cmd_keys(const char *conffile, int argc, char **argv)
{
    struct smm_state *s;
    size_t i, j, warn = 0;
    time_t now = time(NULL);
    char nb[16], na[16];

    parse_now_config(argc, argv, &conffile, &now);
    if ((s = load_state(conffile, 0)) == NULL)
        return 1;
    printf("%-32s %-12s %-24s %-10s %-10s %s\n", "ADDRESS", "USAGE", "SERIAL",
           "NOTBEFORE", "NOTAFTER", "STATUS / FILE");
    for (i = 0; i < smm_keystore_count(s->ks); i++) {
        const struct smm_key *k = smm_keystore_get(s->ks, i);
        char usage[16] = "";
        const char *status = "ok";
        double life = difftime(k->not_after, k->not_before);
        double left = difftime(k->not_after, now);

        if (k->usage & SMM_USE_SIGN)
            strcat(usage, "sign");
        if (k->usage & SMM_USE_ENCRYPT)
            strcat(usage, usage[0] ? ",encrypt" : "encrypt");
        if (usage[0] == '\0')
            strcpy(usage, "none");
        if (!(k->usage & SMM_USE_EMAIL))
            status = "no-email-eku";
        else if (now < k->not_before)
            status = "not-yet-valid";
        else if (left < 0)
            status = "expired";
        else if (life > 0 && left < life * 0.2) {
            status = "RENEW-SOON";
            warn++;
        }
        fmt_time(k->not_before, nb, sizeof(nb));
        fmt_time(k->not_after, na, sizeof(na));
        for (j = 0; j < (k->addrs.n ? k->addrs.n : 1); j++)
            printf("%-32s %-12s %-24.24s %-10s %-10s %s%s %s\n",
                   k->addrs.n ? k->addrs.v[j] : "(none)", usage, k->serial, nb,
                   na, status, k->trusted ? "" : ",untrusted", k->file);
        if (strcmp(status, "RENEW-SOON") == 0)
            fprintf(stderr,
                    "%s: warning: %s (%s): less than 20%% of its lifetime "
                    "left, expires %s; renew it\n",
                    progname, k->addrs.n ? k->addrs.v[0] : "(none)", k->file,
                    na);
    }
    printf("%zu keys\n", smm_keystore_count(s->ks));
    smm_state_unref(s);
    return warn ? 1 : 0;
}

static void
print_candidate(const char *addr, const struct smm_candidate *c)
{
    char *subj = smm_x509_subject(c->cert);
    char *iss = smm_x509_issuer(c->cert);
    char *serial = smm_x509_serial_hex(c->cert);
    char *fp = smm_x509_fingerprint(c->cert);
    char na[16];

    fmt_time(smm_x509_not_after(c->cert), na, sizeof(na));
    printf("%s %s %s%s\n    subject=\"%s\" serial=%s issuer=\"%s\" "
           "notAfter=%s\n    sha256=%s\n    from %s\n",
           addr, c->source,
           c->refused != NULL ? "refused: "
           : c->used          ? "taken"
                              : "usable, not used (an earlier source answered)",
           c->refused != NULL ? c->refused : "", subj != NULL ? subj : "?",
           serial != NULL ? serial : "?", iss != NULL ? iss : "?", na,
           fp != NULL ? fp : "?", c->origin != NULL ? c->origin : "-");
    free(subj);
    free(iss);
    free(serial);
    free(fp);
}

static int
cmd_lookup(const char *conffile, int argc, char **argv)
{
    struct smm_state *s;
    struct smm_lookup l;
    struct smm_err err;
    time_t now = time(NULL);
    int i, rc = 0;
    size_t j;

    parse_now_config(argc, argv, &conffile, &now);
    if (optind >= argc)
        usage();
    if ((s = load_state(conffile, 1)) == NULL)
        return 2;
    for (i = optind; i < argc; i++) {
        smm_status st = smm_resolve(s, argv[i], now, SMM_RESOLVE_ALL, &l, &err);
        for (j = 0; j < l.n; j++)
            print_candidate(argv[i], &l.c[j]);
        if (l.dir_error != NULL)
            printf("%s directory error: %s\n", argv[i], l.dir_error);
        if (st != SMM_OK) {
            printf("%s: temporary failure: %s\n", argv[i], err.msg);
            rc = 2;
        } else if (smm_lookup_usable(&l) == 0) {
            printf("%s: no usable certificate (%zu candidates refused)\n",
                   argv[i], l.n);
            if (rc == 0)
                rc = 1;
        } else {
            printf("%s: %d usable certificate%s (source: %s)\n", argv[i],
                   smm_lookup_usable(&l), smm_lookup_usable(&l) > 1 ? "s" : "",
                   l.source);
        }
        smm_lookup_free(&l);
    }
    smm_state_unref(s);
    return rc;
}

/* The daemon's counters: ask it to write them (SIGUSR1 to the pid in
 * PidFile), wait for the StatsFile to change, print it. */
static int
cmd_stats(const char *conffile, int argc, char **argv)
{
    struct smm_config *cfg;
    struct smm_err err;
    struct stat before, after;
    char line[512];
    FILE *fp;
    time_t now = 0;
    long pid = 0;
    int i, had;

    parse_now_config(argc, argv, &conffile, &now);
    if (smm_config_load(conffile, &cfg, &err) != SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        return 1;
    }
    if (cfg->stats_file[0] == '\0') {
        fprintf(stderr, "%s: StatsFile is not set in %s\n", progname, conffile);
        smm_config_free(cfg);
        return 1;
    }
    had = stat(cfg->stats_file, &before) == 0;
    if (cfg->pid_file[0] != '\0' && (fp = fopen(cfg->pid_file, "r")) != NULL) {
        if (fscanf(fp, "%ld", &pid) != 1)
            pid = 0;
        fclose(fp);
    }
    if (pid > 1 && kill((pid_t)pid, SIGUSR1) == 0) {
        for (i = 0; i < 50; i++) { /* up to 5 s */
            if (stat(cfg->stats_file, &after) == 0 &&
                (!had || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                 after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
                 after.st_ino != before.st_ino))
                break;
            usleep(100000);
        }
    } else {
        fprintf(stderr,
                "%s: cannot signal the daemon (PidFile %s): showing the "
                "counters it last wrote\n",
                progname, cfg->pid_file[0] ? cfg->pid_file : "not set");
    }
    if ((fp = fopen(cfg->stats_file, "r")) == NULL) {
        fprintf(stderr, "%s: %s: %s\n", progname, cfg->stats_file,
                strerror(errno));
        smm_config_free(cfg);
        return 1;
    }
    while (fgets(line, sizeof(line), fp) != NULL)
        fputs(line, stdout);
    fclose(fp);
    smm_config_free(cfg);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *conffile = SMM_DEFAULT_CONFIG;
    struct smm_err err;
    int i;

    /* global -c before the command */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conffile = argv[++i];
            continue;
        }
        break;
    }
    if (i >= argc)
        usage();
    (void)signal(SIGPIPE, SIG_IGN); /* libldap may write to a closed socket */
    (void)signal(SIGXFSZ, SIG_IGN); /* a write past RLIMIT_FSIZE fails */
    smm_log_set(log_stderr, NULL, SMM_LOG_WARNING);
    if (smm_init(&err) != SMM_OK) {
        fprintf(stderr, "%s: %s\n", progname, err.msg);
        return 1;
    }
    if (strcmp(argv[i], "process") == 0) {
        int rc = cmd_process(conffile, argc - i, argv + i);
        smm_done();
        return rc;
    }
    if (strcmp(argv[i], "lookup") == 0) {
        int rc = cmd_lookup(conffile, argc - i, argv + i);
        smm_done();
        return rc;
    }
    if (strcmp(argv[i], "keys") == 0) {
        int rc = cmd_keys(conffile, argc - i, argv + i);
        smm_done();
        return rc;
    }
    if (strcmp(argv[i], "stats") == 0) {
        int rc = cmd_stats(conffile, argc - i, argv + i);
        smm_done();
        return rc;
    }
    fprintf(stderr, "%s: unknown command \"%s\"\n", progname, argv[i]);
    usage();
    return 2;
}
