/*
 * api.c - the public entry points: argument rules of the C allocation family, taking the
 * heap's lock around the paths in heap.c, and reporting faults once the lock is released.
 * The TAlloc_* calls are the TAlloc_heap_* calls on the default heap.
 */
#include <errno.h>
#include <string.h>

#include "enter.h"
#include "internal.h"
#include "quick.h"
#include "track.h"

TAlloc_heap *TAlloc_heap_create(const TAlloc_config *config)
{
    TAlloc_config defaults;
    if (config == NULL) {
        TAlloc_config_init(&defaults);
        config = &defaults;
    }
    TAlloc_os os = config->os.map && config->os.unmap ? config->os : *TAlloc_os_default();
    size_t control_size = ta_align_up(sizeof(ta_heap), ta_os_page_size());
    ta_heap *heap = ta_os_map_metadata(&os, control_size);
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (!ta_heap_setup(heap, config)) {
        ta_os_unmap_metadata(&os, heap, control_size);
        errno = EINVAL;
        return NULL;
    }
    heap->control_size = control_size;
    ta_registry_add(heap);
    return heap;
}

/* Walk visitor of destroy: a block still allocated dies with its heap. */
static int forget_block(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)ctx;
    (void)arena;
    if (chunk && !chunk->is_free && !chunk->is_quick)
        ta_track_free(chunk->payload, chunk->size);
    return 0;
}

void TAlloc_heap_destroy(TAlloc_heap *heap)
{
    if (heap == NULL || heap->is_default)
        return;
    int saved = errno;
    ta_registry_remove(heap);
    TAlloc_os os = heap->config.os;
    ta_track_enter();
    if (ta_track_wants_destroy_walk())
        ta_walk_locked(heap, forget_block, NULL);
    for (ta_arena *a = heap->arena_first, *next; a; a = next) {
        next = a->next;
        ta_arena_unmap_memory(heap, a);
    }
    ta_large_trim(heap);
    ta_track_leave();
    ta_arena_registry_free(heap);
    if (heap->quarantine)
        ta_os_unmap_metadata(&os, heap->quarantine,
                             ta_align_up(heap->config.quarantine * sizeof(ta_chunk *), heap->page_size));
    pthread_mutex_destroy(&heap->lock);
    ta_os_unmap_metadata(&os, heap, heap->control_size);
    errno = saved;
}

/* Ends a call that may have met the free index: damage it met becomes the call's report
   (unless an earlier fault is reported already), then the lock is released. */
static void leave_noting_index(ta_heap *heap, int mode, ta_fault *fault)
{
    if (heap->index_fault.error != TALLOC_ERROR_NONE) {
        ta_fault met = ta_index_take_fault(heap);
        if (fault->error == TALLOC_ERROR_NONE)
            *fault = met;
    }
    ta_heap_leave(heap, mode);
}

static void unlock_noting_links(ta_heap *heap, ta_fault *fault)
{
    ta_fault met = ta_index_take_fault(heap);
    if (met.error != TALLOC_ERROR_NONE && fault->error == TALLOC_ERROR_NONE)
        *fault = met;
    ta_heap_unlock(heap);
}

static void report_if(ta_heap *heap, const ta_fault *fault)
{
    if (fault->error != TALLOC_ERROR_NONE)
        ta_report(heap, fault);
}

__attribute__((noinline)) static void *locked_alloc(TAlloc_heap *heap, size_t size,
                                                   size_t alignment, bool is_zeroed)
{
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    int mode = ta_heap_enter(heap);
    if (mode == TA_NOT_ENTERED) {
        errno = EDEADLK;
        return NULL;
    }
    void *p = ta_paths_alloc(heap, size, alignment, is_zeroed, &fault);
    leave_noting_index(heap, mode, &fault);
    report_if(heap, &fault);
    return p;
}

/* A malloc that the plain fast entry did not serve: the hooked one (canary, junk), else the
   full path. */
__attribute__((noinline)) static void *malloc_slow(TAlloc_heap *heap, size_t size)
{
    void *p = ta_quick_malloc(heap, size, TA_FAST_HOOKED);
    if (p != NULL)
        return p;
    return locked_alloc(heap, size, TALLOC_ALIGNMENT, false);
}

