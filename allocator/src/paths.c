/*
 * paths.c - the allocation paths the API runs under the heap's lock: allocate, free,
 * realloc, usable size.
 *
 * Each path is written once, as an inline function over a hardening table `h` (hardening.c),
 * and instantiated twice: with h == NULL, for heaps without hardening options, where the
 * compiler removes every hook and the path tests no option at all; and with the heap's
 * table. The ta_paths_* entry points choose by one test of heap->hardening; the plain
 * quick-list pop and push are inline in them.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "quick.h"
#include "track.h"

/* ---- quick lists (the list operations: quick.h) ---------------------------------------- */

/* Whether `c` may follow a chunk in the quick list of `size`: NULL (the end), or a quick
   chunk of that size whose header holds. */
static bool is_quick_link(const ta_heap *heap, const ta_chunk *c, size_t size)
{
    return c == NULL || (ta_index_is_plausible(heap, c) && ta_chunk_is_valid(heap, c) &&
                         (c->size_word & (TA_FREE | TA_HELD)) == TA_QUICK && ta_chunk_size(c) == size);
}

/* Why the head `c` of the quick list of `size`, which ta_quick_pop refused, fails: its header;
   or the header both link words name; or the word that names no quick chunk of its list (or
   names `c` itself). When both name other quick chunks of the list's size the damaged one
   cannot be told: the link word is blamed. */
__attribute__((noinline, cold)) static ta_fault quick_damage(const ta_heap *heap, ta_chunk *c,
                                                             size_t size)
{
    if (!ta_quick_is_head_whole(heap, c, size))
        return (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, c};
    ta_chunk *next = ta_link_get(heap, &c->word[TA_QUICK_NEXT]);
    ta_chunk *mirror = ta_link_get(heap, &c->word[TA_QUICK_MIRROR]);
    if (next == mirror && next != NULL && ta_index_is_plausible(heap, next) &&
        !ta_chunk_is_valid(heap, next))
        return (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, next};
    bool is_next_ok = next != c && is_quick_link(heap, next, size);
    bool is_mirror_damaged = next != mirror && is_next_ok &&
                             (mirror == c || !is_quick_link(heap, mirror, size));
    return (ta_fault){TALLOC_ERROR_CORRUPTED_FREE_LIST,
                      &c->word[is_mirror_damaged ? TA_QUICK_MIRROR : TA_QUICK_NEXT]};
}

/* The head of the quick list of chunk size `size` (not empty), taken out of it; NULL with
   `fault` set, and nothing changed, when its header, its link words or the header they name
   is damaged. The chunk stays flagged TA_QUICK and counted until the caller decides. */
TA_INLINE ta_chunk *quick_pop(ta_heap *heap, size_t size, ta_fault *fault)
{
    ta_chunk *chunk = ta_quick_pop(heap, size, false);
    if (chunk == NULL)
        *fault = quick_damage(heap, heap->quick_head[size / 16], size);
    return chunk;
}

/* Files the allocated chunk `chunk` at the head of its quick list (ta_quick_takes said yes)
   once its successor's header is verified (false with `fault` set, nothing changed): a free
   reads it whatever becomes of the block. */
TA_INLINE bool quick_push(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    ta_chunk *after = ta_chunk_next(chunk);
    if (!ta_chunk_is_sealed(heap, after)) {
        *fault = (ta_fault){TALLOC_ERROR_CORRUPTED_HEADER, after};
        return false;
    }
    ta_quick_file(heap, chunk);
    return true;
}

/* A free into the quick lists; `is_tracked` when the sanitizers already saw the block go. */
TA_INLINE bool quick_free(ta_heap *heap, ta_chunk *chunk, bool is_tracked, ta_fault *fault,
                          const ta_hardening *h)
{
    if (!quick_push(heap, chunk, fault))
        return false;
    if (!is_tracked)
        ta_track_free(ta_chunk_payload(chunk), ta_chunk_size(chunk) - TA_HEADER_SIZE);
    if (h && h->fill_freed)
        h->fill_freed(chunk, chunk, ta_chunk_next(chunk));
    heap->stats.free_total++;
    return true;
}

