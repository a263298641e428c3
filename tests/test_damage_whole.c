/*
 * test_damage_whole.c - a call that meets damage reports it and leaves the heap as it was:
 * with the damaged bytes restored, TAlloc_heap_check finds nothing and the heap goes on
 * working. One case per way a damaged link, boundary tag or stored size can be met:
 *   - an allocation that meets a damaged link fails (NULL) and maps nothing, also when the
 *     link still decodes to an aligned address inside an arena;
 *   - a free whose filing meets one leaves the block allocated;
 *   - a free whose merge finds a neighbour's link damaged names that link;
 *   - a free that would release an arena, standard or dedicated, and meets a damaged link
 *     leaves the block and the arena; once the link is whole the same free releases it;
 *   - a quarantined block whose release meets one stays quarantined until a later release;
 *   - a damaged boundary tag is "corrupted header", never a wild read;
 *   - a canary overflow that reaches the stored size names the stored size;
 *   - junk: a freed word overwritten with zeros is still a write after free;
 *   - a large block freed before a small block in its arena's tail is still known as freed
 *     once that arena is unmapped.
 * Each runs on a heap with an error handler (the last three also as death tests), under the
 * policy ctest names (TALLOC_TEST_POLICY): the link cases hold for every policy. The heaps
 * have no quick lists, so that every free reaches the free index; test_quick has the same
 * cases for the links and headers of quick chunks.
 */
#include <sys/mman.h>

#include "testutil.h"

enum { ARENA = 65536, NEXT = 0, PREV = 8 };

static const char *const test_name = "test_damage_whole";

static TAlloc_heap *make_heap(test_error_log *log, int canary, int junk, size_t quarantine,
                              const TAlloc_os *os)
{
    TAlloc_config config = test_config(ARENA, log ? test_record_error : NULL, log);
    config.canary = canary;
    config.junk = junk;
    config.quarantine = quarantine;
    config.quick = 0; /* frees reach the free index at once (test_quick: the quick lists) */
    if (os)
        config.os = *os;
    return test_heap_from(&config, test_name);
}

/* Damage that can be undone: `length` bytes at `at` XORed with `mask`. */
typedef struct damage {
    unsigned char *at;
    size_t length;
    unsigned char saved[16];
} damage;

static damage flip(void *at, size_t length, unsigned char mask)
{
    damage d = {at, length, {0}};
    test_unpoison(at, length);
    memcpy(d.saved, at, length);
    for (size_t i = 0; i < length; i++)
        d.at[i] ^= mask;
    return d;
}

static void restore(const damage *d)
{
    memcpy(d->at, d->saved, d->length);
}

static void expect_one(test_error_log *log, TAlloc_error error, const void *address,
                       const char *what)
{
    EXPECT(log->count == 1 && log->error == error && log->address == address,
           "%s: %d report(s), last %s at %p; want %s at %p", what, log->count,
           TAlloc_error_string(log->error), log->address, TAlloc_error_string(error), address);
    *log = (test_error_log){0};
}

static size_t arenas_of(TAlloc_heap *heap)
{
    TAlloc_stats stats;
    TAlloc_heap_get_stats(heap, &stats);
    return stats.arena_count;
}

/* ---- links ------------------------------------------------------------------------------
 * Each case damages a link of the free chunk the call must write through, or read on its way,
 * under every policy: the chunk an allocation of its size takes (the head of its size class,
 * the end of a tree search), the chunk whose size class a free files into or whose tree node
 * lies on the insertion path, a free neighbour a free merges with. */

static void test_allocation_meets_link(void)
{
    /* a and a2 of one size, a freed last: a heads its class, its next link names a2; XOR 0x100
       keeps that link 16-byte aligned and inside the arena, but no free chunk starts there */
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 0, 0, NULL);
    unsigned char *a = TAlloc_heap_malloc(heap, 200);
    void *g1 = TAlloc_heap_malloc(heap, 64);
    unsigned char *a2 = TAlloc_heap_malloc(heap, 200);
    void *g2 = TAlloc_heap_malloc(heap, 64);
    TAlloc_heap_free(heap, a2);
    TAlloc_heap_free(heap, a);
    size_t arenas = arenas_of(heap);
    damage d = flip(a + NEXT + 1, 1, 0x01);
    EXPECT(TAlloc_heap_malloc(heap, 200) == NULL, "an allocation that meets the link fails");
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, a + NEXT, "allocation meets a's link");
    EXPECT(arenas_of(heap) == arenas, "no arena was mapped: %zu, was %zu", arenas_of(heap), arenas);
    restore(&d);
    EXPECT_HEAP_OK(heap, "allocation, link restored");
    EXPECT(TAlloc_heap_malloc(heap, 200) == a, "the chunk behind the link is found again");
    EXPECT(log.count == 0, "no report once restored");
    (void)g1;
    (void)g2;
    TAlloc_heap_destroy(heap);
}

