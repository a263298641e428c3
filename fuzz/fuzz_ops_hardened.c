/*
 * fuzz_ops_hardened - fuzz_ops's programs (no damage) on a heap with canary, junk and a
 * quarantine of 16 blocks and 4 KiB that the harness keeps across ops (keep_quarantine), so
 * frees fill the ring and push its oldest block out into the quick lists, and one thread's
 * calls run the fast entries with every hook (allocator/src/quick.h): the canary written and
 * verified, junk filled and verified, blocks held and released. Property: a correct program
 * gets no report (the heap has no error handler: a report aborts), I1-I7 after every op (the
 * quarantined chunks counted apart), contents intact, and I8 after the final drain. Requests
 * above 256 KiB are skipped (junk fills every freed byte).
 */
#include "fuzz_common.h"

/* 16 blocks, and at most 4 KiB of them: small blocks fill the ring, larger ones the bytes,
   and a block above 4 KiB is not held */
enum { HARDENED_QUARANTINE = 16, HARDENED_QUARANTINE_BYTES = 4096 };

static void configure(th_config *config)
{
    th_config_init(config);
    config->canary = 1;
    config->junk = 1;
    config->quarantine = HARDENED_QUARANTINE;
    config->quarantine_bytes = HARDENED_QUARANTINE_BYTES;
    config->keep_quarantine = true;
    config->max_request = (size_t)256 << 10;
}

FUZZ_TARGET(fuzz_ops_hardened, configure)
