/*
 * test_check.c - TAlloc_heap_check can fail: each case builds a small layout on a fresh heap,
 * verifies the check passes, damages exactly one thing, and asserts the check reports the
 * violated invariant (I1..I6, see internal.h) with the right id and, where it is clear which,
 * the right address. Then it undoes the damage and asserts the check passes again.
 *
 * White-box: it reaches into the heap through internal.h, using only the chunk layout, the
 * heap's stats, and the seal and free-index helpers. Every case runs under each placement
 * policy; the I5 case damages what each policy's structure keeps in the free chunks.
 */
#include <stdint.h>

#include "testutil.h"
#include "../allocator/src/internal.h"

enum { ARENA_SIZE = 65536, MAX_REPORTS = 64 };

/* ---- recording the check's reports ------------------------------------------------------ */

typedef struct report_log {
    size_t count;
    size_t kept;
    int ids[MAX_REPORTS];
    const void *addresses[MAX_REPORTS];
    char text[1024];
} report_log;

static void record_violation(void *ctx, int invariant, const void *address, const char *detail)
{
    report_log *log = ctx;
    if (log->kept < MAX_REPORTS) {
        log->ids[log->kept] = invariant;
        log->addresses[log->kept] = address;
        log->kept++;
    }
    log->count++;
    size_t used = strlen(log->text);
    if (used < sizeof log->text - 1)
        snprintf(log->text + used, sizeof log->text - used, " [I%d %p %s]", invariant, address,
                 detail ? detail : "(null)");
}

/* Runs the check with the recorder and again with a NULL callback; both must agree. */
static size_t run_check(TAlloc_heap *heap, report_log *log, const char *what)
{
    memset(log, 0, sizeof *log);
    size_t n = TAlloc_heap_check(heap, record_violation, log);
    size_t n_null = TAlloc_heap_check(heap, NULL, NULL);
    EXPECT(n == log->count, "%s: check returned %zu but reported %zu violations:%s", what, n,
           log->count, log->text);
    EXPECT(n_null == n, "%s: check with a NULL callback returned %zu, with a callback %zu", what,
           n_null, n);
    return n;
}

static int has_id(const report_log *log, int id)
{
    for (size_t i = 0; i < log->kept; i++)
        if (log->ids[i] == id)
            return 1;
    return 0;
}

static int has_id_at(const report_log *log, int id, const void *address)
{
    for (size_t i = 0; i < log->kept; i++)
        if (log->ids[i] == id && log->addresses[i] == address)
            return 1;
    return 0;
}

static int all_ids_are(const report_log *log, int id)
{
    for (size_t i = 0; i < log->kept; i++)
        if (log->ids[i] != id)
            return 0;
    return log->kept > 0;
}

/* The check finds the damage and reports `id` (at `address`, unless NULL). */
static void expect_violation(TAlloc_heap *heap, int id, const void *address, const char *what)
{
    report_log log;
    size_t n = run_check(heap, &log, what);
    EXPECT(n >= 1, "%s: the check should fail; it passed", what);
    if (address)
        EXPECT(has_id_at(&log, id, address), "%s: want I%d at %p; got%s", what, id, address,
               log.text);
    else
        EXPECT(has_id(&log, id), "%s: want I%d; got%s", what, id, log.text);
}

/* The check finds the damage and reports only `id`. */
static void expect_only_violation(TAlloc_heap *heap, int id, const void *address, const char *what)
{
    report_log log;
    size_t n = run_check(heap, &log, what);
    EXPECT(n >= 1, "%s: the check should fail; it passed", what);
    EXPECT(all_ids_are(&log, id), "%s: want only I%d; got%s", what, id, log.text);
    if (address)
        EXPECT(has_id_at(&log, id, address), "%s: want I%d at %p; got%s", what, id, address,
               log.text);
}

static void expect_clean(TAlloc_heap *heap, const char *what)
{
    report_log log;
    size_t n = run_check(heap, &log, what);
    EXPECT(n == 0 && log.count == 0, "%s: the check should pass; %zu violations:%s", what, n,
           log.text);
}

