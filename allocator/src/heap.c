/*
 * heap.c - the allocation paths of one heap, all run under the heap's lock: allocate (plain
 * and aligned), validate a user pointer, free, realloc. Faults found on the way are returned
 * in a ta_fault for the caller to report once the lock is released.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "track.h"

/* `heap` is zero-filled memory (a fresh metadata map, or static storage). The index's state,
   the largest part, is left as it is: zero, so only the pages the policy uses are touched. */
bool ta_heap_init(ta_heap *heap, const TAlloc_config *config)
{
    memset(heap, 0, offsetof(ta_heap, index_state));
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
    if (heap->index->init)
        heap->index->init(heap);
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

/* A new arena's chunk, filed, carved: see ta_heap_alloc. NULL when no map is possible or the
   index is damaged (the fresh arena is then returned). */
static ta_chunk *take_fresh(ta_heap *heap, size_t need, size_t search, size_t alignment,
                            ta_fault *fault)
{
    bool is_dedicated = false;
    ta_chunk *chunk = ta_arena_map(heap, search, &is_dedicated);
    if (chunk == NULL)
        return NULL;
    if (heap->config.junk)
        ta_junk_fresh(chunk);
    ta_arena_note_taken(heap, chunk);
    if (is_dedicated && heap->config.guard) /* the block ends where the guard begins */
        need = TA_TAKE_ALL;
    ta_chunk *block = ta_chunk_take(heap, chunk, need, alignment, false, fault);
    if (block == NULL) {
        ta_arena *arena = ta_arena_if_whole(heap, chunk);
        ta_arena_note_retained(heap, arena);
        ta_arena_unmap_new(heap, arena);
    }
    return block;
}

/* A free chunk of the index, taken: NULL when none fits or the index is damaged. */
static ta_chunk *take_filed(ta_heap *heap, size_t need, size_t search, size_t alignment,
                            ta_fault *fault)
{
    ta_chunk *chunk = ta_index_find(heap, search);
    if (chunk == NULL)
        return NULL;
    if (heap->config.junk) { /* what it hands out (and the tail header it writes) is junk */
        const void *damage = ta_junk_check_take(chunk, search);
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    bool was_empty = ta_arena_if_whole(heap, chunk) != NULL;
    ta_arena_note_taken(heap, chunk);
    ta_chunk *block = ta_chunk_take(heap, chunk, need, alignment, true, fault);
    if (block == NULL && was_empty)
        ta_arena_note_retained(heap, ta_arena_if_whole(heap, chunk));
    return block;
}

/*
 * Allocates `size` bytes aligned to `alignment` (a power of two). NULL with errno ENOMEM
 * when the size cannot be represented, the OS layer refuses memory, or the index met damage
 * (reported through `fault`).
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
    size_t need = ta_chunk_size_for(size);
    size_t search = alignment > TALLOC_ALIGNMENT ? need + alignment + TA_MIN_CHUNK_SIZE : need;
    bool is_fresh = false;
    ta_chunk *block = take_filed(heap, need, search, alignment, fault);
    if (block == NULL && heap->index_fault.error == TALLOC_ERROR_NONE &&
        fault->error == TALLOC_ERROR_NONE) {
        block = take_fresh(heap, need, search, alignment, fault);
        is_fresh = true;
    }
    if (block == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    void *payload = ta_chunk_payload(block);
    size_t usable = ta_chunk_size(block) - TA_HEADER_SIZE;
    if (is_zeroed) {
        ta_track_open(payload, usable);
        if (is_fresh && !heap->config.junk) /* else junk-filled, not zero */
            ta_chunk_zero_fresh(block);
        else
            memset(payload, 0, usable);
    }
    if (heap->config.canary)
        ta_canary_write(heap, block, request);
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
 * state - in that order, and before anything in the header is trusted. Returns the chunk (and
 * its arena in `*owner` when not NULL), or NULL with `fault` set (`if_free` is the error for
 * a chunk that is already free).
 */
ta_chunk *ta_heap_validate(ta_heap *heap, const void *ptr, TAlloc_error if_free, ta_arena **owner,
                           ta_fault *fault)
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
    if (error == TALLOC_ERROR_NONE) {
        if (owner)
            *owner = arena;
        return chunk;
    }
    *fault = (ta_fault){error, ptr};
    return NULL;
}

/* After a free produced the free chunk `merged`: an arena left empty goes (its chunk is out of
   the index already) or stays retained. */
static void settle_arena(ta_heap *heap, ta_arena *arena, ta_chunk *merged, bool is_arena_empty)
{
    if (is_arena_empty) {
        ta_arena_release(heap, arena);
        return;
    }
    if (ta_arena_is_whole(arena, merged)) {
        ta_arena_note_retained(heap, arena);
        ta_count(heap, TALLOC_EVENT_ARENA_RETAINED);
    }
}

