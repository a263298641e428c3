/* bench_lifo, bench_fifo (this file built twice, BENCH_FIFO 0 or 1): batches of same-size
 * blocks: K blocks of one size are allocated, then freed last first (lifo: a stack) or oldest
 * first (fifo: a queue); repeated for 16, 64, 256 and 1024 bytes. ops = malloc/free pairs.
 *
 * usage: bench_lifo|bench_fifo [SCALE] [K]   (K blocks per batch, default 1000) */
#include "bench.h"

#if BENCH_FIFO
#define NAME "fifo"
#else
#define NAME "lifo"
#endif
#define USAGE "bench_" NAME " [SCALE] [K]"

static const size_t sizes[] = {16, 64, 256, 1024};

static uint64_t run_batch(void **blocks, size_t k, size_t size, unsigned round)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < k; i++) {
        blocks[i] = bench_malloc(size);
        bench_touch(blocks[i], size, round + (unsigned)i);
    }
    for (size_t j = 0; j < k; j++) {
        size_t i = BENCH_FIFO ? j : k - 1 - j;
        sum += bench_read(blocks[i], size);
        free(blocks[i]);
    }
    return sum;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t k = (size_t)bench_arg(argc, argv, 2, 1000, USAGE);
    size_t rounds = bench_scaled(2.5e6 / (double)k, scale); /* batches per size */
    void **blocks = bench_malloc(k * sizeof *blocks);
    uint64_t checksum = 0;

    double start = bench_now();
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t r = 0; r < rounds; r++)
            checksum += run_batch(blocks, k, sizes[s], (unsigned)r);
    double seconds = bench_now() - start;

    free(blocks);
    bench_report(NAME, (uint64_t)rounds * k * 4, seconds, checksum);
    return 0;
}