/* a: a free chunk of c's size, below it; c: an allocated block between allocated ones, so
   its free files a new chunk (size class of a, or a tree path through a) */
typedef struct file_setup {
    unsigned char *a, *c;
    void *guards[3];
} file_setup;

static file_setup file_prepare(TAlloc_heap *heap)
{
    file_setup w;
    w.guards[0] = TAlloc_heap_malloc(heap, 64);
    w.a = TAlloc_heap_malloc(heap, 100);
    w.guards[1] = TAlloc_heap_malloc(heap, 64);
    w.c = TAlloc_heap_malloc(heap, 100);
    w.guards[2] = TAlloc_heap_malloc(heap, 64);
    TAlloc_heap_free(heap, w.a);
    TAlloc_heap_release_quarantine(heap);
    return w;
}

static void test_filing_meets_link(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 0, 0, NULL);
    file_setup w = file_prepare(heap);
    damage d = flip(w.a + PREV + 1, 1, 0x01);
    TAlloc_heap_free(heap, w.c);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, w.a + PREV, "filing meets a's link");
    EXPECT(TAlloc_heap_usable_size(heap, w.c) >= 100 && log.count == 0,
           "the block whose free met the link is still allocated");
    restore(&d);
    EXPECT_HEAP_OK(heap, "filing, link restored");
    TAlloc_heap_free(heap, w.c);
    EXPECT(log.count == 0, "its free succeeds once restored");
    EXPECT_HEAP_OK(heap, "filing, block freed");
    TAlloc_heap_destroy(heap);
}

static void test_neighbour_link(void)
{
    /* free(c) merges with b on its left and the free tail on its right; b's link, damaged,
       names no free chunk: b's link is reported */
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 0, 0, NULL);
    void *a = TAlloc_heap_malloc(heap, 100);
    unsigned char *b = TAlloc_heap_malloc(heap, 100);
    unsigned char *c = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_free(heap, b);
    damage d = flip(b + NEXT, 1, 0x80);
    TAlloc_heap_free(heap, c);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, b + NEXT, "merge with a damaged neighbour");
    EXPECT(TAlloc_heap_usable_size(heap, c) >= 100 && log.count == 0, "c is still allocated");
    restore(&d);
    EXPECT_HEAP_OK(heap, "neighbour's link restored");
    TAlloc_heap_free(heap, c);
    TAlloc_heap_free(heap, a);
    EXPECT(log.count == 0, "the frees succeed once restored");
    EXPECT_HEAP_OK(heap, "all freed");
    TAlloc_heap_destroy(heap);
}

/* The free that would empty an arena beyond the retained count, with a damaged link in a
   free chunk it merges with: nothing changes (the block stays, the arena too) until the link
   is whole again; then the same free releases the arena. */
static void test_release_meets_link(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 0, 0, NULL);
    /* the first arena, filled and emptied: the retained one */
    unsigned char *q = TAlloc_heap_malloc(heap, ARENA - 64 - 16);
    unsigned char *a = TAlloc_heap_malloc(heap, 1000);
    unsigned char *b = TAlloc_heap_malloc(heap, 1000);
    TAlloc_heap_free(heap, q);
    TAlloc_heap_free(heap, a);
    EXPECT(arenas_of(heap) == 2, "two arenas: %zu", arenas_of(heap));
    damage d = flip(a + NEXT, 1, 0x80);
    TAlloc_heap_free(heap, b); /* a + b + tail: the whole arena, beyond the retained count */
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, a + NEXT, "release meets a's link");
    EXPECT(arenas_of(heap) == 2 && TAlloc_heap_usable_size(heap, b) >= 1000 && log.count == 0,
           "the block and its arena stay: %zu arenas", arenas_of(heap));
    restore(&d);
    EXPECT_HEAP_OK(heap, "release refused, link restored");
    TAlloc_heap_free(heap, b);
    EXPECT(log.count == 0 && arenas_of(heap) == 1, "freed once restored: %zu arenas",
           arenas_of(heap));
    EXPECT(TAlloc_heap_trim(heap) == 1 && arenas_of(heap) == 0, "trim releases the retained one");
    EXPECT_HEAP_OK(heap, "trimmed");
    TAlloc_heap_destroy(heap);
}

