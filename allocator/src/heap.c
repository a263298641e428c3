/*
 * heap.c - the allocation paths of one heap, all run under the heap's lock: allocate (plain
 * and aligned), validate a user pointer, free, realloc. Faults found on the way are returned
 * in a ta_fault for the caller to report once the lock is released.
 */
#include <errno.h>
#include <string.h>

#include "enter.h"
#include "internal.h"
#include "track.h"

void TAlloc_config_init(TAlloc_config *config)
{
    *config = (TAlloc_config){
        .arena_size = TALLOC_DEFAULT_ARENA_SIZE,
        .retained_arena_count = 1,
        .policy = TALLOC_POLICY_SEGREGATED,
        .fork_rekey = 1,
        .large_cache = TALLOC_DEFAULT_LARGE_CACHE,
        .quick = TALLOC_DEFAULT_QUICK,
        .quarantine_bytes = TALLOC_DEFAULT_QUARANTINE_BYTES,
        .purge = TALLOC_DEFAULT_PURGE,
    };
}

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
    ta_heap_set_secret(heap, ta_os_random_secret());
    heap->index = ta_index_for_policy(heap->config.policy);
    if (heap->index->init)
        heap->index->init(heap);
    return pthread_mutex_init(&heap->lock, NULL) == 0;
}

/* The heaps this thread is inside (enter.h). */
_Thread_local ta_thread_state ta_thread;

/* A call that re-entered `heap` on this thread: reported (errno left as it was; the caller
   that fails says EDEADLK). */
__attribute__((noinline, cold)) static bool refuse_recursive(ta_heap *heap)
{
    ta_fault fault = {TALLOC_ERROR_RECURSIVE_CALL, heap};
    ta_report(heap, &fault);
    return false;
}

/* Enters `heap` on this thread: false (after reporting TALLOC_ERROR_RECURSIVE_CALL) when it
   is inside it already. */
static bool enter(ta_heap *heap)
{
    unsigned n = ta_thread.depth;
    for (unsigned i = 0; i < n && i < TA_MAX_NESTING; i++)
        if (ta_thread.inside[i] == heap)
            return refuse_recursive(heap);
    if (n < TA_MAX_NESTING)
        ta_thread.inside[n] = heap;
    atomic_signal_fence(memory_order_seq_cst);
    ta_thread.depth = n + 1;
    atomic_signal_fence(memory_order_seq_cst); /* entered before the lock is taken */
    return true;
}

static void entered(ta_heap *heap)
{
    ta_track_enter();
    if (heap->is_rekey_pending) {
        heap->is_rekey_pending = false;
        ta_heap_rekey(heap);
    }
}

bool ta_heap_lock(ta_heap *heap)
{
    if (!enter(heap)) {
        errno = EDEADLK;
        return false;
    }
    pthread_mutex_lock(&heap->lock);
    entered(heap);
    return true;
}

void ta_heap_unlock(ta_heap *heap)
{
    ta_heap_leave(heap, TA_LOCKED);
}

int ta_heap_enter_slow(ta_heap *heap)
{
    if (!enter(heap))
        return TA_NOT_ENTERED;
    int mode = TA_LOCKED;
    if (ta_is_single_threaded())
        mode = TA_SINGLE_THREADED;
    else
        pthread_mutex_lock(&heap->lock);
    entered(heap);
    return mode;
}

/* A new arena's chunk, carved: the block, and the gap and tail filed. NULL when no map is
   possible or the index is damaged (the fresh arena is then returned). */
ta_chunk *ta_heap_take_fresh(ta_heap *heap, size_t need, size_t search, size_t alignment,
                             const ta_hardening *h, bool *is_zeroed, ta_fault *fault)
{
    bool is_dedicated = false;
    ta_chunk *chunk = ta_arena_map(heap, search, &is_dedicated, is_zeroed);
    if (chunk == NULL)
        return NULL;
    if (h && h->fill_fresh)
        h->fill_fresh(chunk);
    ta_arena *arena = (ta_arena *)((char *)chunk - TA_ARENA_HEADER_SIZE);
    ta_arena_note_taken(heap, arena);
    if (!is_dedicated && heap->fresh_since_flush < SIZE_MAX - heap->arena_size)
        heap->fresh_since_flush += heap->arena_size;
    if (is_dedicated && h && h->is_guarded) /* the block ends where the guard begins */
        need = TA_TAKE_ALL;
    ta_index_begin(heap);
    ta_chunk *block = ta_chunk_take(heap, chunk, need, alignment, false, fault);
    if (block == NULL) {
        ta_arena_note_retained(heap, arena);
        ta_arena_unmap_new(heap, arena);
    }
    return block;
}

