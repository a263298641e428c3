/*
 * free_index.c - where free chunks are kept and found. Both policies share one doubly linked
 * list of free chunks in ascending address order (the seed's structure); they differ only in
 * which chunk `find` returns. Keeps I5: every free chunk is in the list exactly once, in
 * address order, with next/prev links that agree.
 *
 * A new policy adds a ta_free_index_ops table; the chunk layer only calls insert, remove,
 * replace and find.
 */
#include "internal.h"

/* Links `chunk` in address order. O(free chunks). */
void ta_index_insert(ta_heap *heap, ta_chunk *chunk)
{
    ta_chunk *prev = NULL;
    ta_chunk *next = heap->free_head;
    while (next && next < chunk) {
        prev = next;
        next = next->next_free;
    }
    chunk->prev_free = prev;
    chunk->next_free = next;
    if (prev)
        prev->next_free = chunk;
    else
        heap->free_head = chunk;
    if (next)
        next->prev_free = chunk;
}

void ta_index_remove(ta_heap *heap, ta_chunk *chunk)
{
    if (chunk->prev_free)
        chunk->prev_free->next_free = chunk->next_free;
    else
        heap->free_head = chunk->next_free;
    if (chunk->next_free)
        chunk->next_free->prev_free = chunk->prev_free;
}

/* `new_chunk` takes the place of `old_chunk`; valid when no other free chunk lies between
   them, so address order is kept. O(1). */
void ta_index_replace(ta_heap *heap, ta_chunk *old_chunk, ta_chunk *new_chunk)
{
    new_chunk->prev_free = old_chunk->prev_free;
    new_chunk->next_free = old_chunk->next_free;
    if (new_chunk->prev_free)
        new_chunk->prev_free->next_free = new_chunk;
    else
        heap->free_head = new_chunk;
    if (new_chunk->next_free)
        new_chunk->next_free->prev_free = new_chunk;
}

static ta_chunk *find_first_fit(ta_heap *heap, size_t chunk_size)
{
    for (ta_chunk *c = heap->free_head; c; c = c->next_free)
        if (ta_chunk_size(c) >= chunk_size)
            return c;
    return NULL;
}

static ta_chunk *find_best_fit(ta_heap *heap, size_t chunk_size)
{
    ta_chunk *best = NULL;
    for (ta_chunk *c = heap->free_head; c; c = c->next_free) {
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
