/*
 * paths.c - the allocation paths the API runs under the heap's lock: allocate, free,
 * realloc, usable size.
 *
 * Each path is written once, as an inline function over a hardening table `h` (hardening.c),
 * and instantiated twice: with h == NULL, for heaps without hardening options, where the
 * compiler removes every hook and the path tests no option at all; and with the heap's
 * table. A heap picks its set of paths when it is created (ta_paths_for).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "track.h"

#define TA_INLINE static inline __attribute__((always_inline))

/* ---- allocate -------------------------------------------------------------------------- */

/* A block of `need` bytes from a free chunk of the index, or from a new arena when none is
   chosen and nothing was damaged; `*is_zeroed`: from zero-filled memory (a new mapping). NULL
   on refusal or damage. */
TA_INLINE ta_chunk *take_block(ta_heap *heap, size_t need, size_t search, size_t alignment,
                               const ta_hardening *h, bool *is_zeroed, ta_fault *fault)
{
    ta_index_begin(heap); /* one step: the find and the take */
    ta_chunk *chunk = ta_index_find(heap, search);
    if (chunk != NULL) {
        if (h && h->check_taken) { /* what it hands out, and the tail header it writes */
            const void *damage = h->check_taken(chunk, search);
            if (damage)
                *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
        }
        return ta_heap_take_filed(heap, chunk, need, alignment, fault);
    }
    ta_index_end(heap, false);
    if (heap->index_fault.error != TALLOC_ERROR_NONE || fault->error != TALLOC_ERROR_NONE)
        return NULL;
    return ta_heap_take_fresh(heap, need, search, alignment, h, is_zeroed, fault);
}

