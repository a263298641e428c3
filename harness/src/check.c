/*
 * check.c - the harness's full check: I1-I6 through TAlloc_heap_check, I7 by matching the
 * walk's allocated chunks against the model, and I8 after draining the heap at the end of a
 * run. This is the one checker the fuzz targets, replay tool, stress driver and tests use.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void on_violation(void *ctx, int invariant, const void *address, const char *detail)
{
    th_run_fail(ctx, invariant, address, "%s", detail);
}

typedef struct chunk_list {
    TAlloc_chunk_info *data;
    size_t count;
    size_t capacity;
    size_t quarantined;    /* chunks held by the quarantine, left out of `data` */
} chunk_list;

static void *grow(void *data, size_t *capacity, size_t needed, size_t item_size)
{
    if (needed <= *capacity)
        return data;
    *capacity = needed < 256 ? 256 : 2 * needed;
    data = realloc(data, *capacity * item_size);
    if (data == NULL)
        abort();
    return data;
}

static int collect_allocated(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    chunk_list *list = ctx;
    if (chunk == NULL || chunk->is_free || chunk->is_quick)
        return 0;
    if (chunk->is_quarantined) { /* freed: no live block (kept only with keep_quarantine) */
        list->quarantined++;
        return 0;
    }
    list->data = grow(list->data, &list->capacity, list->count + 1, sizeof *list->data);
    list->data[list->count++] = *chunk;
    return 0;
}

static int by_payload(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const TAlloc_chunk_info *)a)->payload;
    uintptr_t y = (uintptr_t)((const TAlloc_chunk_info *)b)->payload;
    return (x > y) - (x < y);
}

static int by_block_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(th_block *const *)a)->ptr;
    uintptr_t y = (uintptr_t)(*(th_block *const *)b)->ptr;
    return (x > y) - (x < y);
}

/* One live block against the chunk that holds it, and against the next block. */
static bool check_block(th_run *run, const th_block *b, const TAlloc_chunk_info *c,
                        const th_block *next)
{
    if (c->size < b->size) {
        th_run_fail(run, TH_I7_MODEL, b->ptr, "block of %zu bytes has a chunk of %zu", b->size, c->size);
        return false;
    }
    if (((uintptr_t)b->ptr & (b->alignment - 1)) != 0) {
        th_run_fail(run, TH_I7_MODEL, b->ptr, "block not aligned to %zu", b->alignment);
        return false;
    }
    if (next && b->ptr + b->size > next->ptr) {
        th_run_fail(run, TH_I7_MODEL, next->ptr, "blocks %p (%zu bytes) and %p overlap",
                    (void *)b->ptr, b->size, (void *)next->ptr);
        return false;
    }
    return th_model_verify_edges(run, b);
}

/* Every allocated chunk is exactly one live block and every live block one allocated chunk. */
static void check_model(th_run *run)
{
    chunk_list chunks = {run->scratch_chunks, 0, run->scratch_chunk_capacity, 0};
    TAlloc_heap_walk(run->heap, collect_allocated, &chunks);
    run->scratch_chunks = chunks.data;
    run->scratch_chunk_capacity = chunks.capacity;
    size_t held = run->config->keep_quarantine ? run->config->quarantine : 0;
    if (chunks.quarantined > held) {
        th_run_fail(run, TH_I7_MODEL, NULL, "%zu quarantined chunks, the quarantine holds %zu",
                    chunks.quarantined, held);
        return;
    }
    if (chunks.count > 1)
        qsort(chunks.data, chunks.count, sizeof *chunks.data, by_payload);
    run->scratch_blocks = grow(run->scratch_blocks, &run->scratch_block_capacity,
                               run->live_count + 1, sizeof *run->scratch_blocks);
    th_block **blocks = run->scratch_blocks;
    for (size_t i = 0; i < run->live_count; i++)
        blocks[i] = &run->live[i];
    if (run->live_count > 1)
        qsort(blocks, run->live_count, sizeof *blocks, by_block_address);
    size_t i = 0, j = 0;
    while (!th_run_has_failed(run) && (i < run->live_count || j < chunks.count)) {
        void *block_ptr = i < run->live_count ? blocks[i]->ptr : NULL;
        void *chunk_ptr = j < chunks.count ? chunks.data[j].payload : NULL;
        if (block_ptr && chunk_ptr == block_ptr) {
            check_block(run, blocks[i], &chunks.data[j], i + 1 < run->live_count ? blocks[i + 1] : NULL);
            i++, j++;
        } else if (block_ptr && (chunk_ptr == NULL || (uintptr_t)block_ptr < (uintptr_t)chunk_ptr)) {
            th_run_fail(run, TH_I7_MODEL, block_ptr, "live block (from op %zu) is not an allocated chunk",
                        blocks[i]->op_index);
        } else {
            th_run_fail(run, TH_I7_MODEL, chunk_ptr, "allocated chunk of %zu bytes is no live block",
                        chunks.data[j].size);
        }
    }
}

