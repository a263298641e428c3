/*
 * chunk.c - chunk headers, boundary tags, split and merge (layout: internal.h).
 *
 * Keeps I2 (every header sealed), I3 (footers and TA_PREV_FREE), I4 (a freed chunk merges with
 * each free neighbour) and the chunk/byte counters of I6. The free index is told about every
 * free chunk that appears, disappears or changes place.
 */
#include "internal.h"

void ta_chunk_seal(const ta_heap *heap, ta_chunk *chunk)
{
    chunk->check = ta_chunk_check_value(heap->secret, chunk, chunk->size_word);
}

/* Invalidates a header that a merge has swallowed, so a stale pointer to it is recognised
   as pointing into a free chunk instead of being trusted. */
void ta_chunk_unseal(ta_chunk *chunk)
{
    chunk->size_word = 0;
    chunk->check = 0;
}

/* Chunk bytes for a request; the caller has rejected sizes above PTRDIFF_MAX. */
size_t ta_chunk_size_for(size_t request_size)
{
    size_t size = ta_align_up(request_size, TALLOC_ALIGNMENT) + TA_HEADER_SIZE;
    return size < TA_MIN_CHUNK_SIZE ? TA_MIN_CHUNK_SIZE : size;
}

/* Writes a whole header (and, for a free chunk, its footer). */
void ta_chunk_write(const ta_heap *heap, ta_chunk *chunk, size_t size, uint64_t flags)
{
    chunk->size_word = (uint64_t)size | flags;
    ta_chunk_seal(heap, chunk);
    if (flags & TA_FREE)
        *ta_chunk_footer(chunk) = (uint64_t)size;
}

void ta_chunk_set_prev_free(const ta_heap *heap, ta_chunk *chunk, bool is_prev_free)
{
    chunk->size_word = is_prev_free ? (chunk->size_word | TA_PREV_FREE)
                                    : (chunk->size_word & ~TA_PREV_FREE);
    ta_chunk_seal(heap, chunk);
}

static size_t payload_of(size_t chunk_size)
{
    return chunk_size - TA_HEADER_SIZE;
}

static void count_free(ta_heap *heap, size_t chunk_size, int sign)
{
    heap->stats.free_count += (size_t)sign;
    heap->stats.free_bytes += (size_t)sign * payload_of(chunk_size);
}

static void count_allocated(ta_heap *heap, size_t chunk_size, int sign)
{
    heap->stats.allocated_count += (size_t)sign;
    heap->stats.allocated_bytes += (size_t)sign * payload_of(chunk_size);
}

/*
 * Turns the free chunk `chunk` (in the index, at least `chunk_size` bytes) into an allocated
 * chunk of `chunk_size` bytes, leaving the tail free when it can hold a minimum chunk.
 */
ta_chunk *ta_chunk_take(ta_heap *heap, ta_chunk *chunk, size_t chunk_size)
{
    size_t size = ta_chunk_size(chunk);
    size_t rest = size - chunk_size;
    uint64_t prev_flag = chunk->size_word & TA_KEPT;
    count_free(heap, size, -1);
    if (rest >= TA_MIN_CHUNK_SIZE) {
        ta_chunk *tail = (ta_chunk *)((char *)chunk + chunk_size);
        ta_chunk_write(heap, tail, rest, TA_FREE);
        ta_index_replace(heap, chunk, tail);
        ta_chunk_write(heap, chunk, chunk_size, prev_flag);
        count_free(heap, rest, +1);
        ta_count(heap, TALLOC_EVENT_SPLIT);
    } else {
        ta_index_remove(heap, chunk);
        ta_chunk_write(heap, chunk, size, prev_flag);
        ta_chunk_set_prev_free(heap, ta_chunk_next(chunk), false);
        ta_count(heap, rest == 0 ? TALLOC_EVENT_EXACT_FIT : TALLOC_EVENT_NO_SPLIT);
    }
    count_allocated(heap, ta_chunk_size(chunk), +1);
    return chunk;
}

/* The free chunk before `chunk`, found through its footer and verified, or NULL. */
static ta_chunk *free_predecessor(const ta_heap *heap, ta_chunk *chunk)
{
    uint64_t prev_size = *((uint64_t *)chunk - 1);
    if (prev_size < TA_MIN_CHUNK_SIZE || (prev_size & TA_FLAG_MASK) != 0)
        return NULL;
    /* the tag is bounded by the arena before the header it names is read */
    const ta_arena *arena = ta_arena_find(heap, ta_chunk_payload(chunk));
    if (arena == NULL ||
        prev_size > (uint64_t)((char *)chunk - (char *)ta_arena_first_chunk(arena)))
        return NULL;
    ta_chunk *prev = (ta_chunk *)((char *)chunk - prev_size);
    if (!ta_chunk_is_valid(heap, prev) || !ta_chunk_is_free(prev) ||
        ta_chunk_size(prev) != prev_size)
        return NULL;
    return prev;
}

