/* t-direction: which messages are outbound, and why. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "smm_cidr.h"
#include "smm_config.h"
#include "smm_policy.h"
#include "tap.h"

static const struct {
    const char *auth, *addr, *daemon;
    enum smm_direction want;
    const char *why;
} cases[] = {
    {NULL, "127.0.0.1", NULL, SMM_DIR_OUTBOUND, "internal-host"},
    {NULL, "::1", NULL, SMM_DIR_OUTBOUND, "internal-host"},
    {NULL, "IPv6:::1", NULL, SMM_DIR_OUTBOUND, "internal-host"},
    {NULL, "::ffff:127.0.0.5", NULL, SMM_DIR_OUTBOUND, "internal-host"},
    {NULL, "192.0.2.77", NULL, SMM_DIR_OUTBOUND, "internal-host"},
    {NULL, "192.0.3.1", NULL, SMM_DIR_INBOUND, "external"},
    {NULL, "2001:db8:1::5", NULL, SMM_DIR_OUTBOUND, "internal-host"},
    {NULL, "2001:db9::5", NULL, SMM_DIR_INBOUND, "external"},
    {"alice", "198.51.100.1", NULL, SMM_DIR_OUTBOUND, "auth"},
    {"", "198.51.100.1", NULL, SMM_DIR_INBOUND, "external"},
    {NULL, "198.51.100.1", "submission", SMM_DIR_OUTBOUND, "daemon"},
    {NULL, "198.51.100.1", "smtpd", SMM_DIR_INBOUND, "external"},
    {NULL, "198.51.100.1", "Submission", SMM_DIR_INBOUND, "external"},
    {NULL, NULL, NULL, SMM_DIR_INBOUND, "external"},
    {NULL, "garbage", NULL, SMM_DIR_INBOUND, "external"},
};

int
main(void)
{
    struct smm_config *c;
    struct smm_err err;
    struct smm_cidr r;
    size_t i;
    const char *why;
    static struct smm_cidr ranges[4];
    static char *daemons[] = {"submission", "smtps"};

    if (smm_config_defaults(&c, &err) != SMM_OK)
        return 1;
    smm_cidr_parse("127.0.0.0/8", &ranges[0]);
    smm_cidr_parse("::1", &ranges[1]);
    smm_cidr_parse("192.0.2.0/24", &ranges[2]);
    smm_cidr_parse("2001:db8::/32", &ranges[3]);
    free(c->internal_hosts.v);
    c->internal_hosts.v = malloc(sizeof(ranges));
    memcpy(c->internal_hosts.v, ranges, sizeof(ranges));
    c->internal_hosts.n = 4;
    c->outbound_daemons.v = malloc(sizeof(daemons));
    c->outbound_daemons.v[0] = strdup(daemons[0]);
    c->outbound_daemons.v[1] = strdup(daemons[1]);
    c->outbound_daemons.n = 2;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum smm_direction d = smm_direction_decide(
            c, cases[i].auth, cases[i].addr, cases[i].daemon, &why);
        is_str(smm_direction_name(d), smm_direction_name(cases[i].want),
               "case %zu (%s) direction", i,
               cases[i].addr ? cases[i].addr : "-");
        is_str(why, cases[i].why, "case %zu reason", i);
    }
    ok(smm_cidr_parse("10.0.0.1/8", &r) == 0 && r.addr[3] == 0,
       "host bits cleared");
    ok(smm_cidr_parse("10.0.0.0/", &r) != 0, "empty prefix refused");
    ok(smm_cidr_parse("::/129", &r) != 0, "prefix > 128 refused");
    ok(smm_cidr_parse("0.0.0.0/0", &r) == 0 && smm_cidr_match(&r, "8.8.8.8"),
       "/0 matches everything IPv4");
    ok(!smm_cidr_match(&r, "::1"), "IPv4 range does not match IPv6");
    smm_config_free(c);
    return tap_done();
}
