/*
 * chunk.c - the surgery on chunks: taking a block out of a free chunk (splitting off the
 * tail, or the gap before an aligned block), freeing with merges, shrinking and growing in
 * place (layout and the header format: internal.h).
 *
 * Keeps I2 (every header sealed), I3 (footers and TA_PREV_FREE), I4 (a freed chunk merges with
 * each free neighbour) and the chunk counters of I6 (through ta_account_chunk). Each surgery
 * is one index step (ta_index_begin/end) in three phases: verify every header and index link
 * it will write through, file and unfile chunks in the index, then write the headers and
 * footers. Damage met in the first two phases ends the step with nothing written.
 */
#include <string.h>

#include "internal.h"

static ta_chunk *at_offset(const ta_chunk *chunk, size_t offset)
{
    return (ta_chunk *)((char *)chunk + offset);
}

/* The end of a step: commit when `ok`, else undo; returns `ok`. */
static bool end_step(ta_heap *heap, bool ok)
{
    return ta_index_end(heap, ok);
}

/* Phase 1 for a chunk the step will unfile or replace: an index that buffers its steps meets
   any damage in the op itself and undoes the step, so only one that writes at once (the
   segregated lists) verifies first. */
static bool verify_first(ta_heap *heap, ta_chunk *chunk)
{
    return heap->index->begin != NULL || ta_index_verify(heap, chunk);
}

/* ---- take -------------------------------------------------------------------------------- */

/* The gap before the first payload in `chunk` aligned to `alignment` that leaves room for a
   free chunk in front (0 when the payload is aligned already). */
static size_t leading_gap(const ta_chunk *chunk, size_t alignment)
{
    if (alignment <= TALLOC_ALIGNMENT)
        return 0;
    uintptr_t payload = (uintptr_t)ta_chunk_payload(chunk);
    size_t gap = ta_align_up(payload, alignment) - payload;
    return gap != 0 && gap < TA_MIN_CHUNK_SIZE ? gap + alignment : gap;
}

/* Phase 2 of take: the index's view. `size` is the free chunk's, `gap` bytes stay free before
   the block, `rest` after it (when a chunk fits there). */
static bool file_take(ta_heap *heap, ta_chunk *chunk, ta_chunk *block, size_t size, size_t gap,
                      size_t rest, bool is_filed)
{
    ta_chunk *tail = rest >= TA_MIN_CHUNK_SIZE ? at_offset(block, size - gap - rest) : NULL;
    if (!is_filed) /* a fresh arena's chunk: the gap and the tail are filed anew, both lists
                      verified before either is written (a gap filed before the tail's list
                      fails would stay in the index when the fresh arena is given back) */
        return (!gap || ta_index_verify_insert(heap, gap)) &&
               (!tail || ta_index_verify_insert(heap, rest)) &&
               (!gap || ta_index_insert(heap, chunk, gap)) &&
               (!tail || ta_index_insert(heap, tail, rest));
    if (!verify_first(heap, chunk))
        return false;
    if (gap) /* the gap keeps the free chunk's place; the tail is filed anew */
        return (tail == NULL || ta_index_verify_insert(heap, rest)) &&
               ta_index_verify_insert(heap, gap) && ta_index_replace(heap, chunk, chunk, gap) &&
               (tail == NULL || ta_index_insert(heap, tail, rest));
    if (tail)
        return ta_index_verify_insert(heap, rest) && ta_index_replace(heap, chunk, tail, rest);
    return ta_index_remove(heap, chunk);
}

