/*
 * smm_log -- log callback and escaping; see smm_log.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smm_log.h"

static smm_log_fn *log_fn;
static void *log_arg;
static int log_max = SMM_LOG_INFO;

void
smm_log_set(smm_log_fn *fn, void *arg, int maxlevel)
{
    log_fn = fn;
    log_arg = arg;
    log_max = maxlevel;
}

/*
 * The last line of defence against log injection: a control character that
 * reached a formatted line (text a call site did not pass through
 * smm_log_escape) becomes \xNN, so one event is always one line.
 * Backslashes are left alone: escaped text stays as it was.
 */
static void
defang(char *dst, size_t dstsz, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    unsigned char c;

    for (; (c = (unsigned char)*src) != '\0' && o + 5 < dstsz; src++) {
        if (c < 0x20 || c == 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
}

void
smm_log(int level, const char *fmt, ...)
{
    va_list ap;
    char line[2048], safe[2048];
    const char *p;

    if (log_fn == NULL || level > log_max)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            break;
    if (*p == '\0') {
        log_fn(level, line, log_arg);
        return;
    }
    defang(safe, sizeof(safe), line);
    log_fn(level, safe, log_arg);
}

/*
 * Copy src to dst (size dstsz), replacing control characters, DEL and
 * backslash by C-style escapes; truncate with "..." when it does not fit.
 * Returns dst.
 */
char *
smm_log_escape(char *dst, size_t dstsz, const char *src)
{
    size_t o = 0;
    unsigned char c;
    char tmp[5];
    size_t tl;

    if (dstsz == 0)
        return dst;
    if (src == NULL)
        src = "";
    for (; (c = (unsigned char)*src) != '\0'; src++) {
        if (c == '\\') {
            memcpy(tmp, "\\\\", 3);
        } else if (c == '\n') {
            memcpy(tmp, "\\n", 3);
        } else if (c == '\r') {
            memcpy(tmp, "\\r", 3);
        } else if (c == '\t') {
            memcpy(tmp, "\\t", 3);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        } else {
            tmp[0] = (char)c;
            tmp[1] = '\0';
        }
        tl = strlen(tmp);
        if (o + tl + 4 > dstsz) {
            if (dstsz >= 4) {
                o = o < dstsz - 4 ? o : dstsz - 4;
                memcpy(dst + o, "...", 4);
            } else {
                dst[0] = '\0';
            }
            return dst;
        }
        memcpy(dst + o, tmp, tl);
        o += tl;
    }
    dst[o] = '\0';
    return dst;
}

static const struct {
    const char *name;
    int level;
} levels[] = {
    {"error", SMM_LOG_ERR},     {"warning", SMM_LOG_WARNING},
    {"notice", SMM_LOG_NOTICE}, {"info", SMM_LOG_INFO},
    {"debug", SMM_LOG_DEBUG},
};

/* Returns the level for a name (case-insensitive), or -1. */
int
smm_log_level_parse(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcasecmp(name, levels[i].name) == 0)
            return levels[i].level;
    return -1;
}

const char *
smm_log_level_name(int level)
{
    size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (levels[i].level == level)
            return levels[i].name;
    return "?";
}