void *TAlloc_heap_malloc(TAlloc_heap *heap, size_t size)
{
    void *p = ta_quick_malloc(heap, size, TA_FAST_PLAIN); /* the common case whole (quick.h) */
    if (__builtin_expect(p != NULL, 1))
        return p;
    return malloc_slow(heap, size);
}

void *TAlloc_heap_calloc(TAlloc_heap *heap, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return locked_alloc(heap, total, TALLOC_ALIGNMENT, true);
}

static bool is_power_of_two(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

void *TAlloc_heap_aligned_alloc(TAlloc_heap *heap, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return locked_alloc(heap, size, alignment, false);
}

int TAlloc_heap_posix_memalign(TAlloc_heap *heap, void **out, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = locked_alloc(heap, size, alignment, false);
    int error = errno;
    errno = saved;
    if (p == NULL)
        return error == ENOMEM ? ENOMEM : error;
    *out = p;
    return 0;
}

__attribute__((noinline)) static void locked_free(TAlloc_heap *heap, void *ptr)
{
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    int mode = ta_heap_enter(heap);
    if (mode == TA_NOT_ENTERED)
        return;
    ta_arena *arena = NULL;
    ta_chunk *chunk = ta_heap_validate(heap, ptr, TALLOC_ERROR_DOUBLE_FREE, &arena, &fault);
    if (chunk)
        ta_paths_free(heap, chunk, arena, &fault);
    leave_noting_index(heap, mode, &fault);
    report_if(heap, &fault); /* a free leaves errno alone: ta_report keeps it */
}

/* A free that the plain fast entry did not take: the hooked one or the quarantine's, else the
   full path. */
__attribute__((noinline)) static void free_slow(TAlloc_heap *heap, void *ptr)
{
    if (!ta_quick_free(heap, ptr, TA_FAST_HOOKED) && !ta_quick_free_held(heap, ptr))
        locked_free(heap, ptr);
}

void TAlloc_heap_free(TAlloc_heap *heap, void *ptr)
{
    if (ptr == NULL || ta_quick_free(heap, ptr, TA_FAST_PLAIN)) /* the common case (quick.h) */
        return;
    free_slow(heap, ptr);
}

void *TAlloc_heap_realloc(TAlloc_heap *heap, void *ptr, size_t size)
{
    if (ptr == NULL)
        return TAlloc_heap_malloc(heap, size);
    if (size == 0) {
        TAlloc_heap_free(heap, ptr);
        return NULL;
    }
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    int mode = ta_heap_enter(heap);
    if (mode == TA_NOT_ENTERED) {
        errno = EDEADLK;
        return NULL;
    }
    void *p = ta_paths_realloc(heap, ptr, size, &fault);
    leave_noting_index(heap, mode, &fault);
    report_if(heap, &fault);
    return p;
}

size_t TAlloc_heap_usable_size(TAlloc_heap *heap, const void *ptr)
{
    if (ptr == NULL)
        return 0;
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    int mode = ta_heap_enter(heap);
    if (mode == TA_NOT_ENTERED) {
        errno = EDEADLK;
        return 0;
    }
    size_t size = ta_paths_usable(heap, ptr, &fault);
    ta_heap_leave(heap, mode);
    report_if(heap, &fault);
    return size;
}

void TAlloc_heap_get_stats(TAlloc_heap *heap, TAlloc_stats *out)
{
    if (!ta_heap_lock(heap)) {
        *out = (TAlloc_stats){0};
        return;
    }
    *out = heap->stats;
    ta_heap_unlock(heap);
}

size_t TAlloc_heap_trim(TAlloc_heap *heap)
{
    int saved = errno;
    if (!ta_heap_lock(heap))
        return 0;
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    ta_paths_release_quarantine(heap, &fault);
    if (fault.error == TALLOC_ERROR_NONE)
        ta_paths_flush(heap, &fault);
    size_t released = ta_heap_trim_arenas(heap) + ta_large_trim(heap);
    unlock_noting_links(heap, &fault);
    report_if(heap, &fault);
    errno = saved;
    return released;
}

void TAlloc_heap_flush(TAlloc_heap *heap)
{
    int saved = errno;
    if (!ta_heap_lock(heap))
        return;
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    ta_paths_flush(heap, &fault);
    unlock_noting_links(heap, &fault);
    report_if(heap, &fault);
    errno = saved;
}

void TAlloc_flush(void)
{
    TAlloc_heap_flush(ta_default_heap());
}

void TAlloc_heap_release_quarantine(TAlloc_heap *heap)
{
    int saved = errno;
    if (!ta_heap_lock(heap))
        return;
    ta_fault fault = {TALLOC_ERROR_NONE, NULL};
    ta_paths_release_quarantine(heap, &fault);
    unlock_noting_links(heap, &fault);
    report_if(heap, &fault);
    errno = saved;
}

void TAlloc_release_quarantine(void)
{
    TAlloc_heap_release_quarantine(ta_default_heap());
}

size_t TAlloc_trim(void)
{
    return TAlloc_heap_trim(ta_default_heap());
}

static const char *const event_names[TALLOC_EVENT_COUNT] = {
    [TALLOC_EVENT_EXACT_FIT] = "exact_fit",
    [TALLOC_EVENT_SPLIT] = "split",
    [TALLOC_EVENT_NO_SPLIT] = "no_split",
    [TALLOC_EVENT_MERGE_LEFT] = "merge_left",
    [TALLOC_EVENT_MERGE_RIGHT] = "merge_right",
    [TALLOC_EVENT_MERGE_BOTH] = "merge_both",
    [TALLOC_EVENT_NEW_ARENA] = "new_arena",
    [TALLOC_EVENT_DEDICATED_ARENA] = "dedicated_arena",
    [TALLOC_EVENT_ARENA_RELEASED] = "arena_released",
    [TALLOC_EVENT_ARENA_RETAINED] = "arena_retained",
    [TALLOC_EVENT_REALLOC_GROW_IN_PLACE] = "realloc_grow_in_place",
    [TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE] = "realloc_shrink_in_place",
    [TALLOC_EVENT_REALLOC_MOVED] = "realloc_moved",
    [TALLOC_EVENT_ALIGNED_SPLIT] = "aligned_split",
    [TALLOC_EVENT_MAP_FAILED] = "map_failed",
    [TALLOC_EVENT_LARGE_CACHED] = "large_cached",
    [TALLOC_EVENT_LARGE_REUSED] = "large_reused",
    [TALLOC_EVENT_REALLOC_REMAPPED] = "realloc_remapped",
    [TALLOC_EVENT_QUICK_REUSED] = "quick_reused",
    [TALLOC_EVENT_QUICK_FLUSHED] = "quick_flushed",
    [TALLOC_EVENT_PAGES_PURGED] = "pages_purged",
};

const char *TAlloc_event_name(TAlloc_event event)
{
    if ((unsigned)event >= TALLOC_EVENT_COUNT)
        return "unknown_event";
    return event_names[event];
}

/* ---- the default heap ------------------------------------------------------------------ */

void *TAlloc_malloc(size_t size) { return TAlloc_heap_malloc(ta_default_heap(), size); }
void TAlloc_free(void *ptr) { TAlloc_heap_free(ta_default_heap(), ptr); }
void *TAlloc_calloc(size_t count, size_t size) { return TAlloc_heap_calloc(ta_default_heap(), count, size); }
void *TAlloc_realloc(void *ptr, size_t size) { return TAlloc_heap_realloc(ta_default_heap(), ptr, size); }
void *TAlloc_aligned_alloc(size_t alignment, size_t size) { return TAlloc_heap_aligned_alloc(ta_default_heap(), alignment, size); }
int TAlloc_posix_memalign(void **out, size_t alignment, size_t size) { return TAlloc_heap_posix_memalign(ta_default_heap(), out, alignment, size); }
size_t TAlloc_usable_size(const void *ptr) { return TAlloc_heap_usable_size(ta_default_heap(), ptr); }
void TAlloc_get_stats(TAlloc_stats *out) { TAlloc_heap_get_stats(ta_default_heap(), out); }

int TAlloc_version(void) { return TALLOC_VERSION; }

const char *TAlloc_version_string(void) { return TALLOC_VERSION_STRING; }