/* ---- building layouts -------------------------------------------------------------------- */

static TAlloc_policy current_policy;

static TAlloc_heap *policy_heap(size_t arena_size)
{
    TAlloc_config config = test_config(arena_size, NULL, NULL);
    config.policy = current_policy;
    config.quick = 0; /* freed blocks become free chunks at once (quick lists: case_i5_quick) */
    return test_heap_from(&config, "test_check");
}

static TAlloc_heap *fresh_heap(void)
{
    return policy_heap(ARENA_SIZE);
}

/* One index step that files or unfiles a chunk, as the chunk layer makes them. */
static bool index_insert(TAlloc_heap *heap, ta_chunk *c)
{
    ta_index_begin(heap);
    bool ok = ta_index_verify_insert(heap, ta_chunk_size(c)) && ta_index_insert(heap, c, ta_chunk_size(c));
    ta_index_take_fault(heap);
    return ta_index_end(heap, ok);
}

static bool index_remove(TAlloc_heap *heap, ta_chunk *c)
{
    ta_index_begin(heap);
    bool ok = ta_index_verify(heap, c) && ta_index_remove(heap, c);
    ta_index_take_fault(heap);
    return ta_index_end(heap, ok);
}

static void *xmalloc(TAlloc_heap *heap, size_t size)
{
    void *p = TAlloc_heap_malloc(heap, size);
    EXPECT(p != NULL, "malloc(%zu) failed", size);
    if (p == NULL)
        exit(test_summary("test_check"));
    memset(p, 0, size); /* payloads hold nothing that could pass for a header */
    return p;
}

static ta_chunk *chunk_of(const void *payload)
{
    return ta_chunk_from_payload(payload);
}

static size_t usable_of(const ta_chunk *c)
{
    return ta_chunk_size(c) - TA_HEADER_SIZE;
}

/* Makes every arena of the heap accessible to the test itself, which reads and damages
   headers, links and footers that TAlloc keeps inaccessible in sanitizer builds. */
static int expose_arena(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)ctx;
    if (chunk == NULL)
        test_unpoison(arena->address, arena->size);
    return 0;
}

static void expose_arenas(TAlloc_heap *heap)
{
    TAlloc_heap_walk(heap, expose_arena, NULL);
}

/* Sets a chunk's size word and reseals it, so the header itself stays valid. */
static void forge(TAlloc_heap *heap, ta_chunk *c, uint64_t size_word)
{
    c->size_word = size_word;
    ta_chunk_seal(heap, c);
}

/* The last chunk of the heap's arena, found through the public walk. */
typedef struct last_chunk {
    TAlloc_chunk_info info;
    int found;
} last_chunk;

static int find_last(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    last_chunk *last = ctx;
    if (chunk) {
        last->info = *chunk;
        last->found = 1;
    }
    return 0;
}

/* ---- I2 headers ---------------------------------------------------------------------------- */

static void case_i2_check_value(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *a = xmalloc(heap, 64);
    void *b = xmalloc(heap, 64);
    void *c = xmalloc(heap, 64);
    expect_clean(heap, "I2 check value: before");
    expose_arenas(heap);
    ta_chunk *bc = chunk_of(b);
    bc->check ^= (uint64_t)1 << 17;
    expect_violation(heap, TALLOC_I2_HEADERS, bc, "I2: a bit of an allocated chunk's check value");
    bc->check ^= (uint64_t)1 << 17;
    expect_clean(heap, "I2 check value: restored");
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, c);
    expect_clean(heap, "I2 check value: freed");
    TAlloc_heap_destroy(heap);
}

