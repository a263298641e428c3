/*
 * test_quick - the quick lists (README "Quick lists"): a freed block of at most
 * TALLOC_QUICK_MAX_REQUEST bytes in a standard arena is kept whole, unmerged, and the next
 * plain request of its chunk size takes the one kept last. What is checked:
 *   - reuse: last kept first, exact chunk size only, plain requests only (not aligned ones),
 *     calloc zeroes; stats, events and the walk show the kept blocks;
 *   - bounds: config.quick bytes at most (the free past it merges at once), the largest quick
 *     request and the next size up, blocks of dedicated arenas never kept, quick = 0;
 *   - flushes: TAlloc_heap_flush merges every kept block; an allocation flushes before it maps
 *     a standard arena (never before a dedicated one); trim flushes;
 *   - misuse: a second free, realloc or usable_size of a kept block is reported; a damaged
 *     link word (either of the two), a damaged header of a kept block, or the damaged header
 *     after a block being freed is reported by the call that meets it, which then changes
 *     nothing; the checker sees each of them;
 *   - hardening: junk in kept blocks (verified when handed out or flushed), canary at the
 *     free, blocks leaving the quarantine kept; a fork child re-keys the lists.
 * Runs under the policy ctest names (TALLOC_TEST_POLICY): the quick lists sit before every
 * policy.
 */
#include <sys/wait.h>

#include "testutil.h"

static const char *const test_name = "test_quick";

enum { ARENA = 65536, HDR = 16, NEXT = 0, MIRROR = 8 };

static TAlloc_heap *quick_heap(size_t quick, test_error_log *log)
{
    TAlloc_config config = test_config(ARENA, log ? test_record_error : NULL, log);
    config.quick = quick;
    config.large_cache = 0;
    return test_heap_from(&config, test_name);
}

static TAlloc_stats stats_of(TAlloc_heap *heap)
{
    TAlloc_stats s;
    TAlloc_heap_get_stats(heap, &s);
    return s;
}

/* The walk's view of one chunk, by payload. */
typedef struct chunk_view {
    const void *payload;
    int is_found, is_free, is_quick;
    size_t size;
} chunk_view;

static int find_chunk(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    chunk_view *v = ctx;
    if (chunk && chunk->payload == v->payload) {
        v->is_found = 1;
        v->is_free = chunk->is_free;
        v->is_quick = chunk->is_quick;
        v->size = chunk->size;
        return 1;
    }
    return 0;
}

static chunk_view view(TAlloc_heap *heap, const void *payload)
{
    chunk_view v = {payload, 0, 0, 0, 0};
    TAlloc_heap_walk(heap, find_chunk, &v);
    return v;
}

/* ---- reuse -------------------------------------------------------------------------------- */

static void test_last_kept_first(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    void *a = TAlloc_heap_malloc(heap, 100), *b = TAlloc_heap_malloc(heap, 100);
    void *guard = TAlloc_heap_malloc(heap, 100);
    TAlloc_stats s0 = stats_of(heap);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_stats s1 = stats_of(heap);
    EXPECT(s1.quick_count == 2 && s1.quick_bytes == 2 * 112 &&
               s1.allocated_count == s0.allocated_count - 2 && s1.free_count == s0.free_count &&
               s1.free_total == s0.free_total + 2,
           "two kept: quick %zu/%zu, allocated %zu -> %zu, free chunks %zu -> %zu", s1.quick_count,
           s1.quick_bytes, s0.allocated_count, s1.allocated_count, s0.free_count, s1.free_count);
    chunk_view va = view(heap, a);
    EXPECT(va.is_found && va.is_quick && !va.is_free && va.size == 112,
           "the walk shows a kept: found %d quick %d free %d size %zu", va.is_found, va.is_quick,
           va.is_free, va.size);
    EXPECT_HEAP_OK(heap, "two kept");
    void *x = TAlloc_heap_malloc(heap, 100), *y = TAlloc_heap_malloc(heap, 97);
    EXPECT(x == b && y == a, "last kept first: got %p %p, want %p %p", x, y, b, a);
    TAlloc_stats s2 = stats_of(heap);
    EXPECT(s2.quick_count == 0 && s2.quick_bytes == 0 &&
               s2.event_count[TALLOC_EVENT_QUICK_REUSED] ==
                   s1.event_count[TALLOC_EVENT_QUICK_REUSED] + 2 &&
               s2.event_count[TALLOC_EVENT_SPLIT] == s1.event_count[TALLOC_EVENT_SPLIT],
           "two reused, nothing split: quick %zu, reused +%llu", s2.quick_count,
           (unsigned long long)(s2.event_count[TALLOC_EVENT_QUICK_REUSED] -
                                s1.event_count[TALLOC_EVENT_QUICK_REUSED]));
    EXPECT(TAlloc_heap_usable_size(heap, y) == 112, "a reused chunk keeps its size");
    TAlloc_heap_free(heap, x);
    TAlloc_heap_free(heap, y);
    TAlloc_heap_free(heap, guard);
    EXPECT_HEAP_OK(heap, "reuse");
    TAlloc_heap_destroy(heap);
}

