/* bench_shortlived: many small short-lived blocks among a few long-lived ones. Blocks of
 * 8..128 bytes live in a sliding window of the last 64 allocations (each is freed 64
 * allocations after it was made); every 1000th allocation instead goes to a long-lived set
 * of 4096 blocks (64..2048 bytes), replacing one at random. Measures how well the short-lived
 * traffic reuses memory next to blocks that stay. ops = malloc/free pairs.
 *
 * usage: bench_shortlived [SCALE] */
#include "bench.h"

#define USAGE "bench_shortlived [SCALE]"
#define WINDOW 64
#define LONG_LIVED 4096
#define LONG_EVERY 1000

typedef struct {
    void *block;
    size_t size;
} slot;

static uint64_t replace(slot *s, size_t size, unsigned tag)
{
    uint64_t sum = 0;
    if (s->block != NULL) {
        sum = bench_read(s->block, s->size);
        free(s->block);
    }
    s->block = bench_malloc(size);
    s->size = size;
    bench_touch(s->block, size, tag);
    return sum + size;
}

static uint64_t drain(slot *slots, size_t count)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++)
        if (slots[i].block != NULL) {
            sum += bench_read(slots[i].block, slots[i].size);
            free(slots[i].block);
        }
    return sum;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t count = bench_scaled(15e6, scale);
    static slot window[WINDOW], long_lived[LONG_LIVED];
    uint64_t rng = 0x853c49e6748fea9bu, checksum = 0;

    for (size_t i = 0; i < LONG_LIVED; i++) /* not measured */
        checksum += replace(&long_lived[i], rng_range(&rng, 64, 2048), (unsigned)i);
    double start = bench_now();
    for (size_t i = 0; i < count; i++) {
        if (i % LONG_EVERY == LONG_EVERY - 1) {
            slot *s = &long_lived[rng_range(&rng, 0, LONG_LIVED - 1)];
            checksum += replace(s, rng_range(&rng, 64, 2048), (unsigned)i);
        } else {
            checksum += replace(&window[i % WINDOW], rng_range(&rng, 8, 128), (unsigned)i);
        }
    }
    double seconds = bench_now() - start;
    checksum += drain(window, WINDOW) + drain(long_lived, LONG_LIVED);

    bench_report("shortlived", count, seconds, checksum);
    return 0;
}
