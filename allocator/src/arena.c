/*
 * arena.c - arenas: mapping them through the heap's OS layer, finding the arena that owns an
 * address, and deciding what happens to an arena that becomes empty (retain or unmap).
 *
 * Keeps I1 (a new arena is one free chunk between header and fence) and the arena counters of
 * I6. Arenas are linked in creation order; the walk and the debug print follow that order.
 * The arena registry finds the owner of a pointer in O(1) (standard arenas) or O(log n)
 * (dedicated ones), however many arenas there are.
 */
#include "internal.h"
#include "track.h"

static uint64_t arena_check_value(const ta_heap *heap, const ta_arena *arena)
{
    return ta_check_value(&heap->keys, arena, (uint64_t)arena->map_size | 8);
}

void ta_arena_seal(const ta_heap *heap, ta_arena *arena)
{
    arena->check = arena_check_value(heap, arena);
}

bool ta_arena_is_sealed(const ta_heap *heap, const ta_arena *arena)
{
    return arena->check == arena_check_value(heap, arena) && arena->heap == heap;
}

/* ---- the arena registry: the owner of a pointer without a search ----------------------- */
/* (The lookups carry no fuzzer coverage: the checker calls them for every chunk it checks.) */
/*
 * Standard arenas are mapped at multiples of 1 << arena_shift (their size rounded up to a
 * power of two), so the only one that can hold a pointer starts at the pointer with those
 * bits cleared; an open-addressing table keyed by that base says whether it is one of this
 * heap's. Dedicated arenas (and standard ones the OS layer could not align) are kept sorted
 * by address and found by a binary search. Both tables live in metadata pages of the heap's
 * OS layer and grow before an arena is mapped (ta_arena_reserve), never while one is
 * registered, so registering cannot fail.
 */

static bool is_inline_slots(const ta_heap *heap)
{
    return heap->arena_slots == heap->arena_slots_inline;
}

static bool is_inline_sorted(const ta_heap *heap)
{
    return heap->arena_sorted == heap->arena_sorted_inline;
}

/* Starts both tables in the heap's control block: a heap of a few arenas maps none. */
void ta_arena_registry_init(ta_heap *heap)
{
    heap->arena_slots = heap->arena_slots_inline;
    heap->arena_slot_bits = TA_INLINE_SLOT_BITS;
    heap->arena_sorted = heap->arena_sorted_inline;
    heap->arena_sorted_capacity = TA_INLINE_SORTED;
}

static size_t slot_of(const ta_heap *heap, uintptr_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15u) >> (64 - heap->arena_slot_bits));
}

TA_NO_COVERAGE static ta_arena *slots_lookup(const ta_heap *heap, uintptr_t base)
{
    size_t mask = ((size_t)1 << heap->arena_slot_bits) - 1;
    uintptr_t key = base >> heap->arena_shift;
    size_t i = slot_of(heap, key);
    for (size_t probes = 0; probes <= mask; probes++, i = (i + 1) & mask) {
        ta_arena *a = heap->arena_slots[i];
        if (a == NULL || (uintptr_t)a == base)
            return a;
    }
    return NULL; /* a full table: never made by the registry itself */
}

static void slots_put(ta_heap *heap, ta_arena **slots, size_t bits, ta_arena *arena)
{
    size_t mask = ((size_t)1 << bits) - 1;
    uintptr_t key = (uintptr_t)arena >> heap->arena_shift;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15u) >> (64 - bits));
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = arena;
}

/* Removes `arena` and shifts back the entries after it that probed past its slot. */
static void slots_remove(ta_heap *heap, ta_arena *arena)
{
    size_t mask = ((size_t)1 << heap->arena_slot_bits) - 1;
    size_t i = slot_of(heap, (uintptr_t)arena >> heap->arena_shift);
    while (heap->arena_slots[i] != arena)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; heap->arena_slots[j]; j = (j + 1) & mask) {
        size_t home = slot_of(heap, (uintptr_t)heap->arena_slots[j] >> heap->arena_shift);
        if (((j - home) & mask) >= ((j - i) & mask)) { /* its probe passed slot i */
            heap->arena_slots[i] = heap->arena_slots[j];
            i = j;
        }
    }
    heap->arena_slots[i] = NULL;
    heap->arena_slot_count--;
}