static void case_i2_bad_size(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *a = xmalloc(heap, 64);
    void *b = xmalloc(heap, 64);
    void *c = xmalloc(heap, 64);
    expect_clean(heap, "I2 size: before");
    expose_arenas(heap);
    ta_chunk *bc = chunk_of(b);
    uint64_t word = bc->size_word;

    /* the quarantine flag (size word bit 3) on a chunk the quarantine does not hold */
    forge(heap, bc, word + 8);
    expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a chunk flagged as quarantined");
    forge(heap, bc, word);
    expect_clean(heap, "I2 size: restored after the quarantine flag");

    /* an aligned size below the minimum chunk */
    forge(heap, bc, (uint64_t)(TA_MIN_CHUNK_SIZE - 16) | (word & TA_FLAG_MASK));
    expect_violation(heap, TALLOC_I2_HEADERS, bc, "I2: an allocated chunk's size below the minimum");
    forge(heap, bc, word);
    expect_clean(heap, "I2 size: restored after too small");

    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, c);
    TAlloc_heap_destroy(heap);
}

/* ---- I1 tiling ------------------------------------------------------------------------------ */

static void expect_i1_or_i2(TAlloc_heap *heap, const char *what)
{
    report_log log;
    size_t n = run_check(heap, &log, what);
    EXPECT(n >= 1, "%s: the check should fail; it passed", what);
    EXPECT(has_id(&log, TALLOC_I1_TILING) || has_id(&log, TALLOC_I2_HEADERS),
           "%s: want I1 or I2; got%s", what, log.text);
}

static void case_i1_tiling(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *a = xmalloc(heap, 64);
    void *b = xmalloc(heap, 64);

    /* fill the arena: the free tail is taken whole, so the last chunk ends at the fence */
    last_chunk last = {0};
    TAlloc_heap_walk(heap, find_last, &last);
    EXPECT(last.found && last.info.is_free, "the last chunk should be the free tail");
    void *tail = xmalloc(heap, last.info.size);
    EXPECT(tail == last.info.payload, "malloc(%zu) should take the free tail exactly: %p vs %p",
           last.info.size, tail, last.info.payload);
    expect_clean(heap, "I1: before (arena full)");
    expose_arenas(heap);

    /* the last chunk grows by 16 bytes: it runs over the fence and off the arena */
    ta_chunk *tc = chunk_of(tail);
    uint64_t word = tc->size_word;
    forge(heap, tc, word + 16);
    expect_i1_or_i2(heap, "I1: the last chunk resealed 16 bytes longer (past the fence)");
    forge(heap, tc, word);
    expect_clean(heap, "I1: restored after longer");

    /* a middle chunk shrinks by 16 bytes: the chunks no longer tile the arena */
    ta_chunk *ac = chunk_of(a);
    word = ac->size_word;
    forge(heap, ac, word - 16);
    expect_i1_or_i2(heap, "I1: a chunk resealed 16 bytes shorter (chunks do not tile)");
    forge(heap, ac, word);
    expect_clean(heap, "I1: restored after shorter");

    TAlloc_heap_free(heap, tail);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    expect_clean(heap, "I1: freed");
    TAlloc_heap_destroy(heap);
}

/* ---- I3 boundary tags ------------------------------------------------------------------- */

