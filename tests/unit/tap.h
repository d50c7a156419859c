/*
 * tap.h -- a minimal TAP producer for the unit tests.
 *
 * ok(cond, fmt, ...) prints "ok N - ..." or "not ok N - ..."; is_int() and
 * is_str() also print "got X, want Y" on failure.  tap_done() prints the
 * plan and returns the exit status.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_fail;

static int
ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
ok(int cond, const char *fmt, ...)
{
    va_list ap;
    char desc[512], *p;

    tap_n++;
    if (!cond)
        tap_fail++;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    for (p = desc; *p != '\0'; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' '; /* one TAP line per test */
    printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, desc);
    fflush(stdout);
    return cond;
}

#define is_int(got, want, ...)                                              \
    do {                                                                    \
        long long g_ = (long long)(got), w_ = (long long)(want);            \
        if (!ok(g_ == w_, __VA_ARGS__))                                     \
            printf("#   got %lld, want %lld\n", g_, w_);                  \
    } while (0)

#define is_str(got, want, ...)                                              \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        if (!ok(g_ != NULL && w_ != NULL ? strcmp(g_, w_) == 0 : g_ == w_,  \
                __VA_ARGS__))                                               \
            printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)",     \
                   w_ ? w_ : "(null)");                                     \
    } while (0)

#define has_str(hay, needle, ...)                                           \
    do {                                                                    \
        const char *h_ = (hay), *n_ = (needle);                             \
        if (!ok(h_ != NULL && strstr(h_, n_) != NULL, __VA_ARGS__))         \
            printf("#   got \"%s\", want it to contain \"%s\"\n",           \
                   h_ ? h_ : "(null)", n_);                                 \
    } while (0)

static int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_fail ? 1 : 0;
}

#endif
