/* bench_churn: random-size churn (16..512 bytes) over a live set of L blocks: every step
 * frees a random live block and allocates a new one in its place. The number of steps does
 * not depend on L, so the time per step compares across live-set sizes (the suite runs L =
 * 1000, 100000 and 1000000). Filling and draining the live set are not measured.
 * ops = free/malloc pairs (steps).
 *
 * usage: bench_churn [SCALE] [L]   (default L = 1000) */
#include "churn.h"

#define USAGE "bench_churn [SCALE] [LIVE]"

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t live = (size_t)bench_arg(argc, argv, 2, 1000, USAGE);
    size_t steps = bench_scaled(3e6, scale);
    churn_set set;

    churn_init(&set, live, 0x9e3779b97f4a7c15u);
    double start = bench_now();
    churn_run(&set, steps);
    double seconds = bench_now() - start;
    churn_free(&set);

    char name[48];
    snprintf(name, sizeof name, "churn-%zu", live);
    bench_report(name, steps, seconds, set.checksum);
    return 0;
}
