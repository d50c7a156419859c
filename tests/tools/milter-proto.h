/*
 * milter-proto -- the MTA side of the milter protocol (version 6), for the
 * test and benchmark tools (milter-client, milter-load).
 *
 * One struct mp_conn is one connection to a milter; it is used by one
 * thread at a time.  Every function returns -1 on an I/O or protocol error
 * with a sentence in c->err (the connection is then unusable: mp_close
 * it), otherwise 0 or the milter's reply command (SMFIR_CONTINUE 'c',
 * SMFIR_ACCEPT 'a', SMFIR_TEMPFAIL 't', SMFIR_REJECT 'r',
 * SMFIR_REPLYCODE 'y' with the reply text in c->buf, ...).  Progress
 * packets are skipped.  The protocol flags the milter chose at
 * negotiation are honoured: a step it asked to skip (SMFIP_NO*) is not
 * sent and a step it asked not to answer (SMFIP_NR_*) is not waited for;
 * both count as SMFIR_CONTINUE.  The last packet received is in
 * c->buf/c->len (NUL-terminated), owned by the connection.
 */
#ifndef MILTER_PROTO_H
#define MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MP_CHUNK 65535 /* largest body chunk sent (MILTER_CHUNK_SIZE) */

struct mp_conn {
    int fd;
    uint32_t actions; /* SMFIF_* the milter asked for */
    uint32_t proto;   /* SMFIP_* the milter set */
    int skip_body;    /* the milter answered SMFIR_SKIP to a body chunk */
    /* "name=value" sent as SMFIC_MACRO before every header field and body
     * chunk, as Postfix sends its end-of-header and end-of-data macros
     * (milter_end_of_header_macros, milter_end_of_data_macros); NULL:
     * none */
    char *msg_macro;
    char *buf; /* data of the last packet received */
    size_t len;
    size_t cap;
    char err[160];
    size_t rpos, rlen; /* unread bytes: rbuf[rpos..rlen) */
    char rbuf[16384];
    size_t wlen; /* queued for the milter: wbuf[0..wlen) */
    char wbuf[65536];
};

/* One modification action read at end of message (see mp_eom). */
struct mp_mod {
    char cmd;          /* SMFIR_ADDHEADER, _CHGHEADER, _INSHEADER, ... */
    uint32_t index;    /* CHGHEADER / INSHEADER */
    const char *name;  /* header name; address for CHGFROM/ADDRCPT/DELRCPT;
                          reason for QUARANTINE */
    const char *value; /* header value ("" = delete, for CHGHEADER) */
    const char *data;  /* REPLBODY chunk */
    size_t len;
};

typedef void mp_mod_fn(const struct mp_mod *, void *);

/* Every protocol step and no-reply flag an MTA can offer (SMFIP_*) */
#define MP_OFFER_ALL 0x1fffffu

/* Connect to "unix:/path" or "inet:PORT@HOST" and negotiate version 6
 * with every action and the protocol flags in offer (MP_OFFER_ALL, or
 * fewer, as an older MTA would). */
int mp_open(struct mp_conn *, const char *spec, uint32_t offer);
/* Send SMFIC_QUIT (when the connection is still usable), close, free. */
void mp_close(struct mp_conn *);

/* Queue a packet; it is sent, with the others queued, before the next
 * read (mp_recv), by mp_abort and mp_close, or when the queue is full. */
int mp_send(struct mp_conn *, char cmd, const void *data, size_t len);
/* Send the queued packets now. */
int mp_flush(struct mp_conn *);
int mp_recv(struct mp_conn *);
/* SMFIC_MACRO for stage (SMFIC_CONNECT, SMFIC_MAIL, SMFIC_BODYEOB, ...),
 * from n strings "name=value"; nothing is sent when n is 0. */
int mp_macros(struct mp_conn *, char stage, char *const *nv, int n);

int mp_connect_info(struct mp_conn *, const char *host, const char *ip,
                    unsigned port);
int mp_mail(struct mp_conn *, const char *from);
int mp_rcpt(struct mp_conn *, const char *rcpt);
/* SMFIC_DATA (not sent when the milter set SMFIP_NODATA) */
int mp_data(struct mp_conn *);
int mp_header(struct mp_conn *, const char *name, const char *value);
int mp_eoh(struct mp_conn *);
/* The body in chunks of MP_CHUNK bytes at most. */
int mp_body(struct mp_conn *, const void *data, size_t len);
/* SMFIC_BODYEOB, then every modification action until the final reply,
 * each handed to fn (which may be NULL); returns the final reply. */
int mp_eom(struct mp_conn *, mp_mod_fn *fn, void *arg);
/* SMFIC_ABORT: end the transaction (after a refusal), keep the
 * connection for the next MAIL. */
int mp_abort(struct mp_conn *);
/* SMFIC_ABORT queued, not sent: what Postfix does after every message,
 * so that it reaches the milter with the next MAIL. */
int mp_reset(struct mp_conn *);

#endif