TA_INLINE void *alloc_path(ta_heap *heap, size_t size, size_t alignment, bool is_zeroed,
                           ta_fault *fault, const ta_hardening *h)
{
    if (alignment < TALLOC_ALIGNMENT)
        alignment = TALLOC_ALIGNMENT;
    if (size > (size_t)PTRDIFF_MAX || alignment > (size_t)PTRDIFF_MAX / 4 ||
        size > (size_t)PTRDIFF_MAX - alignment - TA_MIN_CHUNK_SIZE - TA_HEADER_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t request = size;
    if (h)
        size += h->reserve;
    size_t need = ta_chunk_size_for(size);
    size_t search = alignment > TALLOC_ALIGNMENT ? need + alignment + TA_MIN_CHUNK_SIZE : need;
    bool is_zeroed_memory = false;
    ta_chunk *block = take_block(heap, need, search, alignment, h, &is_zeroed_memory, fault);
    if (block == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    void *payload = ta_chunk_payload(block);
    size_t usable = ta_chunk_size(block) - TA_HEADER_SIZE;
    if (is_zeroed) /* a new mapping is zero, unless junk filled it */
        ta_heap_zero(block, is_zeroed_memory && !(h && h->fill_fresh));
    if (h && h->seal_block)
        h->seal_block(heap, block, request);
    ta_track_alloc(payload, request, usable, is_zeroed);
    heap->stats.alloc_total++;
    return payload;
}

/* ---- free -------------------------------------------------------------------------------- */

/* Frees and merges an allocated chunk; `is_tracked` when the sanitizers already saw it go.
   False when the free met damage (reported through `fault`): the chunk stays allocated. */
TA_INLINE bool release_path(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, bool is_tracked,
                            ta_fault *fault, const ta_hardening *h)
{
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    const char *chunk_end = (const char *)ta_chunk_next(chunk);
    bool is_arena_empty = false;
    ta_chunk *merged = ta_chunk_release(heap, chunk, arena, &is_arena_empty, fault);
    if (merged == NULL) {
        if (fault->error == TALLOC_ERROR_NONE)
            *fault = ta_index_take_fault(heap);
        return false;
    }
    if (!is_tracked)
        ta_track_free(ta_chunk_payload(chunk), usable);
    if (h && h->fill_freed && !is_arena_empty)
        h->fill_freed(merged, chunk, chunk_end);
    heap->stats.free_total++;
    ta_heap_settle_arena(heap, arena, merged, is_arena_empty);
    return true;
}

TA_INLINE void free_path(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault,
                         const ta_hardening *h)
{
    if (h && h->check_block) {
        size_t request;
        const void *damage = h->check_block(heap, chunk, &request);
        if (damage) {
            *fault = (ta_fault){TALLOC_ERROR_CANARY_CORRUPTED, damage}; /* the block stays */
            return;
        }
    }
    if (h && h->hold && h->hold(heap, chunk, fault))
        return;
    release_path(heap, chunk, arena, false, fault, h);
}

/* ---- realloc ------------------------------------------------------------------------------ */

/* The free successor `next` absorbed in place: its junk is checked first (reported, the
   memory handed out all the same). */
TA_INLINE bool grow_path(ta_heap *heap, ta_chunk *chunk, size_t need, ta_fault *fault,
                         const ta_hardening *h)
{
    ta_chunk *next = ta_chunk_next(chunk);
    if (!ta_chunk_is_free(next) || ta_chunk_size(chunk) + ta_chunk_size(next) < need)
        return false;
    if (h && h->check_taken && ta_chunk_is_sealed(heap, ta_chunk_next(next))) {
        const void *damage = h->check_taken(next, need - ta_chunk_size(chunk));
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    return ta_chunk_grow(heap, chunk, need, fault);
}

/* Whether the block's successor, which a resize in place may write, is whole. */
static bool is_successor_whole(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    ta_chunk *next = ta_chunk_next(chunk);
    if (!ta_chunk_is_sealed(heap, next)) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, next};
        return false;
    }
    if (!ta_chunk_is_free(next))
        return true;
    ta_index_begin(heap);
    bool is_whole = ta_index_verify(heap, next);
    ta_index_end(heap, false);
    if (!is_whole)
        *fault = ta_index_take_fault(heap);
    return is_whole;
}

/* realloc of a non-NULL pointer to a non-zero size. */
TA_INLINE void *realloc_path(ta_heap *heap, void *ptr, size_t size, ta_fault *fault,
                             const ta_hardening *h)
{
    ta_arena *arena;
    ta_chunk *chunk = ta_heap_validate(heap, ptr, TALLOC_ERROR_USE_AFTER_FREE, &arena, fault);
    if (chunk == NULL || !is_successor_whole(heap, chunk, fault)) {
        errno = EINVAL;
        return NULL;
    }
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    size_t kept = usable; /* the bytes a move copies */
    if (h && h->check_block) {
        const void *damage = h->check_block(heap, chunk, &kept);
        if (damage) {
            *fault = (ta_fault){TALLOC_ERROR_CANARY_CORRUPTED, damage};
            errno = EINVAL;
            return NULL;
        }
    }
    if (size > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t need = ta_chunk_size_for(size + (h ? h->reserve : 0));
    if (need <= ta_chunk_size(chunk)) {
        if (ta_chunk_shrink(heap, chunk, need) && h && h->fill_freed &&
            ta_chunk_size(chunk) < usable + TA_HEADER_SIZE)
            h->fill_freed(ta_chunk_next(chunk), ta_chunk_next(chunk), (char *)ptr + usable);
        if (h && h->seal_block)
            h->seal_block(heap, chunk, size);
        ta_track_resize(ptr, usable, size);
        ta_count(heap, TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE);
        return ptr;
    }
    if (grow_path(heap, chunk, need, fault, h)) {
        if (h && h->seal_block)
            h->seal_block(heap, chunk, size);
        ta_track_resize(ptr, ta_chunk_size(chunk) - TA_HEADER_SIZE, size);
        return ptr;
    }
    if (fault->error == TALLOC_ERROR_NONE)
        *fault = ta_index_take_fault(heap);
    if (fault->error != TALLOC_ERROR_NONE && fault->error != TALLOC_ERROR_WRITE_AFTER_FREE) {
        errno = EINVAL;
        return NULL;
    }
    /* (junk would have to fill the pages a remap adds, and a guard page cannot move) */
    bool can_remap = !(h && (h->is_guarded || h->fill_fresh));
    ta_chunk *remapped = can_remap ? ta_heap_remap(heap, chunk, arena, need, fault) : NULL;
    if (remapped) { /* a dedicated arena's one block: its pages moved, nothing copied */
        if (h && h->seal_block)
            h->seal_block(heap, remapped, size);
        ta_track_resize(ta_chunk_payload(remapped), ta_chunk_size(remapped) - TA_HEADER_SIZE, size);
        return ta_chunk_payload(remapped);
    }
    if (fault->error != TALLOC_ERROR_NONE && fault->error != TALLOC_ERROR_WRITE_AFTER_FREE) {
        errno = EINVAL;
        return NULL;
    }
    void *moved = alloc_path(heap, size, TALLOC_ALIGNMENT, false, fault, h);
    if (moved == NULL)
        return NULL;
    ta_track_resize(ptr, usable, kept); /* the old payload is copied */
    memcpy(moved, ptr, kept);
    free_path(heap, chunk, arena, fault, h);
    ta_count(heap, TALLOC_EVENT_REALLOC_MOVED);
    return moved;
}

/* ---- usable size ------------------------------------------------------------------------- */

TA_INLINE size_t usable_path(ta_heap *heap, const void *ptr, ta_fault *fault, const ta_hardening *h)
{
    ta_chunk *chunk = ta_heap_validate(heap, ptr, TALLOC_ERROR_USE_AFTER_FREE, NULL, fault);
    if (chunk == NULL)
        return 0;
    size_t size = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    if (h && h->check_block) {
        const void *damage = h->check_block(heap, chunk, &size);
        if (damage) {
            *fault = (ta_fault){TALLOC_ERROR_CANARY_CORRUPTED, damage};
            return 0;
        }
    }
    ta_track_resize(ptr, size, size); /* the caller may now use all of it */
    return size;
}

/* ---- the two sets ----------------------------------------------------------------------- */

static void *alloc_plain(ta_heap *heap, size_t size, size_t alignment, bool is_zeroed,
                         ta_fault *fault)
{
    return alloc_path(heap, size, alignment, is_zeroed, fault, NULL);
}

static void free_plain(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault)
{
    free_path(heap, chunk, arena, fault, NULL);
}

static void *realloc_plain(ta_heap *heap, void *ptr, size_t size, ta_fault *fault)
{
    return realloc_path(heap, ptr, size, fault, NULL);
}

static size_t usable_plain(ta_heap *heap, const void *ptr, ta_fault *fault)
{
    return usable_path(heap, ptr, fault, NULL);
}

static void *alloc_hardened(ta_heap *heap, size_t size, size_t alignment, bool is_zeroed,
                            ta_fault *fault)
{
    return alloc_path(heap, size, alignment, is_zeroed, fault, heap->hardening);
}

static void free_hardened(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault)
{
    free_path(heap, chunk, arena, fault, heap->hardening);
}

static void *realloc_hardened(ta_heap *heap, void *ptr, size_t size, ta_fault *fault)
{
    return realloc_path(heap, ptr, size, fault, heap->hardening);
}

static size_t usable_hardened(ta_heap *heap, const void *ptr, ta_fault *fault)
{
    return usable_path(heap, ptr, fault, heap->hardening);
}

/* The quarantine's way to free what it lets go (hardening.c): the whole path but the hold. */
static bool ta_paths_release(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    ta_arena *arena = ta_arena_find(heap, ta_chunk_payload(chunk));
    return release_path(heap, chunk, arena, true, fault, heap->hardening);
}

static const ta_paths plain_paths = {alloc_plain, free_plain, realloc_plain, usable_plain};
static const ta_paths hardened_paths = {alloc_hardened, free_hardened, realloc_hardened,
                                        usable_hardened};

bool ta_heap_setup(ta_heap *heap, const TAlloc_config *config)
{
    if (!ta_heap_init(heap, config))
        return false;
    ta_hardening_init(heap, ta_paths_release);
    heap->paths = heap->hardening ? &hardened_paths : &plain_paths;
    return true;
}

void ta_paths_release_quarantine(ta_heap *heap, ta_fault *fault)
{
    if (heap->hardening && heap->hardening->hold)
        ta_quarantine_release(heap, fault);
}