static void case_i3_boundary_tags(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *a = xmalloc(heap, 64);
    void *b = xmalloc(heap, 64);
    void *c = xmalloc(heap, 64);
    void *d = xmalloc(heap, 64);
    TAlloc_heap_free(heap, b); /* b: a free chunk between allocated a and c */
    expect_clean(heap, "I3: before");
    expose_arenas(heap);
    ta_chunk *bc = chunk_of(b);
    ta_chunk *cc = chunk_of(c);
    ta_chunk *dc = chunk_of(d);
    EXPECT(ta_chunk_is_free(bc) && ta_chunk_is_prev_free(cc) && !ta_chunk_is_prev_free(dc),
           "I3: b should be free, c's prev-free bit set and d's clear");

    /* the free chunk's footer no longer equals its size */
    *ta_chunk_footer(bc) += 16;
    expect_violation(heap, TALLOC_I3_BOUNDARY_TAGS, bc, "I3: a free chunk's footer changed");
    *ta_chunk_footer(bc) -= 16;
    expect_clean(heap, "I3: footer restored");

    /* the chunk after the free chunk loses its prev-free bit */
    uint64_t word = cc->size_word;
    forge(heap, cc, word & ~TA_PREV_FREE);
    expect_violation(heap, TALLOC_I3_BOUNDARY_TAGS, cc,
                     "I3: prev-free bit cleared after a free chunk");
    forge(heap, cc, word);
    expect_clean(heap, "I3: prev-free bit restored");

    /* the chunk after an allocated chunk gains a prev-free bit */
    word = dc->size_word;
    forge(heap, dc, word | TA_PREV_FREE);
    expect_violation(heap, TALLOC_I3_BOUNDARY_TAGS, dc,
                     "I3: prev-free bit set after an allocated chunk");
    forge(heap, dc, word);
    expect_clean(heap, "I3: prev-free bit cleared again");

    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, c);
    TAlloc_heap_free(heap, d);
    TAlloc_heap_destroy(heap);
}

/* ---- I4 coalesced --------------------------------------------------------------------------- */

static void case_i4_coalesced(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *a = xmalloc(heap, 64);
    void *b = xmalloc(heap, 64);
    void *c = xmalloc(heap, 64);
    TAlloc_heap_free(heap, a);
    expect_clean(heap, "I4: before");
    expose_arenas(heap);

    /* b becomes free by hand, consistently in every respect but one: its predecessor a is
       free too, so the two should have merged */
    ta_chunk *bc = chunk_of(b);
    ta_chunk *cc = chunk_of(c);
    uint64_t b_word = bc->size_word;
    uint64_t c_word = cc->size_word;
    TAlloc_stats saved = heap->stats;
    size_t usable = usable_of(bc);
    EXPECT(ta_chunk_is_prev_free(bc), "I4: b's prev-free bit should be set (a is free)");
    forge(heap, bc, b_word | TA_FREE);
    *ta_chunk_footer(bc) = ta_chunk_size(bc);
    forge(heap, cc, c_word | TA_PREV_FREE);
    EXPECT(index_insert(heap, bc), "I4: b filed");
    heap->stats.allocated_count--;
    heap->stats.free_total++; /* as if the program had freed it */
    heap->stats.allocated_bytes -= usable;
    heap->stats.free_count++;
    heap->stats.free_bytes += usable;
    expect_only_violation(heap, TALLOC_I4_COALESCED, bc, "I4: two adjacent free chunks");

    /* undo: b allocated again */
    EXPECT(index_remove(heap, bc), "I4: b unfiled");
    forge(heap, bc, b_word);
    forge(heap, cc, c_word);
    heap->stats = saved;
    expect_clean(heap, "I4: restored");

    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, c);
    expect_clean(heap, "I4: freed");
    TAlloc_heap_destroy(heap);
}

/* ---- I5 free index -------------------------------------------------------------------- */

static _Alignas(16) unsigned char outside_arenas[64]; /* aligned, in no arena */

typedef struct free_chunks {
    ta_chunk *chunks[16];
    size_t count;
} free_chunks;

static int collect_free(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    free_chunks *f = ctx;
    if (chunk && chunk->is_free && f->count < 16)
        f->chunks[f->count++] = (ta_chunk *)(uintptr_t)chunk->address;
    return 0;
}

/* A free chunk whose index word `w` is not zero once decoded (a link to another chunk). */
static ta_chunk *free_with_word(TAlloc_heap *heap, int w)
{
    free_chunks f = {{0}, 0};
    TAlloc_heap_walk(heap, collect_free, &f);
    for (size_t i = 0; i < f.count; i++)
        if ((ta_word_get(heap, &f.chunks[i]->word[w]) & ~(uintptr_t)15) != 0)
            return f.chunks[i];
    return NULL;
}