ta_chunk *ta_heap_take_filed(ta_heap *heap, ta_chunk *chunk, size_t need, size_t alignment,
                             ta_fault *fault)
{
    ta_arena *empty = (chunk->size_word & TA_FIRST) ? ta_arena_if_whole(heap, chunk) : NULL;
    if (empty)
        ta_arena_note_taken(heap, empty);
    ta_chunk *block = ta_chunk_take(heap, chunk, need, alignment, true, fault);
    if (block == NULL && empty)
        ta_arena_note_retained(heap, empty);
    return block;
}

/* Phase 1 and 2 of a remap: the free tail of the dedicated arena leaves the index and the
   block absorbs it (its pages move with the arena). False (nothing changed) on damage. */
static bool absorb_tail(ta_heap *heap, ta_chunk *chunk, ta_chunk *tail)
{
    ta_index_begin(heap);
    if (!ta_index_end(heap, (heap->index->begin || ta_index_verify(heap, tail)) &&
                                ta_index_remove(heap, tail)))
        return false;
    size_t size = ta_chunk_size(chunk), tail_size = ta_chunk_size(tail);
    ta_account_chunk(heap, true, tail_size, -1);
    ta_account_chunk(heap, false, size, -1);
    ta_chunk_unseal(tail);
    ta_chunk_write(heap, chunk, size + tail_size, chunk->size_word & TA_KEPT);
    ta_account_chunk(heap, false, size + tail_size, +1);
    ta_chunk_set_prev_free(heap, ta_chunk_next(chunk), false);
    return true;
}

/* The block fills the remapped arena; its tail is split off and filed when it can be a chunk
   (and the index takes it). */
static ta_chunk *fill_remapped(ta_heap *heap, ta_arena *arena, size_t need)
{
    ta_chunk *block = ta_arena_first_chunk(arena);
    size_t old_size = ta_chunk_size(block), size = arena->map_size - TA_ARENA_RESERVED;
    size_t rest = size - need;
    ta_chunk *tail = (ta_chunk *)((char *)block + need);
    ta_index_begin(heap);
    bool is_split = rest >= TA_MIN_CHUNK_SIZE &&
                    ta_index_end(heap, ta_index_verify_insert(heap, rest) &&
                                           ta_index_insert(heap, tail, rest));
    if (rest >= TA_MIN_CHUNK_SIZE && !is_split)
        ta_index_take_fault(heap); /* no report: the block just keeps the whole arena */
    ta_account_chunk(heap, false, old_size, -1);
    ta_chunk_write(heap, block, is_split ? need : size, TA_FIRST);
    ta_account_chunk(heap, false, ta_chunk_size(block), +1);
    if (is_split) {
        ta_chunk_write(heap, tail, rest, TA_FREE);
        ta_account_chunk(heap, true, rest, +1);
    }
    ta_chunk_set_prev_free(heap, ta_arena_fence(arena), is_split);
    return block;
}

/*
 * Grows the block `chunk` of the dedicated arena `arena` to `need` bytes by remapping the
 * arena, when the block is all it holds (but a free tail). Returns the block (it may have
 * moved), or NULL: not such a block, the OS layer cannot remap, or damage (`fault`).
 */
ta_chunk *ta_heap_remap(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, size_t need,
                        ta_fault *fault)
{
    if (!arena->is_dedicated || arena->guard_size || heap->config.os.remap == NULL ||
        ta_arena_first_chunk(arena) != chunk)
        return NULL;
    ta_chunk *next = ta_chunk_next(chunk), *fence = ta_arena_fence(arena);
    if (next != fence && (!ta_chunk_is_free(next) || ta_chunk_next(next) != fence))
        return NULL;
    size_t map_size = ta_align_up(need + TA_ARENA_RESERVED, heap->page_size);
    if (map_size <= arena->map_size)
        return NULL;
    if (next != fence && !absorb_tail(heap, chunk, next)) {
        *fault = ta_index_take_fault(heap);
        return NULL;
    }
    void *payload = ta_chunk_payload(chunk);
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE, kept = ta_track_valid(payload, usable);
    ta_track_free(payload, usable);
    ta_track_arena_unmap(arena, arena->map_size);
    ta_arena *moved = ta_arena_remap(heap, arena, map_size);
    ta_track_arena_map(moved ? moved : arena, moved ? map_size : arena->map_size);
    if (moved == NULL) {
        ta_track_moved(payload, kept, kept, usable);
        return NULL;
    }
    ta_chunk *block = fill_remapped(heap, moved, need);
    ta_track_moved(ta_chunk_payload(block), kept, kept, ta_chunk_size(block) - TA_HEADER_SIZE);
    return block;
}