TA_INLINE bool release_path(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, bool is_tracked,
                            bool may_flush, ta_fault *fault, const ta_hardening *h);

/* Every quick chunk, the lists in ascending size and each from its head, freed into the free
   index as a free would. Its junk is verified first (a write after free is reported, the
   chunk freed all the same). Damage in a list stops the flush there; a chunk whose merge
   meets damage goes back to the head of its list. */
__attribute__((noinline)) static void flush_path(ta_heap *heap, ta_fault *fault,
                                                 const ta_hardening *h)
{
    heap->fresh_since_flush = 0;
    for (size_t c = 0; c < TA_QUICK_CLASSES; c++) {
        while (heap->quick_head[c] != NULL) {
            ta_chunk *chunk = quick_pop(heap, ta_quick_size(c), fault);
            if (chunk == NULL)
                return;
            ta_quick_unflag(heap, chunk);
            if (h && h->check_taken && fault->error == TALLOC_ERROR_NONE) {
                const void *damage = h->check_taken(chunk, ta_chunk_size(chunk));
                if (damage)
                    *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
            }
            ta_arena *arena = ta_arena_owner(heap, ta_chunk_payload(chunk));
            heap->stats.free_total--; /* counted when the program freed it */
            if (!release_path(heap, chunk, arena, true, false, fault, h)) {
                heap->stats.free_total++;
                ta_quick_file(heap, chunk);
                return;
            }
            ta_count(heap, TALLOC_EVENT_QUICK_FLUSHED);
        }
    }
}

/* ---- allocate -------------------------------------------------------------------------- */

/* Whether the fresh standard arenas since the last flush and one more reach the quick
   lists' bytes. */
TA_INLINE bool is_flush_due(const ta_heap *heap)
{
    size_t kept = heap->stats.quick_bytes;
    return kept <= heap->arena_size || heap->fresh_since_flush >= kept - heap->arena_size;
}

/* Whether taking from `chunk` (found in the index) flushes the lists first: it is the last
   chunk of its arena (the fence follows) and they hold a quarter of their bound or more. */
TA_INLINE bool is_tail_flush_due(const ta_heap *heap, const ta_chunk *chunk)
{
    return heap->stats.quick_count > 0 && heap->stats.quick_bytes >= heap->config.quick / 4 &&
           ta_chunk_size(ta_chunk_next(chunk)) == 0;
}

/* A block of `need` bytes from a free chunk of the index, or from a new arena when none is
   chosen and nothing was damaged; `*is_zeroed`: from zero-filled memory (a new mapping). NULL
   on refusal or damage. Before a standard arena is mapped, the quick lists are flushed and
   the index asked again, once the fresh standard arenas since the last flush, the one about
   to be mapped included, hold as many bytes as the lists: with arenas smaller than the lists
   (config.quick) a heap whose arenas fill quickly pays one flush per few maps, not one per
   map; with larger ones every map is preceded by a flush. And before a block is carved from
   the last chunk of an arena, whose end is most often memory never touched, the lists are
   flushed when they hold a quarter of their bound or more, so that a program whose sizes
   change reuses the memory it freed before it touches more (amortized: the lists must fill
   that much again before the next such flush). */