/* The segregated lists: links decoding to the wrong places, and a back link. */
static void i5_list_links(TAlloc_heap *heap, void *a, void *c)
{
    ta_chunk *head = free_with_word(heap, 0);
    EXPECT(head != NULL, "I5: a free chunk with a successor in its list");
    if (head == NULL)
        return;
    uintptr_t saved_link = head->word[0];
    ta_chunk *next = ta_link_get(heap, &head->word[0]);
    ta_link_set(heap, &head->word[0], (ta_chunk *)((char *)a + 16));
    expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a link into an allocated payload");
    ta_link_set(heap, &head->word[0], chunk_of(c));
    expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a link to an allocated chunk");
    ta_link_set(heap, &head->word[0], (ta_chunk *)(void *)outside_arenas);
    expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a link out of the arenas");
    head->word[0] = (uintptr_t)next; /* the raw address, not encoded: decodes elsewhere */
    expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a link stored unencoded");
    head->word[0] = saved_link;
    expect_clean(heap, "I5: forward link restored");
    uintptr_t back = next->word[1];
    ta_link_set(heap, &next->word[1], NULL);
    expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a back link that disagrees");
    next->word[1] = back;
    expect_clean(heap, "I5: back link restored");
}

/* The trees: a node's balance, and (first fit) its subtree's largest size: the node's check
   fails at its third word. */
static void i5_tree_words(TAlloc_heap *heap)
{
    free_chunks f = {{0}, 0};
    TAlloc_heap_walk(heap, collect_free, &f);
    for (size_t i = 0; i < f.count; i++) {
        ta_chunk *n = f.chunks[i];
        uintptr_t saved = n->word[2], meta = ta_word_get(heap, &n->word[2]);
        ta_word_set(heap, &n->word[2], (meta & ~(uintptr_t)3) | ((meta & 3) + 1) % 3);
        expect_violation(heap, TALLOC_I5_FREE_INDEX, &n->word[2], "I5: a node's balance changed");
        n->word[2] = saved;
        if (current_policy == TALLOC_POLICY_FIRST_FIT) {
            ta_word_set(heap, &n->word[2], meta + 16);
            expect_violation(heap, TALLOC_I5_FREE_INDEX, &n->word[2],
                             "I5: a node's largest size changed");
            n->word[2] = saved;
        }
    }
    expect_clean(heap, "I5: node words restored");
}

static void case_i5_free_index(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *blocks[9];
    for (int i = 0; i < 9; i++)
        blocks[i] = xmalloc(heap, 64);
    for (int i = 1; i < 9; i += 2)
        TAlloc_heap_free(heap, blocks[i]); /* four free chunks of one size, and the tail */
    expect_clean(heap, "I5: before");
    expose_arenas(heap);
    ta_chunk *bc = chunk_of(blocks[3]);

    /* a free chunk missing from the index */
    EXPECT(index_remove(heap, bc), "I5: b unfiled");
    expect_violation(heap, TALLOC_I5_FREE_INDEX, bc, "I5: a free chunk removed from the index");
    EXPECT(index_insert(heap, bc), "I5: b filed again");
    expect_clean(heap, "I5: chunk back in the index");

    /* a link damaged: one byte of a free chunk's first index word */
    ta_chunk *linked = free_with_word(heap, 0);
    EXPECT(linked != NULL, "I5: a free chunk whose first index word is a link");
    if (linked) {
        uintptr_t saved = linked->word[0];
        ((unsigned char *)&linked->word[0])[1] ^= 0x10;
        expect_violation(heap, TALLOC_I5_FREE_INDEX, NULL, "I5: a link's byte flipped");
        linked->word[0] = saved;
        expect_clean(heap, "I5: link restored");
    }
    if (current_policy == TALLOC_POLICY_SEGREGATED)
        i5_list_links(heap, blocks[0], blocks[2]);
    else
        i5_tree_words(heap);

    for (int i = 0; i < 9; i += 2)
        TAlloc_heap_free(heap, blocks[i]);
    expect_clean(heap, "I5: freed");
    TAlloc_heap_destroy(heap);
}

