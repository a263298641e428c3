/* bench_pair: the cost of one malloc immediately followed by its free, the fastest path an
 * allocator has. ops = malloc/free pairs.
 *
 * usage: bench_pair [SCALE] [SIZE]   (SIZE in bytes, default 32) */
#include "bench.h"

#define USAGE "bench_pair [SCALE] [SIZE]"

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t size = (size_t)bench_arg(argc, argv, 2, 32, USAGE);
    size_t pairs = bench_scaled(20e6, scale);
    uint64_t checksum = 0;

    double start = bench_now();
    for (size_t i = 0; i < pairs; i++) {
        unsigned char *p = bench_malloc(size);
        bench_touch(p, size, (unsigned)i);
        checksum += bench_read(p, size);
        free(p);
    }
    double seconds = bench_now() - start;

    bench_report("pair", pairs, seconds, checksum + size);
    return 0;
}
