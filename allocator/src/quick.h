/*
 * quick.h - the quick lists' own operations, and the two calls they serve whole.
 *
 * A quick list holds freed blocks of one chunk size, the block freed last first, still
 * counted apart from the free index (internal.h: TA_QUICK, the two link words). paths.c runs
 * them inside its full paths, which report what they find; the fast entries at the end run
 * the common case of malloc and free with nothing else around it (the hooks of canary and
 * junk run as the full paths run them, in entries of their own so that a heap with no
 * option runs none; with a quarantine the free has an entry of its own), entered by the
 * only thread of the process, a request a quick list serves. They verify what the full path
 * verifies before they change anything, and on any doubt change nothing and say no, so
 * that the caller takes the full path, which finds the same thing and reports it.
 */
#ifndef TALLOC_QUICK_H
#define TALLOC_QUICK_H

#include "enter.h"
#include "internal.h"
#include "track.h"

enum { TA_QUICK_NEXT = 0, TA_QUICK_MIRROR = 1 }; /* index words of a quick chunk */

/* Whether `chunk`, the head of the quick list of chunk size `size`, has a trusted header
   that says so. */
TA_INLINE bool ta_quick_is_head_whole(const ta_heap *heap, const ta_chunk *chunk, size_t size)
{
    return ta_chunk_is_valid(heap, chunk) && (chunk->size_word & (TA_FREE | TA_HELD)) == TA_QUICK &&
           ta_chunk_size(chunk) == size;
}

/* Whether `next`, which the link of the quick chunk `chunk` names, is a header whose payload
   lies in an arena (ta_index_is_plausible). Quick chunks lie in standard arenas; while every
   standard arena is slotted (aligned to 1 << arena_shift), a `next` in the same aligned span
   as `chunk` is in chunk's arena, and its offset there says it all, with no registry lookup.
   A `next` in another span is looked up in the slot table (O(1)); the fast entries
   (`is_fast`) stop there, the full paths ask the registry too. */
TA_INLINE bool ta_quick_is_next_plausible(const ta_heap *heap, const ta_chunk *chunk,
                                                const ta_chunk *next, bool is_fast)
{
    uintptr_t c = (uintptr_t)chunk, n = (uintptr_t)next;
    if ((n & (TALLOC_ALIGNMENT - 1)) != 0)
        return false;
    if (((c ^ n) >> heap->arena_shift) != 0 || heap->unslotted_standard_count != 0)
        return ta_arena_slotted(heap, ta_chunk_payload(next)) != NULL ||
               (!is_fast && ta_index_is_plausible(heap, next));
    uintptr_t offset = n & (((uintptr_t)1 << heap->arena_shift) - 1);
    return offset >= TA_ARENA_HEADER_SIZE && offset + TA_HEADER_SIZE < heap->arena_size - TA_FENCE_SIZE;
}

/* Takes the head of the quick list of chunk size `size` (not empty) out of it, when its
   header, its two link words and the place they name hold; NULL, nothing changed, otherwise.
   The chunk stays flagged TA_QUICK and counted until the caller decides. `is_fast`: as for
   ta_quick_is_next_plausible. */
TA_INLINE ta_chunk *ta_quick_pop(ta_heap *heap, size_t size, bool is_fast)
{
    ta_chunk **head = &heap->quick_head[size / 16];
    ta_chunk *chunk = *head;
    if (!ta_quick_is_head_whole(heap, chunk, size))
        return NULL;
    ta_chunk *next = ta_link_get(heap, &chunk->word[TA_QUICK_NEXT]);
    ta_chunk *mirror = ta_link_get(heap, &chunk->word[TA_QUICK_MIRROR]);
    if (next != mirror || (next != NULL && !ta_quick_is_next_plausible(heap, chunk, next, is_fast)))
        return NULL;
    *head = next;
    return chunk;
}

/* The quick chunk `chunk`, popped, becomes an allocated chunk again. */
TA_INLINE void ta_quick_unflag(ta_heap *heap, ta_chunk *chunk)
{
    size_t size = ta_chunk_size(chunk);
    chunk->size_word &= ~TA_QUICK;
    ta_chunk_seal(heap, chunk);
    ta_account_quick(heap, size, -1);
    ta_account_chunk(heap, false, size, +1);
}

/* Files the allocated chunk `chunk` at the head of its quick list (the caller verified its
   successor's header and that the list takes it). */
TA_INLINE void ta_quick_file(ta_heap *heap, ta_chunk *chunk)
{
    size_t size = ta_chunk_size(chunk);
    ta_chunk **head = &heap->quick_head[size / 16];
    ta_link_set(heap, &chunk->word[TA_QUICK_NEXT], *head);
    ta_link_set(heap, &chunk->word[TA_QUICK_MIRROR], *head);
    chunk->size_word |= TA_QUICK;
    ta_chunk_seal(heap, chunk);
    *head = chunk;
    ta_account_chunk(heap, false, size, -1);
    ta_account_quick(heap, size, +1);
}

/* ---- the fast entries ---------------------------------------------------------------------
 * Each enters the heap as ta_heap_enter's common case does (the recursion guard is set, so a
 * signal handler that calls in meanwhile takes the full path and is refused) and leaves it
 * before it returns. */

