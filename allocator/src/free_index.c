/*
 * free_index.c - where free chunks are kept and found. Both policies share one doubly linked
 * list of free chunks in ascending address order (the seed's structure); they differ only in
 * which chunk `find` returns. Keeps I5: every free chunk is in the list exactly once, in
 * address order, with next/prev links that agree.
 *
 * Links are encoded (internal.h, ta_link_*) and checked before they are followed: a link must
 * name a 16-byte aligned header inside one of the heap's arenas, and unlinking a chunk first
 * verifies that its neighbours link back to it. A link that fails is recorded in
 * heap->bad_link (the address of the link) and treated as the end of the list; the call that
 * met it reports "corrupted free list" when it ends, and nothing is written through it.
 *
 * A new policy adds a ta_free_index_ops table; the chunk layer only calls insert, remove,
 * replace and find.
 */
#include "internal.h"

bool ta_link_is_plausible(const ta_heap *heap, const ta_chunk *target)
{
    return target == NULL || (((uintptr_t)target & (TALLOC_ALIGNMENT - 1)) == 0 &&
                              ta_arena_find(heap, ta_chunk_payload(target)) != NULL &&
                              ta_chunk_is_valid(heap, target) && ta_chunk_is_free(target));
}

static void note_bad_link(ta_heap *heap, const uintptr_t *field)
{
    if (heap->bad_link == NULL)
        heap->bad_link = field;
}

/* Steps a walk of the list may take: one per free chunk, and one for the end. More means a
   cycle, made by damaged links. */
static size_t walk_limit(const ta_heap *heap)
{
    return heap->stats.free_count + 1;
}

/* The chunk after `c` in the list, or NULL at the end or at a damaged link (noted). */
static ta_chunk *next_of(ta_heap *heap, ta_chunk *c)
{
    ta_chunk *next = ta_link_get(heap, &c->next_link);
    if (ta_link_is_plausible(heap, next))
        return next;
    note_bad_link(heap, &c->next_link);
    return NULL;
}

/* Whether `prev` (NULL: the list's head) names `c` as its successor. */
static bool names_next(const ta_heap *heap, ta_chunk *prev, const ta_chunk *c)
{
    return (prev ? ta_link_get(heap, &prev->next_link) : heap->free_head) == c;
}

enum { NEARBY_CHUNKS = 64 };

/*
 * The free chunk that follows `chunk` in the list, found by stepping over at most
 * NEARBY_CHUNKS chunks from `after` in its arena: the first free one met is its successor (no
 * other arena lies between them), and that one's back link is its predecessor. False when
 * none is that near, or a header on the way is not valid.
 */
static bool find_nearby(ta_heap *heap, const ta_chunk *chunk, ta_chunk *after, ta_chunk **prev,
                        ta_chunk **next)
{
    ta_chunk *c = after;
    for (int i = 0; i < NEARBY_CHUNKS && ta_chunk_is_valid(heap, c); i++, c = ta_chunk_next(c)) {
        if (ta_chunk_size(c) == 0)
            return false; /* the arena's end */
        if (!ta_chunk_is_free(c))
            continue;
        ta_chunk *before = ta_link_get(heap, &c->prev_link);
        if (!ta_link_is_plausible(heap, before) || (before && before >= chunk) ||
            !names_next(heap, before, c))
            return false; /* the walk below notes what is damaged */
        *prev = before;
        *next = c;
        return true;
    }
    return false;
}

/* Whether the free chunk `c` is linked: its predecessor (or the head) names it. Notes
   nothing: a chunk that fails is simply not used as a starting point. */
static bool is_listed(const ta_heap *heap, ta_chunk *c)
{
    ta_chunk *prev = ta_link_get(heap, &c->prev_link);
    return ta_link_is_plausible(heap, prev) && names_next(heap, prev, c);
}

/*
 * Finds where `chunk` goes in address order, before anything is written: O(1) when a free
 * chunk follows it closely in its arena (`after` is the chunk right after it), else a walk of
 * the list from the chunk linked last (when it is still free and lies below) or the head.
 * False, with the damaged link noted, when the walk met one: the caller then leaves the heap
 * as it is.
 */
bool ta_index_locate(ta_heap *heap, ta_chunk *chunk, ta_chunk *after, ta_slot *slot)
{
    if (find_nearby(heap, chunk, after, &slot->prev, &slot->next))
        return true;
    ta_chunk *prev = NULL;
    ta_chunk *next = heap->free_head;
    ta_chunk *finger = heap->finger;
    if (finger && finger < chunk && ta_link_is_plausible(heap, finger) &&
        is_listed(heap, finger)) {
        /* a free chunk in the list below this one: frees in ascending address order link in
           O(1) */
        prev = finger;
        next = next_of(heap, finger);
    }
    for (size_t steps = walk_limit(heap); next && next < chunk; steps--) {
        if (steps == 0) {
            note_bad_link(heap, &next->next_link);
            return false;
        }
        prev = next;
        next = next_of(heap, next);
    }
    /* the link that linking overwrites must have been intact */
    if (!heap->bad_link && next && ta_link_get(heap, &next->prev_link) != prev)
        note_bad_link(heap, &next->prev_link);
    if (heap->bad_link)
        return false;
    *slot = (ta_slot){prev, next};
    heap->finger = chunk; /* where the next walk may start, once `chunk` is linked */
    return true;
}

