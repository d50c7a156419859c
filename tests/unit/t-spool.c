/*
 * t-spool: the spool's temp-file mode.  Writes of every size (through the
 * 64 KiB write buffer and past it) read back byte for byte through
 * smm_spool_pread(), a GMime stream and a BIO, with the right length at
 * every step; and a write that fails (a file size limit, as a full disk)
 * sticks: the write or smm_spool_finish() that meets it fails, and so does
 * every later write, read, GMime stream and BIO, so that no reader takes a
 * short file for the whole.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "smm_spool.h"
#include "tap.h"

#define TOTAL (300 * 1024)

static unsigned char data[TOTAL];

/* Read all of sp back with pread in pieces of n; 1 when it is data[0..len) */
static int
reads_back(struct smm_spool *sp, size_t len, size_t n)
{
    static unsigned char buf[TOTAL];
    size_t off = 0;
    ssize_t r;

    while ((r = smm_spool_pread(sp, buf + off, n, off)) > 0)
        off += (size_t)r;
    return r == 0 && off == len && memcmp(buf, data, len) == 0;
}

static int
gmime_reads_back(struct smm_spool *sp, size_t len)
{
    GMimeStream *s = smm_spool_gmime_stream(sp, NULL);
    GByteArray *a = g_byte_array_new();
    GMimeStream *m = g_mime_stream_mem_new_with_byte_array(a);
    int r;

    if (s == NULL)
        return 0;
    r = g_mime_stream_write_to_stream(s, m) == (gint64)len && a->len == len &&
        memcmp(a->data, data, len) == 0;
    g_object_unref(s);
    g_object_unref(m); /* (owns a) */
    return r;
}

static int
bio_reads_back(struct smm_spool *sp, size_t len)
{
    static unsigned char buf[TOTAL + 1];
    BIO *b = smm_spool_bio(sp, NULL);
    size_t off = 0;
    int r;

    if (b == NULL)
        return 0;
    while ((r = BIO_read(b, buf + off, (int)(sizeof(buf) - off))) > 0)
        off += (size_t)r;
    BIO_free_all(b);
    return off == len && memcmp(buf, data, len) == 0;
}

int
main(void)
{
    static const size_t sizes[] = {1,     7,     4096,  65535, 65536,
                                   65537, 10000, 70000, 1};
    struct smm_spool *sp = NULL;
    struct smm_err err;
    struct rlimit rl;
    size_t i, off;
    smm_status st;

    g_mime_init();
    for (i = 0; i < TOTAL; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);

    /* 1. writes of many sizes, read back after each */
    if (smm_spool_new(0, "/tmp", &sp, &err) != SMM_OK)
        return printf("Bail out! %s\n", err.msg), 1;
    ok(smm_spool_spilled(sp), "MaxMemoryBody 0: the spool is a temp file");
    for (i = 0, off = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        st = smm_spool_write(sp, data + off, sizes[i], &err);
        off += sizes[i];
        is_int(st, SMM_OK, "write %zu bytes (%zu in all)", sizes[i], off);
        is_int(smm_spool_len(sp), off, "length %zu, written or buffered", off);
        ok(reads_back(sp, off, 4096), "pread reads back all %zu bytes", off);
    }
    ok(reads_back(sp, off, 65536), "... in pieces of 64 KiB too");
    ok(gmime_reads_back(sp, off), "a GMime stream reads back all %zu bytes",
       off);
    ok(bio_reads_back(sp, off), "a BIO reads back all %zu bytes", off);
    st = smm_spool_write(sp, data + off, 100, &err);
    ok(st == SMM_OK && smm_spool_finish(sp, &err) == SMM_OK &&
           reads_back(sp, off + 100, 1000),
       "a write after the reads, then smm_spool_finish: all there");
    smm_spool_free(sp);

    /* 2. a failing write sticks */
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = 48000;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return printf("Bail out! setrlimit: %s\n", strerror(errno)), 1;
    if (smm_spool_new(0, "/tmp", &sp, &err) != SMM_OK)
        return printf("Bail out! %s\n", err.msg), 1;
    /* 40000 bytes fit the limit and the buffer; 20000 more still fit the
     * buffer: no write(2) has failed yet */
    is_int(smm_spool_write(sp, data, 40000, &err), SMM_OK,
           "40000 bytes written (buffered)");
    is_int(smm_spool_write(sp, data + 40000, 20000, &err), SMM_OK,
           "20000 more (still buffered: past the limit, not yet written)");
    st = smm_spool_finish(sp, &err);
    is_int(st, SMM_EIO, "smm_spool_finish meets the file size limit");
    has_str(err.msg, "write to temp file", "... and says so: %s", err.msg);
    ok(smm_spool_pread(sp, (char[16]){0}, 16, 0) == -1 && errno == EFBIG,
       "then pread fails (EFBIG), even where the file has bytes");
    ok(smm_spool_gmime_stream(sp, &err) == NULL,
       "a GMime stream cannot be had");
    ok(smm_spool_bio(sp, &err) == NULL, "nor a BIO");
    is_int(smm_spool_write(sp, data, 1, &err), SMM_EIO,
           "nor can a write go on");
    is_int(smm_spool_finish(sp, &err), SMM_EIO,
           "smm_spool_finish again: fails");
    smm_spool_free(sp);

    /* a write too big for the buffer meets the limit at once */
    if (smm_spool_new(0, "/tmp", &sp, &err) != SMM_OK)
        return printf("Bail out! %s\n", err.msg), 1;
    is_int(smm_spool_write(sp, data, 100000, &err), SMM_EIO,
           "a 100000-byte write fails at once");
    ok(smm_spool_pread(sp, (char[16]){0}, 16, 0) == -1,
       "and every read after it");
    smm_spool_free(sp);
    return tap_done();
}
