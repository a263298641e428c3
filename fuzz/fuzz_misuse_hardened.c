/*
 * fuzz_misuse_hardened - fuzz_misuse's programs on a heap with the hardening options on:
 * canary, junk and a quarantine of QUARANTINE blocks. A write past the requested size must be
 * "canary corrupted", a write into freed memory "write after free" when it is handed out
 * again, and a block freed again while still held back "double free". The property, the
 * damage kinds and the statistics are described in fuzz_misuse.h.
 */
#include "fuzz_misuse_hooks.h"

static void configure(th_config *config)
{
    misuse_configure(config, "fuzz_misuse_hardened", true, true, true);
}

FUZZ_TARGET(fuzz_misuse_hardened, configure)
