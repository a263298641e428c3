/*
 * fuzz_oom - the whole API with fault ops interleaved: "fail_maps N" makes the next N maps
 * fail. Property: each call that meets a refused map returns NULL with ENOMEM (posix_memalign
 * returns ENOMEM), no call fails without one, old blocks keep their bytes (a failed realloc
 * leaves its block intact), the heap stays consistent, and it recovers when failures stop
 * (the final drain and the I8 allocation run with failures off). Retention is 0 so arenas
 * are mapped and unmapped often.
 */
#include "fuzz_common.h"

static void configure(th_config *config)
{
    th_config_init(config);
    config->retained_arena_count = 0;
    config->allowed_ops = ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_DAMAGE);
}

FUZZ_TARGET(fuzz_oom, configure)