static size_t slots_bytes(const ta_heap *heap, size_t bits)
{
    return ta_align_up(((size_t)1 << bits) * sizeof(ta_arena *), heap->page_size);
}

static bool slots_grow(ta_heap *heap)
{
    size_t bits = heap->arena_slot_bits + 1;
    while (slots_bytes(heap, bits) > ((size_t)1 << bits) * sizeof(ta_arena *))
        bits++; /* the first mapped table fills its pages */
    ta_arena **slots = ta_os_map_metadata(&heap->config.os, slots_bytes(heap, bits));
    if (slots == NULL)
        return false;
    size_t old_capacity = (size_t)1 << heap->arena_slot_bits;
    for (size_t i = 0; i < old_capacity; i++)
        if (heap->arena_slots[i])
            slots_put(heap, slots, bits, heap->arena_slots[i]);
    if (!is_inline_slots(heap))
        ta_os_unmap_metadata(&heap->config.os, heap->arena_slots,
                             slots_bytes(heap, heap->arena_slot_bits));
    heap->arena_slots = slots;
    heap->arena_slot_bits = bits;
    return true;
}

TA_NO_COVERAGE ptrdiff_t ta_arena_sorted_floor(const ta_heap *heap, uintptr_t address)
{
    size_t lo = 0, hi = heap->arena_sorted_count; /* answer in [lo, hi) is the first above */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)heap->arena_sorted[mid] <= address)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

static bool sorted_grow(ta_heap *heap)
{
    size_t capacity = is_inline_sorted(heap) ? heap->page_size / sizeof(ta_arena *)
                                             : 2 * heap->arena_sorted_capacity;
    ta_arena **table = ta_os_map_metadata(&heap->config.os, capacity * sizeof(ta_arena *));
    if (table == NULL)
        return false;
    for (size_t i = 0; i < heap->arena_sorted_count; i++)
        table[i] = heap->arena_sorted[i];
    if (!is_inline_sorted(heap))
        ta_os_unmap_metadata(&heap->config.os, heap->arena_sorted,
                             heap->arena_sorted_capacity * sizeof(ta_arena *));
    heap->arena_sorted = table;
    heap->arena_sorted_capacity = capacity;
    return true;
}

static void sorted_insert(ta_heap *heap, ta_arena *arena)
{
    size_t at = (size_t)(ta_arena_sorted_floor(heap, (uintptr_t)arena) + 1);
    for (size_t i = heap->arena_sorted_count; i > at; i--)
        heap->arena_sorted[i] = heap->arena_sorted[i - 1];
    heap->arena_sorted[at] = arena;
    heap->arena_sorted_count++;
}

static void sorted_remove(ta_heap *heap, ta_arena *arena)
{
    ptrdiff_t at = ta_arena_sorted_floor(heap, (uintptr_t)arena);
    if (at < 0 || heap->arena_sorted[at] != arena)
        return;
    for (size_t i = (size_t)at; i + 1 < heap->arena_sorted_count; i++)
        heap->arena_sorted[i] = heap->arena_sorted[i + 1];
    heap->arena_sorted_count--;
}

/* Room for one more arena of the kind; false when a metadata map was refused. */
bool ta_arena_reserve(ta_heap *heap, bool is_dedicated)
{
    if (!is_dedicated && 2 * (heap->arena_slot_count + 1) > (size_t)1 << heap->arena_slot_bits &&
        !slots_grow(heap))
        return false;
    /* a standard arena goes to the sorted table when the OS layer cannot align it */
    bool may_sort = is_dedicated || heap->config.os.map_aligned == NULL;
    return !may_sort || heap->arena_sorted_count < heap->arena_sorted_capacity ||
           sorted_grow(heap);
}

