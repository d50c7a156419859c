/*
 * fuzz-authres -- smm_ar_is_ours(): does an Authentication-Results value
 * claim our authserv-id (and must be removed as a forgery)?  The input is
 * the field value; when it holds a NUL byte, what comes before it is the
 * authserv-id to compare with and what follows is the value.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "smm_inbound.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    char *id, *value;

    if (nul != NULL) {
        id = fuzz_cstr(data, (size_t)(nul - data));
        value = fuzz_cstr(nul + 1, size - (size_t)(nul - data) - 1);
    } else {
        id = fuzz_cstr((const uint8_t *)"mx.fuzz.example", 15);
        value = fuzz_cstr(data, size);
    }
    smm_ar_is_ours(value, id);
    free(id);
    free(value);
    return 0;
}