/* Whether a fast entry of kind `kind` (TA_FAST_PLAIN, TA_FAST_HOOKED, TA_FAST_HELD), which
   the heap allows in `allowed` (its fast_malloc or fast_free), may run on `heap` now. */
TA_INLINE bool ta_quick_may_run(const ta_heap *heap, unsigned char allowed, int kind)
{
    return allowed == kind && ta_heap_is_alone(heap);
}

/* malloc(size) from its quick list: the payload, or NULL for "take the full path". `kind` is
   a constant, so the plain entries carry no hook: the hooked ones run the heap's table as
   take_quick and hand_out do. With canary the block's chunk has room for the canary, which
   is written for the request; with junk the head's junk is verified before it is taken (on
   damage nothing changes and the full path reports it). */
TA_INLINE void *ta_quick_malloc(ta_heap *heap, size_t size, int kind)
{
    const ta_hardening *h = &heap->hardening_table;
    bool is_hooked = kind == TA_FAST_HOOKED;
    size_t reserve = is_hooked ? h->reserve : 0; /* quick_max_chunk has room for it */
    if (!ta_quick_may_run(heap, heap->fast_malloc, kind) || size > TALLOC_QUICK_MAX_REQUEST)
        return NULL;
    size_t need = ta_chunk_size_for(size + reserve);
    if (heap->quick_head[need / 16] == NULL)
        return NULL;
    ta_heap_enter_alone(heap);
    ta_chunk *block = ta_quick_pop(heap, need, true);
    if (is_hooked && block != NULL && h->check_taken && h->check_taken(block, need) != NULL) {
        heap->quick_head[need / 16] = block; /* back as it was: the full path reports */
        block = NULL;
    }
    void *payload = NULL;
    if (__builtin_expect(block != NULL, 1)) {
        ta_quick_unflag(heap, block);
        if (is_hooked && h->seal_block)
            h->seal_block(heap, block, size);
        ta_count(heap, TALLOC_EVENT_QUICK_REUSED);
        heap->stats.alloc_total++;
        payload = ta_chunk_payload(block);
        ta_track_alloc(payload, size, need - TA_HEADER_SIZE, false);
    }
    ta_heap_leave(heap, TA_SINGLE_THREADED);
    return payload;
}

/* free(ptr) into its quick list: true when done, false for "take the full path". Hooked:
   the canary is verified first (on damage nothing changes), the freed bytes junk-filled
   after, as quick_free does. */
TA_INLINE bool ta_quick_free(ta_heap *heap, void *ptr, int kind)
{
    if (!ta_quick_may_run(heap, heap->fast_free, kind) ||
        ((uintptr_t)ptr & (TALLOC_ALIGNMENT - 1)) != 0 ||
        ta_arena_slotted(heap, ptr) == NULL) /* a standard arena: the lists take its blocks */
        return false;
    const ta_hardening *h = &heap->hardening_table;
    bool is_hooked = kind == TA_FAST_HOOKED;
    ta_chunk *chunk = ta_chunk_from_payload(ptr);
    ta_heap_enter_alone(heap);
    size_t size = ta_chunk_size(chunk), request;
    bool is_taken = ta_chunk_is_block(heap, chunk) && ta_quick_has_room(heap, size) &&
                    ta_chunk_is_sealed(heap, ta_chunk_next(chunk)) &&
                    (!is_hooked || h->check_block == NULL ||
                     h->check_block(heap, chunk, &request) == NULL);
    if (__builtin_expect(is_taken, 1)) {
        ta_quick_file(heap, chunk);
        ta_track_free(ptr, size - TA_HEADER_SIZE);
        if (is_hooked && h->fill_freed)
            h->fill_freed(chunk, chunk, ta_chunk_next(chunk));
        heap->stats.free_total++;
    }
    ta_heap_leave(heap, TA_SINGLE_THREADED);
    return is_taken;
}

/* free(ptr) on a heap with a quarantine: the block held back, the oldest held block filed in
   its quick list when the ring is full (ta_quarantine_hold_fast); true when done, false for
   "take the full path". Its canary is verified first, as free_path does. */
TA_INLINE bool ta_quick_free_held(ta_heap *heap, void *ptr)
{
    if (!ta_quick_may_run(heap, heap->fast_free, TA_FAST_HELD) ||
        ((uintptr_t)ptr & (TALLOC_ALIGNMENT - 1)) != 0 || ta_arena_slotted(heap, ptr) == NULL)
        return false;
    const ta_hardening *h = &heap->hardening_table;
    ta_chunk *chunk = ta_chunk_from_payload(ptr);
    ta_heap_enter_alone(heap);
    size_t request;
    bool is_held = ta_chunk_is_block(heap, chunk) &&
                   (h->check_block == NULL || h->check_block(heap, chunk, &request) == NULL) &&
                   ta_quarantine_hold_fast(heap, chunk);
    ta_heap_leave(heap, TA_SINGLE_THREADED);
    return is_held;
}

#endif /* TALLOC_QUICK_H */
