/*
 * fuzz-config -- smm_config_load() on the input written to a file.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "fuzz-util.h"
#include "smm_config.h"

static char path[4200];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(path, sizeof(path), "%s/fuzz.conf", fuzz_setup());
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smm_config *cfg = NULL;
    struct smm_err err;

    if (fuzz_write(path, data, size, 0600) != 0)
        abort();
    if (smm_config_load(path, &cfg, &err) == SMM_OK)
        smm_config_free(cfg);
    return 0;
}
