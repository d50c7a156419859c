/*
 * mf_callbacks -- libmilter callbacks.
 *
 * Thin by design: each callback fetches its context, stores what the MTA
 * sent, and returns.  At end of message the whole message goes to the
 * library pipeline (smm_pipeline_run) and the result to mf_apply().
 *
 * State: struct conn lives from connect to close (client address, MTA
 * service name); struct msg from MAIL FROM to end of message or abort
 * (the state snapshot reference, the direction, the buffered message).
 * libmilter runs one thread per connection, so neither needs locking.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "mf.h"
#include "smm_log.h"
#include "smm_message.h"
#include "smm_pipeline.h"
#include "smm_policy.h"

struct msg {
    struct smm_state *state;
    struct smm_message *m;
    enum smm_direction dir;
    const char *dir_reason;
    char *auth;
    int rcpt_class;    /* SplitRecipients: class of the first, or -1 */
    unsigned deferred; /* recipients answered 452 for the split */
    struct timespec t0;
    int failed; /* spooling failed: tempfail at the end */
    char fail_msg[SMM_ERR_MSGLEN];
};

struct conn {
    char addr[INET6_ADDRSTRLEN + 8];
    char *daemon;
    struct msg *msg;
    unsigned long pflags; /* protocol flags agreed at negotiation */
    int connected;        /* counted by mf_conn_enter() */
    int restarting;       /* MAIL came while draining: 451 4.3.2 at EOM */
};

static void
msg_free(struct msg *mg)
{
    if (mg == NULL)
        return;
    mf_msg_leave();
    smm_message_free(mg->m);
    smm_state_unref(mg->state);
    free(mg->auth);
    free(mg);
}

static struct conn *
get_conn(SMFICTX *ctx)
{
    return (struct conn *)smfi_getpriv(ctx);
}

/* The answer to a step the MTA need not wait for (SMFIP_NR_*) when that
 * was agreed for this connection, else rc. */
static sfsistat
no_reply_or(const struct conn *c, unsigned long bit, sfsistat rc)
{
    return c != NULL && (c->pflags & bit) != 0 ? SMFIS_NOREPLY : rc;
}

static sfsistat
no_reply(const struct conn *c, unsigned long bit)
{
    return no_reply_or(c, bit, SMFIS_CONTINUE);
}

static void
set_restarting(SMFICTX *ctx)
{
    (void)smfi_setreply(ctx, "451", "4.3.2",
                        "S/MIME gateway restarting, try again later");
}

static char *
macro_dup(SMFICTX *ctx, const char *name)
{
    const char *v = smfi_getsymval(ctx, (char *)name);

    return v != NULL ? strdup(v) : NULL;
}

/*
 * Actions we need, steps we skip, and steps the MTA need not wait for:
 * MAIL FROM, a header field or a body chunk is only stored (a failure
 * tempfails the message at its end), so answering each one would only
 * cost a round trip.  So is RCPT TO, unless SplitRecipients answers some
 * recipients 452 (a connection agreed without replies to RCPT does not
 * split, even when a reload turns SplitRecipients on).  libmilter
 * emulates the no-reply steps for an MTA that does not know them.  The
 * connection state is created here so that it can remember what was
 * agreed.
 */
static sfsistat
cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
             unsigned long *pf2, unsigned long *pf3)
{
    unsigned long want_act =
        SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE;
    unsigned long skip = SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA |
                         SMFIP_NOEOH | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                         SMFIP_NR_HDR | SMFIP_NR_BODY;
    struct smm_state *st;
    struct conn *c;

    (void)f2;
    (void)f3;
    if ((f0 & want_act) != want_act) {
        smm_log(SMM_LOG_ERR, "the MTA does not offer the actions we need "
                             "(add/change headers, replace body, "
                             "quarantine)");
        return SMFIS_REJECT;
    }
    if ((c = get_conn(ctx)) == NULL && (c = calloc(1, sizeof(*c))) != NULL &&
        smfi_setpriv(ctx, c) != MI_SUCCESS) {
        free(c);
        c = NULL;
    }
    if (c == NULL) /* no state to remember it: answer every step */
        skip &= ~(SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_BODY);
    if ((st = mf_state_get()) == NULL || st->cfg->split_recipients)
        skip &= ~SMFIP_NR_RCPT;
    smm_state_unref(st);
    *pf0 = want_act;
    *pf1 = f1 & skip;
    *pf2 = 0;
    *pf3 = 0;
    if (c != NULL)
        c->pflags = *pf1;
    (void)smfi_setsymlist(ctx, SMFIM_CONNECT, "{daemon_name} {client_addr}");
    (void)smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} i");
    (void)smfi_setsymlist(ctx, SMFIM_EOM, "i");
    return SMFIS_CONTINUE;
}