static void test_exact_size_and_plain_only(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    char *a = TAlloc_heap_malloc(heap, 100);
    void *guard = TAlloc_heap_malloc(heap, 16);
    memset(a, 0xab, 100);
    TAlloc_heap_free(heap, a);
    void *smaller = TAlloc_heap_malloc(heap, 50), *larger = TAlloc_heap_malloc(heap, 120);
    void *aligned = TAlloc_heap_aligned_alloc(heap, 64, 100);
    EXPECT(smaller != a && larger != a && aligned != a && stats_of(heap).quick_count == 1,
           "only a request of its chunk size takes a kept block, and no aligned one");
    char *z = TAlloc_heap_calloc(heap, 4, 25);
    int is_zero = z == a;
    for (size_t i = 0; z && i < 100; i++)
        is_zero = is_zero && z[i] == 0;
    EXPECT(is_zero, "calloc(4, 25) takes the kept block and zeroes it (got %p, want %p)",
           (void *)z, (void *)a);
    TAlloc_heap_free(heap, z);
    void *posix = NULL;
    EXPECT(TAlloc_heap_posix_memalign(heap, &posix, 16, 100) == 0 && posix == a,
           "posix_memalign at 16 is a plain request: %p, want %p", posix, (void *)a);
    TAlloc_heap_free(heap, posix);
    TAlloc_heap_free(heap, smaller);
    TAlloc_heap_free(heap, larger);
    TAlloc_heap_free(heap, aligned);
    TAlloc_heap_free(heap, guard);
    EXPECT_HEAP_OK(heap, "exact size");
    TAlloc_heap_destroy(heap);
}

/* A realloc that moves a block frees the old one into its quick list. */
static void test_realloc_move_keeps_old(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    void *a = TAlloc_heap_malloc(heap, 64);
    void *guard = TAlloc_heap_malloc(heap, 64);
    void *moved = TAlloc_heap_realloc(heap, a, 400);
    EXPECT(moved != a && view(heap, a).is_quick, "the old block of a move is kept");
    void *again = TAlloc_heap_malloc(heap, 64);
    EXPECT(again == a, "and reused: %p, want %p", again, a);
    TAlloc_heap_free(heap, again);
    TAlloc_heap_free(heap, moved);
    TAlloc_heap_free(heap, guard);
    EXPECT_HEAP_OK(heap, "realloc move");
    TAlloc_heap_destroy(heap);
}

/* ---- bounds ------------------------------------------------------------------------------- */

static void test_byte_bound(void)
{
    TAlloc_heap *heap = quick_heap(300, NULL);
    void *p[4], *guard[4];
    for (int i = 0; i < 4; i++) {
        p[i] = TAlloc_heap_malloc(heap, 100); /* 112 payload bytes */
        guard[i] = TAlloc_heap_malloc(heap, 16);
    }
    for (int i = 0; i < 4; i++)
        TAlloc_heap_free(heap, p[i]);
    TAlloc_stats s = stats_of(heap);
    EXPECT(s.quick_count == 2 && s.quick_bytes == 224, "300 bytes keep two: %zu/%zu",
           s.quick_count, s.quick_bytes);
    EXPECT(view(heap, p[1]).is_quick && view(heap, p[2]).is_free && view(heap, p[3]).is_free,
           "the frees past the bound merged at once");
    EXPECT_HEAP_OK(heap, "bound");
    for (int i = 0; i < 4; i++)
        TAlloc_heap_free(heap, guard[i]);
    TAlloc_heap_destroy(heap);

    heap = quick_heap(0, NULL);
    void *a = TAlloc_heap_malloc(heap, 16), *g = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, a);
    EXPECT(view(heap, a).is_free && stats_of(heap).quick_count == 0, "quick = 0 keeps nothing");
    TAlloc_heap_free(heap, g);
    TAlloc_heap_destroy(heap);
}

static void test_size_limit(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    void *largest = TAlloc_heap_malloc(heap, TALLOC_QUICK_MAX_REQUEST);
    void *g1 = TAlloc_heap_malloc(heap, 16);
    void *above = TAlloc_heap_malloc(heap, TALLOC_QUICK_MAX_REQUEST + 8); /* 1072 bytes */
    void *g2 = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, largest);
    TAlloc_heap_free(heap, above);
    EXPECT(view(heap, largest).is_quick, "a block of %zu bytes is kept", TALLOC_QUICK_MAX_REQUEST);
    EXPECT(view(heap, above).is_free, "one of %zu bytes merges", TALLOC_QUICK_MAX_REQUEST + 1);
    TAlloc_heap_free(heap, g1);
    TAlloc_heap_free(heap, g2);
    TAlloc_heap_destroy(heap);

    /* a small block alone in a dedicated arena (an alignment no standard arena can give)
       is released with its arena */
    TAlloc_config config = test_config(4096, NULL, NULL);
    config.large_cache = 0;
    heap = test_heap_from(&config, test_name);
    void *far = TAlloc_heap_aligned_alloc(heap, 8192, 64);
    TAlloc_stats s0 = stats_of(heap);
    TAlloc_heap_free(heap, far);
    TAlloc_stats s1 = stats_of(heap);
    EXPECT(far != NULL && s1.quick_count == 0 && s1.unmap_count == s0.unmap_count + 1,
           "a dedicated arena's block is not kept: quick %zu, unmaps %llu -> %llu",
           s1.quick_count, (unsigned long long)s0.unmap_count, (unsigned long long)s1.unmap_count);
    TAlloc_heap_destroy(heap);
}

/* ---- flushes ------------------------------------------------------------------------------ */

