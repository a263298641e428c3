/*
 * heap.c - the allocation paths of one heap, all run under the heap's lock: allocate (plain
 * and aligned), validate a user pointer, free, realloc. Faults found on the way are returned
 * in a ta_fault for the caller to report once the lock is released.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "track.h"

bool ta_heap_init(ta_heap *heap, const TAlloc_config *config)
{
    *heap = (ta_heap){0};
    if (config)
        heap->config = *config;
    else
        TAlloc_config_init(&heap->config);
    if (heap->config.os.map == NULL || heap->config.os.unmap == NULL)
        heap->config.os = *TAlloc_os_default();
    heap->page_size = ta_os_page_size();
    size_t arena_size = heap->config.arena_size ? heap->config.arena_size : TALLOC_DEFAULT_ARENA_SIZE;
    if (arena_size < TA_ARENA_RESERVED + TA_MIN_CHUNK_SIZE)
        arena_size = TA_ARENA_RESERVED + TA_MIN_CHUNK_SIZE;
    if (arena_size > PTRDIFF_MAX / 2)
        return false;
    heap->arena_size = ta_align_up(arena_size, heap->page_size);
    while (((size_t)1 << heap->arena_shift) < heap->arena_size)
        heap->arena_shift++;
    ta_arena_registry_init(heap);
    heap->config.arena_size = heap->arena_size;
    heap->secret = ta_os_random_secret();
    heap->index = ta_index_for_policy(heap->config.policy);
    return pthread_mutex_init(&heap->lock, NULL) == 0;
}

/* Holding the lock is working on the heap's metadata, which the sanitizers must not blame
   on the allocator (track.h). */
/* The heaps this thread is inside, innermost last (a walk callback may use another heap).
   A heap is entered before its lock is taken and left after it is released, so a signal
   handler that interrupts the thread anywhere in between sees it. Initial-exec TLS in the
   malloc library: no allocation on a thread's first access. */
enum { MAX_NESTING = 4 };
static _Thread_local const ta_heap *inside[MAX_NESTING];
static _Thread_local unsigned depth;

bool ta_heap_lock(ta_heap *heap)
{
    unsigned n = depth;
    for (unsigned i = 0; i < n && i < MAX_NESTING; i++)
        if (inside[i] == heap) {
            ta_fault fault = {TALLOC_ERROR_RECURSIVE_CALL, heap};
            ta_report(heap, &fault);
            errno = EDEADLK;
            return false;
        }
    if (n < MAX_NESTING)
        inside[n] = heap;
    atomic_signal_fence(memory_order_seq_cst);
    depth = n + 1;
    atomic_signal_fence(memory_order_seq_cst); /* entered before the lock is taken */
    pthread_mutex_lock(&heap->lock);
    ta_track_enter();
    if (heap->is_rekey_pending) {
        heap->is_rekey_pending = false;
        ta_heap_rekey(heap);
    }
    return true;
}

void ta_heap_unlock(ta_heap *heap)
{
    ta_track_leave();
    pthread_mutex_unlock(&heap->lock);
    atomic_signal_fence(memory_order_seq_cst); /* left after the lock is released */
    depth--;
}

/* A free chunk of at least `chunk_size` bytes from the index or a new arena (`is_fresh`:
   zeros, or junk with config.junk), or NULL. */
static ta_chunk *find_or_map(ta_heap *heap, size_t chunk_size, bool *is_fresh, bool *is_whole,
                             ta_fault *fault)
{
    ta_chunk *chunk = heap->index->find(heap, chunk_size);
    if (heap->bad_link) { /* the search met a damaged link: the allocation fails */
        *fault = ta_take_bad_link(heap);
        return NULL;
    }
    if (chunk) {
        if (!ta_chunk_is_valid(heap, chunk) || !ta_chunk_is_free(chunk)) {
            *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_FREE_LIST, chunk};
            return NULL;
        }
        if (!ta_index_verify(heap, chunk)) {
            *fault = ta_take_bad_link(heap);
            return NULL;
        }
        /* taking the chunk may rewrite its successor's header: verify it first */
        if (!ta_chunk_is_sealed(heap, ta_chunk_next(chunk))) {
            *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, ta_chunk_next(chunk)};
            return NULL;
        }
        return chunk;
    }
    bool is_dedicated = false;
    chunk = ta_arena_map(heap, chunk_size, &is_dedicated);
    *is_fresh = chunk != NULL;
    *is_whole = is_dedicated && heap->config.guard;
    return chunk;
}

/* Splits the free chunk `chunk` so that the payload of its second part is aligned to
   `alignment`; the first part stays free. Returns the second part. */