TA_INLINE ta_chunk *take_block(ta_heap *heap, size_t need, size_t search, size_t alignment,
                               const ta_hardening *h, bool *is_zeroed, ta_fault *fault)
{
    for (bool is_flushed = false;; is_flushed = true) {
        ta_index_begin(heap); /* one step: the find and the take */
        ta_chunk *chunk = ta_index_find(heap, search);
        if (chunk != NULL && !is_flushed && is_tail_flush_due(heap, chunk)) {
            ta_index_end(heap, false);
            flush_path(heap, fault, h);
            if (fault->error != TALLOC_ERROR_NONE && fault->error != TALLOC_ERROR_WRITE_AFTER_FREE)
                return NULL;
            continue;
        }
        if (chunk != NULL) {
            if (h && h->check_taken) { /* what it hands out, and the tail header it writes */
                const void *damage = h->check_taken(chunk, search);
                if (damage && fault->error == TALLOC_ERROR_NONE)
                    *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
            }
            return ta_heap_take_filed(heap, chunk, need, alignment, fault);
        }
        ta_index_end(heap, false);
        if (heap->index_fault.error != TALLOC_ERROR_NONE ||
            (fault->error != TALLOC_ERROR_NONE && fault->error != TALLOC_ERROR_WRITE_AFTER_FREE))
            return NULL;
        if (is_flushed || heap->stats.quick_count == 0 ||
            search > heap->arena_size - TA_ARENA_RESERVED || !is_flush_due(heap))
            return ta_heap_take_fresh(heap, need, search, alignment, h, is_zeroed, fault);
        flush_path(heap, fault, h);
        if (fault->error != TALLOC_ERROR_NONE && fault->error != TALLOC_ERROR_WRITE_AFTER_FREE)
            return NULL; /* the flush met damage: nothing is handed out */
    }
}