/* ---- I6 accounting ------------------------------------------------------------------------ */

static void case_i6_accounting(void)
{
    TAlloc_heap *heap = fresh_heap();
    void *a = xmalloc(heap, 64);
    void *b = xmalloc(heap, 200);
    void *c = xmalloc(heap, 64);
    TAlloc_heap_free(heap, b);
    expect_clean(heap, "I6: before");

    heap->stats.allocated_count += 1;
    expect_only_violation(heap, TALLOC_I6_ACCOUNTING, NULL, "I6: allocated_count + 1");
    heap->stats.allocated_count -= 1;
    expect_clean(heap, "I6: allocated_count restored");

    heap->stats.free_bytes -= 16;
    expect_only_violation(heap, TALLOC_I6_ACCOUNTING, NULL, "I6: free_bytes - 16");
    heap->stats.free_bytes += 16;
    expect_clean(heap, "I6: free_bytes restored");

    heap->stats.arena_count += 1;
    expect_only_violation(heap, TALLOC_I6_ACCOUNTING, NULL, "I6: arena_count + 1");
    heap->stats.arena_count -= 1;
    expect_clean(heap, "I6: arena_count restored");

    heap->stats.alloc_total -= 1; /* an allocation that was not counted */
    expect_only_violation(heap, TALLOC_I6_ACCOUNTING, NULL, "I6: alloc_total - 1");
    heap->stats.alloc_total += 1;
    expect_clean(heap, "I6: alloc_total restored");

    heap->stats.free_total += 1;
    expect_only_violation(heap, TALLOC_I6_ACCOUNTING, NULL, "I6: free_total + 1");
    heap->stats.free_total -= 1;
    expect_clean(heap, "I6: free_total restored");

    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, c);
    TAlloc_heap_destroy(heap);
}

/* ---- the arena registry --------------------------------------------------------------------- */

/* Thousands of arenas: the slot table grows past several pages, stays right through unmaps in
   any order, answers every ownership question, and a damaged registry is an I6 violation. */
static void case_arena_registry(void)
{
    enum { N = 3000 };
    TAlloc_heap *heap = policy_heap(8192);
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = xmalloc(heap, 6000); /* one 8 KiB arena each */
    EXPECT(heap->arena_slot_count == N && heap->stats.arena_count == N,
           "registry %zu arenas, stats %zu", heap->arena_slot_count, heap->stats.arena_count);
    EXPECT(heap->arena_slot_bits >= 13, "slot table grew to 2^%zu", heap->arena_slot_bits);
    expect_clean(heap, "registry: 3000 arenas");
    expose_arenas(heap); /* arena headers are read below */
    size_t owned = 0;
    for (int i = 0; i < N; i++) {
        ta_arena *a = ta_arena_find(heap, blocks[i]);
        owned += a != NULL && (char *)a < (char *)blocks[i] &&
                 (char *)blocks[i] < (char *)a + a->map_size;
        owned += ta_arena_find(heap, (char *)blocks[i] - 32) == NULL; /* the arena header */
    }
    EXPECT(owned == 2 * N, "registry: %zu of %d lookups right", owned, 2 * N);
    for (int i = 0; i < N; i += 3) /* unmaps from everywhere in the table */
        TAlloc_heap_free(heap, blocks[i]);
    expect_clean(heap, "registry: a third unmapped");
    EXPECT(heap->arena_slot_count == heap->stats.arena_count, "registry %zu, stats %zu",
           heap->arena_slot_count, heap->stats.arena_count);
    for (int i = 1; i < N; i += 3)
        EXPECT(TAlloc_heap_usable_size(heap, blocks[i]) >= 6000, "after unmaps: block %d", i);

    /* damage: a slot emptied */
    size_t capacity = (size_t)1 << heap->arena_slot_bits, at = 0;
    while (heap->arena_slots[at] == NULL)
        at++;
    ta_arena *keep = heap->arena_slots[at];
    heap->arena_slots[at] = NULL;
    report_log log;
    EXPECT(run_check(heap, &log, "slot emptied") >= 1 && has_id(&log, TALLOC_I6_ACCOUNTING),
           "a missing entry is I6:%s", log.text);
    heap->arena_slots[at] = keep;
    expect_clean(heap, "registry: slot back");
    (void)capacity;
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            TAlloc_heap_free(heap, blocks[i]);
    expect_clean(heap, "registry: all freed");
    TAlloc_heap_destroy(heap);
}