/* The same for a dedicated arena: the free gap before an aligned block, damaged. */
static void test_release_dedicated_meets_link(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 0, 0, NULL);
    unsigned char *large = TAlloc_heap_aligned_alloc(heap, 4096, ARENA + 4000);
    EXPECT(large != NULL && arenas_of(heap) == 1, "one dedicated arena");
    unsigned char *gap = (unsigned char *)((uintptr_t)large & ~(uintptr_t)4095) - 4096 + 64;
    EXPECT(TAlloc_heap_usable_size(heap, large) >= ARENA + 4000, "the large block");
    damage d = flip(gap + NEXT, 1, 0x80);
    TAlloc_heap_free(heap, large); /* gap + block + tail: the whole dedicated arena */
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, gap + NEXT, "release meets the gap's link");
    EXPECT(arenas_of(heap) == 1, "the dedicated arena stays: %zu arenas", arenas_of(heap));
    restore(&d);
    EXPECT_HEAP_OK(heap, "release refused, link restored");
    TAlloc_heap_free(heap, large);
    EXPECT(log.count == 0 && arenas_of(heap) == 0, "freed once restored: %zu arenas",
           arenas_of(heap));
    TAlloc_heap_destroy(heap);
}

static int find_quarantined(void *ctx, const TAlloc_arena_info *arena,
                            const TAlloc_chunk_info *chunk)
{
    (void)arena;
    const void **wanted = ctx;
    if (chunk && chunk->payload == *wanted)
        return chunk->is_quarantined ? 1 : 2;
    return 0;
}

static void test_quarantine_stuck(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 0, 2, NULL);
    file_setup w = file_prepare(heap);
    damage d = flip(w.a + PREV + 1, 1, 0x01);
    TAlloc_heap_free(heap, w.c); /* quarantined: not filed yet */
    EXPECT(log.count == 0, "the free itself reports nothing");
    TAlloc_heap_release_quarantine(heap);
    expect_one(&log, TALLOC_ERROR_CORRUPTED_FREE_LIST, w.a + PREV, "release meets the link");
    const void *wanted = w.c;
    EXPECT(TAlloc_heap_walk(heap, find_quarantined, &wanted) == 1, "c stays quarantined");
    TAlloc_heap_free(heap, w.c);
    expect_one(&log, TALLOC_ERROR_DOUBLE_FREE, w.c, "a second free of the quarantined block");
    restore(&d);
    EXPECT_HEAP_OK(heap, "quarantine stuck, link restored");
    TAlloc_heap_release_quarantine(heap);
    EXPECT(log.count == 0, "the next release succeeds");
    EXPECT(TAlloc_heap_walk(heap, find_quarantined, &wanted) == 2, "c is free");
    EXPECT_HEAP_OK(heap, "quarantine released");
    TAlloc_heap_destroy(heap);
}

/* ---- boundary tag ----------------------------------------------------------------------- */

typedef struct tag_case {
    TAlloc_heap *heap;
    unsigned char *a, *b;
} tag_case;

/* a is freed; its boundary tag (the last 8 bytes of its chunk, just before b's header) is
   overwritten with a size far beyond the arena, 16-byte aligned, as a stale write would */
static uint64_t *tag_of(const tag_case *c)
{
    return (uint64_t *)(c->b - 16 - 8);
}

static void tag_damage_then_free(void *arg)
{
    tag_case *c = arg;
    test_unpoison(tag_of(c), 8);
    *tag_of(c) = (uint64_t)1 << 40;
    TAlloc_heap_free(c->heap, c->b);
}

static void test_boundary_tag(void)
{
    TAlloc_heap *heap = make_heap(NULL, 0, 0, 0, NULL);
    tag_case c = {heap, TAlloc_heap_malloc(heap, 100), NULL};
    c.b = TAlloc_heap_malloc(heap, 100);
    void *g = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_free(heap, c.a);
    char line[128];
    TAlloc_error_format(line, sizeof line, TALLOC_ERROR_CORRUPTED_HEADER, tag_of(&c));
    expect_death("boundary tag far beyond the arena, then free of its right neighbour",
                 tag_damage_then_free, &c, SIGABRT, line);
    (void)g;
    TAlloc_heap_destroy(heap);

    test_error_log log = {0};
    heap = make_heap(&log, 0, 0, 0, NULL);
    c = (tag_case){heap, TAlloc_heap_malloc(heap, 100), NULL};
    c.b = TAlloc_heap_malloc(heap, 100);
    g = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_free(heap, c.a);
    test_unpoison(tag_of(&c), 8);
    uint64_t saved = *tag_of(&c);
    for (int shift = 12; shift <= 62; shift += 10) {
        *tag_of(&c) = (uint64_t)1 << shift;
        TAlloc_heap_free(heap, c.b);
        expect_one(&log, TALLOC_ERROR_CORRUPTED_HEADER, tag_of(&c), "boundary tag");
        EXPECT(TAlloc_heap_usable_size(heap, c.b) >= 100, "b is still allocated");
    }
    *tag_of(&c) = saved;
    EXPECT_HEAP_OK(heap, "boundary tag restored");
    TAlloc_heap_free(heap, c.b);
    TAlloc_heap_free(heap, g);
    EXPECT(log.count == 0, "the frees succeed once restored");
    EXPECT_HEAP_OK(heap, "boundary tag: all freed");
    TAlloc_heap_destroy(heap);
}

