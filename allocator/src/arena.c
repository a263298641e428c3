/*
 * arena.c - arenas: mapping them through the heap's OS layer, finding the arena that owns an
 * address, and deciding what happens to an arena that becomes empty (retain or unmap).
 *
 * Keeps I1 (a new arena is one free chunk between header and fence) and the arena counters of
 * I6. Arenas are linked in creation order; the walk and the debug print follow that order.
 */
#include "internal.h"
#include "track.h"

static uint64_t arena_check_value(const ta_heap *heap, const ta_arena *arena)
{
    return ta_chunk_check_value(heap->secret, arena, (uint64_t)arena->map_size | 8);
}

void ta_arena_seal(const ta_heap *heap, ta_arena *arena)
{
    arena->check = arena_check_value(heap, arena);
}

bool ta_arena_is_sealed(const ta_heap *heap, const ta_arena *arena)
{
    return arena->check == arena_check_value(heap, arena) && arena->heap == heap;
}

static void link_last(ta_heap *heap, ta_arena *arena)
{
    arena->prev = heap->arena_last;
    arena->next = NULL;
    if (heap->arena_last)
        heap->arena_last->next = arena;
    else
        heap->arena_first = arena;
    heap->arena_last = arena;
}

static void unlink_arena(ta_heap *heap, ta_arena *arena)
{
    if (arena->prev)
        arena->prev->next = arena->next;
    else
        heap->arena_first = arena->next;
    if (arena->next)
        arena->next->prev = arena->prev;
    else
        heap->arena_last = arena->prev;
}

/*
 * Maps an arena that can hold a chunk of `chunk_size` bytes: a standard one when it fits,
 * otherwise a dedicated one rounded up to pages. Returns its single free chunk (already in
 * the free index), or NULL when the OS layer refuses.
 */
ta_chunk *ta_arena_map(ta_heap *heap, size_t chunk_size, bool *is_dedicated)
{
    bool dedicated = chunk_size > heap->arena_size - TA_ARENA_RESERVED;
    size_t map_size = dedicated ? ta_align_up(chunk_size + TA_ARENA_RESERVED, heap->page_size)
                                : heap->arena_size;
    ta_arena *arena = heap->config.os.map(heap->config.os.ctx, map_size);
    if (arena == NULL) {
        ta_count(heap, TALLOC_EVENT_MAP_FAILED);
        return NULL;
    }
    *arena = (ta_arena){.map_size = map_size, .heap = heap, .is_dedicated = dedicated};
    ta_track_arena_map(arena, map_size);
    ta_arena_seal(heap, arena);
    link_last(heap, arena);
    heap->stats.map_count++;
    heap->stats.arena_count++;
    heap->stats.mapped_bytes += map_size;
    ta_count(heap, dedicated ? TALLOC_EVENT_DEDICATED_ARENA : TALLOC_EVENT_NEW_ARENA);
    if (!dedicated)
        heap->empty_arena_count++;
    *is_dedicated = dedicated;

    size_t chunk_bytes = map_size - TA_ARENA_RESERVED;
    ta_chunk *chunk = ta_arena_first_chunk(arena);
    ta_chunk_write(heap, ta_arena_fence(arena), 0, TA_PREV_FREE);
    ta_chunk_write(heap, chunk, chunk_bytes, TA_FREE | TA_FIRST);
    ta_index_insert(heap, chunk);
    heap->stats.free_count++;
    heap->stats.free_bytes += chunk_bytes - TA_HEADER_SIZE;
    return chunk;
}

/* Unmaps an arena that is one free chunk. */
void ta_arena_unmap(ta_heap *heap, ta_arena *arena)
{
    ta_chunk *chunk = ta_arena_first_chunk(arena);
    ta_index_remove(heap, chunk);
    heap->stats.free_count--;
    heap->stats.free_bytes -= ta_chunk_size(chunk) - TA_HEADER_SIZE;
    unlink_arena(heap, arena);
    heap->stats.unmap_count++;
    heap->stats.arena_count--;
    heap->stats.mapped_bytes -= arena->map_size;
    size_t map_size = arena->map_size;
    ta_track_arena_unmap(arena, map_size);
    heap->config.os.unmap(heap->config.os.ctx, arena, map_size);
}

/* The arena whose payload range holds `address` (a user pointer), or NULL. */
ta_arena *ta_arena_find(const ta_heap *heap, const void *address)
{
    uintptr_t p = (uintptr_t)address;
    for (ta_arena *a = heap->arena_first; a; a = a->next) {
        uintptr_t first_payload = (uintptr_t)a + TA_ARENA_HEADER_SIZE + TA_HEADER_SIZE;
        if (p >= first_payload && p < (uintptr_t)ta_arena_fence(a))
            return a;
    }
    return NULL;
}

/* Whether the free chunk `chunk` spans its whole arena, which is then `arena`. */
bool ta_arena_is_whole(const ta_arena *arena, const ta_chunk *chunk)
{
    return ta_arena_first_chunk(arena) == chunk &&
           ta_chunk_size(chunk) == arena->map_size - TA_ARENA_RESERVED;
}

/* The arena of which `chunk` is the only chunk, or NULL. Reads only headers: never a
   payload another thread may be writing. */
static ta_arena *arena_if_whole(const ta_heap *heap, const ta_chunk *chunk)
{
    if (!(chunk->size_word & TA_FIRST) || ta_chunk_size(ta_chunk_next(chunk)) != 0)
        return NULL;
    ta_arena *arena = (ta_arena *)((char *)chunk - TA_ARENA_HEADER_SIZE);
    if (!ta_arena_is_sealed(heap, arena))
        return NULL;
    return ta_arena_is_whole(arena, chunk) ? arena : NULL;
}

/* Called before a free chunk is taken or split: an empty standard arena stops being empty. */
void ta_arena_note_taken(ta_heap *heap, const ta_chunk *chunk)
{
    ta_arena *arena = arena_if_whole(heap, chunk);
    if (arena && !arena->is_dedicated)
        heap->empty_arena_count--;
}

/* Called after a free produced `chunk`: if it is a whole arena, retain it or unmap it. */
void ta_arena_on_free(ta_heap *heap, ta_chunk *chunk)
{
    ta_arena *arena = arena_if_whole(heap, chunk);
    if (arena == NULL)
        return;
    if (!arena->is_dedicated && heap->empty_arena_count < heap->config.retained_arena_count) {
        heap->empty_arena_count++;
        ta_count(heap, TALLOC_EVENT_ARENA_RETAINED);
        return;
    }
    ta_arena_unmap(heap, arena);
    ta_count(heap, TALLOC_EVENT_ARENA_RELEASED);
}

/* Unmaps every retained empty arena (malloc_trim). Returns how many. */
size_t ta_arena_trim(ta_heap *heap)
{
    size_t released = 0;
    for (ta_arena *a = heap->arena_first, *next; a && heap->empty_arena_count > 0; a = next) {
        next = a->next;
        ta_chunk *chunk = ta_arena_first_chunk(a);
        if (a->is_dedicated || !ta_chunk_is_free(chunk) || !ta_arena_is_whole(a, chunk))
            continue;
        heap->empty_arena_count--;
        ta_arena_unmap(heap, a);
        ta_count(heap, TALLOC_EVENT_ARENA_RELEASED);
        released++;
    }
    return released;
}
