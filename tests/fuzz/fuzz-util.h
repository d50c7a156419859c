/*
 * fuzz-util -- what the libFuzzer targets in tests/fuzz share.
 *
 * fuzz_setup() runs once per process (from LLVMFuzzerInitialize): the
 * library's smm_init(), a silent log and a private temporary directory
 * that is removed at exit.  fuzz_pki() fills a directory with a small
 * test PKI, or uses the one named by $SMM_FUZZ_PKI (tests/pki/mkpki.sh
 * output, so that the messages tests/fuzz/make-seeds.sh makes can be
 * decrypted and verified); nothing here is ever written to the source
 * tree.  fuzz_state() writes a configuration file and loads a state from
 * it.  fuzz_pipeline() runs one message through smm_pipeline_run() the
 * way `smime-milter-ctl process` does (SMM_FUZZ_VERBOSE=1 prints its
 * summary).  Not thread-safe; libFuzzer runs
 * one input at a time.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "smm_policy.h"
#include "smm_state.h"

/* libFuzzer's entry points; tests/fuzz/replay.c calls them without it */
int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

const char *fuzz_setup(void);
int fuzz_write(const char *, const void *, size_t, mode_t);
char *fuzz_cstr(const uint8_t *, size_t);
const char *fuzz_pki(void);
struct smm_state *fuzz_state(const char *, const char *);
void fuzz_pipeline(const struct smm_state *, enum smm_direction, const char *,
                   const char *const *, const uint8_t *, size_t);

#endif
