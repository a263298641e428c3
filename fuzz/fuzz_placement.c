/*
 * fuzz_placement - the placement policy, not only safety: the harness's exact model of the
 * policy the run uses (harness/src/placement.c; TALLOC_TEST_POLICY, else the default)
 * predicts every returned address, every map and unmap, and the whole layout after every
 * op. Any difference is a TH_POLICY failure. The quick lists may hold two arenas' worth
 * (fuzz_ops and the others hold a quarter of one), so that the lists can outgrow an arena
 * and a map may come before their flush is due.
 */
#include "fuzz_common.h"

static void configure(th_config *config)
{
    th_config_init(config);
    config->quick = 2 * config->arena_size;
    th_placement_install(config);
}

FUZZ_TARGET(fuzz_placement, configure)