static sfsistat
cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    struct conn *c = get_conn(ctx);
    const char *a;

    (void)host;
    if (mf_draining()) {
        /* shutting down: the MTA retries */
        free(c);
        (void)smfi_setpriv(ctx, NULL);
        return SMFIS_TEMPFAIL;
    }
    if (c == NULL) {
        if ((c = calloc(1, sizeof(*c))) == NULL)
            return SMFIS_TEMPFAIL;
        if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
            free(c);
            return SMFIS_TEMPFAIL;
        }
    }
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->addr,
                  sizeof(c->addr));
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->addr,
                  sizeof(c->addr));
    else if ((a = smfi_getsymval(ctx, "{client_addr}")) != NULL)
        snprintf(c->addr, sizeof(c->addr), "%s", a);
    free(c->daemon);
    c->daemon = macro_dup(ctx, "{daemon_name}");
    c->connected = 1;
    mf_conn_enter();
    mf_stats_connection();
    return SMFIS_CONTINUE;
}

/* Storing failed: keep reading, the verdict at the end is tempfail. */
static void
msg_failed(struct msg *mg, const char *why)
{
    if (!mg->failed)
        snprintf(mg->fail_msg, sizeof(mg->fail_msg), "%s", why);
    mg->failed = 1;
}

static sfsistat
cb_envfrom(SMFICTX *ctx, char **argv)
{
    struct conn *c = get_conn(ctx);
    struct msg *mg;
    struct smm_err err = {SMM_OK, "out of memory"};
    const struct smm_config *cfg;

    if (c == NULL)
        return SMFIS_TEMPFAIL; /* (no state: no SMFIP_NR_MAIL either) */
    msg_free(c->msg);
    c->msg = NULL;
    c->restarting = 0;
    if (mf_msg_enter() != 0) {
        if (c->pflags & SMFIP_NR_MAIL) { /* the answer waits for EOM */
            c->restarting = 1;
            return SMFIS_NOREPLY;
        }
        set_restarting(ctx);
        return SMFIS_TEMPFAIL;
    }
    if ((mg = calloc(1, sizeof(*mg))) == NULL) {
        mf_msg_leave();
        return no_reply_or(c, SMFIP_NR_MAIL, SMFIS_TEMPFAIL);
    }
    clock_gettime(CLOCK_MONOTONIC, &mg->t0);
    if ((mg->state = mf_state_get()) == NULL) {
        mf_msg_leave();
        free(mg);
        return no_reply_or(c, SMFIP_NR_MAIL, SMFIS_TEMPFAIL);
    }
    cfg = mg->state->cfg;
    if (smm_message_new(cfg->max_memory_body, cfg->max_message_size,
                        cfg->temp_dir, &mg->m, &err) != SMM_OK ||
        smm_message_set_from(mg->m, argv[0]) != SMM_OK) {
        smm_log(SMM_LOG_ERR, "cannot start a message: %s", err.msg);
        msg_free(mg);
        return no_reply_or(c, SMFIP_NR_MAIL, SMFIS_TEMPFAIL);
    }
    mg->auth = macro_dup(ctx, "{auth_authen}");
    mg->rcpt_class = -1;
    mg->dir = smm_direction_decide(cfg, mg->auth, c->addr, c->daemon,
                                   &mg->dir_reason);
    c->msg = mg;
    return no_reply(c, SMFIP_NR_MAIL);
}