static void test_flush(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = TAlloc_heap_malloc(heap, (size_t)(i % 3 + 1) * 40);
    for (int i = 0; i < 10; i++)
        TAlloc_heap_free(heap, p[i]);
    TAlloc_stats s0 = stats_of(heap);
    EXPECT(s0.quick_count == 10 && s0.arena_count == 1, "ten kept in one arena: %zu",
           s0.quick_count);
    TAlloc_heap_flush(heap);
    TAlloc_stats s1 = stats_of(heap);
    EXPECT(s1.quick_count == 0 && s1.free_count == 1 && s1.allocated_count == 0 &&
               s1.event_count[TALLOC_EVENT_QUICK_FLUSHED] == 10 &&
               s1.free_total == s0.free_total,
           "flushed: quick %zu, free chunks %zu, flushed %llu", s1.quick_count, s1.free_count,
           (unsigned long long)s1.event_count[TALLOC_EVENT_QUICK_FLUSHED]);
    EXPECT(view(heap, p[0]).is_free && view(heap, p[0]).size == ARENA - 64 - 16,
           "the arena is one free chunk again");
    EXPECT_HEAP_OK(heap, "flush");
    TAlloc_heap_destroy(heap);
}

enum { WHOLE = ARENA - 64 - 16 - HDR }; /* the largest request a standard arena takes */

/* Nothing fits, but the kept blocks merged would: the allocation flushes instead of mapping.
   The trim flushed just before, but the lists hold less than an arena: the flush is due. */
static void test_flush_before_new_arena(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    void *p[600];
    size_t n = 0;
    while (n < 600) { /* fill the first arena with 100-byte blocks */
        p[n] = TAlloc_heap_malloc(heap, 100);
        if (stats_of(heap).arena_count > 1) { /* the one that did not fit: gone again */
            TAlloc_heap_free(heap, p[n]);
            TAlloc_heap_trim(heap);
            break;
        }
        n++;
    }
    for (size_t i = 0; i < n; i++)
        TAlloc_heap_free(heap, p[i]);
    TAlloc_stats s0 = stats_of(heap);
    EXPECT(s0.quick_count == n && s0.arena_count >= 1, "%zu kept", s0.quick_count);
    void *big = TAlloc_heap_malloc(heap, 20000);
    TAlloc_stats s1 = stats_of(heap);
    EXPECT(big != NULL && s1.map_count == s0.map_count && s1.quick_count == 0 &&
               s1.event_count[TALLOC_EVENT_QUICK_FLUSHED] >= n,
           "malloc(20000) flushed %zu kept blocks and mapped nothing: maps %llu -> %llu, quick %zu",
           n, (unsigned long long)s0.map_count, (unsigned long long)s1.map_count, s1.quick_count);
    TAlloc_heap_free(heap, big);
    EXPECT_HEAP_OK(heap, "flush before a new arena");

    /* a request for a dedicated arena does not flush */
    void *small = TAlloc_heap_malloc(heap, 64), *g = TAlloc_heap_malloc(heap, 64);
    TAlloc_heap_free(heap, small);
    void *huge = TAlloc_heap_malloc(heap, 2 * ARENA);
    EXPECT(huge != NULL && view(heap, small).is_quick, "a dedicated request leaves the lists");
    TAlloc_heap_free(heap, huge);
    TAlloc_heap_free(heap, g);
    TAlloc_heap_destroy(heap);
}

/* A flush before a map waits until the fresh standard arenas since the last flush, the one
   about to be mapped included, hold as many bytes as the quick lists: a heap whose arenas fill
   quickly does not pay a whole flush before each one, and what the lists keep is bounded by
   config.quick all the same. */
static void test_flush_waits_for_fresh_arenas(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    enum { N = 1200 }; /* 1200 chunks of 128 bytes (134400 payload bytes): three arenas */
    void *p[N];
    for (size_t i = 0; i < N; i++)
        p[i] = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_flush(heap); /* nothing kept yet: the count of fresh bytes starts again */
    for (size_t i = 0; i < N; i++)
        TAlloc_heap_free(heap, p[i]);
    TAlloc_stats s0 = stats_of(heap);
    EXPECT(s0.arena_count == 3 && s0.quick_count == N && s0.quick_bytes == N * 112,
           "arenas %zu, quick %zu (%zu bytes)", s0.arena_count, s0.quick_count, s0.quick_bytes);
    void *a = TAlloc_heap_malloc(heap, WHOLE); /* 0 + 65536 < 134400: a map, no flush */
    TAlloc_stats s1 = stats_of(heap);
    EXPECT(a != NULL && s1.map_count == s0.map_count + 1 && s1.quick_count == N,
           "first: maps %llu -> %llu, quick %zu", (unsigned long long)s0.map_count,
           (unsigned long long)s1.map_count, s1.quick_count);
    void *b = TAlloc_heap_malloc(heap, WHOLE); /* 65536 + 65536 < 134400: a map again */
    TAlloc_stats s2 = stats_of(heap);
    EXPECT(b != NULL && s2.map_count == s1.map_count + 1 && s2.quick_count == N,
           "second: maps %llu -> %llu, quick %zu", (unsigned long long)s1.map_count,
           (unsigned long long)s2.map_count, s2.quick_count);
    void *c = TAlloc_heap_malloc(heap, WHOLE); /* 131072 + 65536 >= 134400: the flush is due */
    TAlloc_stats s3 = stats_of(heap);
    EXPECT(c != NULL && s3.map_count == s2.map_count && s3.quick_count == 0 &&
               s3.event_count[TALLOC_EVENT_QUICK_FLUSHED] ==
                   s2.event_count[TALLOC_EVENT_QUICK_FLUSHED] + N,
           "third: flushed %llu blocks, maps %llu -> %llu, quick %zu",
           (unsigned long long)(s3.event_count[TALLOC_EVENT_QUICK_FLUSHED] -
                                s2.event_count[TALLOC_EVENT_QUICK_FLUSHED]),
           (unsigned long long)s2.map_count, (unsigned long long)s3.map_count, s3.quick_count);
    EXPECT(view(heap, c).size == ARENA - 64 - 16 && view(heap, c).size == view(heap, a).size,
           "the third block took a whole arena the flush emptied");
    EXPECT_HEAP_OK(heap, "flush waits");

    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, c);
    TAlloc_heap_destroy(heap);
}