ta_chunk *ta_chunk_take(ta_heap *heap, ta_chunk *chunk, size_t need, size_t alignment,
                        bool is_filed, ta_fault *fault)
{
    size_t size = ta_chunk_size(chunk);
    size_t gap = leading_gap(chunk, alignment);
    ta_chunk *block = at_offset(chunk, gap), *next = ta_chunk_next(chunk);
    if (need == TA_TAKE_ALL)
        need = size - gap;
    size_t rest = size - gap - need;
    if (!ta_chunk_is_sealed(heap, next)) { /* its prev-free flag may change */
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, next};
        ta_index_end(heap, false);
        return NULL;
    }
    if (!end_step(heap, file_take(heap, chunk, block, size, gap, rest, is_filed)))
        return NULL;
    uint64_t kept = chunk->size_word & TA_KEPT;
    ta_account_chunk(heap, true, size, -1);
    if (gap) {
        ta_chunk_write(heap, chunk, gap, TA_FREE | kept);
        ta_account_chunk(heap, true, gap, +1);
        kept = TA_PREV_FREE;
        ta_count(heap, TALLOC_EVENT_ALIGNED_SPLIT);
    }
    if (rest >= TA_MIN_CHUNK_SIZE) {
        ta_chunk_write(heap, at_offset(block, need), rest, TA_FREE);
        ta_account_chunk(heap, true, rest, +1);
        ta_chunk_write(heap, block, need, kept);
        ta_count(heap, TALLOC_EVENT_SPLIT);
    } else {
        ta_chunk_write(heap, block, need + rest, kept);
        ta_chunk_set_prev_free(heap, next, false);
        ta_count(heap, rest == 0 ? TALLOC_EVENT_EXACT_FIT : TALLOC_EVENT_NO_SPLIT);
    }
    ta_account_chunk(heap, false, ta_chunk_size(block), +1);
    return block;
}

/* ---- release ------------------------------------------------------------------------------ */

/* The free chunk before `chunk`, found through its footer and verified, or NULL. The tag is
   bounded by the arena before the header it names is read. */
static ta_chunk *free_predecessor(const ta_heap *heap, ta_chunk *chunk, const ta_arena *arena)
{
    uint64_t prev_size = *((uint64_t *)chunk - 1);
    if (prev_size < TA_MIN_CHUNK_SIZE || (prev_size & TA_FLAG_MASK) != 0 ||
        prev_size > (uint64_t)((char *)chunk - (char *)ta_arena_first_chunk(arena)))
        return NULL;
    ta_chunk *prev = (ta_chunk *)((char *)chunk - prev_size);
    if (!ta_chunk_is_valid(heap, prev) || !ta_chunk_is_free(prev) ||
        ta_chunk_size(prev) != prev_size)
        return NULL;
    return prev;
}

/* Phase 1 and 2 of a free: the merged chunk [first, first + total) replaces the free
   neighbours `prev` and `next` (either may be NULL) in the index, or, when `is_dropped`, leaves
   the index with them (its arena goes). */
static bool file_merge(ta_heap *heap, ta_chunk *first, size_t total, ta_chunk *prev,
                       ta_chunk *next, bool is_dropped)
{
    if ((prev && !verify_first(heap, prev)) || (next && !verify_first(heap, next)))
        return false;
    if (is_dropped)
        return (!prev || ta_index_remove(heap, prev)) && (!next || ta_index_remove(heap, next));
    if (!ta_index_verify_insert(heap, total))
        return false;
    if (prev && next)
        return ta_index_remove(heap, next) && ta_index_replace(heap, prev, prev, total);
    if (prev || next)
        return ta_index_replace(heap, prev ? prev : next, first, total);
    return ta_index_insert(heap, first, total);
}

ta_chunk *ta_chunk_release(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, bool *is_arena_empty,
                           ta_fault *fault)
{
    size_t size = ta_chunk_size(chunk);
    ta_chunk *next = ta_chunk_next(chunk), *prev = NULL;
    if (!ta_chunk_is_sealed(heap, next)) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, next};
        return NULL;
    }
    if (ta_chunk_is_prev_free(chunk) && (prev = free_predecessor(heap, chunk, arena)) == NULL) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, (uint64_t *)chunk - 1};
        return NULL;
    }
    ta_chunk *free_next = ta_chunk_is_free(next) ? next : NULL;
    ta_chunk *first = prev ? prev : chunk;
    size_t total = (prev ? ta_chunk_size(prev) : 0) + size + (free_next ? ta_chunk_size(next) : 0);
    bool is_whole = ta_arena_first_chunk(arena) == first &&
                    total == arena->map_size - TA_ARENA_RESERVED;
    *is_arena_empty = is_whole && ta_arena_is_released(heap, arena);
    ta_index_begin(heap);
    if (!end_step(heap, file_merge(heap, first, total, prev, free_next, *is_arena_empty)))
        return NULL;
    ta_account_chunk(heap, false, size, -1);
    if (prev)
        ta_account_chunk(heap, true, ta_chunk_size(prev), -1);
    if (free_next)
        ta_account_chunk(heap, true, ta_chunk_size(next), -1);
    ta_chunk *after = at_offset(first, total);
    ta_chunk_write(heap, first, total, TA_FREE | (first->size_word & TA_KEPT));
    ta_account_chunk(heap, true, total, +1);
    if (first != chunk)
        ta_chunk_unseal(chunk);
    if (free_next)
        ta_chunk_unseal(next);
    else
        ta_chunk_set_prev_free(heap, after, true);
    if (prev || free_next)
        ta_count(heap, prev && free_next ? TALLOC_EVENT_MERGE_BOTH
                       : prev            ? TALLOC_EVENT_MERGE_LEFT
                                         : TALLOC_EVENT_MERGE_RIGHT);
    return first;
}

