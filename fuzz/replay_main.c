/*
 * replay_main.c - a main() for fuzz targets built without libFuzzer (any compiler): runs
 * LLVMFuzzerTestOneInput once on every file named, or on every file in every directory
 * named, in name order (text twins, *.txt and *.md, are skipped). ctest uses it to replay
 * the corpus. Arguments that start with '-' are libFuzzer flags (-runs=0, -max_len=N, ...):
 * they are noted and ignored, so one command line serves both builds. An input larger than
 * TH_MAX_INPUT_BYTES (or a device that never ends, such as /dev/zero) is refused.
 * Exit status: 0 every input ran (a broken invariant aborts the process), 2 nothing to run
 * or an input could not be read.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    size_t size;
    char error[512];
    char *data = th_read_input(path, &size, error, sizeof error);
    if (data == NULL) {
        fprintf(stderr, "%s\n", error);
        return 2;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, size);
    free(data);
    return 0;
}

static int run_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    char error[512];
    size_t n = 0;
    char **names = th_list_programs(path, &n, error, sizeof error);
    if (names == NULL) {
        fprintf(stderr, "%s\n", error);
        return 2;
    }
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        int s = run_path(names[i], count);
        status = s > status ? s : status;
        free(names[i]);
    }
    free(names);
    return status;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int status = 0, paths = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            fprintf(stderr, "%s: ignoring %s (a libFuzzer flag; this build replays only)\n",
                    argv[0], argv[i]);
            continue;
        }
        paths++;
        int s = run_path(argv[i], &count);
        status = s > status ? s : status;
    }
    if (count == 0) {
        fprintf(stderr, "%s: no inputs to replay%s\n", argv[0],
                paths == 0 ? " (usage: FILE_OR_DIR...)" : "");
        return 2;
    }
    if (status != 0) {
        printf("%s: %zu inputs replayed, none broke an invariant; some could not be read\n",
               argv[0], count);
        return status;
    }
    printf("%s: %zu inputs replayed, none broke an invariant\n", argv[0], count);
    return 0;
}