static sfsistat
cb_envrcpt(SMFICTX *ctx, char **argv)
{
    struct conn *c = get_conn(ctx);

    if (c == NULL)
        return SMFIS_TEMPFAIL;
    if (c->msg == NULL) { /* MAIL failed unanswered: RCPT or EOM answers */
        if (c->pflags & SMFIP_NR_RCPT)
            return SMFIS_NOREPLY;
        if (c->restarting)
            set_restarting(ctx);
        return SMFIS_TEMPFAIL;
    }
    if (c->msg->dir == SMM_DIR_OUTBOUND &&
        c->msg->state->cfg->split_recipients && !(c->pflags & SMFIP_NR_RCPT)) {
        /* one transaction per class: with certificates, without */
        char *a = smm_addr_strip(argv[0]);
        enum smm_rcpt_class k = SMM_RCPT_UNKNOWN;
        if (a != NULL)
            k = smm_rcpt_classify(c->msg->state, a, time(NULL));
        free(a);
        if (k != SMM_RCPT_UNKNOWN) {
            if (c->msg->rcpt_class < 0) {
                c->msg->rcpt_class = (int)k;
            } else if (c->msg->rcpt_class != (int)k) {
                c->msg->deferred++;
                (void)smfi_setreply(ctx, "452", "4.5.3",
                                    "S/MIME: this recipient goes in a "
                                    "separate transaction, try again");
                return SMFIS_TEMPFAIL;
            }
        }
    }
    if (c->msg->failed)
        return no_reply(c, SMFIP_NR_RCPT);
    if (smm_message_add_rcpt(c->msg->m, argv[0]) != SMM_OK) {
        msg_failed(c->msg, "out of memory");
        return no_reply_or(c, SMFIP_NR_RCPT, SMFIS_TEMPFAIL);
    }
    /* outbound mail will want the recipient's certificate: start looking
     * now, while the message is still on its way */
    if (c->msg->dir == SMM_DIR_OUTBOUND)
        mf_prefetch(c->msg->state, c->msg->m->rcpts[c->msg->m->nrcpts - 1]);
    return no_reply(c, SMFIP_NR_RCPT);
}

static sfsistat
cb_header(SMFICTX *ctx, char *name, char *value)
{
    struct conn *c = get_conn(ctx);

    if (c == NULL || c->msg == NULL)
        return no_reply_or(c, SMFIP_NR_HDR, SMFIS_TEMPFAIL);
    if (!c->msg->failed &&
        smm_message_add_header(c->msg->m, name, value) != SMM_OK)
        msg_failed(c->msg, "out of memory");
    return no_reply(c, SMFIP_NR_HDR);
}

static sfsistat
cb_body(SMFICTX *ctx, unsigned char *p, size_t n)
{
    struct conn *c = get_conn(ctx);
    struct smm_err err;

    if (c == NULL || c->msg == NULL)
        return no_reply_or(c, SMFIP_NR_BODY, SMFIS_TEMPFAIL);
    if (!c->msg->failed &&
        smm_message_add_body(c->msg->m, p, n, &err) != SMM_OK)
        msg_failed(c->msg, err.msg);
    return no_reply(c, SMFIP_NR_BODY);
}

static void
log_summary(const struct conn *c, const struct msg *mg,
            const struct smm_result *r, sfsistat rc)
{
    struct timespec t1;
    double ms;
    char from[256], qid[64], addr[sizeof(c->addr) * 4];
    const char *act;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - mg->t0.tv_sec) * 1e3 +
         (double)(t1.tv_nsec - mg->t0.tv_nsec) / 1e6;
    smm_log_escape(from, sizeof(from), mg->m->env_from);
    smm_log_escape(qid, sizeof(qid),
                   mg->m->queue_id != NULL ? mg->m->queue_id : "NOQUEUE");
    smm_log_escape(addr, sizeof(addr), c->addr[0] ? c->addr : "unknown");
    act = rc == SMFIS_TEMPFAIL        ? "tempfail"
          : rc == SMFIS_REJECT        ? "reject"
          : r->action == SMM_ACT_HOLD ? "hold"
                                      : "deliver";
    smm_log(SMM_LOG_INFO,
            "%s: %s (%s) client=%s from=<%s> rcpts=%zu%s size=%zu "
            "action=%s result=%s%s ms=%.1f",
            qid, smm_direction_name(mg->dir), mg->dir_reason, addr, from,
            mg->m->nrcpts, mg->deferred > 0 ? " split=deferred-some" : "",
            mg->m->body_len, act, r->verdict != NULL ? r->verdict : "-",
            r->log.data != NULL ? r->log.data : "", ms);
    mf_stats_message(smm_direction_name(mg->dir), act, r);
}

