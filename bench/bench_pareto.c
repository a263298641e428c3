/* bench_pareto: heavy-tailed sizes and random lifetimes. Sizes follow a Pareto distribution
 * (minimum 16 bytes, shape 1.1) capped at 1 KiB, drawn from a quantile table built before the
 * measured section. Each step allocates one block with a random lifetime: 1..64 steps for
 * 7 blocks in 8, otherwise up to 32767 steps. The blocks due at a step are freed then; they
 * are kept in a timing wheel whose buckets are lists linked through the blocks themselves,
 * so the live set stays below 32768 blocks. ops = malloc/free pairs.
 *
 * usage: bench_pareto [SCALE] */
#include "bench.h"

#include <math.h>

#define USAGE "bench_pareto [SCALE]"
#define TABLE 65536
#define WHEEL 32768 /* lifetimes are below this */

typedef struct node { /* at the start of every block (sizes are at least 16 bytes) */
    struct node *next;
    uint32_t size;
    unsigned char tag; /* with the block's last byte, what is read back */
} node;

static uint32_t size_table[TABLE];

static void build_sizes(void)
{
    for (size_t i = 0; i < TABLE; i++) {
        double u = 1.0 - ((double)i + 0.5) / TABLE; /* in (0, 1) */
        double size = 16.0 / pow(u, 1.0 / 1.1);
        size_table[i] = size > 1024 ? 1024 : (uint32_t)size;
    }
}

/* Frees every block of a bucket, returning what was read back. */
static uint64_t expire(node **bucket)
{
    uint64_t sum = 0;
    for (node *n = *bucket, *next; n != NULL; n = next) {
        next = n->next;
        sum += n->size + n->tag * 257u + ((unsigned char *)n)[n->size - 1];
        free(n);
    }
    *bucket = NULL;
    return sum;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t steps = bench_scaled(10e6, scale);
    static node *wheel[WHEEL];
    uint64_t rng = 0xd1b54a32d192ed03u, checksum = 0;

    build_sizes();
    double start = bench_now();
    for (size_t t = 0; t < steps; t++) {
        checksum += expire(&wheel[t % WHEEL]);
        uint32_t size = size_table[rng_range(&rng, 0, TABLE - 1)];
        size_t life = rng_next(&rng) % 8 ? rng_range(&rng, 1, 64) : rng_range(&rng, 1, WHEEL - 1);
        node *n = bench_malloc(size);
        n->size = size;
        n->tag = (unsigned char)t;
        ((unsigned char *)n)[size - 1] = (unsigned char)(t >> 8);
        size_t due = (t + life) % WHEEL;
        n->next = wheel[due];
        wheel[due] = n;
    }
    double seconds = bench_now() - start;
    for (size_t b = 0; b < WHEEL; b++)
        checksum += expire(&wheel[b]);

    bench_report("pareto", steps, seconds, checksum);
    return 0;
}
