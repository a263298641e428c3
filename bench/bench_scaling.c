/* bench_scaling: the churn of bench_churn with the live-set size and the step count given
 * directly, for the scaling table of tools/bench.sh (ns per step = seconds / ops). The live
 * set is left allocated at exit, so TALLOC_OPTIONS=stats=1 reports the arenas it occupies.
 * ops = free/malloc pairs (steps).
 *
 * usage: bench_scaling [LIVE] [STEPS]   (defaults 1000 and 1000000) */
#include "churn.h"

#define USAGE "bench_scaling [LIVE] [STEPS]"

int main(int argc, char **argv)
{
    size_t live = (size_t)bench_arg(argc, argv, 1, 1000, USAGE);
    size_t steps = (size_t)bench_arg(argc, argv, 2, 1e6, USAGE);
    churn_set set;

    churn_init(&set, live, 0x2545f4914f6cdd1du);
    double start = bench_now();
    churn_run(&set, steps);
    double seconds = bench_now() - start;

    for (size_t i = 0; i < set.count; i++) /* read back, keep allocated */
        set.checksum += bench_read(set.block[i], set.size[i]);
    bench_report("scaling", steps, seconds, set.checksum);
    return 0;
}