/* Dedicated arenas are kept sorted: unmaps in any order keep the order, and two entries
   swapped are an I6 violation. */
static void case_arena_registry_sorted(void)
{
    enum { N = 600 };
    TAlloc_heap *heap = policy_heap(8192);
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = xmalloc(heap, 9000 + (size_t)(i % 7) * 4096); /* a dedicated arena each */
    EXPECT(heap->arena_sorted_count == N, "sorted %zu of %d", heap->arena_sorted_count, N);
    expect_clean(heap, "sorted: 600 arenas");
    for (int i = 0; i < N; i += 4)
        TAlloc_heap_free(heap, blocks[i]);
    expect_clean(heap, "sorted: a quarter unmapped");
    ta_arena **t = heap->arena_sorted;
    ta_arena *keep = t[10];
    t[10] = t[11];
    t[11] = keep;
    report_log log;
    EXPECT(run_check(heap, &log, "sorted swapped") >= 1 && has_id(&log, TALLOC_I6_ACCOUNTING),
           "swapped entries are I6:%s", log.text);
    t[11] = t[10];
    t[10] = keep;
    expect_clean(heap, "sorted: swap undone");
    for (int i = 0; i < N; i++)
        if (i % 4 != 0)
            TAlloc_heap_free(heap, blocks[i]);
    expect_clean(heap, "sorted: all freed");
    TAlloc_heap_destroy(heap);
}

/* ---- a sound heap passes ------------------------------------------------------------------ */

static void case_clean(void)
{
    TAlloc_heap *heap = fresh_heap();
    expect_clean(heap, "clean: a new heap");
    void *blocks[24];
    for (int i = 0; i < 24; i++)
        blocks[i] = xmalloc(heap, (size_t)(i * 37 + 1));
    void *large = xmalloc(heap, (size_t)4 * ARENA_SIZE); /* a dedicated arena */
    void *aligned = TAlloc_heap_aligned_alloc(heap, 256, 512);
    EXPECT(aligned != NULL, "aligned_alloc(256, 512) failed");
    expect_clean(heap, "clean: all allocated");
    for (int i = 0; i < 24; i += 3)
        TAlloc_heap_free(heap, blocks[i]);
    blocks[1] = TAlloc_heap_realloc(heap, blocks[1], 500);
    EXPECT(blocks[1] != NULL, "realloc to 500 failed");
    expect_clean(heap, "clean: some freed");
    TAlloc_heap_free(heap, large);
    TAlloc_heap_free(heap, aligned);
    for (int i = 0; i < 24; i++)
        if (i % 3 != 0)
            TAlloc_heap_free(heap, blocks[i]);

    report_log log;
    memset(&log, 0, sizeof log);
    size_t n = TAlloc_heap_check(heap, record_violation, &log);
    EXPECT(n == 0 && log.count == 0, "clean: all freed: %zu violations, %zu callbacks:%s", n,
           log.count, log.text);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "clean: NULL callback should return 0");
    TAlloc_heap_destroy(heap);

    /* the default heap too */
    void *p = TAlloc_malloc(100);
    EXPECT(p != NULL, "TAlloc_malloc(100) failed");
    TAlloc_free(p);
    memset(&log, 0, sizeof log);
    n = TAlloc_check(record_violation, &log);
    EXPECT(n == 0 && log.count == 0, "clean: default heap: %zu violations:%s", n, log.text);
    EXPECT(TAlloc_check(NULL, NULL) == 0, "clean: default heap, NULL callback");
}

static void run_cases(void);

