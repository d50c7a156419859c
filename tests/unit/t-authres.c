/* t-authres: which Authentication-Results fields claim our authserv-id. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "smm_inbound.h"
#include "tap.h"

static const struct {
    const char *value;
    int ours;
} cases[] = {
    {"mx.example.org; smime=pass", 1},
    {"MX.Example.ORG; dkim=pass", 1},
    {"mx.example.org;smime=pass", 1},
    {" mx.example.org ; smime=pass", 1},
    {"\n\tmx.example.org;\n\tsmime=pass", 1},
    {"(forged) mx.example.org; smime=pass", 1},
    {"(a (nested) comment)\n mx.example.org; none", 1},
    {"\"mx.example.org\"; smime=pass", 1},
    {"mx.example.org 1; smime=pass", 1}, /* with a version */
    {"mx.example.org(c); smime=pass", 1},
    {"mx.example.org.evil; smime=pass", 0},
    {"evil.mx.example.org; smime=pass", 0},
    {"other.example; smime=pass body.smime-identifier=mx.example.org", 0},
    {"; mx.example.org", 0},
    {"", 0},
    {"(unterminated comment mx.example.org; smime=pass", 0},
};

int
main(void)
{
    struct smm_config *cfg;
    struct smm_err err;
    char buf[256];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_int(smm_ar_is_ours(cases[i].value, "mx.example.org"), cases[i].ours,
               "\"%s\" %s ours", cases[i].value,
               cases[i].ours ? "is" : "is not");
    ok(smm_config_defaults(&cfg, &err) == SMM_OK, "default configuration");
    ok(strlen(smm_authserv_id(cfg, buf, sizeof(buf))) > 0,
       "AuthservID defaults to the host name (%s)", buf);
    smm_config_free(cfg);
    return tap_done();
}
