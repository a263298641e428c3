/*
 * test_purge - config.purge (README "Purging"): a free that leaves a free chunk of at least
 * config.purge bytes gives the whole pages inside it back to the OS layer (os.purge), at most
 * once per config.purge bytes freed. What is checked:
 *   - the range: whole pages inside the free chunk, after its header, its index words and a
 *     quarter of the bound (kept for the next block taken from the chunk's start), before its
 *     footer; one call, counted as pages_purged;
 *   - the budget: a free merging into that chunk right after purges nothing, nor do frees
 *     that leave small chunks; once as many bytes have been freed again, the next free that
 *     leaves a large chunk purges;
 *   - never: with purge = 0, with junk, without os.purge, for a chunk below the bound, for
 *     an arena a free leaves empty (kept for the next blocks);
 *   - the heap afterwards: the check is clean, live neighbours keep their bytes, the purged
 *     memory is handed out again and holds what is written to it;
 *   - the default OS layer: the purged pages are no longer resident (mincore).
 * Runs under the policy ctest names (TALLOC_TEST_POLICY).
 */
#include <sys/mman.h>

#include "testutil.h"

static const char *const test_name = "test_purge";

enum { ARENA = 1 << 20, BLOCK = 8192, BLOCKS = 64, MAX_CALLS = 16, PURGE = 64 * 1024 };

typedef struct purge_log {
    int calls;
    void *address[MAX_CALLS];
    size_t size[MAX_CALLS];
} purge_log;

static purge_log purges;

static int counting_purge(void *ctx, void *address, size_t size)
{
    (void)ctx;
    if (purges.calls < MAX_CALLS) {
        purges.address[purges.calls] = address;
        purges.size[purges.calls] = size;
    }
    purges.calls++;
    return TAlloc_os_default()->purge(NULL, address, size);
}

static TAlloc_heap *purge_heap(size_t purge, int junk, int has_purge)
{
    TAlloc_config config = test_config(ARENA, NULL, NULL);
    config.os = *TAlloc_os_default();
    config.os.purge = has_purge ? counting_purge : NULL;
    config.purge = purge;
    config.junk = junk;
    config.quick = 0; /* the frees reach the free index at once */
    purges = (purge_log){0};
    return test_heap_from(&config, test_name);
}

static uint64_t purged_events(TAlloc_heap *heap)
{
    TAlloc_stats s;
    TAlloc_heap_get_stats(heap, &s);
    return s.event_count[TALLOC_EVENT_PAGES_PURGED];
}

/* BLOCKS blocks of BLOCK bytes in one arena, each filled with its index. */
static void fill(TAlloc_heap *heap, unsigned char **blocks)
{
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = TAlloc_heap_malloc(heap, BLOCK);
        EXPECT(blocks[i] != NULL, "block %d", i);
        memset(blocks[i], i, BLOCK);
    }
}

static int is_intact(const unsigned char *block, int value)
{
    for (size_t i = 0; i < BLOCK; i++)
        if (block[i] != (unsigned char)value)
            return 0;
    return 1;
}

/* Frees blocks [from, to) in order: they merge into one free chunk. */
static void free_run(TAlloc_heap *heap, unsigned char **blocks, int from, int to)
{
    for (int i = from; i < to; i++) {
        TAlloc_heap_free(heap, blocks[i]);
        blocks[i] = NULL;
    }
}

/* Frees 8 blocks that merge with nothing, from `from` on (every other one): 64 KiB freed. */
static void free_apart(TAlloc_heap *heap, unsigned char **blocks, int from)
{
    for (int i = from; i < from + 16; i += 2)
        free_run(heap, blocks, i, i + 1);
}

