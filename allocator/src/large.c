/*
 * large.c - the mappings of dedicated arenas (one large block each) beyond their first use:
 *
 *   cache   a released dedicated arena's mapping is kept (up to TA_LARGE_CACHE_SLOTS of them,
 *           config.large_cache bytes in all) instead of unmapped, and the next dedicated arena
 * *           is made from one: the mapping of exactly its size, else the smallest bigger one,
 *           whole (its tail becomes the arena's free chunk: nothing is unmapped that the next
 *           bigger block would fault in again), else (when the OS layer can resize) the
 *           biggest smaller one, grown to fit; on a tie the one cached last.
 *           The oldest goes back to the OS when a new one would pass the byte bound, and any
 *           older than TA_LARGE_CACHE_DECAY later large events (a dedicated arena mapped,
 *           made or released) when the next one comes. Its pages stay faulted in: a program
 *           that frees and allocates big blocks over and over pays no page fault per block.
 *   remap   a dedicated arena that holds one block grows (or moves) with the OS layer's remap
 *           when the block outgrows it: the pages move, nothing is copied.
 *
 * A cached mapping is plain memory: in no arena list, no registry, invisible to the walk; the
 * stats count it (cached_count, cached_bytes), and the OS maps and unmaps it stands for, so
 * that arenas + cached mappings = maps - unmaps (I6). Guarded arenas (config.guard) are never
 * cached: their guard page would have to move with them.
 */
#include "internal.h"
#include "track.h"

static bool is_caching(const ta_heap *heap)
{
    return heap->config.large_cache > 0 && !heap->config.guard;
}

static void give_back(ta_heap *heap, size_t at)
{
    ta_large_entry e = heap->large_cache[at];
    heap->large_cache[at] = heap->large_cache[--heap->stats.cached_count];
    heap->stats.cached_bytes -= e.size;
    heap->stats.unmap_count++;
    ta_os_unmap(&heap->config.os, e.base, e.size);
}

/* The oldest entries past the decay go back. */
static void decay(ta_heap *heap)
{
    heap->large_clock++;
    for (size_t i = 0; i < heap->stats.cached_count;)
        if (heap->large_clock - heap->large_cache[i].stamp > TA_LARGE_CACHE_DECAY)
            give_back(heap, i);
        else
            i++;
}

static size_t oldest(const ta_heap *heap)
{
    size_t at = 0;
    for (size_t i = 1; i < heap->stats.cached_count; i++)
        if (heap->large_cache[i].stamp < heap->large_cache[at].stamp)
            at = i;
    return at;
}

bool ta_large_keep(ta_heap *heap, void *base, size_t size)
{
    decay(heap);
    if (!is_caching(heap) || size > heap->config.large_cache)
        return false;
    while (heap->stats.cached_count > 0 &&
           (heap->stats.cached_count == TA_LARGE_CACHE_SLOTS ||
            heap->stats.cached_bytes + size > heap->config.large_cache))
        give_back(heap, oldest(heap));
    heap->large_cache[heap->stats.cached_count++] = (ta_large_entry){base, size, heap->large_clock};
    heap->stats.cached_bytes += size;
    ta_count(heap, TALLOC_EVENT_LARGE_CACHED);
    return true;
}

/* Whether entry i beats entry `best` (SIZE_MAX: none yet) by `is_better` size, the one cached
   last on a tie. */
static bool beats(const ta_heap *heap, size_t i, size_t best, bool is_better_size)
{
    if (best == SIZE_MAX)
        return true;
    size_t s = heap->large_cache[i].size, b = heap->large_cache[best].size;
    return is_better_size || (s == b && heap->large_cache[i].stamp > heap->large_cache[best].stamp);
}

/* The entry to make a mapping of `size` bytes from, or SIZE_MAX: the exact size first, then
   the smallest bigger, then (when mappings can be resized) the biggest smaller; on a tie the
   one cached last. */
static size_t choose(const ta_heap *heap, size_t size)
{
    size_t exact = SIZE_MAX, above = SIZE_MAX, below = SIZE_MAX;
    for (size_t i = 0; i < heap->stats.cached_count; i++) {
        size_t s = heap->large_cache[i].size;
        if (s == size && beats(heap, i, exact, false))
            exact = i;
        else if (s > size && beats(heap, i, above, above != SIZE_MAX && s < heap->large_cache[above].size))
            above = i;
        else if (s < size && beats(heap, i, below, below != SIZE_MAX && s > heap->large_cache[below].size))
            below = i;
    }
    if (exact != SIZE_MAX)
        return exact;
    if (above != SIZE_MAX || heap->config.os.remap == NULL)
        return above;
    return below;
}

/* A kept mapping for a dedicated arena of `size` bytes, or NULL; `*got`: its size. */
void *ta_large_take(ta_heap *heap, size_t size, size_t *got)
{
    decay(heap);
    size_t at = is_caching(heap) ? choose(heap, size) : SIZE_MAX;
    if (at == SIZE_MAX)
        return NULL;
    ta_large_entry e = heap->large_cache[at];
    void *base = e.base;
    if (e.size < size && (base = ta_os_remap(&heap->config.os, e.base, e.size, size)) == NULL)
        return NULL; /* refused: the entry stays, `*got` untouched */
    *got = e.size > size ? e.size : size;
    heap->large_cache[at] = heap->large_cache[--heap->stats.cached_count];
    heap->stats.cached_bytes -= e.size;
    ta_count(heap, TALLOC_EVENT_LARGE_REUSED);
    return base;
}

size_t ta_large_trim(ta_heap *heap)
{
    size_t released = heap->stats.cached_count;
    while (heap->stats.cached_count > 0)
        give_back(heap, heap->stats.cached_count - 1);
    return released;
}
