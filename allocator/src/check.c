/*
 * check.c - introspection: the walk over every arena and chunk, and the checker that
 * validates I1..I6 (see internal.h) and reports each violation by id. The checker trusts
 * nothing it has not verified: a header is used only after its check value matches, a free
 * list link only after it is found inside an arena.
 */
#include "internal.h"
#include "track.h"

/* ---- walk ------------------------------------------------------------------------------ */

/* Whether `c` (below `fence`) is a sealed header whose size stays inside the arena. */
static bool is_readable_chunk(const ta_heap *heap, const ta_chunk *c, const ta_chunk *fence)
{
    return ta_chunk_is_valid(heap, c) &&
           ta_chunk_size(c) <= (size_t)((const char *)fence - (const char *)c);
}

/* Callbacks are user code: the sanitizers judge them as such, although the lock is held. */
static int visit_user(TAlloc_walk_fn visit, void *ctx, const TAlloc_arena_info *arena,
                      const TAlloc_chunk_info *chunk)
{
    ta_track_leave();
    int stop = visit(ctx, arena, chunk);
    ta_track_enter();
    return stop;
}

static int walk_arena(const ta_heap *heap, const ta_arena *arena, TAlloc_walk_fn visit, void *ctx)
{
    TAlloc_arena_info info = {arena, arena->map_size, TA_ARENA_RESERVED, (int)arena->is_dedicated};
    int stop = visit_user(visit, ctx, &info, NULL);
    const ta_chunk *fence = ta_arena_fence(arena);
    for (const ta_chunk *c = ta_arena_first_chunk(arena); stop == 0 && c < fence; c = ta_chunk_next(c)) {
        if (!is_readable_chunk(heap, c, fence))
            return -1;
        TAlloc_chunk_info chunk = {c, ta_chunk_payload(c), ta_chunk_size(c) - TA_HEADER_SIZE,
                                   TA_HEADER_SIZE, ta_chunk_is_free(c),
                                   (c->size_word & TA_QUARANTINED) != 0,
                                   (c->size_word & TA_QUICK) != 0};
        stop = visit_user(visit, ctx, &info, &chunk);
    }
    return stop;
}

int ta_walk_locked(const ta_heap *heap, TAlloc_walk_fn visit, void *ctx)
{
    int result = 0;
    uint64_t limit = heap->stats.map_count + 1;
    for (const ta_arena *a = heap->arena_first; a && limit-- > 0; a = a->next) {
        if (!ta_arena_is_sealed(heap, a))
            return -1; /* its links cannot be trusted either */
        int r = walk_arena(heap, a, visit, ctx);
        if (r > 0)
            return r;
        if (r < 0)
            result = -1;
    }
    return result;
}

/* ---- check ------------------------------------------------------------------------------ */

typedef struct checker {
    ta_heap *heap;
    TAlloc_violation_fn report;
    void *ctx;
    size_t violation_count;
    /* the owner lookup the free-list check uses: the arena table once it is verified */
    ta_arena *(*find_arena)(const ta_heap *heap, const void *address);
    uint64_t epoch;          /* mark of this check (random: never a stale word's value) */
    ta_index_check index;    /* the policy's own check; counts the chunks it holds */
    TAlloc_stats walked;     /* totals of the walk, compared with heap->stats (I6) */
    size_t empty_arena_count;
    size_t quarantined_count; /* chunks of the walk with the quarantine flag */
    size_t quick_reached;    /* chunks met in the quick lists */
} checker;

static void violation(checker *ck, int invariant, const void *address, const char *detail)
{
    ck->violation_count++;
    if (ck->report) {
        ta_track_leave();
        ck->report(ck->ctx, invariant, address, detail);
        ta_track_enter();
    }
}

/* I6, the arena registry: it holds exactly the listed arenas, each found from its first
   payload, the sorted part in ascending order. Checked first: the rest of the check then
   trusts it for ownership lookups. */