/* Links the free chunk `chunk` between the two chunks ta_index_locate found. */
void ta_index_link(ta_heap *heap, ta_chunk *chunk, const ta_slot *slot)
{
    ta_link_set(heap, &chunk->prev_link, slot->prev);
    ta_link_set(heap, &chunk->next_link, slot->next);
    if (slot->prev)
        ta_link_set(heap, &slot->prev->next_link, chunk);
    else
        heap->free_head = chunk;
    if (slot->next)
        ta_link_set(heap, &slot->next->prev_link, chunk);
}

/* locate + link (the checker's tests build heap states with it). */
bool ta_index_insert(ta_heap *heap, ta_chunk *chunk)
{
    ta_slot slot;
    if (!ta_index_locate(heap, chunk, ta_chunk_next(chunk), &slot))
        return false;
    ta_index_link(heap, chunk, &slot);
    return true;
}

/* Links `chunk` right after the verified free chunk `prev`, its neighbour in address order. */
void ta_index_insert_after(ta_heap *heap, ta_chunk *prev, ta_chunk *chunk)
{
    ta_slot slot = {prev, ta_link_get(heap, &prev->next_link)};
    ta_index_link(heap, chunk, &slot);
}

/* Reads `chunk`'s neighbours and checks that they link back to it; false (noted) if not. */
static bool neighbours(ta_heap *heap, ta_chunk *chunk, ta_chunk **prev, ta_chunk **next)
{
    *prev = ta_link_get(heap, &chunk->prev_link);
    *next = ta_link_get(heap, &chunk->next_link);
    if (!ta_link_is_plausible(heap, *prev)) {
        note_bad_link(heap, &chunk->prev_link);
        return false;
    }
    if (!names_next(heap, *prev, chunk)) {
        /* one of the pair is damaged: blame the one that names no free chunk */
        bool is_theirs = *prev && !ta_link_is_plausible(heap, ta_link_get(heap, &(*prev)->next_link));
        note_bad_link(heap, is_theirs ? &(*prev)->next_link : &chunk->prev_link);
        return false;
    }
    if (!ta_link_is_plausible(heap, *next)) {
        note_bad_link(heap, &chunk->next_link);
        return false;
    }
    if (*next && ta_link_get(heap, &(*next)->prev_link) != chunk) {
        bool is_theirs = !ta_link_is_plausible(heap, ta_link_get(heap, &(*next)->prev_link));
        note_bad_link(heap, is_theirs ? &(*next)->prev_link : &chunk->next_link);
        return false;
    }
    return true;
}

bool ta_index_verify(ta_heap *heap, ta_chunk *chunk)
{
    ta_chunk *prev, *next;
    return neighbours(heap, chunk, &prev, &next);
}

void ta_index_remove(ta_heap *heap, ta_chunk *chunk)
{
    ta_chunk *prev, *next;
    if (!neighbours(heap, chunk, &prev, &next))
        return;
    if (prev)
        ta_link_set(heap, &prev->next_link, next);
    else
        heap->free_head = next;
    if (next)
        ta_link_set(heap, &next->prev_link, prev);
    if (heap->finger == chunk) /* it may become a block another thread writes into */
        heap->finger = NULL;
}

/* `new_chunk` takes the place of `old_chunk`; valid when no other free chunk lies between
   them, so address order is kept. The two may overlap: old's links are read first. O(1). */
void ta_index_replace(ta_heap *heap, ta_chunk *old_chunk, ta_chunk *new_chunk)
{
    ta_chunk *prev, *next;
    if (!neighbours(heap, old_chunk, &prev, &next))
        return;
    ta_link_set(heap, &new_chunk->prev_link, prev);
    ta_link_set(heap, &new_chunk->next_link, next);
    if (heap->finger == old_chunk)
        heap->finger = new_chunk;
    if (prev)
        ta_link_set(heap, &prev->next_link, new_chunk);
    else
        heap->free_head = new_chunk;
    if (next)
        ta_link_set(heap, &next->prev_link, new_chunk);
}

static ta_chunk *find_first_fit(ta_heap *heap, size_t chunk_size)
{
    size_t steps = walk_limit(heap);
    for (ta_chunk *c = heap->free_head; c && steps-- > 0; c = next_of(heap, c))
        if (ta_chunk_size(c) >= chunk_size)
            return c;
    return NULL;
}

static ta_chunk *find_best_fit(ta_heap *heap, size_t chunk_size)
{
    ta_chunk *best = NULL;
    size_t steps = walk_limit(heap);
    for (ta_chunk *c = heap->free_head; c && steps-- > 0; c = next_of(heap, c)) {
        size_t size = ta_chunk_size(c);
        if (size < chunk_size || (best && size >= ta_chunk_size(best)))
            continue;
        best = c;
        if (size == chunk_size)
            break;
    }
    return best;
}

static const ta_free_index_ops first_fit_ops = {"first-fit", find_first_fit};
static const ta_free_index_ops best_fit_ops = {"best-fit", find_best_fit};

const ta_free_index_ops *ta_index_for_policy(TAlloc_policy policy)
{
    return policy == TALLOC_POLICY_BEST_FIT ? &best_fit_ops : &first_fit_ops;
}