/* A block carved from the last chunk of an arena (most often memory never touched) flushes the
   lists first when they hold a quarter of their bound: the freed blocks merge and the
   request reuses their memory. Below that share, or from a chunk that is not its arena's
   last, the lists stay. */
static void test_flush_before_tail(void)
{
    enum { BOUND = 8192, SHARE = BOUND / 4 }; /* 2048 bytes: 19 blocks of 112 */
    TAlloc_heap *heap = quick_heap(BOUND, NULL);
    void *p[19];
    for (size_t i = 0; i < 19; i++)
        p[i] = TAlloc_heap_malloc(heap, 100);
    void *hole = TAlloc_heap_malloc(heap, 1500), *wall = TAlloc_heap_malloc(heap, 16);
    for (size_t i = 0; i < 18; i++)
        TAlloc_heap_free(heap, p[i]);
    TAlloc_heap_free(heap, hole); /* too big for the lists: the index */
    TAlloc_stats s0 = stats_of(heap);
    EXPECT(s0.quick_count == 18 && s0.quick_bytes == 18 * 112 && s0.quick_bytes < SHARE,
           "18 kept: %zu bytes", s0.quick_bytes);
    void *a = TAlloc_heap_malloc(heap, 1600); /* below the share: carved from the tail */
    EXPECT((char *)a > (char *)wall && stats_of(heap).quick_count == 18,
           "below a quarter of the bound the lists stay: %p after %p", a, wall);
    TAlloc_heap_free(heap, p[18]); /* 19 kept: 2128 bytes */
    TAlloc_stats s1 = stats_of(heap);
    void *b = TAlloc_heap_malloc(heap, 1200); /* fits the hole, which is no arena's last chunk */
    EXPECT(b == hole && stats_of(heap).quick_count == s1.quick_count,
           "a chunk in the middle is taken with the lists kept: %p, hole %p", b, hole);
    void *c = TAlloc_heap_malloc(heap, 400); /* only the tail fits: the flush comes first */
    TAlloc_stats s2 = stats_of(heap);
    EXPECT(s1.quick_bytes >= SHARE && s2.quick_count == 0 &&
               s2.event_count[TALLOC_EVENT_QUICK_FLUSHED] ==
                   s1.event_count[TALLOC_EVENT_QUICK_FLUSHED] + s1.quick_count,
           "the tail flushed the lists: %zu bytes kept, %zu left, flushed %llu", s1.quick_bytes,
           s2.quick_count,
           (unsigned long long)(s2.event_count[TALLOC_EVENT_QUICK_FLUSHED] -
                                s1.event_count[TALLOC_EVENT_QUICK_FLUSHED]));
    EXPECT(c == p[0], "the request reused the merged blocks' memory: %p, first block %p", c, p[0]);
    EXPECT_HEAP_OK(heap, "flush before the tail");
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, c);
    TAlloc_heap_free(heap, wall);
    TAlloc_heap_destroy(heap);
}

static void test_trim_flushes(void)
{
    TAlloc_config config = test_config(ARENA, NULL, NULL);
    config.retained_arena_count = 1;
    TAlloc_heap *heap = test_heap_from(&config, test_name);
    void *p = TAlloc_heap_malloc(heap, 32);
    TAlloc_heap_free(heap, p);
    EXPECT(stats_of(heap).arena_count == 1 && stats_of(heap).quick_count == 1,
           "a kept block keeps its arena");
    size_t released = TAlloc_heap_trim(heap);
    TAlloc_stats s = stats_of(heap);
    EXPECT(released == 1 && s.arena_count == 0 && s.quick_count == 0,
           "trim flushed, then unmapped the empty arena: released %zu, arenas %zu", released,
           s.arena_count);
    TAlloc_heap_destroy(heap);
}

/* ---- misuse ------------------------------------------------------------------------------- */

static void expect_one(test_error_log *log, TAlloc_error error, const void *address,
                       const char *what)
{
    EXPECT(log->count == 1 && log->error == error && log->address == address,
           "%s: %d report(s), last \"%s\" at %p; want \"%s\" at %p", what, log->count,
           TAlloc_error_string(log->error), log->address, TAlloc_error_string(error), address);
    *log = (test_error_log){0};
}

