/*
 * replay_target.c - the `stress` target of talloc-replay: a talloc-stress reproducer replayed
 * on the heap talloc-stress runs on, not on the fuzz targets' 16 KiB arenas. The heap has the
 * default heap's shape (TAlloc_config_init: the default arena size, its retained arena count,
 * first fit) and executes the ops the driver records (STRESS_OP_KINDS); the harness checks
 * everything after every op as for any target.
 *
 * Linked into talloc-replay only (TALLOC_FUZZ_NO_ENTRY): there is nothing to fuzz here. The
 * replay picks it from a reproducer's `# target: stress` line, or from a file name starting
 * with `stress-`.
 */
#include "fuzz_common.h"
#include "stress.h"

static void configure(th_config *config)
{
    th_config_init(config);
    TAlloc_config heap;
    TAlloc_config_init(&heap);
    config->arena_size = heap.arena_size;
    config->retained_arena_count = heap.retained_arena_count;
    config->policy = heap.policy;
    config->allowed_ops = STRESS_OP_KINDS;
    /* A window of STRESS_RING ops cannot hold more blocks; sizes are recorded below 16 MiB. */
    config->max_live_blocks = STRESS_RING;
    config->max_request = SIZE_MAX;
}

FUZZ_TARGET(stress, configure)