/* A block of the quick list of chunk size `need` (not empty), or NULL with `fault` set. */
TA_INLINE ta_chunk *take_quick(ta_heap *heap, size_t need, const ta_hardening *h, ta_fault *fault)
{
    ta_chunk *block = quick_pop(heap, need, fault);
    if (block == NULL)
        return NULL;
    ta_quick_unflag(heap, block);
    if (h && h->check_taken) {
        const void *damage = h->check_taken(block, need);
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    ta_count(heap, TALLOC_EVENT_QUICK_REUSED);
    return block;
}

/* What every allocation does with its block: zero it (calloc), seal its canary, tell the
   sanitizers, count it. */
TA_INLINE void *hand_out(ta_heap *heap, ta_chunk *block, size_t request, bool is_zeroed,
                         bool is_zeroed_memory, const ta_hardening *h)
{
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
    ta_chunk *block = need <= heap->quick_max_chunk && alignment == TALLOC_ALIGNMENT &&
                              heap->quick_head[need / 16] != NULL
                          ? take_quick(heap, need, h, fault)
                          : take_block(heap, need, search, alignment, h, &is_zeroed_memory, fault);
    if (block == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return hand_out(heap, block, request, is_zeroed, is_zeroed_memory, h);
}

/* ---- free -------------------------------------------------------------------------------- */

/* Frees and merges an allocated chunk; `is_tracked` when the sanitizers already saw it go.
   False when the free met damage (reported through `fault`): the chunk stays allocated. When
   `may_flush` and the merged chunk has TA_FLUSH_MERGED bytes or more, the quick lists are
   flushed after it: a program that frees big stretches of memory lets the blocks kept in
   them merge too, so that no arena stays mapped only because of them. */
TA_INLINE bool release_path(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, bool is_tracked,
                            bool may_flush, ta_fault *fault, const ta_hardening *h)
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
    if (!is_arena_empty && !(h && h->fill_freed)) /* junk must stay in the pages */
        ta_heap_purge(heap, arena, merged, usable + TA_HEADER_SIZE);
    bool is_flushed = may_flush && heap->stats.quick_count > 0 &&
                      ta_chunk_size(merged) >= TA_FLUSH_MERGED;
    ta_heap_settle_arena(heap, arena, merged, is_arena_empty);
    if (is_flushed)
        flush_path(heap, fault, h);
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
    if (ta_quick_takes(heap, chunk, arena))
        quick_free(heap, chunk, false, fault, h);
    else
        release_path(heap, chunk, arena, false, true, fault, h);
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
    ta_arena *arena = NULL;
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
    /* a remap that failed may have absorbed the arena's free tail into the block: its canary
       (the request, `kept`) moves to the chunk's new end */
    if (h && h->seal_block && ta_chunk_size(chunk) != usable + TA_HEADER_SIZE)
        h->seal_block(heap, chunk, kept);
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

/* Without hardening, the head of a quick list is taken inline; the rest is out of line. */
__attribute__((noinline)) static void *alloc_plain_path(ta_heap *heap, size_t size,
                                                        size_t alignment, bool is_zeroed,
                                                        ta_fault *fault)
{
    return alloc_path(heap, size, alignment, is_zeroed, fault, NULL);
}

__attribute__((noinline)) static void *alloc_hardened(ta_heap *heap, size_t size,
                                                      size_t alignment, bool is_zeroed,
                                                      ta_fault *fault)
{
    return alloc_path(heap, size, alignment, is_zeroed, fault, heap->hardening);
}

void *ta_paths_alloc(ta_heap *heap, size_t size, size_t alignment, bool is_zeroed, ta_fault *fault)
{
    if (__builtin_expect(heap->hardening != NULL, 0))
        return alloc_hardened(heap, size, alignment, is_zeroed, fault);
    if (size <= TALLOC_QUICK_MAX_REQUEST && alignment <= TALLOC_ALIGNMENT) {
        size_t need = ta_chunk_size_for(size);
        if (heap->quick_head[need / 16] != NULL) {
            ta_chunk *block = take_quick(heap, need, NULL, fault);
            if (block == NULL) {
                errno = ENOMEM;
                return NULL;
            }
            return hand_out(heap, block, size, is_zeroed, false, NULL);
        }
    }
    return alloc_plain_path(heap, size, alignment, is_zeroed, fault);
}

/* Without hardening, a free into a quick list is inline; the rest is out of line. */
__attribute__((noinline)) static void release_plain(ta_heap *heap, ta_chunk *chunk,
                                                    ta_arena *arena, ta_fault *fault)
{
    release_path(heap, chunk, arena, false, true, fault, NULL);
}

__attribute__((noinline)) static void free_hardened(ta_heap *heap, ta_chunk *chunk,
                                                    ta_arena *arena, ta_fault *fault)
{
    free_path(heap, chunk, arena, fault, heap->hardening);
}

void ta_paths_free(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault)
{
    if (__builtin_expect(heap->hardening != NULL, 0))
        free_hardened(heap, chunk, arena, fault);
    else if (ta_quick_takes(heap, chunk, arena))
        quick_free(heap, chunk, false, fault, NULL);
    else
        release_plain(heap, chunk, arena, fault);
}

void *ta_paths_realloc(ta_heap *heap, void *ptr, size_t size, ta_fault *fault)
{
    return heap->hardening ? realloc_path(heap, ptr, size, fault, heap->hardening)
                           : realloc_path(heap, ptr, size, fault, NULL);
}

size_t ta_paths_usable(ta_heap *heap, const void *ptr, ta_fault *fault)
{
    return heap->hardening ? usable_path(heap, ptr, fault, heap->hardening)
                           : usable_path(heap, ptr, fault, NULL);
}

void ta_paths_flush(ta_heap *heap, ta_fault *fault)
{
    if (heap->hardening)
        flush_path(heap, fault, heap->hardening);
    else
        flush_path(heap, fault, NULL);
}

/* The quarantine's way to free what it lets go (hardening.c): the whole path but the hold. */
static bool ta_paths_release(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    ta_arena *arena = ta_arena_owner(heap, ta_chunk_payload(chunk));
    if (ta_quick_takes(heap, chunk, arena))
        return quick_free(heap, chunk, true, fault, heap->hardening);
    return release_path(heap, chunk, arena, true, true, fault, heap->hardening);
}

bool ta_heap_setup(ta_heap *heap, const TAlloc_config *config)
{
    if (!ta_heap_init(heap, config))
        return false;
    ta_hardening_init(heap, ta_paths_release);
    heap->fresh_since_flush = SIZE_MAX;
    return true;
}

void ta_paths_release_quarantine(ta_heap *heap, ta_fault *fault)
{
    if (heap->hardening && heap->hardening->hold)
        ta_quarantine_release(heap, fault);
}
