/*
 * replay -- main() for a fuzz target built without libFuzzer.
 *
 * In a normal build (no --enable-fuzzing) every target in tests/fuzz is
 * linked with this file, so `make check` can run the committed seeds and
 * regression inputs through the same LLVMFuzzerTestOneInput() the fuzzer
 * calls: `fuzz-TARGET FILE|DIR...` feeds each file (each file of a
 * directory) once and prints one line per input; libFuzzer's "-flag=value"
 * arguments are accepted and ignored.  A crash, or a sanitizer
 * report in a sanitizer build, fails the run; otherwise it exits 0.  With
 * --enable-fuzzing this file is empty and libFuzzer's main() takes over
 * (it accepts the same arguments).
 */
#include "config.h"

#ifndef SMM_FUZZING

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz-util.h"

static int
run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (fp == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    do {
        if (len == cap) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 65536;
            if ((nb = realloc(buf, cap)) == NULL) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                free(buf);
                fclose(fp);
                return 1;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, fp);
        len += n;
    } while (n > 0);
    fclose(fp);
    /* a private copy of exactly len bytes, so ASan sees overreads */
    {
        unsigned char *exact = malloc(len ? len : 1);
        if (exact == NULL) {
            free(buf);
            return 1;
        }
        memcpy(exact, buf, len);
        free(buf);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    printf("replay: %s: %zu bytes ok\n", path, len);
    return 0;
}

static int
run_path(const char *path)
{
    struct stat sb;
    struct dirent **ents = NULL;
    int i, n, rc = 0;
    char sub[4096];

    if (stat(path, &sb) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(sb.st_mode))
        return run_file(path);
    if ((n = scandir(path, &ents, NULL, alphasort)) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", path, ents[i]->d_name);
            if (stat(sub, &sb) == 0 && S_ISREG(sb.st_mode))
                rc |= run_file(sub);
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

int
main(int argc, char **argv)
{
    int i, rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++)
        if (argv[i][0] != '-') /* libFuzzer flags: ignored here */
            rc |= run_path(argv[i]);
    return rc;
}

#endif /* SMM_FUZZING */