static void test_bad_calls(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    void *a = TAlloc_heap_malloc(heap, 40), *g = TAlloc_heap_malloc(heap, 40);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, a);
    expect_one(&log, TALLOC_ERROR_DOUBLE_FREE, a, "second free of a kept block");
    errno = 0;
    EXPECT(TAlloc_heap_realloc(heap, a, 10) == NULL && errno == EINVAL, "realloc fails");
    expect_one(&log, TALLOC_ERROR_USE_AFTER_FREE, a, "realloc of a kept block");
    EXPECT(TAlloc_heap_usable_size(heap, a) == 0, "usable_size is 0");
    expect_one(&log, TALLOC_ERROR_USE_AFTER_FREE, a, "usable_size of a kept block");
    EXPECT(view(heap, a).is_quick && stats_of(heap).quick_count == 1, "still kept, once");
    EXPECT(TAlloc_heap_malloc(heap, 40) == a && TAlloc_heap_malloc(heap, 40) != a,
           "handed out once");
    EXPECT_HEAP_OK(heap, "bad calls");
    TAlloc_heap_destroy(heap);
    (void)g;
}

/* XORs one byte of a kept block's word, or of a header. */
static void flip(unsigned char *at)
{
    test_unpoison(at, 1);
    *at ^= 0x5a;
}

/* A damaged link word: the allocation that takes the block reports it and returns NULL, the
   checker and the flush see it too; restored, everything works. */
static void test_damaged_link(size_t word, const char *what)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 48), *b = TAlloc_heap_malloc(heap, 48);
    void *g = TAlloc_heap_malloc(heap, 48);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b); /* b names a */
    flip(b + word + 2);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) > 0, "%s: the checker sees it", what);
    TAlloc_stats s0 = stats_of(heap);
    errno = 0;
    void *p = TAlloc_heap_malloc(heap, 48);
    EXPECT(p == NULL && errno == ENOMEM, "%s: malloc met it: %p", what, p);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, b + word, what);
    TAlloc_heap_flush(heap);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, b + word, "the flush meets it too");
    TAlloc_stats s1 = stats_of(heap);
    EXPECT(s1.quick_count == s0.quick_count && s1.map_count == s0.map_count,
           "%s: nothing changed (quick %zu -> %zu)", what, s0.quick_count, s1.quick_count);
    flip(b + word + 2);
    EXPECT_HEAP_OK(heap, what);
    EXPECT(TAlloc_heap_malloc(heap, 48) == b && TAlloc_heap_malloc(heap, 48) == a &&
               log.count == 0,
           "%s: restored, both are handed out", what);
    TAlloc_heap_free(heap, g);
    TAlloc_heap_destroy(heap);
}

/* A copy of the link damaged so that it still names a quick chunk of the list's size, the
   block itself: the copy naming its own block is the damaged one, whichever it is. Links are
   stored XORed with a key, so XORing a stored word with (a ^ b) makes it name b instead of a. */
static void test_link_names_itself(size_t word, const char *what)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 48), *b = TAlloc_heap_malloc(heap, 48);
    void *g = TAlloc_heap_malloc(heap, 48);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b); /* b names a, twice */
    uintptr_t delta = (uintptr_t)(a - 16) ^ (uintptr_t)(b - 16), saved;
    test_unpoison(b + word, sizeof saved);
    memcpy(&saved, b + word, sizeof saved);
    uintptr_t damaged = saved ^ delta;
    memcpy(b + word, &damaged, sizeof damaged);
    EXPECT(TAlloc_heap_malloc(heap, 48) == NULL, "%s: malloc met it", what);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, b + word, what);
    memcpy(b + word, &saved, sizeof saved);
    EXPECT_HEAP_OK(heap, what);
    EXPECT(TAlloc_heap_malloc(heap, 48) == b && TAlloc_heap_malloc(heap, 48) == a &&
               log.count == 0, "%s: restored, both are handed out", what);
    TAlloc_heap_free(heap, g);
    TAlloc_heap_destroy(heap);
}

/* XORs `delta` into both link words of the kept block `b` (the words saved first): both still
   decode alike, to an address moved by `delta`, as a stray write without the secret can make
   them. */
static void move_both_links(unsigned char *b, uintptr_t delta, uintptr_t saved[2])
{
    test_unpoison(b, 2 * sizeof saved[0]);
    memcpy(saved, b, 2 * sizeof saved[0]);
    for (int w = 0; w < 2; w++) {
        uintptr_t damaged = saved[w] ^ delta;
        memcpy(b + 8 * w, &damaged, sizeof damaged);
    }
}

/* Both link words retargeted alike (XORed with the difference of two headers, which needs no
   secret) to name a kept block of another size: the block is taken, and the next request of
   its size finds a head of the wrong size, reports it and hands nothing out. */
static void test_link_names_other_size(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 48), *b = TAlloc_heap_malloc(heap, 48);
    unsigned char *c = TAlloc_heap_malloc(heap, 16);
    void *g = TAlloc_heap_malloc(heap, 48);
    TAlloc_heap_free(heap, c); /* a kept block of a smaller size */
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b); /* b names a, twice */
    uintptr_t saved[2];
    move_both_links(b, (uintptr_t)(a - 16) ^ (uintptr_t)(c - 16), saved);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) > 0, "the checker sees a block of another size");
    EXPECT(TAlloc_heap_malloc(heap, 48) == b && log.count == 0, "b is taken");
    errno = 0;
    void *p = TAlloc_heap_malloc(heap, 48);
    EXPECT(p == NULL && errno == ENOMEM, "the head of the wrong size is not handed out: %p", p);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_HEADER, c - 16, "a head of another size");
    EXPECT(TAlloc_heap_malloc(heap, 16) == c && log.count == 0, "c is still its own size's");
    TAlloc_heap_destroy(heap);
    (void)g;
}

