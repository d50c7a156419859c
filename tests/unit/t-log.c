/*
 * t-log: log lines cannot be split or forged by attacker-controlled text,
 * whether or not the call site escaped it.
 */
#include "config.h"

#include <string.h>

#include "smm_log.h"
#include "tap.h"

static char last[4096];
static int calls;

static void
sink(int level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    calls++;
    snprintf(last, sizeof(last), "%s", line);
}

int
main(void)
{
    char esc[64], big[3000];

    smm_log_escape(esc, sizeof(esc), "a\r\nb\\c\td\x01\x7f");
    is_str(esc, "a\\r\\nb\\\\c\\td\\x01\\x7f",
           "smm_log_escape: CR LF \\ TAB "
           "control DEL");
    smm_log_escape(esc, 8, "abcdefghijklmnop");
    is_str(esc, "abcd...", "smm_log_escape truncates with ... within the size");
    smm_log_escape(esc, sizeof(esc), "caf\xc3\xa9");
    is_str(esc, "caf\xc3\xa9", "UTF-8 is kept as is");

    smm_log_set(sink, NULL, SMM_LOG_INFO);
    smm_log(SMM_LOG_INFO, "from=<%s> ok", "evil\r\nNov 22 fake: line");
    is_int(calls, 1, "one event, one call");
    is_str(last, "from=<evil\\x0d\\x0aNov 22 fake: line> ok",
           "an unescaped CR LF in a line becomes \\x0d\\x0a");
    ok(strchr(last, '\n') == NULL && strchr(last, '\r') == NULL,
       "no line end reaches the sink");
    smm_log(SMM_LOG_INFO, "subject=%s", "a\x1b[31mred\x00hidden");
    is_str(last, "subject=a\\x1b[31mred", "ESC escaped; NUL ends the text");
    smm_log_escape(esc, sizeof(esc), "x\ny");
    smm_log(SMM_LOG_INFO, "addr=%s", esc);
    is_str(last, "addr=x\\ny",
           "text escaped at the call site is not "
           "escaped twice");
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    smm_log(SMM_LOG_INFO, "%s", big);
    ok(strlen(last) < 2048 && strchr(last, '\n') == NULL,
       "a line of 3000 line ends is cut, never split (%zu bytes)",
       strlen(last));
    smm_log(SMM_LOG_DEBUG, "below the level");
    is_int(calls, 4, "levels above the maximum are not logged");
    return tap_done();
}