/* `slot`: where `chunk` joins the list when it merges with neither neighbour. */
static ta_chunk *merge(ta_heap *heap, ta_chunk *chunk, ta_chunk *prev, ta_chunk *next,
                       const ta_slot *slot)
{
    size_t size = ta_chunk_size(chunk);
    bool is_next_free = ta_chunk_is_free(next);
    if (prev && is_next_free) {
        size_t total = ta_chunk_size(prev) + size + ta_chunk_size(next);
        count_free(heap, ta_chunk_size(prev), -1);
        count_free(heap, ta_chunk_size(next), -1);
        ta_index_remove(heap, next);
        ta_chunk_write(heap, prev, total, TA_FREE | (prev->size_word & TA_FIRST));
        ta_chunk_unseal(chunk);
        ta_chunk_unseal(next);
        count_free(heap, total, +1);
        ta_count(heap, TALLOC_EVENT_MERGE_BOTH);
        return prev;
    }
    if (prev) {
        size_t total = ta_chunk_size(prev) + size;
        count_free(heap, ta_chunk_size(prev), -1);
        ta_chunk_write(heap, prev, total, TA_FREE | (prev->size_word & TA_FIRST));
        ta_chunk_unseal(chunk);
        count_free(heap, total, +1);
        ta_chunk_set_prev_free(heap, next, true);
        ta_count(heap, TALLOC_EVENT_MERGE_LEFT);
        return prev;
    }
    uint64_t prev_flag = chunk->size_word & TA_KEPT;
    if (is_next_free) {
        size_t total = size + ta_chunk_size(next);
        count_free(heap, ta_chunk_size(next), -1);
        ta_chunk_write(heap, chunk, total, TA_FREE | prev_flag);
        ta_index_replace(heap, next, chunk);
        ta_chunk_unseal(next);
        count_free(heap, total, +1);
        ta_count(heap, TALLOC_EVENT_MERGE_RIGHT);
        return chunk;
    }
    ta_chunk_write(heap, chunk, size, TA_FREE | prev_flag);
    ta_index_link(heap, chunk, slot);
    count_free(heap, size, +1);
    ta_chunk_set_prev_free(heap, next, true);
    return chunk;
}

/*
 * Frees the allocated chunk `chunk` and merges it with its free neighbours, after verifying
 * the neighbours' headers. Returns the resulting free chunk, or NULL with `fault` set when a
 * neighbour is damaged (the chunk is then left allocated and untouched).
 */
ta_chunk *ta_chunk_release(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    ta_chunk *next = ta_chunk_next(chunk);
    ta_chunk *prev = NULL;
    if (!ta_chunk_is_sealed(heap, next)) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, next};
        return NULL;
    }
    if (ta_chunk_is_prev_free(chunk) && (prev = free_predecessor(heap, chunk)) == NULL) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, (uint64_t *)chunk - 1};
        return NULL;
    }
    ta_slot slot = {NULL, NULL};
    if (ta_chunk_is_free(next) ? !ta_index_verify(heap, next)
                               : prev == NULL && !ta_index_locate(heap, chunk, next, &slot)) {
        *fault = ta_take_bad_link(heap);
        return NULL;
    }
    count_allocated(heap, ta_chunk_size(chunk), -1);
    return merge(heap, chunk, prev, next, &slot);
}

/*
 * Shrinks the allocated chunk `chunk` to `chunk_size` bytes when the tail can hold a chunk;
 * the tail is freed (and merges with a free successor).
 */
void ta_chunk_shrink(ta_heap *heap, ta_chunk *chunk, size_t chunk_size)
{
    size_t size = ta_chunk_size(chunk);
    if (size - chunk_size < TA_MIN_CHUNK_SIZE)
        return;
    ta_chunk *tail = (ta_chunk *)((char *)chunk + chunk_size);
    ta_chunk *next = ta_chunk_next(chunk);
    ta_slot slot = {NULL, NULL};
    if (!ta_chunk_is_free(next) && !ta_index_locate(heap, tail, next, &slot))
        return; /* the list is damaged (noted): the chunk keeps its size */
    count_allocated(heap, size, -1);
    ta_chunk_write(heap, chunk, chunk_size, chunk->size_word & TA_KEPT);
    count_allocated(heap, chunk_size, +1);
    ta_chunk_write(heap, tail, size - chunk_size, 0);
    count_allocated(heap, size - chunk_size, +1);
    count_allocated(heap, ta_chunk_size(tail), -1);
    ta_chunk *merged = merge(heap, tail, NULL, next, &slot);
    if (heap->config.junk)
        ta_junk_freed(merged, tail, (char *)chunk + size);
}