/* Frees and merges an allocated chunk; `is_tracked` when the sanitizers already saw it go.
   False when the free met damage (reported through `fault`): the chunk stays allocated. */
static bool free_chunk(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault,
                       bool is_tracked)
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
    if (heap->config.junk && !is_arena_empty)
        ta_junk_freed(merged, chunk, chunk_end);
    heap->stats.free_total++;
    settle_arena(heap, arena, merged, is_arena_empty);
    return true;
}

void ta_heap_free_chunk(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault)
{
    free_chunk(heap, chunk, arena, fault, false);
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
    ta_arena *arena = ta_arena_find(heap, ta_chunk_payload(chunk));
    if (!free_chunk(heap, chunk, arena, &met, true)) {
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

void ta_heap_free_user(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault)
{
    size_t request;
    const void *damage;
    if (heap->config.canary && (damage = ta_canary_damage(heap, chunk, &request))) {
        *fault = (ta_fault){TALLOC_ERROR_CANARY_CORRUPTED, damage}; /* the block stays */
        return;
    }
    if (!quarantine(heap, chunk, fault))
        ta_heap_free_chunk(heap, chunk, arena, fault);
}

/* ---- trim -------------------------------------------------------------------------------- */

/* Unmaps every empty arena: the standard ones retained for reuse, and any a free kept because
   a damaged link stopped its chunk from leaving the index then. Returns how many. */
size_t ta_heap_trim_arenas(ta_heap *heap)
{
    size_t released = 0;
    uint64_t limit = heap->stats.map_count + 1;
    for (ta_arena *a = heap->arena_first, *next; a && limit-- > 0; a = next) {
        next = a->next;
        ta_chunk *chunk = ta_arena_first_chunk(a);
        if (!ta_chunk_is_valid(heap, chunk) || !ta_chunk_is_free(chunk) ||
            !ta_arena_is_whole(a, chunk))
            continue;
        ta_index_begin(heap);
        if (!ta_index_end(heap, ta_index_verify(heap, chunk) && ta_index_remove(heap, chunk)))
            continue; /* a damaged link stays noted for the call to report */
        if (!a->is_dedicated)
            heap->empty_arena_count--;
        ta_arena_release(heap, a);
        released++;
    }
    return released;
}

/* ---- realloc ------------------------------------------------------------------------------ */

/* realloc of a non-NULL pointer to a non-zero size. */
void *ta_heap_realloc(ta_heap *heap, void *ptr, size_t size, ta_fault *fault)
{
    ta_arena *arena;
    ta_chunk *chunk = ta_heap_validate(heap, ptr, TALLOC_ERROR_USE_AFTER_FREE, &arena, fault);
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
    ta_index_begin(heap);
    bool is_next_ok = !ta_chunk_is_free(next) || ta_index_verify(heap, next);
    ta_index_end(heap, false);
    if (!is_next_ok) {
        *fault = ta_index_take_fault(heap);
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
    size_t need = ta_chunk_size_for(heap->config.canary ? size + TA_CANARY_RESERVE : size);
    if (need <= ta_chunk_size(chunk)) {
        if (ta_chunk_shrink(heap, chunk, need) && heap->config.junk &&
            ta_chunk_size(chunk) < usable + TA_HEADER_SIZE)
            ta_junk_freed(ta_chunk_next(chunk), ta_chunk_next(chunk), (char *)ptr + usable);
        if (heap->config.canary)
            ta_canary_write(heap, chunk, size);
        ta_track_resize(ptr, usable, size);
        ta_count(heap, TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE);
        return ptr;
    }
    if (ta_chunk_is_free(next) && ta_chunk_size(chunk) + ta_chunk_size(next) >= need) {
        if (heap->config.junk && ta_chunk_is_sealed(heap, ta_chunk_next(next))) {
            const void *damage = ta_junk_check_take(next, need - ta_chunk_size(chunk));
            if (damage) /* reported; the memory is handed out all the same */
                *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
        }
        if (ta_chunk_grow(heap, chunk, need, fault)) {
            if (heap->config.canary)
                ta_canary_write(heap, chunk, size);
            ta_track_resize(ptr, ta_chunk_size(chunk) - TA_HEADER_SIZE, size);
            return ptr;
        }
        if (fault->error == TALLOC_ERROR_NONE)
            *fault = ta_index_take_fault(heap);
        if (fault->error != TALLOC_ERROR_NONE) {
            errno = EINVAL;
            return NULL;
        }
    }
    void *moved = ta_heap_alloc(heap, size, TALLOC_ALIGNMENT, false, fault);
    if (moved == NULL)
        return NULL;
    ta_track_resize(ptr, usable, kept); /* the old payload is copied */
    memcpy(moved, ptr, kept);
    ta_heap_free_user(heap, chunk, arena, fault);
    ta_count(heap, TALLOC_EVENT_REALLOC_MOVED);
    return moved;
}
