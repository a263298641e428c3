/* Random-size churn over a live set of `count` slots, shared by bench_churn, bench_scaling
 * and bench_threadrand: every step frees a random live block and allocates a block of a
 * random size (16..512 bytes) into its slot. */
#ifndef BENCH_CHURN_H
#define BENCH_CHURN_H

#include "bench.h"

#define CHURN_MIN 16
#define CHURN_MAX 512

typedef struct {
    void **block;
    uint32_t *size;
    size_t count;
    uint64_t rng;
    uint64_t checksum;
} churn_set;

static inline void churn_put(churn_set *set, size_t slot, unsigned tag)
{
    size_t size = rng_range(&set->rng, CHURN_MIN, CHURN_MAX);
    set->block[slot] = bench_malloc(size);
    set->size[slot] = (uint32_t)size;
    bench_touch(set->block[slot], size, tag);
    set->checksum += size;
}

static inline void churn_drop(churn_set *set, size_t slot)
{
    set->checksum += bench_read(set->block[slot], set->size[slot]);
    free(set->block[slot]);
}

/* Allocates the live set (not part of the measured steps). */
static inline void churn_init(churn_set *set, size_t count, uint64_t seed)
{
    set->block = bench_malloc(count * sizeof *set->block);
    set->size = bench_malloc(count * sizeof *set->size);
    set->count = count;
    set->rng = seed;
    set->checksum = 0;
    for (size_t i = 0; i < count; i++)
        churn_put(set, i, (unsigned)i);
}

/* `steps` free+malloc pairs at random slots. */
static inline void churn_run(churn_set *set, size_t steps)
{
    for (size_t i = 0; i < steps; i++) {
        size_t slot = rng_range(&set->rng, 0, set->count - 1);
        churn_drop(set, slot);
        churn_put(set, slot, (unsigned)i);
    }
}

/* Frees the live set. */
static inline void churn_free(churn_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        churn_drop(set, i);
    free(set->block);
    free(set->size);
}

#endif