static ta_chunk *split_leading_gap(ta_heap *heap, ta_chunk *chunk, size_t alignment)
{
    uintptr_t payload = (uintptr_t)ta_chunk_payload(chunk);
    size_t gap = ta_align_up(payload, alignment) - payload;
    if (gap == 0)
        return chunk;
    if (gap < TA_MIN_CHUNK_SIZE)
        gap += alignment;
    size_t size = ta_chunk_size(chunk);
    ta_chunk *rest = (ta_chunk *)((char *)chunk + gap);
    ta_chunk_write(heap, rest, size - gap, TA_FREE | TA_PREV_FREE);
    ta_chunk_write(heap, chunk, gap, TA_FREE | (chunk->size_word & TA_KEPT));
    ta_index_insert_after(heap, chunk, rest);
    heap->stats.free_count++;
    heap->stats.free_bytes -= TA_HEADER_SIZE;
    ta_count(heap, TALLOC_EVENT_ALIGNED_SPLIT);
    return rest;
}

/* Zeroes what a chunk from a freshly mapped arena may hold besides zeros: the free-chunk
   fields at its start and the footer at its end. */
static void zero_fresh(ta_chunk *chunk)
{
    size_t payload_size = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    char *payload = ta_chunk_payload(chunk);
    memset(payload, 0, TA_MIN_CHUNK_SIZE - TA_HEADER_SIZE);
    memset(payload + payload_size - 16, 0, 16);
}

/*
 * Allocates `size` bytes aligned to `alignment` (a power of two). NULL with errno ENOMEM
 * when the size cannot be represented or the OS layer refuses memory.
 */
