/*
 * fuzz_misuse_junk - fuzz_misuse's programs on a heap with junk alone: with no quarantine the
 * fast entries serve a single thread's calls (quick.h), so the fast free junk-fills the block
 * it files and the fast malloc verifies the junk of the block it takes (leaving damage to the
 * full path, which reports it). A write into a freed block must be "write after free" at the
 * first damaged byte, by the call that hands the block out again or flushes it. The property,
 * the damage kinds and the statistics are described in fuzz_misuse.h.
 */
#include "fuzz_misuse_hooks.h"

static void configure(th_config *config)
{
    misuse_configure(config, "fuzz_misuse_junk", false, true, false);
}

FUZZ_TARGET(fuzz_misuse_junk, configure)