/* Both link words of a quick block moved alike, 2^40 bytes away: they still agree, and name
   no arena (another arena span, where the fast pop must look the address up and find
   nothing). The pop that meets them reports the link, hands nothing out, and the list is
   whole again once the words are. */
static void test_link_moved_outside(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 48), *b = TAlloc_heap_malloc(heap, 48);
    void *g = TAlloc_heap_malloc(heap, 48);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b); /* b names a, twice */
    uintptr_t saved[2];
    move_both_links(b, (uintptr_t)1 << 40, saved);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) > 0, "the checker sees the moved link");
    errno = 0;
    void *p = TAlloc_heap_malloc(heap, 48);
    EXPECT(p == NULL && errno == ENOMEM, "a block whose link names no arena is not handed out: %p", p);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, b, "the moved link");
    memcpy(b, saved, sizeof saved);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "whole again");
    EXPECT(TAlloc_heap_malloc(heap, 48) == b && TAlloc_heap_malloc(heap, 48) == a && log.count == 0,
           "b, then a");
    TAlloc_heap_destroy(heap);
    (void)g;
}

/* A block of a quick size that went to the free index (a flush) and is freed again: the
   second free is reported, whatever room the quick lists have. */
static void test_double_free_after_flush(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    void *a = TAlloc_heap_malloc(heap, 40), *g = TAlloc_heap_malloc(heap, 40);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_flush(heap);
    EXPECT(view(heap, a).is_free && stats_of(heap).quick_count == 0, "a is a free chunk");
    TAlloc_heap_free(heap, a);
    expect_one(&log, TALLOC_ERROR_DOUBLE_FREE, a, "second free of a free chunk");
    EXPECT(view(heap, a).is_free && stats_of(heap).quick_count == 0, "not kept");
    EXPECT_HEAP_OK(heap, "double free after a flush");
    TAlloc_heap_free(heap, g);
    TAlloc_heap_destroy(heap);
}

/* The link of a block deeper in its list is met when that block is taken. */
static void test_deeper_link(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 48), *b = TAlloc_heap_malloc(heap, 48);
    void *g = TAlloc_heap_malloc(heap, 48);
    TAlloc_heap_free(heap, a); /* a ends the list */
    TAlloc_heap_free(heap, b);
    flip(a + NEXT + 5);
    EXPECT(TAlloc_heap_malloc(heap, 48) == b && log.count == 0, "b's link is whole");
    EXPECT(TAlloc_heap_malloc(heap, 48) == NULL, "taking a meets its link");
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, a + NEXT, "a's next link");
    flip(a + NEXT + 5);
    EXPECT(TAlloc_heap_malloc(heap, 48) == a, "restored");
    EXPECT_HEAP_OK(heap, "deeper link");
    TAlloc_heap_destroy(heap);
    (void)g;
}

static void test_damaged_headers(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 48), *b = TAlloc_heap_malloc(heap, 48);
    void *g = TAlloc_heap_malloc(heap, 48);
    TAlloc_heap_free(heap, a);
    flip(a - HDR + 9); /* the kept block's check value */
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) > 0, "the checker sees a kept block's header");
    EXPECT(TAlloc_heap_malloc(heap, 48) == NULL, "malloc meets the kept block's header");
    expect_one(&log, TALLOC_ERROR_CORRUPTED_HEADER, a - HDR, "kept block's header");
    flip(a - HDR + 9);
    EXPECT(TAlloc_heap_malloc(heap, 48) == a, "restored");

    /* the free of a block reads the header after it, whatever becomes of the block */
    flip(b - HDR + 3);
    TAlloc_heap_free(heap, a);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_HEADER, b - HDR, "the header after a freed block");
    flip(b - HDR + 3);
    EXPECT(TAlloc_heap_usable_size(heap, a) == 48 && stats_of(heap).quick_count == 0,
           "the block whose free met it stays allocated");
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, g);
    EXPECT(log.count == 0, "restored, the frees succeed");
    EXPECT_HEAP_OK(heap, "headers");
    TAlloc_heap_destroy(heap);
}

/* ---- hardening ---------------------------------------------------------------------------- */

static TAlloc_heap *hardened_heap(int canary, int junk, size_t quarantine, test_error_log *log)
{
    TAlloc_config config = test_config(ARENA, test_record_error, log);
    config.canary = canary;
    config.junk = junk;
    config.quarantine = quarantine;
    return test_heap_from(&config, test_name);
}

/* With junk alone the fast entries serve these calls (quick.h): the fast free junk-fills the
   block it files, the fast malloc finds the damaged junk and leaves the block to the full
   path, which reports it and hands the block out all the same. */
static void test_junk(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = hardened_heap(0, 1, 0, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 200);
    void *g = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, a);
    EXPECT(view(heap, a).is_quick, "a junk heap keeps blocks too");
    test_unpoison(a + 24, 200 - 24);
    int is_junk = 1;
    for (size_t i = 24; i < 200; i++)
        is_junk = is_junk && a[i] == 0xdf;
    EXPECT(is_junk, "a kept block's payload past its words is junk");
    a[30] = 'w';
    unsigned char *again = TAlloc_heap_malloc(heap, 200);
    EXPECT(again == a, "handed out all the same");
    expect_one(&log, TALLOC_ERROR_WRITE_AFTER_FREE, a + 30, "write after free into a kept block");
    TAlloc_heap_free(heap, again);
    test_unpoison(a + 100, 1);
    a[100] = 0;
    TAlloc_heap_flush(heap);
    expect_one(&log, TALLOC_ERROR_WRITE_AFTER_FREE, a + 100, "the flush verifies the junk");
    EXPECT(stats_of(heap).quick_count == 0, "and merges the block all the same");
    TAlloc_heap_free(heap, g);
    EXPECT_HEAP_OK(heap, "junk");
    TAlloc_heap_destroy(heap);
}

