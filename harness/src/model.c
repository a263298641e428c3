/*
 * model.c - the harness's record of live blocks (I7): where each block is, what was asked
 * for, and the byte pattern written into it. Blocks up to 64 KiB are filled and verified
 * whole; larger ones in their first 64 KiB and last 4 KiB, which keeps huge blocks cheap
 * while still covering both ends, where neighbouring chunks would collide.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { HEAD_BYTES = 65536, TAIL_BYTES = 4096, EDGE_BYTES = 64 };

enum { TABLE_PERIOD = 4096 };

/* Pattern bytes: block byte i is table[(offset + i) % 4096], with the offset drawn from the
   block's pattern seed. The table holds the period twice, so any range of up to 4096 bytes
   is one memcpy/memcmp away, which keeps fills and checks fast in instrumented builds. */
static unsigned char table[2 * TABLE_PERIOD];

static void fill_table(void)
{
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < TABLE_PERIOD; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        table[i] = table[i + TABLE_PERIOD] = (unsigned char)(x >> 24);
    }
}

static void init_table(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fill_table);
}

static size_t offset_of(uint64_t pattern)
{
    return (size_t)((pattern * 0x9E3779B97F4A7C15u) >> 52) % TABLE_PERIOD;
}

unsigned char th_pattern_byte(uint64_t pattern, size_t i)
{
    init_table();
    return table[(offset_of(pattern) + i) % TABLE_PERIOD];
}

void th_model_add(th_run *run, void *ptr, size_t size, size_t alignment)
{
    if (run->live_count == run->live_capacity) {
        run->live_capacity = run->live_capacity ? 2 * run->live_capacity : 64;
        run->live = realloc(run->live, run->live_capacity * sizeof *run->live);
        if (run->live == NULL)
            abort();
    }
    run->live[run->live_count++] = (th_block){ptr, size, alignment, 0, run->op_index};
}

void th_model_remove(th_run *run, size_t index)
{
    memmove(&run->live[index], &run->live[index + 1],
            (run->live_count - index - 1) * sizeof *run->live);
    run->live_count--;
}

/* Calls fn on the [from, to) ranges of `size` bytes that carry the pattern. */
static void for_pattern_ranges(size_t size, void (*fn)(void *, size_t, size_t), void *ctx)
{
    if (size <= HEAD_BYTES + TAIL_BYTES) {
        fn(ctx, 0, size);
        return;
    }
    fn(ctx, 0, HEAD_BYTES);
    fn(ctx, size - TAIL_BYTES, size);
}

static void fill_range(void *ctx, size_t from, size_t to)
{
    th_block *b = ctx;
    size_t offset = offset_of(b->pattern);
    for (size_t i = from; i < to;) {
        size_t at = (offset + i) % TABLE_PERIOD;
        size_t n = to - i < TABLE_PERIOD ? to - i : TABLE_PERIOD;
        memcpy(b->ptr + i, table + at, n);
        i += n;
    }
}

void th_model_fill(th_run *run, th_block *block)
{
    init_table();
    block->pattern = ++run->next_pattern;
    for_pattern_ranges(block->size, fill_range, block);
}

typedef struct verify_ctx {
    const th_block *block;
    size_t limit;
    size_t bad_at;
} verify_ctx;

/* The first byte in [from, to) that differs from the pattern, or SIZE_MAX. */
static size_t first_difference(const th_block *b, size_t from, size_t to)
{
    size_t offset = offset_of(b->pattern);
    for (size_t i = from; i < to;) {
        size_t at = (offset + i) % TABLE_PERIOD;
        size_t n = to - i < TABLE_PERIOD ? to - i : TABLE_PERIOD;
        if (memcmp(b->ptr + i, table + at, n) != 0) {
            while (b->ptr[i] == table[at])
                i++, at++;
            return i;
        }
        i += n;
    }
    return SIZE_MAX;
}

static void verify_range(void *ctx, size_t from, size_t to)
{
    verify_ctx *v = ctx;
    if (to > v->limit)
        to = v->limit;
    if (v->bad_at == SIZE_MAX && from < to)
        v->bad_at = first_difference(v->block, from, to);
}

/* Verifies the pattern over the block's first `prefix` bytes (SIZE_MAX: all of it). */
bool th_model_verify(th_run *run, const th_block *block, size_t prefix, const char *what)
{
    verify_ctx v = {block, prefix, SIZE_MAX};
    for_pattern_ranges(block->size, verify_range, &v);
    if (v.bad_at == SIZE_MAX)
        return true;
    th_run_fail(run, TH_I7_MODEL, block->ptr + v.bad_at,
                "%s: block %p (%zu bytes, from op %zu) lost its pattern at byte %zu", what,
                (void *)block->ptr, block->size, block->op_index, v.bad_at);
    return false;
}

/* The cheap per-op verification: the first and last 64 bytes. */
bool th_model_verify_edges(th_run *run, const th_block *block)
{
    size_t n = block->size;
    size_t bad = first_difference(block, 0, n < EDGE_BYTES ? n : EDGE_BYTES);
    if (bad == SIZE_MAX && n > EDGE_BYTES)
        bad = first_difference(block, n - EDGE_BYTES, n);
    if (bad == SIZE_MAX)
        return true;
    th_run_fail(run, TH_I7_MODEL, block->ptr + bad,
                "block %p (%zu bytes, from op %zu) lost its pattern at byte %zu",
                (void *)block->ptr, n, block->op_index, bad);
    return false;
}