void ta_heap_zero(ta_chunk *block, bool is_fresh)
{
    void *payload = ta_chunk_payload(block);
    size_t usable = ta_chunk_size(block) - TA_HEADER_SIZE;
    ta_track_open(payload, usable);
    if (is_fresh)
        ta_chunk_zero_fresh(block);
    else
        memset(payload, 0, usable);
}

/*
 * Walks the arena to explain why ptr - 16 is not a valid header: ptr lies inside a free
 * chunk (a stale pointer to a block that was freed and merged: `if_free`), inside an
 * allocated chunk (interior pointer), or the header there is damaged.
 */
__attribute__((noinline, cold)) static TAlloc_error classify_bad_header(const ta_heap *heap,
                                                                        const ta_arena *arena,
                                                                        const void *ptr,
                                                                        TAlloc_error if_free)
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

__attribute__((noinline, cold)) ta_chunk *ta_heap_invalid(ta_heap *heap, const ta_arena *arena,
                                                           const void *ptr, TAlloc_error if_free,
                                                           ta_fault *fault)
{
    TAlloc_error error;
    if (arena == NULL)
        error = ta_arena_was_recent_large(heap, ptr) ? if_free : TALLOC_ERROR_FOREIGN_POINTER;
    else if (((uintptr_t)ptr & (TALLOC_ALIGNMENT - 1)) != 0)
        error = TALLOC_ERROR_MISALIGNED_POINTER;
    else if (!ta_chunk_is_valid(heap, ta_chunk_from_payload(ptr)))
        error = classify_bad_header(heap, arena, ptr, if_free);
    else
        error = if_free;
    *fault = (ta_fault){error, ptr};
    return NULL;
}

/* After a free produced the free chunk `merged`: an arena left empty goes (its chunk is out of
   the index already) or stays retained. */
void ta_heap_settle_arena(ta_heap *heap, ta_arena *arena, ta_chunk *merged, bool is_arena_empty)
{
    if (is_arena_empty) {
        ta_arena_release(heap, arena);
        return;
    }
    if ((merged->size_word & TA_FIRST) && ta_arena_is_whole(arena, merged)) {
        ta_arena_note_retained(heap, arena);
        ta_count(heap, TALLOC_EVENT_ARENA_RETAINED);
    }
}

/* ---- purging ----------------------------------------------------------------------------
 * A free that leaves a free chunk of config.purge bytes or more, once as many bytes have been
 * freed into the index since the last purge, gives the whole pages inside that chunk back to
 * the OS layer; its header, index words and footer stay, and so does a quarter of the bound
 * after them, because blocks are taken from a free chunk's start: the next one does not
 * refault what was just given back. The budget keeps the calls to one per config.purge bytes
 * freed; the bound keeps them to chunks whose pages the program is unlikely to take again at
 * once (a growing block that keeps coming back to the same free space refaults the pages
 * each time they are purged under it). An emptied arena is not purged: it is retained to
 * serve the next blocks at once, as a large block freed and allocated again in a loop does;
 * the retain option bounds what stays mapped that way. */
void ta_heap_purge(ta_heap *heap, const ta_arena *arena, ta_chunk *merged, size_t freed)
{
    size_t bound = heap->config.purge, size = ta_chunk_size(merged);
    heap->dirty_bytes += freed;
    if (bound == 0 || size < bound || heap->dirty_bytes < bound || heap->config.os.purge == NULL ||
        ((merged->size_word & TA_FIRST) && ta_arena_is_whole(arena, merged)))
        return;
    heap->dirty_bytes = 0;
    uintptr_t start = ta_align_up((uintptr_t)merged + sizeof(ta_chunk) + bound / 4, heap->page_size);
    uintptr_t end = ((uintptr_t)merged + size - sizeof(uint64_t)) & ~(uintptr_t)(heap->page_size - 1);
    if (end > start && ta_os_purge(&heap->config.os, (void *)start, end - start))
        ta_count(heap, TALLOC_EVENT_PAGES_PURGED);
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
