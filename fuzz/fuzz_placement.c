/*
 * fuzz_placement - the placement policy, not only safety: the harness's exact model of the
 * policy the run uses (harness/src/placement.c; TALLOC_TEST_POLICY, else the default)
 * predicts every returned address, every map and unmap, and the whole layout after every
 * op. Any difference is a TH_POLICY failure.
 */
#include "fuzz_common.h"

static void configure(th_config *config)
{
    th_config_init(config);
    th_placement_install(config);
}

FUZZ_TARGET(fuzz_placement, configure)