static void check_registry(checker *ck)
{
    ta_heap *heap = ck->heap;
    ck->find_arena = ta_arena_find_listed;
    size_t listed = 0;
    uint64_t limit = heap->stats.map_count + 1;
    for (const ta_arena *a = heap->arena_first; a && limit-- > 0; a = a->next)
        listed++;
    if (heap->arena_slot_count + heap->arena_sorted_count != listed) {
        violation(ck, TALLOC_I6_ACCOUNTING, heap, "arena registry size differs from arena list");
        return;
    }
    for (size_t i = 1; i < heap->arena_sorted_count; i++)
        if (heap->arena_sorted[i] <= heap->arena_sorted[i - 1]) {
            violation(ck, TALLOC_I6_ACCOUNTING, heap->arena_sorted[i],
                      "arena registry out of address order");
            return;
        }
    limit = heap->stats.map_count + 1;
    for (const ta_arena *a = heap->arena_first; a && limit-- > 0; a = a->next) {
        if (ta_arena_find(heap, ta_chunk_payload(ta_arena_first_chunk(a))) != a) {
            violation(ck, TALLOC_I6_ACCOUNTING, a, "listed arena missing from the arena registry");
            return;
        }
    }
    ck->find_arena = ta_arena_find;
}

static void index_violation(void *ctx, int invariant, const void *address, const char *detail)
{
    violation(ctx, invariant, address, detail);
}

/* I5, first half: the policy checks its own structure and counts the chunks it holds. */
static void check_index(checker *ck)
{
    ck->index = (ta_index_check){index_violation, ck, ck->find_arena, ck->epoch, 0};
    ck->heap->index->check(ck->heap, &ck->index);
}

/* I5 for the quick lists: every link names a quick chunk of its list's size whose header
   holds, both link words agree, no chunk is met twice (marks), every list ends. */
TA_NO_COVERAGE static void check_quick_lists(checker *ck)
{
    ta_heap *heap = ck->heap;
    size_t limit = heap->stats.quick_count + 1;
    for (size_t q = 0; q < TA_QUICK_CLASSES; q++) {
        for (ta_chunk *c = heap->quick_head[q]; c != NULL;) {
            if (((uintptr_t)c & (TALLOC_ALIGNMENT - 1)) != 0 ||
                ck->find_arena(heap, ta_chunk_payload(c)) == NULL) {
                violation(ck, TALLOC_I5_FREE_INDEX, c, "quick list link points outside the arenas");
                break;
            }
            if (!ta_chunk_is_valid(heap, c) || (c->size_word & (TA_FREE | TA_HELD)) != TA_QUICK ||
                ta_chunk_size(c) != ta_quick_size(q)) {
                violation(ck, TALLOC_I5_FREE_INDEX, c, "quick list holds a chunk not quick of its size");
                break;
            }
            if (c->word[2] == ck->epoch || ck->quick_reached++ >= limit) {
                violation(ck, TALLOC_I5_FREE_INDEX, c, "quick chunk listed twice (or the list has a cycle)");
                break;
            }
            c->word[2] = ck->epoch;
            ta_chunk *next = ta_link_get(heap, &c->word[0]);
            if (next != ta_link_get(heap, &c->word[1])) {
                violation(ck, TALLOC_I5_FREE_INDEX, c, "quick chunk's link words disagree");
                break;
            }
            c = next;
        }
    }
}

static void check_held_chunk(checker *ck, ta_chunk *c)
{
    size_t payload = ta_chunk_size(c) - TA_HEADER_SIZE;
    if (c->size_word & TA_QUICK) {
        if (c->word[2] != ck->epoch)
            violation(ck, TALLOC_I5_FREE_INDEX, c, "quick chunk missing from its quick list");
        ck->walked.quick_count++;
        ck->walked.quick_bytes += payload;
        return;
    }
    ck->walked.allocated_count++;
    ck->walked.allocated_bytes += payload;
    ck->quarantined_count += (c->size_word & TA_QUARANTINED) != 0;
}

static void check_free_chunk(checker *ck, ta_chunk *c, bool is_prev_free)
{
    size_t size = ta_chunk_size(c);
    if (*ta_chunk_footer(c) != size)
        violation(ck, TALLOC_I3_BOUNDARY_TAGS, c, "footer differs from header size");
    if (is_prev_free)
        violation(ck, TALLOC_I4_COALESCED, c, "free chunk follows a free chunk");
    if (!ck->heap->index->is_reached(ck->heap, c, &ck->index))
        violation(ck, TALLOC_I5_FREE_INDEX, c, "free chunk missing from the free index");
    ck->walked.free_count++;
    ck->walked.free_bytes += size - TA_HEADER_SIZE;
}