static bool is_slotted(const ta_heap *heap, const ta_arena *arena)
{
    return !arena->is_dedicated &&
           ((uintptr_t)arena & (((uintptr_t)1 << heap->arena_shift) - 1)) == 0;
}

static void registry_add(ta_heap *heap, ta_arena *arena)
{
    arena->is_slotted = is_slotted(heap, arena);
    if (arena->is_slotted) {
        slots_put(heap, heap->arena_slots, heap->arena_slot_bits, arena);
        heap->arena_slot_count++;
    } else {
        sorted_insert(heap, arena);
        heap->unslotted_standard_count += !arena->is_dedicated;
    }
}

static void registry_remove(ta_heap *heap, ta_arena *arena)
{
    if (arena->is_slotted) {
        slots_remove(heap, arena);
    } else {
        sorted_remove(heap, arena);
        heap->unslotted_standard_count -= !arena->is_dedicated;
    }
}

void ta_arena_registry_free(ta_heap *heap)
{
    if (!is_inline_slots(heap))
        ta_os_unmap_metadata(&heap->config.os, heap->arena_slots,
                             slots_bytes(heap, heap->arena_slot_bits));
    if (!is_inline_sorted(heap))
        ta_os_unmap_metadata(&heap->config.os, heap->arena_sorted,
                             heap->arena_sorted_capacity * sizeof(ta_arena *));
    heap->arena_slot_count = heap->arena_sorted_count = 0;
    ta_arena_registry_init(heap);
}

/* ---- the arena list ---------------------------------------------------------------------- */

