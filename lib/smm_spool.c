/*
 * smm_spool -- memory-then-file byte store; see smm_spool.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "smm_spool.h"

static smm_status spool_spill(struct smm_spool *, struct smm_err *);

/* File mode: writes smaller than this gather in a buffer first (GMime
 * writes a few KiB at a time, and a system call costs more than the copy) */
#define SPOOL_WBUF 65536

struct smm_spool {
    size_t max_mem;
    char *tmpdir;
    GByteArray *mem; /* memory mode, or NULL */
    int fd;          /* file mode, or -1 */
    char *wbuf;      /* file mode: bytes not yet written to fd */
    size_t wlen;
    int werr;   /* errno of a failed write: every later access fails */
    size_t len; /* bytes written through smm_spool_write() */
};

smm_status
smm_spool_new(size_t max_mem, const char *tmpdir, struct smm_spool **out,
              struct smm_err *err)
{
    struct smm_spool *sp;

    *out = NULL;
    if ((sp = calloc(1, sizeof(*sp))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    sp->max_mem = max_mem;
    sp->fd = -1;
    sp->tmpdir = strdup(tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/tmp");
    sp->mem = g_byte_array_new();
    if (sp->tmpdir == NULL) {
        smm_spool_free(sp);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    /* a limit of 0 means "always on disk" (used for big outputs) */
    if (max_mem == 0 && spool_spill(sp, err) != SMM_OK) {
        smm_spool_free(sp);
        return err != NULL ? err->status : SMM_EIO;
    }
    *out = sp;
    return SMM_OK;
}

static smm_status
write_all(int fd, const void *p, size_t n, struct smm_err *err)
{
    const char *c = p;
    ssize_t w;

    while (n > 0) {
        w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return smm_err_set(err, SMM_EIO, "write to temp file: %s",
                               strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return SMM_OK;
}

/*
 * File mode: write out what the buffer holds (before any read of fd).  A
 * failed write (a full disk) sticks: every later write, read and flush of
 * the spool fails with it (errno set), so no reader can take a short file
 * for the whole.
 */
static smm_status
spool_flush(struct smm_spool *sp, struct smm_err *err)
{
    smm_status st;

    if (sp->werr == 0 && sp->wlen > 0) {
        if ((st = write_all(sp->fd, sp->wbuf, sp->wlen, NULL)) != SMM_OK)
            sp->werr = errno != 0 ? errno : EIO;
        sp->wlen = 0;
    }
    if (sp->werr != 0) {
        smm_err_set(err, SMM_EIO, "write to temp file: %s", strerror(sp->werr));
        errno = sp->werr;
        return SMM_EIO;
    }
    return SMM_OK;
}

smm_status
smm_spool_finish(struct smm_spool *sp, struct smm_err *err)
{
    return sp->mem != NULL ? SMM_OK : spool_flush(sp, err);
}

/* Move the memory contents to a fresh unlinked temp file. */
static smm_status
spool_spill(struct smm_spool *sp, struct smm_err *err)
{
    char path[4096];
    int fd;
    smm_status st;

    if (snprintf(path, sizeof(path), "%s/smime-milter.XXXXXX", sp->tmpdir) >=
        (int)sizeof(path))
        return smm_err_set(err, SMM_EINVAL, "TempDirectory path too long");
    if ((fd = mkstemp(path)) < 0)
        return smm_err_set(err, SMM_EIO, "cannot create temp file in %s: %s",
                           sp->tmpdir, strerror(errno));
    (void)unlink(path);
    /* every write appends, ours and those of a GMime stream on a dup()
     * of it, so no write needs to seek first */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_APPEND) != 0) {
        st = smm_err_set(err, SMM_EIO, "temp file: %s", strerror(errno));
        close(fd);
        return st;
    }
    if ((sp->wbuf = malloc(SPOOL_WBUF)) == NULL) {
        close(fd);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    if ((st = write_all(fd, sp->mem->data, sp->mem->len, err)) != SMM_OK) {
        close(fd);
        return st;
    }
    g_byte_array_free(sp->mem, TRUE);
    sp->mem = NULL;
    sp->fd = fd;
    return SMM_OK;
}

smm_status
smm_spool_write(struct smm_spool *sp, const void *p, size_t n,
                struct smm_err *err)
{
    smm_status st;

    if (n == 0)
        return SMM_OK;
    if (sp->mem != NULL && sp->mem->len + n > sp->max_mem)
        if ((st = spool_spill(sp, err)) != SMM_OK)
            return st;
    if (sp->mem != NULL) {
        g_byte_array_append(sp->mem, p, (guint)n);
    } else if (sp->werr != 0) {
        return spool_flush(sp, err);
    } else if (sp->wlen + n <= SPOOL_WBUF) {
        memcpy(sp->wbuf + sp->wlen, p, n);
        sp->wlen += n;
    } else if ((st = spool_flush(sp, err)) != SMM_OK) {
        return st;
    } else if (n < SPOOL_WBUF) {
        memcpy(sp->wbuf, p, n);
        sp->wlen = n;
    } else if ((st = write_all(sp->fd, p, n, err)) != SMM_OK) { /* O_APPEND */
        sp->werr = errno != 0 ? errno : EIO;
        return st;
    }
    sp->len += n;
    return SMM_OK;
}

/*
 * Current length.  Writers other than smm_spool_write() (a GMime stream)
 * may have grown the storage, so ask the storage itself.
 */
size_t
smm_spool_len(struct smm_spool *sp)
{
    struct stat st;

    if (sp->mem != NULL)
        sp->len = sp->mem->len;
    else if (fstat(sp->fd, &st) == 0) /* (plus what is still buffered) */
        sp->len = (size_t)st.st_size + sp->wlen;
    return sp->len;
}

int
smm_spool_spilled(const struct smm_spool *sp)
{
    return sp->mem == NULL;
}

ssize_t
smm_spool_pread(struct smm_spool *sp, void *buf, size_t n, size_t off)
{
    ssize_t r;

    if (sp->mem != NULL) {
        if (off >= sp->mem->len)
            return 0;
        if (n > sp->mem->len - off)
            n = sp->mem->len - off;
        memcpy(buf, sp->mem->data + off, n);
        return (ssize_t)n;
    }
    if (spool_flush(sp, NULL) != SMM_OK)
        return -1; /* (errno set) */
    /* (the file ends where it ends: no fstat() for every read) */
    do
        r = pread(sp->fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return r;
}

/* A new descriptor for the temp file (the offset is shared), rewound. */
static int
dup_at_start(struct smm_spool *sp, struct smm_err *err)
{
    int fd;

    if (spool_flush(sp, err) != SMM_OK)
        return -1;
    if ((fd = dup(sp->fd)) < 0) {
        smm_err_set(err, SMM_EIO, "dup temp file: %s", strerror(errno));
        return -1;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        smm_err_set(err, SMM_EIO, "seek temp file: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * A GMime stream over a temp file.  GMime's own file stream seeks before
 * every 4 KiB read or write and fsync()s on flush; this one reads with
 * pread() through a 64 KiB cache, appends through smm_spool_write(), and
 * flushes nothing (the file is a scratch copy).  Substreams (the parser's
 * parts) share the spool and have caches of their own.
 */
#define SS_CACHE 65536

typedef struct {
    GMimeStream parent;
    struct smm_spool *sp; /* not owned */
    char *cache;
    gint64 coff; /* file offset of cache[0] */
    size_t clen;
    size_t cap; /* size of cache */
    gboolean eos;
} SmmSpoolStream;

typedef struct {
    GMimeStreamClass parent_class;
} SmmSpoolStreamClass;

GType smm_spool_stream_get_type(void);
G_DEFINE_TYPE(SmmSpoolStream, smm_spool_stream, GMIME_TYPE_STREAM)

static GMimeStream *ss_new(struct smm_spool *, gint64, gint64);

static ssize_t
ss_read(GMimeStream *s, char *buf, size_t len)
{
    SmmSpoolStream *ss = (SmmSpoolStream *)s;
    gint64 pos = s->position;
    size_t want;
    ssize_t r;

    if (s->bound_end != -1 && pos >= s->bound_end) {
        errno = EINVAL;
        return -1;
    }
    if (s->bound_end != -1 && (gint64)len > s->bound_end - pos)
        len = (size_t)(s->bound_end - pos);
    if (len == 0)
        return 0;
    if (ss->cache == NULL || pos < ss->coff ||
        pos >= ss->coff + (gint64)ss->clen) {
        if (ss->cache == NULL) {
            /* a part's substream needs no more than the part: a message
             * of many small parts must not cost 64 KiB for each */
            ss->cap = SS_CACHE;
            if (s->bound_end != -1 &&
                s->bound_end - s->bound_start < (gint64)ss->cap)
                ss->cap = (size_t)(s->bound_end - s->bound_start);
            if ((ss->cache = g_try_malloc(ss->cap)) == NULL) {
                errno = ENOMEM;
                return -1;
            }
        }
        want = ss->cap;
        if (s->bound_end != -1 && (gint64)want > s->bound_end - pos)
            want = (size_t)(s->bound_end - pos);
        if (spool_flush(ss->sp, NULL) != SMM_OK)
            return -1;
        do
            r = pread(ss->sp->fd, ss->cache, want, (off_t)pos);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return -1;
        ss->coff = pos;
        ss->clen = (size_t)r;
        if (r == 0) {
            ss->eos = TRUE;
            return 0;
        }
    }
    if (len > (size_t)(ss->coff + (gint64)ss->clen - pos))
        len = (size_t)(ss->coff + (gint64)ss->clen - pos);
    memcpy(buf, ss->cache + (pos - ss->coff), len);
    s->position += (gint64)len;
    return (ssize_t)len;
}

static ssize_t
ss_write(GMimeStream *s, const char *buf, size_t len)
{
    SmmSpoolStream *ss = (SmmSpoolStream *)s;

    if (s->bound_end != -1) { /* (only the whole file is written) */
        errno = EINVAL;
        return -1;
    }
    if (smm_spool_write(ss->sp, buf, len, NULL) != SMM_OK)
        return -1;
    ss->clen = 0;
    s->position += (gint64)len;
    return (ssize_t)len;
}

static int
ss_flush(GMimeStream *s)
{
    (void)s;
    return 0;
}

static int
ss_close(GMimeStream *s)
{
    (void)s;
    return 0;
}

static gboolean
ss_eos(GMimeStream *s)
{
    if (s->bound_end != -1)
        return s->position >= s->bound_end;
    return ((SmmSpoolStream *)s)->eos;
}

static int
ss_reset(GMimeStream *s)
{
    s->position = s->bound_start;
    ((SmmSpoolStream *)s)->eos = FALSE;
    return 0;
}

static gint64
ss_length(GMimeStream *s)
{
    SmmSpoolStream *ss = (SmmSpoolStream *)s;

    if (s->bound_end != -1)
        return s->bound_end - s->bound_start;
    return (gint64)smm_spool_len(ss->sp) - s->bound_start;
}

static gint64
ss_seek(GMimeStream *s, gint64 offset, GMimeSeekWhence whence)
{
    SmmSpoolStream *ss = (SmmSpoolStream *)s;
    gint64 real;

    switch (whence) {
    case GMIME_STREAM_SEEK_SET:
        real = offset;
        break;
    case GMIME_STREAM_SEEK_CUR:
        real = s->position + offset;
        break;
    default: /* GMIME_STREAM_SEEK_END */
        real = s->bound_start + ss_length(s) + offset;
        break;
    }
    if (real < s->bound_start || (s->bound_end != -1 && real > s->bound_end)) {
        errno = EINVAL;
        return -1;
    }
    if (real < s->position)
        ss->eos = FALSE;
    s->position = real;
    return real;
}

static gint64
ss_tell(GMimeStream *s)
{
    return s->position;
}

static GMimeStream *
ss_substream(GMimeStream *s, gint64 start, gint64 end)
{
    return ss_new(((SmmSpoolStream *)s)->sp, start, end);
}

static void
ss_finalize(GObject *o)
{
    g_free(((SmmSpoolStream *)o)->cache);
    G_OBJECT_CLASS(smm_spool_stream_parent_class)->finalize(o);
}

static void
smm_spool_stream_class_init(SmmSpoolStreamClass *klass)
{
    GMimeStreamClass *sc = GMIME_STREAM_CLASS(klass);

    G_OBJECT_CLASS(klass)->finalize = ss_finalize;
    sc->read = ss_read;
    sc->write = ss_write;
    sc->flush = ss_flush;
    sc->close = ss_close;
    sc->eos = ss_eos;
    sc->reset = ss_reset;
    sc->seek = ss_seek;
    sc->tell = ss_tell;
    sc->length = ss_length;
    sc->substream = ss_substream;
}

static void
smm_spool_stream_init(SmmSpoolStream *ss)
{
    ss->sp = NULL;
    ss->cache = NULL;
    ss->coff = 0;
    ss->clen = 0;
    ss->cap = 0;
    ss->eos = FALSE;
}

static GMimeStream *
ss_new(struct smm_spool *sp, gint64 start, gint64 end)
{
    SmmSpoolStream *ss = g_object_new(smm_spool_stream_get_type(), NULL);

    g_mime_stream_construct(GMIME_STREAM(ss), start, end);
    ss->sp = sp;
    return GMIME_STREAM(ss);
}

/*
 * A GMime stream over the spool, positioned at the start.  Reading sees the
 * current contents; writing appends.  The caller unrefs it.
 */
GMimeStream *
smm_spool_gmime_stream(struct smm_spool *sp, struct smm_err *err)
{
    GMimeStream *s;

    if (sp->mem != NULL) {
        s = g_mime_stream_mem_new();
        /* not owned: the spool keeps the array */
        g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(s), sp->mem);
        return s;
    }
    /* GMime takes a failed read for the end of the stream: what is
     * buffered must reach the file now, where a failure can be told */
    if (spool_flush(sp, err) != SMM_OK)
        return NULL;
    return ss_new(sp, 0, -1);
}

/*
 * A read-only BIO over the current contents.  The caller frees it with
 * BIO_free_all(): for a temp file it is a 64 KiB read buffer in front of
 * the file (OpenSSL's CMS code reads 1 KiB at a time).
 */
BIO *
smm_spool_bio(struct smm_spool *sp, struct smm_err *err)
{
    BIO *b, *buf;
    int fd;

    if (sp->mem != NULL) {
        b = BIO_new_mem_buf(sp->mem->len ? (void *)sp->mem->data : "",
                            (int)sp->mem->len);
        if (b == NULL)
            smm_err_ossl(err, SMM_ENOMEM, "BIO_new_mem_buf");
        return b;
    }
    if ((fd = dup_at_start(sp, err)) < 0)
        return NULL;
    if ((b = BIO_new_fd(fd, BIO_CLOSE)) == NULL) {
        close(fd);
        smm_err_ossl(err, SMM_ENOMEM, "BIO_new_fd");
        return NULL;
    }
    if ((buf = BIO_new(BIO_f_buffer())) == NULL ||
        BIO_set_read_buffer_size(buf, 65536) != 1) {
        BIO_free(buf);
        BIO_free(b);
        smm_err_ossl(err, SMM_ENOMEM, "BIO_f_buffer");
        return NULL;
    }
    return BIO_push(buf, b);
}

/*
 * A write-only BIO appending to the spool (the sink of a streaming
 * encryption).  A failed write leaves the system error in the thread's
 * OpenSSL error queue, as OpenSSL's own file BIOs do.
 */
static int
wbio_write(BIO *b, const char *p, int n)
{
    struct smm_err e;

    if (n <= 0)
        return 0;
    if (smm_spool_write(BIO_get_data(b), p, (size_t)n, &e) != SMM_OK) {
        ERR_raise_data(ERR_LIB_SYS, errno != 0 ? errno : EIO, "%s", e.msg);
        return -1;
    }
    return n;
}

static long
wbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
wbio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *wbio_method;
static pthread_once_t wbio_once = PTHREAD_ONCE_INIT;

static void
wbio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "smm_spool writer");

    if (m != NULL && (!BIO_meth_set_write(m, wbio_write) ||
                      !BIO_meth_set_ctrl(m, wbio_ctrl) ||
                      !BIO_meth_set_create(m, wbio_create))) {
        BIO_meth_free(m);
        m = NULL;
    }
    wbio_method = m;
}

/* A BIO that appends what is written to it.  The caller frees it. */
BIO *
smm_spool_wbio(struct smm_spool *sp, struct smm_err *err)
{
    BIO *b;

    (void)pthread_once(&wbio_once, wbio_method_init);
    if (wbio_method == NULL || (b = BIO_new(wbio_method)) == NULL) {
        smm_err_ossl(err, SMM_ENOMEM, "BIO_new");
        return NULL;
    }
    BIO_set_data(b, sp);
    return b;
}

/*
 * A read-only BIO over pieces of the spool, read one after the other (the
 * ciphertext of an EnvelopedData, in one piece or in the OCTET STRINGs of
 * a BER encoding).  BIO_reset() starts again at the first byte.
 */
struct rbio {
    struct smm_spool *sp;
    size_t n, i; /* pieces, current piece */
    size_t done; /* bytes read from the current piece */
    size_t *off, *len;
};

static int
rbio_read(BIO *b, char *buf, int want)
{
    struct rbio *r = BIO_get_data(b);
    size_t left;
    ssize_t n;

    BIO_clear_retry_flags(b);
    while (r->i < r->n && r->done == r->len[r->i]) {
        r->i++;
        r->done = 0;
    }
    if (want <= 0 || r->i >= r->n)
        return 0;
    left = r->len[r->i] - r->done;
    n = smm_spool_pread(r->sp, buf, left < (size_t)want ? left : (size_t)want,
                        r->off[r->i] + r->done);
    if (n <= 0) {
        ERR_raise_data(ERR_LIB_SYS, n < 0 ? errno : EIO, "reading a temp file");
        return -1;
    }
    r->done += (size_t)n;
    return (int)n;
}

static long
rbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct rbio *r = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_RESET:
        r->i = r->done = 0;
        return 1;
    case BIO_CTRL_EOF:
        while (r->i < r->n && r->done == r->len[r->i]) {
            r->i++;
            r->done = 0;
        }
        return r->i >= r->n;
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int
rbio_destroy(BIO *b)
{
    struct rbio *r = BIO_get_data(b);

    if (r != NULL) {
        free(r->off);
        free(r->len);
        free(r);
    }
    BIO_set_data(b, NULL);
    return 1;
}

static BIO_METHOD *rbio_method;
static pthread_once_t rbio_once = PTHREAD_ONCE_INIT;

static void
rbio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "smm_spool pieces");

    if (m != NULL &&
        (!BIO_meth_set_read(m, rbio_read) || !BIO_meth_set_ctrl(m, rbio_ctrl) ||
         !BIO_meth_set_create(m, wbio_create) ||
         !BIO_meth_set_destroy(m, rbio_destroy))) {
        BIO_meth_free(m);
        m = NULL;
    }
    rbio_method = m;
}

/* A BIO reading the n pieces off[i], len[i] of the spool in turn (the
 * arrays are copied).  The caller frees it, before the spool. */
BIO *
smm_spool_pieces_bio(struct smm_spool *sp, const size_t *off, const size_t *len,
                     size_t n, struct smm_err *err)
{
    struct rbio *r = NULL;
    BIO *b;

    (void)pthread_once(&rbio_once, rbio_method_init);
    if ((r = calloc(1, sizeof(*r))) == NULL ||
        (r->off = calloc(n + 1, sizeof(*r->off))) == NULL ||
        (r->len = calloc(n + 1, sizeof(*r->len))) == NULL) {
        if (r != NULL)
            free(r->off);
        free(r);
        smm_err_set(err, SMM_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(r->off, off, n * sizeof(*off));
    memcpy(r->len, len, n * sizeof(*len));
    r->sp = sp;
    r->n = n;
    if (rbio_method == NULL || (b = BIO_new(rbio_method)) == NULL) {
        free(r->off);
        free(r->len);
        free(r);
        smm_err_ossl(err, SMM_ENOMEM, "BIO_new");
        return NULL;
    }
    BIO_set_data(b, r);
    return b;
}

/* Append all of src to dst. */
smm_status
smm_spool_copy(struct smm_spool *dst, struct smm_spool *src, EVP_MD_CTX *md,
               struct smm_err *err)
{
    char buf[65536];
    size_t off = 0;
    ssize_t n;
    smm_status st;

    for (;;) {
        n = smm_spool_pread(src, buf, sizeof(buf), off);
        if (n < 0)
            return smm_err_set(err, SMM_EIO, "read temp file: %s",
                               strerror(errno));
        if (n == 0)
            return SMM_OK;
        if (md != NULL && !EVP_DigestUpdate(md, buf, (size_t)n))
            return smm_err_set(err, SMM_ECRYPTO, "digest of the content");
        if ((st = smm_spool_write(dst, buf, (size_t)n, err)) != SMM_OK)
            return st;
        off += (size_t)n;
    }
}

void
smm_spool_free(struct smm_spool *sp)
{
    if (sp == NULL)
        return;
    if (sp->mem != NULL)
        g_byte_array_free(sp->mem, TRUE);
    if (sp->fd >= 0)
        close(sp->fd);
    free(sp->wbuf);
    free(sp->tmpdir);
    free(sp);
}
