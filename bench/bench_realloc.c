/* bench_realloc: realloc growth chains, as in a growing buffer or vector. 64 chains are
 * interleaved: each starts at 16..64 bytes and grows by 1.5x plus 16..256 bytes per realloc
 * until it passes its own limit (1 KiB shifted left by 0..10, so 1 KiB..1 MiB); then it is
 * freed and a new chain starts in its place. After every realloc the first byte (which must
 * have been kept) is read back and the new last byte is written. ops = realloc calls (the
 * malloc that starts a chain and the free that ends it are not counted).
 *
 * usage: bench_realloc [SCALE] */
#include "bench.h"

#define USAGE "bench_realloc [SCALE]"
#define CHAINS 64

typedef struct {
    unsigned char *block;
    size_t size, limit;
} chain;

static uint64_t start_chain(chain *c, uint64_t *rng, unsigned tag)
{
    c->size = rng_range(rng, 16, 64);
    c->limit = (size_t)1024 << rng_range(rng, 0, 10);
    c->block = bench_malloc(c->size);
    bench_touch(c->block, c->size, tag);
    return c->size + c->limit;
}

static uint64_t grow(chain *c, uint64_t *rng)
{
    size_t size = c->size + c->size / 2 + rng_range(rng, 16, 256);
    unsigned char *p = realloc(c->block, size);
    if (p == NULL) {
        fprintf(stderr, "bench_realloc: realloc(%zu) failed\n", size);
        exit(1);
    }
    p[size - 1] = (unsigned char)size;
    c->block = p;
    c->size = size;
    return p[0] + size;
}

static uint64_t end_chain(chain *c)
{
    uint64_t sum = bench_read(c->block, c->size);
    free(c->block);
    return sum;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t reallocs = bench_scaled(3e5, scale);
    chain chains[CHAINS];
    uint64_t rng = 0xa0761d6478bd642fu, checksum = 0;

    for (size_t i = 0; i < CHAINS; i++)
        checksum += start_chain(&chains[i], &rng, (unsigned)i);
    double start = bench_now();
    for (size_t i = 0; i < reallocs; i++) {
        chain *c = &chains[rng_range(&rng, 0, CHAINS - 1)];
        if (c->size >= c->limit) {
            checksum += end_chain(c);
            checksum += start_chain(c, &rng, (unsigned)i);
        }
        checksum += grow(c, &rng);
    }
    double seconds = bench_now() - start;
    for (size_t i = 0; i < CHAINS; i++)
        checksum += end_chain(&chains[i]);

    bench_report("realloc", reallocs, seconds, checksum);
    return 0;
}