static void test_canary_and_quarantine(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = hardened_heap(1, 0, 0, &log);
    unsigned char *a = TAlloc_heap_malloc(heap, 20);
    void *g = TAlloc_heap_malloc(heap, 16);
    test_unpoison(a + 20, 1);
    a[20] = 'x'; /* one past the request */
    TAlloc_heap_free(heap, a);
    expect_one(&log, TALLOC_ERROR_CANARY_CORRUPTED, a + 20, "canary at the free");
    EXPECT(!view(heap, a).is_quick, "a block whose canary failed is not kept");
    TAlloc_heap_destroy(heap);
    (void)g;

    heap = hardened_heap(0, 0, 1, &log);
    void *p = TAlloc_heap_malloc(heap, 64), *q = TAlloc_heap_malloc(heap, 64);
    void *g2 = TAlloc_heap_malloc(heap, 64);
    TAlloc_heap_free(heap, p);
    EXPECT(!view(heap, p).is_quick, "quarantined first");
    TAlloc_heap_free(heap, q); /* pushes p out of the one-block quarantine */
    EXPECT(view(heap, p).is_quick && !view(heap, q).is_quick,
           "a block leaving the quarantine is kept");
    EXPECT(TAlloc_heap_malloc(heap, 64) == p, "and reused");
    EXPECT(log.count == 0, "no report");
    EXPECT_HEAP_OK(heap, "quarantine");
    TAlloc_heap_destroy(heap);
    (void)g2;
}

/* With canary alone the quick lists serve the single thread's calls whole (quick.h): a reused
   block gets its canary written again for its new request, the free verifies it, and a
   write past the request of a reused block is reported by its free, the block not kept. */
static void test_canary_reuse(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = hardened_heap(1, 0, 0, &log);
    void *g = TAlloc_heap_malloc(heap, 16);
    unsigned char *a = TAlloc_heap_malloc(heap, 55);
    TAlloc_heap_free(heap, a);
    EXPECT(view(heap, a).is_quick, "kept");
    for (size_t request = 55; request >= 40; request--) { /* 16 + request + 9 -> 80 each */
        unsigned char *b = TAlloc_heap_malloc(heap, request);
        EXPECT(b == a, "request %zu reuses the kept block: %p", request, (void *)b);
        EXPECT(TAlloc_heap_usable_size(heap, b) == request, "usable size %zu", request);
        memset(b, 0x5a, request);
        EXPECT_HEAP_OK(heap, "canary of a reused block");
        TAlloc_heap_free(heap, b);
        EXPECT(log.count == 0 && view(heap, a).is_quick, "freed back without a report (%zu)", request);
    }
    unsigned char *b = TAlloc_heap_malloc(heap, 47);
    EXPECT(b == a, "reused once more");
    test_unpoison(b + 47, 1);
    b[47] = 0; /* one past the request, into the canary written for 47 */
    TAlloc_heap_free(heap, b);
    expect_one(&log, TALLOC_ERROR_CANARY_CORRUPTED, b + 47, "canary of a reused block at the free");
    EXPECT(!view(heap, b).is_quick, "a block whose canary failed is not kept");
    TAlloc_heap_destroy(heap);
    (void)g;
}

/* With canary the quick lists keep a TALLOC_QUICK_MAX_REQUEST-byte request too: their largest
   chunk is that request's with the canary's bytes on top, one class above the largest plain
   one, and holds requests up to 1031 bytes. */
static void test_canary_largest(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = hardened_heap(1, 0, 0, &log);
    void *g = TAlloc_heap_malloc(heap, 16);
    void *a = TAlloc_heap_malloc(heap, TALLOC_QUICK_MAX_REQUEST);
    void *above = TAlloc_heap_malloc(heap, TALLOC_QUICK_MAX_REQUEST + 8); /* 1072 bytes */
    void *g2 = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, above);
    EXPECT(view(heap, a).is_quick, "a canary block of %zu bytes is kept", TALLOC_QUICK_MAX_REQUEST);
    EXPECT(view(heap, above).is_free, "one of %zu bytes merges", TALLOC_QUICK_MAX_REQUEST + 8);
    EXPECT(TAlloc_heap_malloc(heap, TALLOC_QUICK_MAX_REQUEST) == a, "and reused");
    EXPECT(TAlloc_heap_usable_size(heap, a) == TALLOC_QUICK_MAX_REQUEST, "its usable size");
    EXPECT(log.count == 0, "no report");
    EXPECT_HEAP_OK(heap, "canary, largest quick request");
    TAlloc_heap_destroy(heap);
    (void)g;
    (void)g2;
}

/* With a quarantine the free of a single thread is served whole (quick.h) while the block it
   pushes out of the ring goes to its quick list whole: held blocks are not reused, the oldest
   comes back after `quarantine` frees, junk in a held block is verified when it leaves (the
   release then reported by the full path), a second free of a held block is a double free,
   and a canary is verified before the block is held. */