static sfsistat
cb_eom(SMFICTX *ctx)
{
    struct conn *c = get_conn(ctx);
    struct msg *mg;
    struct smm_result r;
    struct smm_err err;
    sfsistat rc;
    const char *qid;

    if (c == NULL || c->msg == NULL) {
        /* MAIL FROM failed and was not answered */
        if (c != NULL && c->restarting)
            set_restarting(ctx);
        return SMFIS_TEMPFAIL;
    }
    mg = c->msg;
    if ((qid = smfi_getsymval(ctx, "i")) != NULL)
        (void)smm_message_set_queue_id(mg->m, qid);
    memset(&r, 0, sizeof(r));
    /* the body is complete: its last buffered piece goes to the temp file
     * now, and a write error there is a spool error like any other */
    if (!mg->failed && smm_spool_finish(mg->m->body, &err) != SMM_OK)
        msg_failed(mg, err.msg);
    /* lookups started at RCPT time: wait for them rather than ask twice */
    if (!mg->failed && mg->dir == SMM_DIR_OUTBOUND)
        mf_prefetch_wait(mg->state, mg->m->rcpts, mg->m->nrcpts,
                         mg->state->cfg->ldap_timeout + 1);
    if (mg->failed) {
        r.verdict = "tempfail";
        (void)smm_buf_printf(&r.log, " reason=spool error=\"%s\"",
                             mg->fail_msg);
        (void)smfi_setreply(ctx, "451", "4.3.0",
                            "temporary local problem, try again later");
        rc = SMFIS_TEMPFAIL;
    } else if (smm_pipeline_run(mg->state, mg->m, mg->dir, NULL, &r, &err) !=
               SMM_OK) {
        char eqid[64], msg[sizeof(err.msg)];
        smm_log(SMM_LOG_ERR, "%s: %s",
                smm_log_escape(eqid, sizeof(eqid),
                               mg->m->queue_id != NULL ? mg->m->queue_id
                                                       : "NOQUEUE"),
                smm_log_escape(msg, sizeof(msg), err.msg));
        r.verdict = "tempfail";
        (void)smfi_setreply(ctx, "451", "4.3.0",
                            "temporary local problem, try again later");
        rc = SMFIS_TEMPFAIL;
    } else {
        rc = mf_apply(ctx, &r);
    }
    log_summary(c, mg, &r, rc);
    smm_result_free(&r);
    msg_free(mg);
    c->msg = NULL;
    return rc;
}

static sfsistat
cb_abort(SMFICTX *ctx)
{
    struct conn *c = get_conn(ctx);

    if (c != NULL) {
        msg_free(c->msg);
        c->msg = NULL;
        c->restarting = 0;
    }
    return SMFIS_CONTINUE;
}

static sfsistat
cb_close(SMFICTX *ctx)
{
    struct conn *c = get_conn(ctx);

    if (c == NULL)
        return SMFIS_CONTINUE;
    msg_free(c->msg);
    free(c->daemon);
    if (c->connected)
        mf_conn_leave();
    free(c);
    (void)smfi_setpriv(ctx, NULL);
    return SMFIS_CONTINUE;
}

struct smfiDesc mf_desc = {
    .xxfi_name = "smime-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags =
        SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE,
    .xxfi_connect = cb_connect,
    .xxfi_helo = NULL,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = NULL,
    .xxfi_body = cb_body,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_unknown = NULL,
    .xxfi_data = NULL,
    .xxfi_negotiate = cb_negotiate,
};
