/*
 * fuzz_ops - the whole API on one heap with small arenas: malloc, calloc, realloc (grow,
 * shrink, to 0), aligned_alloc, posix_memalign, free, usable_size, and writing and verifying
 * block contents. Property: after every op, I1-I7 hold; after the final drain, I8.
 */
#include "fuzz_common.h"

static void configure(th_config *config)
{
    th_config_init(config);
}

FUZZ_TARGET(fuzz_ops, configure)