/* I1-I4 over one arena, plus its share of the totals. */
static void check_arena(checker *ck, const ta_arena *arena)
{
    ck->walked.arena_count++;
    ck->walked.mapped_bytes += arena->map_size;
    ta_chunk *fence = ta_arena_fence(arena);
    ta_chunk *c = ta_arena_first_chunk(arena);
    bool is_prev_free = false;
    size_t chunk_count = 0;
    for (; c < fence; c = ta_chunk_next(c), chunk_count++) {
        size_t size = ta_chunk_size(c);
        if (!ta_chunk_is_valid(ck->heap, c)) {
            violation(ck, TALLOC_I2_HEADERS, c, "chunk header fails its check");
            return;
        }
        if (size > (size_t)((char *)fence - (char *)c)) {
            violation(ck, TALLOC_I1_TILING, c, "chunk runs past the end of its arena");
            return;
        }
        if (ta_chunk_is_prev_free(c) != is_prev_free)
            violation(ck, TALLOC_I3_BOUNDARY_TAGS, c, "prev-free bit disagrees with predecessor");
        if (((c->size_word & TA_FIRST) != 0) != (chunk_count == 0))
            violation(ck, TALLOC_I2_HEADERS, c, "first-chunk bit wrong");
        if (ta_chunk_is_free(c)) {
            check_free_chunk(ck, c, is_prev_free);
        } else {
            check_held_chunk(ck, c);
        }
        is_prev_free = ta_chunk_is_free(c);
    }
    if (!ta_chunk_is_sealed(ck->heap, fence) || fence->size_word & ~TA_PREV_FREE)
        violation(ck, TALLOC_I2_HEADERS, fence, "arena end fence damaged");
    else if (ta_chunk_is_prev_free(fence) != is_prev_free)
        violation(ck, TALLOC_I3_BOUNDARY_TAGS, fence, "prev-free bit disagrees with predecessor");
    c = ta_arena_first_chunk(arena);
    if (chunk_count == 1 && ta_chunk_is_free(c) && !arena->is_dedicated)
        ck->empty_arena_count++;
}

static void check_arenas(checker *ck)
{
    ta_heap *heap = ck->heap;
    uint64_t limit = heap->stats.map_count + 1;
    const ta_arena *prev = NULL;
    for (const ta_arena *a = heap->arena_first; a; prev = a, a = a->next) {
        if (limit-- == 0) {
            violation(ck, TALLOC_I1_TILING, a, "arena list does not end (cycle)");
            return;
        }
        if (!ta_arena_is_sealed(heap, a)) {
            violation(ck, TALLOC_I2_HEADERS, a, "arena header fails its check");
            return;
        }
        if (a->prev != prev)
            violation(ck, TALLOC_I1_TILING, a, "arena list back link disagrees");
        check_arena(ck, a);
    }
}

/* I5 for held-back chunks: the quarantine holds exactly the flagged chunks of the walk, each
   a valid, flagged chunk inside an arena, their payload bytes as counted and within the
   bound. */
static void check_quarantine(checker *ck)
{
    ta_heap *heap = ck->heap;
    if (ck->quarantined_count != heap->quarantine_count)
        violation(ck, TALLOC_I5_FREE_INDEX, heap, "quarantine and walk count different chunks");
    if (heap->config.quarantine_bytes != 0 &&
        heap->quarantine_bytes > heap->config.quarantine_bytes)
        violation(ck, TALLOC_I5_FREE_INDEX, heap, "quarantine holds more bytes than its bound");
    size_t bytes = 0;
    for (size_t i = 0; i < heap->quarantine_count && heap->quarantine_capacity; i++) {
        ta_chunk *c = heap->quarantine[(heap->quarantine_head + i) % heap->quarantine_capacity];
        if (((uintptr_t)c & (TALLOC_ALIGNMENT - 1)) != 0 ||
            ck->find_arena(heap, ta_chunk_payload(c)) == NULL || !ta_chunk_is_valid(heap, c) ||
            !(c->size_word & TA_QUARANTINED)) {
            violation(ck, TALLOC_I5_FREE_INDEX, c, "quarantine holds a chunk not in quarantine");
            return;
        }
        bytes += ta_chunk_size(c) - TA_HEADER_SIZE;
    }
    if (bytes != heap->quarantine_bytes)
        violation(ck, TALLOC_I5_FREE_INDEX, heap, "quarantine's bytes differ from its chunks'");
}