void *ta_heap_alloc(ta_heap *heap, size_t size, size_t alignment, bool is_zeroed, ta_fault *fault)
{
    if (alignment < TALLOC_ALIGNMENT)
        alignment = TALLOC_ALIGNMENT;
    if (size > (size_t)PTRDIFF_MAX || alignment > (size_t)PTRDIFF_MAX / 4 ||
        size > (size_t)PTRDIFF_MAX - alignment - TA_MIN_CHUNK_SIZE - TA_HEADER_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t request = size;
    if (heap->config.canary)
        size += TA_CANARY_RESERVE;
    size_t chunk_size = ta_chunk_size_for(size);
    bool is_aligned = alignment > TALLOC_ALIGNMENT;
    size_t search_size = is_aligned ? chunk_size + alignment + TA_MIN_CHUNK_SIZE : chunk_size;
    bool is_fresh = false, is_whole = false;
    ta_chunk *chunk = find_or_map(heap, search_size, &is_fresh, &is_whole, fault);
    if (chunk == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (heap->config.junk && !is_fresh) { /* a new arena was junk-filled just now */
        const void *damage = ta_junk_check_take(chunk, search_size);
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    ta_arena_note_taken(heap, chunk);
    if (is_aligned)
        chunk = split_leading_gap(heap, chunk, alignment);
    if (is_whole) /* a guarded dedicated arena: the block ends where the guard begins */
        chunk_size = ta_chunk_size(chunk);
    chunk = ta_chunk_take(heap, chunk, chunk_size);
    void *payload = ta_chunk_payload(chunk);
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    if (is_zeroed) {
        ta_track_open(payload, usable);
        if (is_fresh && !heap->config.junk) /* else junk-filled, not zero */
            zero_fresh(chunk);
        else
            memset(payload, 0, usable);
    }
    if (heap->config.canary)
        ta_canary_write(heap, chunk, request);
    ta_track_alloc(payload, request, usable, is_zeroed);
    heap->stats.alloc_total++;
    return payload;
}

/*
 * Walks the arena to explain why ptr - 16 is not a valid header: ptr lies inside a free
 * chunk (a stale pointer to a block that was freed and merged: `if_free`), inside an
 * allocated chunk (interior pointer), or the header there is damaged.
 */
static TAlloc_error classify_bad_header(const ta_heap *heap, const ta_arena *arena,
                                        const void *ptr, TAlloc_error if_free)
{
    const char *p = ptr;
    const ta_chunk *fence = ta_arena_fence(arena);
    for (const ta_chunk *c = ta_arena_first_chunk(arena); c < fence; c = ta_chunk_next(c)) {
        size_t size = ta_chunk_size(c);
        if (!ta_chunk_is_valid(heap, c) || size > (size_t)((const char *)fence - (const char *)c))
            return TALLOC_ERROR_CORRUPTED_HEADER;
        if (p > (const char *)ta_chunk_payload(c) && p < (const char *)c + size)
            return ta_chunk_is_free(c) ? if_free : TALLOC_ERROR_INTERIOR_POINTER;
        if ((const char *)c >= p)
            break;
    }
    return TALLOC_ERROR_CORRUPTED_HEADER;
}

/*
 * The one validator for pointers users hand back: ownership, alignment, header integrity,
 * state - in that order, and before anything in the header is trusted. Returns the chunk, or
 * NULL with `fault` set (`if_free` is the error for a chunk that is already free).
 */
ta_chunk *ta_heap_validate(ta_heap *heap, const void *ptr, TAlloc_error if_free, ta_fault *fault)
{
    TAlloc_error error = TALLOC_ERROR_NONE;
    ta_arena *arena = ta_arena_find(heap, ptr);
    ta_chunk *chunk = NULL;
    if (arena == NULL)
        error = ta_arena_was_recent_large(heap, ptr) ? if_free : TALLOC_ERROR_FOREIGN_POINTER;
    else if (((uintptr_t)ptr & (TALLOC_ALIGNMENT - 1)) != 0)
        error = TALLOC_ERROR_MISALIGNED_POINTER;
    else if (!ta_chunk_is_valid(heap, chunk = ta_chunk_from_payload(ptr)))
        error = classify_bad_header(heap, arena, ptr, if_free);
    else if (ta_chunk_is_free(chunk) || (chunk->size_word & TA_QUARANTINED))
        error = if_free;
    if (error == TALLOC_ERROR_NONE)
        return chunk;
    *fault = (ta_fault){error, ptr};
    return NULL;
}

/* Frees and merges an allocated chunk; `is_tracked` when the sanitizers already saw it go. */
static void free_chunk(ta_heap *heap, ta_chunk *chunk, ta_fault *fault, bool is_tracked)
{
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    const char *chunk_end = (const char *)ta_chunk_next(chunk);
    ta_chunk *merged = ta_chunk_release(heap, chunk, fault);
    if (merged == NULL)
        return;
    if (!is_tracked)
        ta_track_free(ta_chunk_payload(chunk), usable);
    if (heap->config.junk)
        ta_junk_freed(merged, chunk, chunk_end);
    heap->stats.free_total++;
    ta_arena_on_free(heap, merged);
}

void ta_heap_free_chunk(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    free_chunk(heap, chunk, fault, false);
}

/* ---- free as the program calls it: canary, quarantine ----------------------------------- */

/*
 * Releases the oldest quarantined chunk; its junk must be intact. False when the free met
 * damage (reported through `fault`): the chunk then stays quarantined, untouched, and the
 * next release tries again.
 */
static bool evict_oldest(ta_heap *heap, ta_fault *fault)
{
    ta_chunk *chunk = heap->quarantine[heap->quarantine_head];
    if (heap->config.junk && fault->error == TALLOC_ERROR_NONE) {
        const void *damage = ta_junk_damage(ta_chunk_payload(chunk), ta_chunk_next(chunk));
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    uint64_t flags = chunk->size_word & TA_FLAG_MASK;
    ta_chunk_write(heap, chunk, ta_chunk_size(chunk), flags & TA_KEPT);
    ta_fault met = {TALLOC_ERROR_NONE, NULL};
    free_chunk(heap, chunk, &met, true);
    if (met.error != TALLOC_ERROR_NONE) {
        ta_chunk_write(heap, chunk, ta_chunk_size(chunk), flags);
        if (fault->error == TALLOC_ERROR_NONE)
            *fault = met;
        return false;
    }
    heap->quarantine_head = (heap->quarantine_head + 1) % heap->quarantine_capacity;
    heap->quarantine_count--;
    return true;
}

void ta_heap_release_quarantine(ta_heap *heap, ta_fault *fault)
{
    while (heap->quarantine_count > 0 && evict_oldest(heap, fault)) {
    }
}

/* Holds `chunk` back from reuse; false when there is no quarantine (or no room for one). */
static bool quarantine(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    if (heap->config.quarantine == 0)
        return false;
    if (heap->quarantine == NULL) {
        size_t bytes = ta_align_up(heap->config.quarantine * sizeof(ta_chunk *), heap->page_size);
        heap->quarantine = ta_os_map_metadata(&heap->config.os, bytes);
        if (heap->quarantine == NULL)
            return false;
        heap->quarantine_capacity = bytes / sizeof(ta_chunk *);
        if (heap->quarantine_capacity > heap->config.quarantine)
            heap->quarantine_capacity = heap->config.quarantine;
    }
    if (heap->quarantine_count == heap->quarantine_capacity && !evict_oldest(heap, fault))
        return true; /* the ring is stuck on damage (reported): `chunk` stays allocated */
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    ta_track_free(ta_chunk_payload(chunk), usable);
    if (heap->config.junk)
        ta_junk_fill(ta_chunk_payload(chunk), ta_chunk_next(chunk));
    ta_chunk_write(heap, chunk, ta_chunk_size(chunk), (chunk->size_word & TA_KEPT) | TA_QUARANTINED);
    size_t tail = (heap->quarantine_head + heap->quarantine_count) % heap->quarantine_capacity;
    heap->quarantine[tail] = chunk;
    heap->quarantine_count++;
    return true;
}

void ta_heap_free_user(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    size_t request;
    const void *damage;
    if (heap->config.canary && (damage = ta_canary_damage(heap, chunk, &request))) {
        *fault = (ta_fault){TALLOC_ERROR_CANARY_CORRUPTED, damage}; /* the block stays */
        return;
    }
    if (!quarantine(heap, chunk, fault))
        ta_heap_free_chunk(heap, chunk, fault);
}

/* Grows `chunk` in place into its free successor `next`; false when that is too small, or
   (with `fault` set) when the header after `next`, which absorbing it rewrites, is damaged. */
static bool grow_in_place(ta_heap *heap, ta_chunk *chunk, ta_chunk *next, size_t chunk_size,
                          ta_fault *fault)
{
    size_t size = ta_chunk_size(chunk);
    size_t next_size = ta_chunk_size(next);
    if (!ta_chunk_is_free(next) || size + next_size < chunk_size)
        return false;
    if (!ta_chunk_is_sealed(heap, ta_chunk_next(next))) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, ta_chunk_next(next)};
        return false;
    }
    if (heap->config.junk) {
        const void *damage = ta_junk_check_take(next, chunk_size - size);
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    size_t rest = size + next_size - chunk_size;
    size_t new_size = rest >= TA_MIN_CHUNK_SIZE ? chunk_size : size + next_size;
    heap->stats.free_count--;
    heap->stats.free_bytes -= next_size - TA_HEADER_SIZE;
    heap->stats.allocated_bytes += new_size - size;
    if (rest >= TA_MIN_CHUNK_SIZE) {
        /* the tail's header may land on next's links: move the links first */
        ta_chunk *tail = (ta_chunk *)((char *)chunk + new_size);
        ta_index_replace(heap, next, tail);
        ta_chunk_write(heap, tail, rest, TA_FREE);
        heap->stats.free_count++;
        heap->stats.free_bytes += rest - TA_HEADER_SIZE;
    } else {
        ta_index_remove(heap, next);
        ta_chunk_set_prev_free(heap, ta_chunk_next(next), false);
    }
    ta_chunk_unseal(next); /* inside the block now: no valid header may remain there */
    ta_chunk_write(heap, chunk, new_size, chunk->size_word & TA_KEPT);
    ta_count(heap, TALLOC_EVENT_REALLOC_GROW_IN_PLACE);
    return true;
}

/* realloc of a non-NULL pointer to a non-zero size. */
void *ta_heap_realloc(ta_heap *heap, void *ptr, size_t size, ta_fault *fault)
{
    ta_chunk *chunk = ta_heap_validate(heap, ptr, TALLOC_ERROR_USE_AFTER_FREE, fault);
    if (chunk == NULL) {
        errno = EINVAL;
        return NULL;
    }
    ta_chunk *next = ta_chunk_next(chunk);
    if (!ta_chunk_is_sealed(heap, next)) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, next};
        errno = EINVAL;
        return NULL;
    }
    if (ta_chunk_is_free(next) && !ta_index_verify(heap, next)) {
        *fault = ta_take_bad_link(heap);
        errno = EINVAL;
        return NULL;
    }
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    size_t kept = usable; /* the bytes a move copies */
    if (heap->config.canary) {
        const void *damage = ta_canary_damage(heap, chunk, &kept);
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
    size_t chunk_size = ta_chunk_size_for(heap->config.canary ? size + TA_CANARY_RESERVE : size);
    if (chunk_size <= ta_chunk_size(chunk)) {
        ta_chunk_shrink(heap, chunk, chunk_size);
        if (heap->config.canary)
            ta_canary_write(heap, chunk, size);
        ta_track_resize(ptr, usable, size);
        ta_count(heap, TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE);
        return ptr;
    }
    if (grow_in_place(heap, chunk, next, chunk_size, fault)) {
        if (heap->config.canary)
            ta_canary_write(heap, chunk, size);
        ta_track_resize(ptr, ta_chunk_size(chunk) - TA_HEADER_SIZE, size);
        return ptr;
    }
    if (fault->error != TALLOC_ERROR_NONE) {
        errno = EINVAL;
        return NULL;
    }
    void *moved = ta_heap_alloc(heap, size, TALLOC_ALIGNMENT, false, fault);
    if (moved == NULL)
        return NULL;
    ta_track_resize(ptr, usable, kept); /* the old payload is copied */
    memcpy(moved, ptr, kept);
    ta_heap_free_user(heap, chunk, fault);
    ta_count(heap, TALLOC_EVENT_REALLOC_MOVED);
    return moved;
}