int main(void)
{
    static const TAlloc_policy policies[] = {TALLOC_POLICY_SEGREGATED, TALLOC_POLICY_FIRST_FIT,
                                             TALLOC_POLICY_BEST_FIT};
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        current_policy = policies[i];
        run_cases();
    }
    return test_summary("test_check");
}

/* A quick chunk's two link words rewritten to agree (as only the secret allows) on a target
   that is no quick chunk of an arena: a buffer outside every arena, the arena's own header,
   a misaligned address next to the chunk, an address in the chunk's aligned span but before
   its arena (when the OS table cannot align arenas). The malloc that pops the chunk refuses the link
   (corrupted free list at its first word) before anything follows it, and the check reports
   I5; with the words restored both are clean. */
static void quick_links_that_agree(bool is_unaligned)
{
    test_error_log log = {0};
    TAlloc_config config = test_config(ARENA_SIZE, test_record_error, &log);
    config.policy = current_policy;
    if (is_unaligned) { /* an OS table that cannot align: standard arenas go to the sorted table */
        config.os = *TAlloc_os_default();
        config.os.map_aligned = NULL;
    }
    TAlloc_heap *heap = test_heap_from(&config, "test_check");
    void *keep = xmalloc(heap, 64);
    void *p = xmalloc(heap, 64);
    TAlloc_heap_free(heap, p); /* the only chunk of its quick list */
    expose_arenas(heap);
    ta_chunk *c = chunk_of(p);
    char *span = (char *)((uintptr_t)c & ~(((uintptr_t)1 << heap->arena_shift) - 1));
    char *arena_base = (char *)c - TA_ARENA_HEADER_SIZE - 64 - TA_HEADER_SIZE; /* keep's chunk first */
    const struct {
        const void *target;
        const char *what;
    } targets[] = {
        {outside_arenas, "outside every arena"},
        {arena_base, "the arena header"},
        {(char *)c + 8, "misaligned, next to the chunk"},
        /* an unaligned arena: its chunk's aligned span starts before the arena */
        {span != arena_base ? (const void *)(span + TA_ARENA_HEADER_SIZE) : (const void *)outside_arenas,
         "in the chunk's span, before its arena"},
    };
    EXPECT(!is_unaligned || span == arena_base || heap->unslotted_standard_count == 1,
           "an unaligned standard arena is in the sorted table");
    uintptr_t saved[2] = {c->word[0], c->word[1]};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        for (int w = 0; w < 2; w++)
            ta_link_set(heap, &c->word[w], (const ta_chunk *)targets[i].target);
        report_log checked;
        run_check(heap, &checked, targets[i].what);
        EXPECT(has_id_at(&checked, TALLOC_I5_FREE_INDEX, targets[i].target), "%s: the check: got%s",
               targets[i].what, checked.text);
        int before = log.count;
        void *q = TAlloc_heap_malloc(heap, 64);
        EXPECT(q == NULL && log.count == before + 1 &&
                   log.error == TALLOC_ERROR_CORRUPTED_FREE_LIST && log.address == &c->word[0],
               "%s: malloc returned %p; %d reports, last %s at %p (word at %p)", targets[i].what,
               q, log.count - before, TAlloc_error_string(log.error), log.address,
               (void *)&c->word[0]);
        c->word[0] = saved[0];
        c->word[1] = saved[1];
        expect_clean(heap, targets[i].what);
    }
    TAlloc_heap_free(heap, keep);
    TAlloc_heap_destroy(heap);
}

static void case_quick_links_that_agree(void)
{
    quick_links_that_agree(false);
    quick_links_that_agree(true);
}

static void run_cases(void)
{
    case_clean();
    case_i2_check_value();
    case_i2_bad_size();
    case_i1_tiling();
    case_i3_boundary_tags();
    case_i4_coalesced();
    case_i5_free_index();
    case_i6_accounting();
    case_arena_registry();
    case_arena_registry_sorted();
    case_quick_links_that_agree();
}
