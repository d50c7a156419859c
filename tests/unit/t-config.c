/* t-config: the configuration parser, its defaults and its errors. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smm_config.h"
#include "smm_diag.h"
#include "tap.h"

static char dir[] = "/tmp/t-config.XXXXXX";

static smm_status
load_text(const char *text, struct smm_config **c, struct smm_err *err)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/test.conf", dir);
    fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    return smm_config_load(path, c, err);
}

static const struct {
    const char *text;
    const char *want_err; /* substring, after the directory part */
} bad[] = {
    {"Bogus yes\n", "test.conf:1: unknown key \"Bogus\""},
    {"# c\n\nStampHeader maybe\n",
     "test.conf:3: bad value \"maybe\" for StampHeader: expected yes or no"},
    {"MaxMemoryBody 12q\n", "test.conf:1: bad value \"12q\" for MaxMemoryBody"},
    {"MaxMemoryBody -1\n", "bad value \"-1\" for MaxMemoryBody"},
    {"InternalHosts 10.0.0.0/33\n",
     "test.conf:1: bad value \"10.0.0.0/33\" for InternalHosts"},
    {"InternalHosts 10.0.0.0/8 not-an-ip\n", "for InternalHosts"},
    {"LogLevel loud\n", "test.conf:1: bad value \"loud\" for LogLevel"},
    {"SignDomainKeys yes\nSignDomainKeys no\n",
     "test.conf:2: duplicate key SignDomainKeys (first set on line 1)"},
    {"StampHeader\n", "test.conf:1: StampHeader needs a value"},
    {"Socket\n", "Socket must not be empty"},
    {"SyslogFacility kern\n", "bad value \"kern\" for SyslogFacility"},
};

int
main(void)
{
    struct smm_config *c = NULL;
    struct smm_err err;
    size_t i;
    int n;

    if (mkdtemp(dir) == NULL)
        return 1;

    /* defaults */
    ok(load_text("", &c, &err) == SMM_OK, "empty file loads");
    is_str(c->socket, "unix:/run/smime-milter/smime-milter.sock",
           "default Socket");
    is_int(c->stamp_header, 1, "default StampHeader yes");
    is_int(c->sign_domain_keys, 0, "default SignDomainKeys no");
    is_int(c->max_memory_body, 1024 * 1024, "default MaxMemoryBody 1M");
    is_int(c->max_message_size, 64 * 1024 * 1024, "default MaxMessageSize");
    is_int(c->internal_hosts.n, 2, "default InternalHosts has 2 ranges");
    is_str(c->keystore, "/etc/smime-milter/keys", "default KeyStore");
    is_int(c->log_level, 6, "default LogLevel info");
    smm_config_free(c);

    /* values, comments, case-insensitive keys, relative paths */
    ok(load_text("# comment\n"
                 "  socket   inet:8891@127.0.0.1   # trailing comment\n"
                 "StampHeader off\n"
                 "MaxMemoryBody 512k\n"
                 "MaxMessageSize 2G\n"
                 "InternalHosts 192.0.2.0/24, 2001:db8::/32 10.1.2.3\n"
                 "OutboundDaemons submission,smtps\n"
                 "KeyStore keys\n"
                 "TrustAnchors /etc/ssl/x.pem\n"
                 "LogLevel DEBUG\n"
                 "UserID smime-milter\n",
                 &c, &err) == SMM_OK,
       "full file loads: %s", c ? "" : err.msg);
    if (c != NULL) {
        char want[300];
        is_str(c->socket, "inet:8891@127.0.0.1", "Socket value trimmed");
        is_int(c->stamp_header, 0, "StampHeader off");
        is_int(c->max_memory_body, 512 * 1024, "512k");
        is_int((long long)c->max_message_size, 2LL * 1024 * 1024 * 1024, "2G");
        is_int(c->internal_hosts.n, 3, "three InternalHosts");
        is_int(c->outbound_daemons.n, 2, "two OutboundDaemons");
        is_str(c->outbound_daemons.v[1], "smtps", "second daemon");
        snprintf(want, sizeof(want), "%s/keys", dir);
        is_str(c->keystore, want, "relative KeyStore resolved");
        is_str(c->trust_anchors, "/etc/ssl/x.pem", "absolute path kept");
        is_int(c->log_level, 7, "LogLevel debug");
        is_str(c->user_id, "smime-milter", "UserID");
        is_int(smm_config_line(c, "KeyStore"), 8, "KeyStore set on line 8");
        is_int(smm_config_line(c, "trustanchors"), 9,
               "line of a key, by case-insensitive name");
        is_int(smm_config_line(c, "PolicyMap"), 0, "a key not set: line 0");
        is_int(smm_config_line(c, "Bogus"), 0, "an unknown key: line 0");
        smm_config_free(c);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = NULL;
        ok(load_text(bad[i].text, &c, &err) != SMM_OK && c == NULL,
           "bad config %zu is refused", i);
        has_str(err.msg, bad[i].want_err, "error message %zu", i);
    }
    /* smm_config_check: every problem, not only the first */
    {
        struct smm_diag d = {0};
        char path[256];
        FILE *fp;

        snprintf(path, sizeof(path), "%s/test.conf", dir);
        fp = fopen(path, "w");
        fputs("Mode sv\nLogLevel chatty\nSocket unix:/x\nSocket unix:/y\n"
              "KeyStore /k\nCacheSize 0\n",
              fp);
        fclose(fp);
        ok(smm_config_check(path, &d, &err) != SMM_OK, "check: refused");
        is_int((int)d.n, 4, "check: four problems noted");
        if (d.n == 4) {
            has_str(d.msgs[0], "test.conf:1: unknown key \"Mode\"",
                    "check: the unknown key first");
            has_str(d.msgs[1], "test.conf:2: bad value \"chatty\"",
                    "check: then the bad value on line 2");
            has_str(d.msgs[2], "test.conf:4: duplicate key Socket",
                    "check: then the duplicate on line 4");
            has_str(d.msgs[3], "CacheSize must be at least 1",
                    "check: then the whole-file check");
        }
        has_str(err.msg, "test.conf: 4 errors",
                "check: the count in the error");
        smm_diag_free(&d);
        ok(load_text("Mode sv\nLogLevel chatty\n", &c, &err) != SMM_OK,
           "load: refused");
        has_str(err.msg, "test.conf:1: unknown key", "load: the first error");
        memset(&d, 0, sizeof(d));
        fp = fopen(path, "w");
        fputs("LogLevel debug\n", fp);
        fclose(fp);
        ok(smm_config_check(path, &d, &err) == SMM_OK && d.n == 0,
           "check: a good file passes, nothing noted");
    }
    ok(smm_config_load("/nonexistent/x.conf", &c, &err) != SMM_OK,
       "missing file refused");
    has_str(err.msg, "/nonexistent/x.conf: cannot open", "names the file");

    /* the key table is what the man page documents */
    n = smm_config_key_count();
    ok(n >= 14, "key table has %d keys", n);
    ok(smm_config_key_name(n) == NULL, "key table ends");

    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            return 1;
    }
    return tap_done();
}
