/*
 * fuzz_common.h - what every fuzz target shares. A target is a name and a function that
 * fills a th_config (heap shape, allowed ops, hooks); FUZZ_TARGET(name, configure) defines
 * both its descriptor (for talloc-replay, which links every target) and, unless
 * TALLOC_FUZZ_NO_ENTRY is defined, its LLVMFuzzerTestOneInput: decode the input, run it on
 * a fresh heap with the full check after every op, and on a failure print the op, the
 * invariant and the program, then abort() so libFuzzer records the input.
 */
#ifndef TALLOC_FUZZ_COMMON_H
#define TALLOC_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

typedef struct fuzz_target {
    const char *name;
    void (*configure)(th_config *config); /* also resets any state its hooks keep */
} fuzz_target;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs `data` under `config`; aborts with a report when an invariant breaks. */
static inline void fuzz_run(const uint8_t *data, size_t size, const th_config *config)
{
    th_program program;
    th_decode(data, size, &program);
    th_result result;
    th_run_program(&program, config, &result);
    if (result.failure.has_failed) {
        fprintf(stderr, "talloc-fuzz: ");
        th_print_failure(&result.failure, stderr);
        if (program.count <= 200) {
            fprintf(stderr, "program:\n");
            th_print_program(&program, stderr);
        }
        fprintf(stderr, "reproduce with: talloc-replay <this input>\n");
        abort();
    }
    th_result_free(&result);
    th_program_free(&program);
}

#ifdef TALLOC_FUZZ_NO_ENTRY
#define FUZZ_ENTRY(configure)
#else
#define FUZZ_ENTRY(configure)                                                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                               \
    {                                                                                          \
        th_config config;                                                                      \
        configure(&config);                                                                    \
        fuzz_run(data, size, &config);                                                         \
        return 0;                                                                              \
    }
#endif

#define FUZZ_TARGET(name, configure)                                                           \
    extern const fuzz_target name##_target;                                                    \
    const fuzz_target name##_target = {#name, configure};                                      \
    FUZZ_ENTRY(configure)

#endif