static void link_last(ta_heap *heap, ta_arena *arena)
{
    registry_add(heap, arena);
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
    registry_remove(heap, arena);
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
 * otherwise a dedicated one rounded up to pages. Returns its single free chunk, not in the
 * index yet, or NULL when the OS layer refuses.
 */
ta_chunk *ta_arena_map(ta_heap *heap, size_t chunk_size, bool *is_dedicated, bool *is_zeroed)
{
    bool dedicated = chunk_size > heap->arena_size - TA_ARENA_RESERVED;
    size_t map_size = dedicated ? ta_align_up(chunk_size + TA_ARENA_RESERVED, heap->page_size)
                                : heap->arena_size;
    size_t guard = dedicated && heap->config.guard && heap->config.os.protect ? heap->page_size : 0;
    size_t alignment = dedicated ? 0 : (size_t)1 << heap->arena_shift;
    ta_arena *arena = NULL;
    if (!ta_arena_reserve(heap, dedicated)) {
        ta_count(heap, TALLOC_EVENT_MAP_FAILED);
        return NULL;
    }
    *is_zeroed = true;
    if (dedicated && (arena = ta_large_take(heap, map_size, &map_size)) != NULL)
        *is_zeroed = false; /* a mapping used before, maybe bigger than asked */
    else if ((arena = ta_os_map(&heap->config.os, map_size + guard, alignment)) != NULL)
        heap->stats.map_count++;
    if (arena == NULL) {
        ta_count(heap, TALLOC_EVENT_MAP_FAILED);
        return NULL;
    }
    if (guard && !ta_os_protect(&heap->config.os, (char *)arena + map_size, guard)) {
        ta_os_unmap(&heap->config.os, arena, map_size + guard);
        ta_count(heap, TALLOC_EVENT_MAP_FAILED);
        return NULL;
    }
    *arena = (ta_arena){.map_size = map_size, .heap = heap, .is_dedicated = dedicated,
                        .guard_size = (uint32_t)guard};
    size_t chunk_bytes = map_size - TA_ARENA_RESERVED;
    ta_chunk *chunk = ta_arena_first_chunk(arena);
    ta_chunk_write(heap, ta_arena_fence(arena), 0, TA_PREV_FREE);
    ta_chunk_write(heap, chunk, chunk_bytes, TA_FREE | TA_FIRST);
    for (int i = 0; i < TA_RECENT; i++) /* blocks remembered here are gone for good */
        if ((uintptr_t)heap->recent_large[i] - (uintptr_t)arena < map_size)
            heap->recent_large[i] = NULL;
    ta_track_arena_map(arena, map_size);
    ta_arena_seal(heap, arena);
    link_last(heap, arena);
    ta_account_arena(heap, map_size, +1);
    ta_account_chunk(heap, true, chunk_bytes, +1);
    ta_count(heap, dedicated ? TALLOC_EVENT_DEDICATED_ARENA : TALLOC_EVENT_NEW_ARENA);
    if (!dedicated)
        heap->empty_arena_count++;
    *is_dedicated = dedicated;
    return chunk;
}

/*
 * Resizes the dedicated arena `arena` (its one block, the tail out of the index) to
 * `map_size` bytes with the OS layer's remap, keeping its contents; the arena header and
 * fence are rewritten, the block's header is the caller's. Returns the arena (it may have
 * moved), or NULL (nothing changed) when the OS layer cannot or will not.
 */
ta_arena *ta_arena_remap(ta_heap *heap, ta_arena *arena, size_t map_size)
{
    size_t old_size = arena->map_size;
    ta_arena *prev = arena->prev, *next = arena->next;
    registry_remove(heap, arena); /* while its header is still mapped */
    ta_arena *moved = ta_os_remap(&heap->config.os, arena, old_size, map_size);
    if (moved == NULL) {
        registry_add(heap, arena); /* the room it just left */
        return NULL;
    }
    moved->map_size = map_size;
    moved->prev = prev;
    moved->next = next;
    *(prev ? &prev->next : &heap->arena_first) = moved;
    *(next ? &next->prev : &heap->arena_last) = moved;
    registry_add(heap, moved);
    ta_arena_seal(heap, moved);
    ta_account_arena(heap, map_size, +1);
    ta_account_arena(heap, old_size, -1);
    ta_chunk_write(heap, ta_arena_fence(moved), 0, 0);
    ta_count(heap, TALLOC_EVENT_REALLOC_REMAPPED);
    return moved;
}

/* Unmaps an arena that is one free chunk, out of the index; a dedicated one's mapping may be
   kept for the next (large.c). */
static void unmap_arena(ta_heap *heap, ta_arena *arena)
{
    ta_account_chunk(heap, true, arena->map_size - TA_ARENA_RESERVED, -1);
    unlink_arena(heap, arena);
    ta_account_arena(heap, arena->map_size, -1);
    if (arena->is_dedicated && arena->guard_size == 0) {
        size_t map_size = arena->map_size;
        ta_track_arena_unmap(arena, map_size);
        if (ta_large_keep(heap, arena, map_size))
            return;
        heap->stats.unmap_count++;
        ta_os_unmap(&heap->config.os, arena, map_size);
        return;
    }
    ta_arena_unmap_memory(heap, arena);
}

void ta_arena_unmap_new(ta_heap *heap, ta_arena *arena)
{
    if (!arena->is_dedicated)
        heap->empty_arena_count--;
    unmap_arena(heap, arena);
}

/* Returns an arena's pages (and its guard) to the OS layer. */
void ta_arena_unmap_memory(ta_heap *heap, ta_arena *arena)
{
    size_t map_size = arena->map_size, guard = arena->guard_size;
    ta_track_arena_unmap(arena, map_size);
    heap->stats.unmap_count++;
    ta_os_unmap(&heap->config.os, arena, map_size + guard);
}

/* Whether `payload` was the first block of one of the last dedicated arenas unmapped. */
bool ta_arena_was_recent_large(const ta_heap *heap, const void *payload)
{
    for (int i = 0; i < TA_RECENT; i++)
        if (heap->recent_large[i] == payload)
            return true;
    return false;
}

TA_NO_COVERAGE static bool holds_payload(const ta_arena *a, uintptr_t p)
{
    uintptr_t first_payload = (uintptr_t)a + TA_ARENA_HEADER_SIZE + TA_HEADER_SIZE;
    return p >= first_payload && p < (uintptr_t)ta_arena_fence(a);
}

/* The same answer from the arena list alone, in O(arenas): the checker's ground truth. */
TA_NO_COVERAGE ta_arena *ta_arena_find_listed(const ta_heap *heap, const void *address)
{
    uint64_t limit = heap->stats.map_count + 1;
    for (ta_arena *a = heap->arena_first; a && limit-- > 0; a = a->next)
        if (holds_payload(a, (uintptr_t)address))
            return a;
    return NULL;
}

/* The arena whose payload range holds `address` (a user pointer), or NULL: O(1) for standard
   arenas, O(log n) over the dedicated ones. Nothing of a candidate arena but its header
   (size) is read, and no address is read that is not a registered arena's. */
TA_NO_COVERAGE ta_arena *ta_arena_find(const ta_heap *heap, const void *address)
{
    uintptr_t p = (uintptr_t)address;
    ta_arena *a = slots_lookup(heap, p & ~(((uintptr_t)1 << heap->arena_shift) - 1));
    if (a && holds_payload(a, p))
        return a;
    if (heap->arena_sorted_count == 0)
        return NULL;
    ptrdiff_t at = ta_arena_sorted_floor(heap, p);
    if (at < 0 || !holds_payload(heap->arena_sorted[at], p))
        return NULL;
    return heap->arena_sorted[at];
}

/* Whether the free chunk `chunk` spans its whole arena, which is then `arena`. */
bool ta_arena_is_whole(const ta_arena *arena, const ta_chunk *chunk)
{
    return ta_arena_first_chunk(arena) == chunk &&
           ta_chunk_size(chunk) == arena->map_size - TA_ARENA_RESERVED;
}

/* Reads only headers: never a payload another thread may be writing. */
ta_arena *ta_arena_if_whole(const ta_heap *heap, const ta_chunk *chunk)
{
    if (!(chunk->size_word & TA_FIRST) || ta_chunk_size(ta_chunk_next(chunk)) != 0)
        return NULL;
    ta_arena *arena = (ta_arena *)((char *)chunk - TA_ARENA_HEADER_SIZE);
    if (!ta_arena_is_sealed(heap, arena))
        return NULL;
    return ta_arena_is_whole(arena, chunk) ? arena : NULL;
}

/* Called before the one chunk of an empty arena is taken or split: a standard one stops
   being empty. */
void ta_arena_note_taken(ta_heap *heap, const ta_arena *arena)
{
    if (!arena->is_dedicated)
        heap->empty_arena_count--;
}

bool ta_arena_is_released(const ta_heap *heap, const ta_arena *arena)
{
    return arena->is_dedicated || heap->empty_arena_count >= heap->config.retained_arena_count;
}

/* An arena became one free chunk and stays, retained (or kept because its chunk could not
   be unfiled: it is empty all the same). */
void ta_arena_note_retained(ta_heap *heap, const ta_arena *arena)
{
    if (!arena->is_dedicated)
        heap->empty_arena_count++;
}

void ta_arena_release(ta_heap *heap, ta_arena *arena)
{
    if (arena->is_dedicated) {
        /* every block that began at its first payload has been freed: a later call on that
           address is a double free (or use after free), until 16 newer dedicated arenas went
           or a new arena covers it */
        heap->recent_large[heap->recent_next] = ta_chunk_payload(ta_arena_first_chunk(arena));
        heap->recent_next = (heap->recent_next + 1) % TA_RECENT;
    }
    unmap_arena(heap, arena);
    ta_count(heap, TALLOC_EVENT_ARENA_RELEASED);
}