static void test_quarantine_fast(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = hardened_heap(1, 1, 2, &log);
    void *g = TAlloc_heap_malloc(heap, 16);
    unsigned char *p[6];
    for (int i = 0; i < 6; i++)
        p[i] = TAlloc_heap_malloc(heap, 64);
    TAlloc_heap_free(heap, p[0]);
    TAlloc_heap_free(heap, p[1]);
    EXPECT(!view(heap, p[0]).is_quick && !view(heap, p[1]).is_quick, "both held");
    TAlloc_heap_free(heap, p[0]);
    expect_one(&log, TALLOC_ERROR_DOUBLE_FREE, p[0], "a second free of a held block");
    TAlloc_heap_free(heap, p[2]); /* pushes p[0] out */
    EXPECT(view(heap, p[0]).is_quick && !view(heap, p[1]).is_quick, "the oldest is kept now");
    EXPECT(log.count == 0, "no report");
    EXPECT_HEAP_OK(heap, "quarantine, one release");
    EXPECT(TAlloc_heap_malloc(heap, 64) == p[0], "and reused");
    test_unpoison(p[1] + 40, 1);
    p[1][40] = 'w'; /* into a held block */
    TAlloc_heap_free(heap, p[3]); /* pushes p[1] out */
    expect_one(&log, TALLOC_ERROR_WRITE_AFTER_FREE, p[1] + 40, "a held block's junk at its release");
    EXPECT(view(heap, p[1]).is_quick, "released all the same");
    test_unpoison(p[4] + 64, 1);
    p[4][64] = 0; /* one past the request */
    TAlloc_heap_free(heap, p[4]);
    expect_one(&log, TALLOC_ERROR_CANARY_CORRUPTED, p[4] + 64, "the canary before the hold");
    EXPECT(!view(heap, p[2]).is_quick && !view(heap, p[3]).is_quick, "nothing pushed out by it");
    TAlloc_heap_free(heap, p[5]);
    TAlloc_heap_free(heap, p[0]);
    EXPECT(view(heap, p[2]).is_quick && view(heap, p[3]).is_quick, "two more releases");
    EXPECT(log.count == 0, "no report");
    EXPECT_HEAP_OK(heap, "quarantine");
    TAlloc_heap_destroy(heap);
    (void)g;
}

/* The quarantine's byte bound (quarantine_bytes): a free that would take the held bytes past
   it lets the oldest go first, and a block larger than the bound is not held at all. */
static void test_quarantine_bytes(void)
{
    test_error_log log = {0};
    TAlloc_config config = test_config(ARENA, test_record_error, &log);
    config.quarantine = 8;
    config.quarantine_bytes = 300;
    TAlloc_heap *heap = test_heap_from(&config, test_name);
    void *g = TAlloc_heap_malloc(heap, 16);
    void *a = TAlloc_heap_malloc(heap, 112), *b = TAlloc_heap_malloc(heap, 112);
    void *c = TAlloc_heap_malloc(heap, 112), *big = TAlloc_heap_malloc(heap, 400);
    void *g2 = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b); /* 224 bytes held */
    EXPECT(!view(heap, a).is_quick && !view(heap, b).is_quick, "both held");
    TAlloc_heap_free(heap, c); /* 336 would pass the bound: a goes */
    EXPECT(view(heap, a).is_quick && !view(heap, b).is_quick && !view(heap, c).is_quick,
           "the oldest let go for the bytes, not the count");
    TAlloc_heap_free(heap, big);
    EXPECT(view(heap, big).is_quick, "a block above the bound is not held");
    EXPECT(!view(heap, b).is_quick && !view(heap, c).is_quick, "and pushes nothing out");
    EXPECT(log.count == 0, "no report");
    EXPECT_HEAP_OK(heap, "quarantine byte bound");
    TAlloc_heap_destroy(heap);
    (void)g;
    (void)g2;
}

/* A fork child re-keys the heap: the kept blocks' links still lead where they did. */
static void test_fork_rekey(void)
{
    TAlloc_heap *heap = quick_heap(TALLOC_DEFAULT_QUICK, NULL);
    void *a = TAlloc_heap_malloc(heap, 80), *b = TAlloc_heap_malloc(heap, 80);
    void *g = TAlloc_heap_malloc(heap, 80);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = TAlloc_heap_check(heap, NULL, NULL) == 0 && TAlloc_heap_malloc(heap, 80) == b &&
                 TAlloc_heap_malloc(heap, 80) == a && TAlloc_heap_check(heap, NULL, NULL) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
               WEXITSTATUS(status) == 0,
           "the child takes b, then a, from re-keyed lists (status %d)", status);
    TAlloc_heap_free(heap, g);
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    test_last_kept_first();
    test_exact_size_and_plain_only();
    test_realloc_move_keeps_old();
    test_byte_bound();
    test_size_limit();
    test_flush();
    test_flush_before_new_arena();
    test_flush_waits_for_fresh_arenas();
    test_flush_before_tail();
    test_trim_flushes();
    test_bad_calls();
    test_damaged_link(NEXT, "next link");
    test_damaged_link(MIRROR, "mirror link");
    test_link_names_itself(NEXT, "next link names its block");
    test_link_names_itself(MIRROR, "mirror link names its block");
    test_link_names_other_size();
    test_link_moved_outside();
    test_double_free_after_flush();
    test_deeper_link();
    test_damaged_headers();
    test_junk();
    test_canary_and_quarantine();
    test_canary_reuse();
    test_canary_largest();
    test_quarantine_fast();
    test_quarantine_bytes();
    test_fork_rekey();
    return test_summary(test_name);
}
