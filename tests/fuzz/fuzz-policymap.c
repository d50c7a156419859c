/*
 * fuzz-policymap -- the PolicyMap parser (smm_policymap_load()) on the
 * input written to a file, then lookups of addresses that exercise every
 * rule kind (address, @domain, .domain, default).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "fuzz-util.h"
#include "smm_config.h"
#include "smm_policy.h"

static char path[4200];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(path, sizeof(path), "%s/policy.map", fuzz_setup());
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const addrs[] = {
        "alice@example.org",
        "Bob@Sub.Example.NET",
        "x@a.b.c.example.com",
        "@example.org",
        "nodomain",
        "",
        "trailing@dot.",
        "a@.example.org",
    };
    struct smm_policymap *pm = NULL;
    struct smm_err err;
    size_t i;

    if (fuzz_write(path, data, size, 0600) != 0)
        abort();
    if (smm_policymap_load(path, &pm, &err) != SMM_OK)
        return 0;
    for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
        smm_policymap_lookup(pm, addrs[i], SMM_POLICY_OPPORTUNISTIC);
    smm_policymap_free(pm);
    return 0;
}