/* ---- shrink and grow in place ------------------------------------------------------------- */

bool ta_chunk_shrink(ta_heap *heap, ta_chunk *chunk, size_t need)
{
    size_t size = ta_chunk_size(chunk);
    if (size - need < TA_MIN_CHUNK_SIZE)
        return true;
    ta_chunk *tail = at_offset(chunk, need), *next = ta_chunk_next(chunk);
    ta_chunk *free_next = ta_chunk_is_free(next) ? next : NULL;
    size_t total = size - need + (free_next ? ta_chunk_size(next) : 0);
    ta_index_begin(heap);
    bool ok = (!free_next || verify_first(heap, free_next)) &&
              ta_index_verify_insert(heap, total) &&
              (free_next ? ta_index_replace(heap, free_next, tail, total)
                         : ta_index_insert(heap, tail, total));
    if (!end_step(heap, ok))
        return false; /* the index is damaged (noted): the chunk keeps its size */
    ta_account_chunk(heap, false, size, -1);
    ta_chunk_write(heap, chunk, need, chunk->size_word & TA_KEPT);
    ta_account_chunk(heap, false, need, +1);
    if (free_next) {
        ta_account_chunk(heap, true, ta_chunk_size(next), -1);
        ta_chunk_unseal(next);
    } else {
        ta_chunk_set_prev_free(heap, next, true);
    }
    ta_chunk_write(heap, tail, total, TA_FREE);
    ta_account_chunk(heap, true, total, +1);
    return true;
}

bool ta_chunk_grow(ta_heap *heap, ta_chunk *chunk, size_t need, ta_fault *fault)
{
    size_t size = ta_chunk_size(chunk);
    ta_chunk *next = ta_chunk_next(chunk);
    size_t next_size = ta_chunk_size(next);
    if (!ta_chunk_is_free(next) || size + next_size < need)
        return false;
    ta_chunk *after = ta_chunk_next(next);
    if (!ta_chunk_is_sealed(heap, after)) { /* absorbing `next` rewrites it */
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, after};
        return false;
    }
    size_t rest = size + next_size - need;
    ta_chunk *tail = rest >= TA_MIN_CHUNK_SIZE ? at_offset(chunk, need) : NULL;
    ta_index_begin(heap);
    bool ok = verify_first(heap, next) &&
              (tail ? ta_index_verify_insert(heap, rest) && ta_index_replace(heap, next, tail, rest)
                    : ta_index_remove(heap, next));
    if (!end_step(heap, ok))
        return false;
    size_t new_size = tail ? need : size + next_size;
    ta_account_chunk(heap, true, next_size, -1);
    ta_account_chunk(heap, false, size, -1);
    ta_chunk_unseal(next); /* inside the block now: no valid header may remain there */
    if (tail) {
        ta_chunk_write(heap, tail, rest, TA_FREE);
        ta_account_chunk(heap, true, rest, +1);
    } else {
        ta_chunk_set_prev_free(heap, after, false);
    }
    ta_chunk_write(heap, chunk, new_size, chunk->size_word & TA_KEPT);
    ta_account_chunk(heap, false, new_size, +1);
    ta_count(heap, TALLOC_EVENT_REALLOC_GROW_IN_PLACE);
    return true;
}

void ta_chunk_zero_fresh(ta_chunk *chunk)
{
    size_t payload_size = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    char *payload = ta_chunk_payload(chunk);
    memset(payload, 0, TA_MIN_CHUNK_SIZE - TA_HEADER_SIZE);
    memset(payload + payload_size - 16, 0, 16);
}