static void compare(checker *ck, size_t walked, size_t counted, const char *detail)
{
    if (walked != counted)
        violation(ck, TALLOC_I6_ACCOUNTING, ck->heap, detail);
}

/* I5 second half, and I6: the index and the counters against the walk's totals. */
static void check_totals(checker *ck)
{
    const TAlloc_stats *s = &ck->heap->stats;
    const TAlloc_stats *w = &ck->walked;
    if (ck->index.reached != w->free_count)
        violation(ck, TALLOC_I5_FREE_INDEX, ck->heap,
                  "free index and walk count different free chunks");
    compare(ck, w->allocated_count, s->allocated_count, "allocated chunk count differs from walk");
    compare(ck, w->allocated_bytes, s->allocated_bytes, "allocated bytes differ from walk");
    compare(ck, w->free_count, s->free_count, "free chunk count differs from walk");
    compare(ck, w->free_bytes, s->free_bytes, "free bytes differ from walk");
    compare(ck, w->quick_count, s->quick_count, "quick chunk count differs from walk");
    compare(ck, w->quick_bytes, s->quick_bytes, "quick bytes differ from walk");
    /* every allocation made a block and every free ended one: the program's blocks are the
       allocated chunks not held in quarantine */
    compare(ck, w->allocated_count, (size_t)(s->alloc_total - s->free_total),
            "allocations minus frees differ from the walk's live blocks");
    if (ck->quick_reached != w->quick_count)
        violation(ck, TALLOC_I5_FREE_INDEX, ck->heap, "quick lists and walk count different chunks");
    if (s->quick_bytes > ck->heap->config.quick)
        violation(ck, TALLOC_I6_ACCOUNTING, ck->heap, "quick lists exceed their bound");
    compare(ck, w->arena_count, s->arena_count, "arena count differs from walk");
    compare(ck, w->mapped_bytes, s->mapped_bytes, "mapped bytes differ from walk");
    compare(ck, w->arena_count + s->cached_count, (size_t)(s->map_count - s->unmap_count),
            "maps minus unmaps differ from arenas and cached mappings");
    if (s->cached_bytes > ck->heap->config.large_cache)
        violation(ck, TALLOC_I6_ACCOUNTING, ck->heap, "cached mappings exceed the cache's bound");
    compare(ck, ck->empty_arena_count, ck->heap->empty_arena_count,
            "empty arena count differs from walk");
    check_quarantine(ck);
}

size_t TAlloc_heap_check(TAlloc_heap *heap, TAlloc_violation_fn report, void *ctx)
{
    checker ck = {.heap = heap, .report = report, .ctx = ctx};
    if (!ta_heap_lock(heap))
        return SIZE_MAX;
    ck.epoch = ta_check_value(&heap->keys, heap, ++heap->check_epoch);
    check_registry(&ck);
    check_index(&ck);
    check_quick_lists(&ck);
    check_arenas(&ck);
    check_totals(&ck);
    ta_heap_unlock(heap);
    return ck.violation_count;
}

size_t TAlloc_check(TAlloc_violation_fn report, void *ctx)
{
    return TAlloc_heap_check(ta_default_heap(), report, ctx);
}

int TAlloc_heap_walk(TAlloc_heap *heap, TAlloc_walk_fn visit, void *ctx)
{
    if (!ta_heap_lock(heap))
        return -1;
    int result = ta_walk_locked(heap, visit, ctx);
    ta_heap_unlock(heap);
    return result;
}

int TAlloc_walk(TAlloc_walk_fn visit, void *ctx)
{
    return TAlloc_heap_walk(ta_default_heap(), visit, ctx);
}