/* ---- canary, junk ----------------------------------------------------------------------- */

static void test_canary_size_word(void)
{
    /* request 100: chunk of 128, canary bytes 100..103, stored size at 104..111. Each
       damage changes the stored size; its decoding must not look like a size. */
    static const struct {
        size_t at, length;
        unsigned char mask;
    } cases[] = {{100, 5, 0x01}, {104, 1, 0x01}, {104, 1, 0x80}, {110, 2, 0xff},
                 {104, 8, 0x01}, {103, 2, 0x04}};
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 1, 0, 0, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *p = TAlloc_heap_malloc(heap, 100);
        damage d = flip(p + cases[i].at, cases[i].length, cases[i].mask);
        TAlloc_heap_free(heap, p);
        char what[64];
        snprintf(what, sizeof what, "canary: %zu bytes from %zu XOR %#x", cases[i].length,
                 cases[i].at, cases[i].mask);
        const unsigned char *want = cases[i].at + cases[i].length > 104 ? p + 104 : p + cases[i].at;
        expect_one(&log, TALLOC_ERROR_CANARY_CORRUPTED, want, what);
        restore(&d);
        TAlloc_heap_free(heap, p);
        EXPECT(log.count == 0, "%s: freed once restored", what);
    }
    EXPECT_HEAP_OK(heap, "canary cases");
    TAlloc_heap_destroy(heap);
}

static void test_junk_zeros(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = make_heap(&log, 0, 1, 0, NULL);
    unsigned char *a = TAlloc_heap_malloc(heap, 100);
    void *g = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_free(heap, a);
    test_unpoison(a + 32, 8);
    memset(a + 32, 0, 8); /* past the links and mark: freed payload */
    void *again = TAlloc_heap_malloc(heap, 100);
    expect_one(&log, TALLOC_ERROR_WRITE_AFTER_FREE, a + 32, "zeros written after free");
    (void)g;
    (void)again;
    TAlloc_heap_destroy(heap);

    /* a fresh arena is junk too: nothing to report when it is handed out */
    for (size_t size = 1000; size <= 100000; size *= 10) {
        heap = make_heap(&log, 0, 1, 0, NULL);
        for (int i = 0; i < 100; i++)
            EXPECT(TAlloc_heap_malloc(heap, size) != NULL, "malloc(%zu)", size);
        EXPECT(log.count == 0, "fresh arenas pass the junk check (%zu bytes): %d reports", size,
               log.count);
        TAlloc_heap_destroy(heap);
    }
}

/* ---- large blocks ----------------------------------------------------------------------- */

typedef struct large_case {
    TAlloc_heap *heap;
    void *large;
} large_case;

static void free_large_again(void *arg)
{
    large_case *c = arg;
    TAlloc_heap_free(c->heap, c->large);
}

static void test_large_then_tail(void)
{
    /* the first allocation maps a dedicated arena; the small block lands in its tail */
    TAlloc_heap *heap = make_heap(NULL, 0, 0, 0, NULL);
    large_case c = {heap, TAlloc_heap_malloc(heap, 100000)};
    void *small = TAlloc_heap_malloc(heap, 16);
    EXPECT((char *)small > (char *)c.large && (char *)small < (char *)c.large + 104000,
           "the small block is in the large block's arena");
    TAlloc_heap_free(heap, c.large);
    TAlloc_heap_free(heap, small); /* the arena goes now */
    EXPECT(arenas_of(heap) == 0, "the dedicated arena is unmapped");
    char line[128];
    TAlloc_error_format(line, sizeof line, TALLOC_ERROR_DOUBLE_FREE, c.large);
    expect_death("large block freed before its arena's tail block, then freed again",
                 free_large_again, &c, SIGABRT, line);
    TAlloc_heap_destroy(heap);

    test_error_log log = {0};
    heap = make_heap(&log, 0, 0, 0, NULL);
    void *large = TAlloc_heap_malloc(heap, 100000);
    small = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, small);
    TAlloc_heap_free(heap, large); /* the arena goes now */
    TAlloc_heap_free(heap, large);
    expect_one(&log, TALLOC_ERROR_DOUBLE_FREE, large, "large block freed last, freed again");
    TAlloc_heap_free(heap, small);
    expect_one(&log, TALLOC_ERROR_FOREIGN_POINTER, small, "the tail block is not remembered");
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    test_allocation_meets_link();
    test_filing_meets_link();
    test_neighbour_link();
    test_release_meets_link();
    test_release_dedicated_meets_link();
    test_quarantine_stuck();
    test_boundary_tag();
    test_canary_size_word();
    test_junk_zeros();
    test_large_then_tail();
    return test_summary(test_name);
}