bool th_run_check(th_run *run, size_t op_index)
{
    (void)op_index;
    run->result->counters.checks++;
    TAlloc_heap_check(run->heap, on_violation, run);
    if (!th_run_has_failed(run))
        check_model(run);
    return !th_run_has_failed(run);
}

typedef struct arena_shape {
    size_t arena_count;
    size_t chunk_count;
    size_t free_chunk_count;
    size_t dedicated_count;
} arena_shape;

static int count_shape(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    arena_shape *s = ctx;
    if (chunk == NULL) {
        s->arena_count++;
        s->dedicated_count += arena->is_dedicated != 0;
    } else {
        s->chunk_count++;
        s->free_chunk_count += chunk->is_free != 0;
    }
    return 0;
}

/* I8: with every block freed, only retained standard arenas remain, each one free chunk, and
   the largest request a standard arena holds succeeds. */
static void check_empty_shape(th_run *run)
{
    arena_shape s = {0};
    TAlloc_heap_walk(run->heap, count_shape, &s);
    if (s.arena_count > run->config->retained_arena_count || s.dedicated_count != 0 ||
        s.chunk_count != s.arena_count || s.free_chunk_count != s.arena_count) {
        th_run_fail(run, TH_I8_DRAINED, NULL,
                    "drained heap has %zu arenas (%zu dedicated), %zu chunks (%zu free); "
                    "want at most %zu arenas of one free chunk",
                    s.arena_count, s.dedicated_count, s.chunk_count, s.free_chunk_count,
                    run->config->retained_arena_count);
        return;
    }
    size_t largest = th_edge_size(15, run->config->arena_size); /* @arena_max */
    if (run->config->canary)
        largest -= 16; /* a canary needs bytes past the request: one 16-byte step less */
    void *p = TAlloc_heap_malloc(run->heap, largest);
    if (p == NULL) {
        th_run_fail(run, TH_I8_DRAINED, NULL, "drained heap cannot allocate %zu bytes", largest);
        return;
    }
    TAlloc_stats stats;
    TAlloc_heap_get_stats(run->heap, &stats);
    if (stats.arena_count != 1)
        th_run_fail(run, TH_I8_DRAINED, p, "largest standard request did not fit one arena");
    TAlloc_heap_free(run->heap, p);
}

bool th_check_drained(th_run *run)
{
    run->maps_to_fail = 0;
    while (run->live_count > 0 && !th_run_has_failed(run)) {
        th_block *b = &run->live[run->live_count - 1];
        if (th_model_verify(run, b, SIZE_MAX, "before the final free")) {
            TAlloc_heap_free(run->heap, b->ptr);
            th_model_remove(run, run->live_count - 1);
        }
    }
    if (run->config->quarantine)
        TAlloc_heap_release_quarantine(run->heap);
    /* the quick lists' blocks merge as frees would, releasing the arenas they kept */
    TAlloc_heap_flush(run->heap);
    if (run->is_checking && !th_run_has_failed(run) && th_run_check(run, run->op_index))
        check_empty_shape(run);
    TAlloc_stats stats;
    TAlloc_heap_get_stats(run->heap, &stats);
    memcpy(run->result->counters.events, stats.event_count, sizeof stats.event_count);
    TAlloc_heap_destroy(run->heap);
    run->heap = NULL;
    if (run->outstanding_maps != 0 && !th_run_has_failed(run))
        th_run_fail(run, TH_I8_DRAINED, NULL, "%zu mappings left after the heap was destroyed",
                    run->outstanding_maps);
    return !th_run_has_failed(run);
}
