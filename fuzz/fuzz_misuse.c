/*
 * fuzz_misuse - damage ops (double, interior, misaligned and foreign frees, header damage, a
 * write after free into a freed block's payload or over its free-list links, a double free
 * after other frees) interleaved with the whole API on a heap with the default options. The
 * property, the damage kinds and the statistics are described in fuzz_misuse.h.
 */
#include "fuzz_misuse_hooks.h"

static void configure(th_config *config)
{
    misuse_configure(config, "fuzz_misuse", false, false, false);
}

FUZZ_TARGET(fuzz_misuse, configure)