static void case_range_and_budget(void)
{
    TAlloc_heap *heap = purge_heap(PURGE, 0, 1);
    unsigned char *blocks[BLOCKS];
    fill(heap, blocks);
    size_t page = TAlloc_page_size();
    /* blocks 4..11 (64 KiB of chunks): the eighth free leaves a chunk of 8 blocks */
    free_run(heap, blocks, 4, 11);
    EXPECT(purges.calls == 0, "below the bound: %d calls", purges.calls);
    free_run(heap, blocks, 11, 12);
    EXPECT(purges.calls == 1 && purged_events(heap) == 1, "one purge for 64 KiB freed: %d calls",
           purges.calls);
    uintptr_t start = (uintptr_t)purges.address[0], end = start + purges.size[0];
    EXPECT(start % page == 0 && end % page == 0 && end > start, "whole pages: [%#lx, %#lx)",
           (unsigned long)start, (unsigned long)end);
    /* the free chunk runs from block 4's header (16 bytes before its payload) to block 12's
       header; its index words follow its header, its footer ends it */
    uintptr_t chunk = (uintptr_t)blocks[3] + BLOCK, chunk_end = (uintptr_t)blocks[12] - 16;
    EXPECT(start >= chunk + 40 + PURGE / 4, "header, index words and a quarter of the bound stay");
    EXPECT(end <= chunk_end - 8, "the footer stays: purged to %#lx, chunk ends at %#lx",
           (unsigned long)end, (unsigned long)chunk_end);
    EXPECT(end - start >= 8 * BLOCK - PURGE / 4 - 2 * page, "the inside is purged: %zu bytes",
           (size_t)(end - start));
    EXPECT(is_intact(blocks[3], 3) && is_intact(blocks[12], 12), "the neighbours keep their bytes");
    EXPECT_HEAP_OK(heap, "after a purge");

    /* the budget is spent: one more block merging in purges nothing */
    free_run(heap, blocks, 12, 13);
    EXPECT(purges.calls == 1, "within the budget: %d calls", purges.calls);
    /* 64 KiB more freed in blocks that merge with nothing: no large chunk, no purge */
    free_apart(heap, blocks, 20);
    EXPECT(purges.calls == 1, "small free chunks are not purged: %d calls", purges.calls);
    /* the budget is full again: the next free that leaves a large chunk purges */
    free_run(heap, blocks, 13, 14);
    EXPECT(purges.calls == 2 && purged_events(heap) == 2, "the next large chunk: %d calls",
           purges.calls);
    EXPECT_HEAP_OK(heap, "after the second purge");

    /* block 3 grows in place over the purged chunk and keeps every byte written */
    unsigned char *grown = TAlloc_heap_realloc(heap, blocks[3], 4 * BLOCK);
    EXPECT(grown == blocks[3] && is_intact(grown, 3), "block 3 grew in place over purged pages");
    blocks[3] = grown;
    memset(grown, 0x33, 4 * BLOCK);
    /* the rest of the purged memory is handed out again and holds what is written */
    unsigned char *again[6];
    for (int i = 0; i < 6; i++) {
        again[i] = TAlloc_heap_malloc(heap, BLOCK);
        EXPECT(again[i] != NULL, "reuse %d", i);
        memset(again[i], 0xC0 + i, BLOCK);
    }
    for (int i = 0; i < 6; i++)
        EXPECT(is_intact(again[i], 0xC0 + i), "reused block %d keeps its bytes", i);
    for (size_t i = 0; i < 4 * BLOCK; i++)
        if (grown[i] != 0x33) {
            EXPECT(0, "the grown block lost byte %zu", i);
            break;
        }
    EXPECT_HEAP_OK(heap, "after reuse");
    for (int i = 0; i < 6; i++)
        TAlloc_heap_free(heap, again[i]);
    for (int i = 0; i < BLOCKS; i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "drained");
    TAlloc_heap_destroy(heap);
}

/* No purge: bound 0, junk, no os.purge, a chunk below the bound. */
static void case_never(void)
{
    static const struct {
        size_t purge;
        int junk, has_purge;
        const char *what;
    } cases[] = {
        {0, 0, 1, "purge = 0"},
        {64 * 1024, 1, 1, "junk"},
        {64 * 1024, 0, 0, "no os.purge"},
        {256 * 1024, 0, 1, "a chunk below the bound"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        TAlloc_heap *heap = purge_heap(cases[c].purge, cases[c].junk, cases[c].has_purge);
        unsigned char *blocks[BLOCKS];
        fill(heap, blocks);
        free_run(heap, blocks, 4, 28); /* a free chunk of 192 KiB, 192 KiB freed */
        EXPECT(purges.calls == 0 && purged_events(heap) == 0, "%s: %d calls", cases[c].what,
               purges.calls);
        EXPECT(is_intact(blocks[3], 3) && is_intact(blocks[28], 28), "%s: neighbours", cases[c].what);
        EXPECT_HEAP_OK(heap, cases[c].what);
        for (int i = 0; i < BLOCKS; i++)
            TAlloc_heap_free(heap, blocks[i]);
        TAlloc_heap_destroy(heap);
    }
}

/* An arena emptied by a free is kept for the next blocks, not purged. */
static void case_empty_arena(void)
{
    TAlloc_heap *heap = purge_heap(PURGE, 0, 1);
    for (int round = 0; round < 4; round++) {
        unsigned char *big = TAlloc_heap_malloc(heap, 600 * 1024);
        EXPECT(big != NULL, "a block of most of the arena");
        memset(big, round, 600 * 1024);
        TAlloc_heap_free(heap, big); /* the arena is one free chunk again */
    }
    EXPECT(purges.calls == 0 && purged_events(heap) == 0, "an emptied arena: %d calls",
           purges.calls);
    EXPECT_HEAP_OK(heap, "empty arena");
    TAlloc_heap_destroy(heap);
}

/* The default OS layer: the pages go (mincore sees them not resident), and come back as
   the program touches them again. */
static void case_pages_leave(void)
{
    TAlloc_config config = test_config(ARENA, NULL, NULL);
    config.purge = PURGE;
    config.quick = 0;
    TAlloc_heap *heap = test_heap_from(&config, test_name);
    unsigned char *blocks[BLOCKS];
    fill(heap, blocks);
    size_t page = TAlloc_page_size();
    uintptr_t from = ((uintptr_t)blocks[7] + page - 1) & ~(uintptr_t)(page - 1);
    size_t span = 4 * page; /* inside blocks 7..8, past the quarter of the bound kept: purged
                               when 4..11 have merged */
    unsigned char resident[4];
    EXPECT(mincore((void *)from, span, resident) == 0, "mincore: %s", strerror(errno));
    int before = 0, after = 0;
    for (int i = 0; i < 4; i++)
        before += resident[i] & 1;
    free_run(heap, blocks, 4, 16);
    EXPECT(mincore((void *)from, span, resident) == 0, "mincore: %s", strerror(errno));
    for (int i = 0; i < 4; i++)
        after += resident[i] & 1;
    EXPECT(before == 4 && after == 0, "resident pages: %d before the frees, %d after", before, after);
    EXPECT(purged_events(heap) >= 1, "counted");
    EXPECT_HEAP_OK(heap, "default layer");
    for (int i = 0; i < BLOCKS; i++)
        TAlloc_heap_free(heap, blocks[i]);
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    case_range_and_budget();
    case_never();
    case_empty_arena();
    case_pages_leave();
    return test_summary(test_name);
}
