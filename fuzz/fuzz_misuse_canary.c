/*
 * fuzz_misuse_canary - fuzz_misuse's programs on a heap with canary alone: the one hardening
 * option under which the fast entries still serve a single thread's calls (quick.h), so a
 * canary is written by the fast malloc and verified by the fast free. A write past the
 * requested size must be "canary corrupted", by the first call that verifies the block. The
 * property, the damage kinds and the statistics are described in fuzz_misuse.h.
 */
#include "fuzz_misuse_hooks.h"

static void configure(th_config *config)
{
    misuse_configure(config, "fuzz_misuse_canary", true, false, false);
}

FUZZ_TARGET(fuzz_misuse_canary, configure)
