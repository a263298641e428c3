/*
 * placement.c - the placement oracle: an independent model of where TAlloc puts blocks,
 * exact for each policy (README "Placement policies"). fuzz_placement installs it on every
 * run; a difference from what the heap did is a TH_POLICY failure.
 *
 *   - the model: per arena (kept sorted by base address) a sorted array of segments
 *     {offset, size, is_free, filed} that tile the arena between its 48-byte header and
 *     16-byte fence. It is built only from the documented rules, the on_map/on_unmap hooks
 *     (where the OS put each arena) and the op results;
 *   - the rules every policy shares: chunk size max(48, pl_round_up(n, 16) + 16); split when the
 *     remainder holds 48 bytes; a new standard or dedicated arena when no free chunk is
 *     chosen; merge with free neighbours on free; retain up to retained_arena_count empty
 *     standard arenas, unmap the rest and every empty dedicated one; realloc shrinks / grows
 *     in place / grows a dedicated arena's one block by remapping it / moves; aligned requests
 *     above 16 look for need + alignment + 48 bytes and leave the leading gap free; released
 *     dedicated arenas go to the large-block cache and new ones come from it
 *     (placement_os.c);
 *   - the quick lists, before any policy: a free of a standard arena's block of at most
 *     TALLOC_QUICK_MAX_REQUEST bytes keeps it whole (a quick chunk) while their payload bytes
 *     stay within config.quick; a plain request of that chunk size takes the one kept last;
 *     when no free chunk is chosen and a standard arena would be mapped, every quick chunk
 *     is freed first - smallest size first, each size the one kept last first - and the
 *     choice is made again; a free that merges into 64 KiB or more (its arena released or
 *     not) frees every quick chunk after it, in the same order;
 *   - the choice of the free chunk, per policy:
 *       first-fit   the lowest-addressed free chunk that holds the request, in any arena;
 *       best-fit    the smallest one, the lowest-addressed on a tie;
 *       segregated  size classes: one per 16 bytes below 1024, 16 per power of two above
 *                   (each 1/16 of it wide). The chunk of the request's own class filed last,
 *                   if it holds the request; else the first class above whose every size
 *                   holds it, and in it the chunk filed last; else the first of the 16 chunks
 *                   of the own class filed last that holds it. A chunk is filed when it
 *                   becomes free or changes size or place: a new tail, a merged chunk, a
 *                   resized gap (before the tail of the same allocation);
 *   - after every executed op: the returned address against the prediction, the maps and
 *     unmaps against the prediction, then every arena and chunk of TAlloc_heap_walk against
 *     the model (address, size, free state).
 * It uses only talloc.h and harness.h, never allocator internals; one model per process.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "placement.h"

/* ---- reporting ----------------------------------------------------------------------- */

void pl_differ(model *m, const void *address, const char *fmt, ...)
{
    if (m->is_broken)
        return;
    char what[200], op_text[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    th_format_op(m->op, op_text, sizeof op_text);
    th_run_fail(m->run, TH_POLICY, address, "%s: %s", op_text, what);
    m->is_broken = true;
}

/* ---- arithmetic of the policy ---------------------------------------------------------- */

size_t pl_round_up(size_t n, size_t multiple)
{
    return (n + multiple - 1) / multiple * multiple;
}

static size_t chunk_size_for(size_t request)
{
    size_t size = pl_round_up(request, 16) + CHUNK_HEADER;
    return size < MIN_CHUNK ? MIN_CHUNK : size;
}

static bool is_power_of_two(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* ---- segment and arena arrays ---------------------------------------------------------- */

static void *grow_array(void *items, size_t *capacity, size_t item_size)
{
    *capacity = *capacity ? 2 * *capacity : 16;
    void *grown = realloc(items, *capacity * item_size);
    if (grown == NULL)
        abort();
    return grown;
}

static void segment_insert(model_arena *a, size_t at, segment s)
{
    if (a->count == a->capacity)
        a->segments = grow_array(a->segments, &a->capacity, sizeof *a->segments);
    memmove(&a->segments[at + 1], &a->segments[at], (a->count - at) * sizeof *a->segments);
    a->segments[at] = s;
    a->count++;
}

static void segment_remove(model_arena *a, size_t at)
{
    memmove(&a->segments[at], &a->segments[at + 1], (a->count - at - 1) * sizeof *a->segments);
    a->count--;
}

static segment *segment_at(const model *m, place p)
{
    return &m->arenas[p.arena].segments[p.index];
}

/* Adds an arena that is one free chunk; returns its index in base order. */
static size_t arena_insert(model *m, uintptr_t base, size_t size, bool is_dedicated)
{
    size_t at = 0;
    while (at < m->count && m->arenas[at].base < base)
        at++;
    if (m->count == m->capacity)
        m->arenas = grow_array(m->arenas, &m->capacity, sizeof *m->arenas);
    memmove(&m->arenas[at + 1], &m->arenas[at], (m->count - at) * sizeof *m->arenas);
    m->arenas[at] = (model_arena){base, size, is_dedicated, NULL, 0, 0};
    m->count++;
    segment whole = {ARENA_HEADER, size - ARENA_HEADER - ARENA_FENCE, true, false, 0};
    segment_insert(&m->arenas[at], 0, whole);
    return at;
}

static void arena_remove(model *m, size_t at)
{
    free(m->arenas[at].segments);
    memmove(&m->arenas[at], &m->arenas[at + 1], (m->count - at - 1) * sizeof *m->arenas);
    m->count--;
}

static bool arena_is_empty(const model_arena *a)
{
    return a->count == 1 && a->segments[0].is_free;
}

/* The allocated segment whose payload is `payload`; false when the model has none. */
static bool find_block(const model *m, const void *payload, place *out)
{
    uintptr_t p = (uintptr_t)payload;
    for (size_t i = 0; i < m->count; i++) {
        const model_arena *a = &m->arenas[i];
        if (p < a->base || p >= a->base + a->size)
            continue;
        for (size_t k = 0; k < a->count; k++)
            if (a->base + a->segments[k].offset + CHUNK_HEADER == p && !a->segments[k].is_free &&
                !a->segments[k].is_quick) {
                *out = (place){i, k};
                return true;
            }
    }
    return false;
}

static uintptr_t payload_of(const model *m, place p)
{
    return m->arenas[p.arena].base + m->arenas[p.arena].segments[p.index].offset + CHUNK_HEADER;
}

/* ---- allocation ---------------------------------------------------------------------- */

/* Files a free segment: the segregated lists take the last filed first. */
static void file(model *m, segment *s)
{
    s->filed = ++m->next_filed;
}

static unsigned class_of(size_t size);

/* `s` took the place of a free segment `old`: within the same size class it keeps that
   segment's place in the list, else it is filed anew. */
static void refile(model *m, segment *s, const segment *old)
{
    if (old && class_of(s->size) == class_of(old->size))
        s->filed = old->filed;
    else
        file(m, s);
}

/* First fit: the lowest-addressed free segment of at least `size` bytes, in any arena. */
static bool first_fit(const model *m, size_t size, place *out)
{
    for (size_t i = 0; i < m->count; i++)
        for (size_t k = 0; k < m->arenas[i].count; k++) {
            const segment *s = &m->arenas[i].segments[k];
            if (s->is_free && s->size >= size) {
                *out = (place){i, k};
                return true;
            }
        }
    return false;
}

/* Best fit: the smallest such segment, the lowest-addressed on a tie. */
static bool best_fit(const model *m, size_t size, place *out)
{
    bool found = false;
    for (size_t i = 0; i < m->count; i++)
        for (size_t k = 0; k < m->arenas[i].count; k++) {
            const segment *s = &m->arenas[i].segments[k];
            if (s->is_free && s->size >= size && (!found || s->size < segment_at(m, *out)->size)) {
                *out = (place){i, k};
                found = true;
            }
        }
    return found;
}

/* Segregated fit's size classes: one per 16 bytes below 1024; from 1024 up 16 per power of
   two, 1/16 of it wide. */
enum { SMALL_LIMIT = 1024, SUBCLASSES = 16, OWN_CLASS_STEPS = 16 };

static unsigned log2_floor(size_t n)
{
    unsigned log = 0;
    while ((n >> log) > 1)
        log++;
    return log;
}

static unsigned class_of(size_t size)
{
    if (size < SMALL_LIMIT)
        return (unsigned)(size / 16);
    unsigned log = log2_floor(size);
    size_t width = ((size_t)1 << log) / SUBCLASSES;
    return SMALL_LIMIT / 16 + (log - log2_floor(SMALL_LIMIT)) * SUBCLASSES +
           (unsigned)((size - ((size_t)1 << log)) / width);
}

/* The smallest size of `size`'s class. */
static size_t class_floor(size_t size)
{
    if (size < SMALL_LIMIT)
        return size;
    unsigned log = log2_floor(size);
    size_t width = ((size_t)1 << log) / SUBCLASSES;
    return ((size_t)1 << log) + (size - ((size_t)1 << log)) / width * width;
}

/* The segment of `size`'s class filed last, or false. */
static bool last_filed(const model *m, unsigned c, uint64_t before, place *out)
{
    bool found = false;
    for (size_t i = 0; i < m->count; i++)
        for (size_t k = 0; k < m->arenas[i].count; k++) {
            const segment *s = &m->arenas[i].segments[k];
            if (s->is_free && class_of(s->size) == c && s->filed < before &&
                (!found || s->filed > segment_at(m, *out)->filed)) {
                *out = (place){i, k};
                found = true;
            }
        }
    return found;
}

/* The own class's last filed segment when it holds `size`; else the first class above
   whose every size holds `size`, and in it the segment filed last; else the first of the
   own class's last-filed segments that holds it. */
static bool segregated_fit(const model *m, size_t size, place *out)
{
    unsigned own = class_of(size), first = class_floor(size) == size ? own : own + 1;
    if (first != own && last_filed(m, own, UINT64_MAX, out) && segment_at(m, *out)->size >= size)
        return true;
    bool found = false;
    unsigned best_class = 0;
    for (size_t i = 0; i < m->count; i++)
        for (size_t k = 0; k < m->arenas[i].count; k++) {
            const segment *s = &m->arenas[i].segments[k];
            unsigned c = s->is_free ? class_of(s->size) : 0;
            if (!s->is_free || c < first)
                continue;
            if (!found || c < best_class ||
                (c == best_class && s->filed > segment_at(m, *out)->filed)) {
                *out = (place){i, k};
                best_class = c;
                found = true;
            }
        }
    if (found || first == own)
        return found;
    uint64_t before = UINT64_MAX; /* walk the own class from the last filed down */
    for (int step = 0; step < OWN_CLASS_STEPS; step++) {
        place next;
        if (!last_filed(m, own, before, &next))
            return false;
        if (segment_at(m, next)->size >= size) {
            *out = next;
            return true;
        }
        before = segment_at(m, next)->filed;
    }
    return false;
}

/* The free chunk first fit or best fit chooses for `size` bytes, from a walk of the heap. */
typedef struct choice {
    TAlloc_policy policy;
    size_t size;
    size_t chosen;   /* its chunk bytes, 0: none yet */
    uintptr_t at;
} choice;

static int visit_choice(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    choice *c = ctx;
    size_t bytes = chunk ? chunk->size + chunk->reserved : 0;
    if (chunk == NULL || !chunk->is_free || bytes < c->size)
        return 0;
    uintptr_t at = (uintptr_t)chunk->address;
    bool is_better = c->chosen == 0 ||
                     (c->policy == TALLOC_POLICY_BEST_FIT
                          ? bytes < c->chosen || (bytes == c->chosen && at < c->at)
                          : at < c->at);
    if (is_better) {
        c->chosen = bytes;
        c->at = at;
    }
    return 0;
}

size_t th_placement_take_size(TAlloc_heap *heap, TAlloc_policy policy, size_t chunk_size)
{
    if (policy == TALLOC_POLICY_SEGREGATED)
        return class_floor(chunk_size);
    choice c = {policy, chunk_size, 0, 0};
    TAlloc_heap_walk(heap, visit_choice, &c);
    return c.chosen ? c.chosen : chunk_size;
}

static bool choose(const model *m, size_t size, place *out)
{
    switch (m->policy) {
    case TALLOC_POLICY_FIRST_FIT: return first_fit(m, size, out);
    case TALLOC_POLICY_BEST_FIT: return best_fit(m, size, out);
    default: return segregated_fit(m, size, out);
    }
}

/* Nothing fits: the heap maps a standard arena, or a dedicated one for `size` bytes. */
static bool map_arena(model *m, size_t size, place *out)
{
    bool is_dedicated = size > m->arena_size - ARENA_HEADER - ARENA_FENCE;
    size_t map_size = is_dedicated ? pl_round_up(size + ARENA_HEADER + ARENA_FENCE, m->page_size)
                                   : m->arena_size;
    uintptr_t base;
    if (!(is_dedicated && pl_cache_take(m, map_size, &base, &map_size)) &&
        !pl_take_map(m, map_size, &base))
        return false;
    if (!is_dedicated && m->fresh_since_flush < SIZE_MAX - map_size)
        m->fresh_since_flush += map_size;
    *out = (place){arena_insert(m, base, map_size, is_dedicated), 0};
    return true;
}

/* The free segment at `p` becomes a free gap and a rest whose payload is `alignment`-aligned;
   returns the rest's place. `old`: the segment as it was filed (NULL: a fresh arena's). */
static place split_gap(model *m, place p, size_t alignment, const segment *old)
{
    uintptr_t payload = payload_of(m, p);
    size_t gap = pl_round_up(payload, alignment) - payload;
    if (gap == 0)
        return p;
    if (gap < MIN_CHUNK)
        gap += alignment;
    segment *s = segment_at(m, p);
    segment rest = {s->offset + gap, s->size - gap, true, false, 0};
    s->size = gap;
    refile(m, s, old);
    segment_insert(&m->arenas[p.arena], p.index + 1, rest);
    return (place){p.arena, p.index + 1};
}

/* The free segment at `p` is handed out as `need` bytes, its tail split off when >= 48;
   the tail replaces `old` (NULL: it is filed anew). */
static void take(model *m, place p, size_t need, const segment *old)
{
    segment *s = segment_at(m, p);
    size_t rest = s->size - need;
    s->is_free = false;
    if (rest < MIN_CHUNK)
        return;
    s->size = need;
    segment tail = {s->offset + need, rest, true, false, 0};
    refile(m, &tail, old);
    segment_insert(&m->arenas[p.arena], p.index + 1, tail);
}

/* ---- quick lists ----------------------------------------------------------------------- */

/* The quick segment of chunk size `size` that joined its list last (the list's head), or
   false; `size` 0: the head of the smallest size's list. */
static bool quick_head(const model *m, size_t size, place *out)
{
    bool found = false;
    for (size_t i = 0; i < m->count; i++)
        for (size_t k = 0; k < m->arenas[i].count; k++) {
            const segment *s = &m->arenas[i].segments[k];
            if (!s->is_quick || (size != 0 && s->size != size))
                continue;
            const segment *best = found ? segment_at(m, *out) : NULL;
            if (!best || s->size < best->size || (s->size == best->size && s->filed > best->filed)) {
                *out = (place){i, k};
                found = true;
            }
        }
    return found;
}

static void quick_leave(model *m, segment *s)
{
    s->is_quick = false;
    m->quick_bytes -= s->size - CHUNK_HEADER;
    m->quick_count--;
}

static void release_at(model *m, place p, bool may_flush);

/* Every quick segment, the smallest size first and each list from its head, freed. */
static void flush(model *m)
{
    place p;
    m->fresh_since_flush = 0;
    while (!m->is_broken && quick_head(m, 0, &p)) {
        quick_leave(m, segment_at(m, p));
        release_at(m, p, false);
    }
}

/* Applies an allocation of `size` bytes at `alignment` (already >= 16) to the model. A chunk
   of the index is replaced by the gap before the block, or else by the tail after it; a
   fresh arena's pieces are filed anew. A plain request of a quick size takes its list's
   head first. The quick lists are flushed and the index asked again when the chosen segment
   is the last of its arena and they hold a quarter of their bound, and before a standard
   arena is mapped once that flush is due (paths.c, take_block). */
static alloc_outcome model_alloc(model *m, size_t size, size_t alignment, uintptr_t *payload)
{
    if (!th_is_representable(size, alignment))
        return ALLOC_INVALID;
    size_t need = chunk_size_for(size);
    bool is_aligned = alignment > PLAIN_ALIGNMENT;
    size_t search = is_aligned ? need + alignment + MIN_CHUNK : need;
    place p;
    if (!is_aligned && need <= QUICK_MAX_CHUNK && quick_head(m, need, &p)) {
        quick_leave(m, segment_at(m, p));
        *payload = payload_of(m, p);
        return ALLOC_PLACED;
    }
    bool is_filed = choose(m, search, &p);
    if (is_filed && m->quick_count > 0 && m->quick_bytes >= m->quick_bound / 4 &&
        p.index + 1 == m->arenas[p.arena].count) { /* the last segment of its arena */
        flush(m);
        is_filed = choose(m, search, &p);
    }
    if (!is_filed && m->quick_count > 0 && search <= m->arena_size - ARENA_HEADER - ARENA_FENCE &&
        (m->quick_bytes <= m->arena_size || m->fresh_since_flush >= m->quick_bytes - m->arena_size)) {
        flush(m);
        is_filed = choose(m, search, &p);
    }
    if (!is_filed && !map_arena(m, search, &p))
        return ALLOC_NO_MAP;
    segment original = *segment_at(m, p);
    if (is_aligned) {
        place rest = split_gap(m, p, alignment, is_filed ? &original : NULL);
        is_filed = is_filed && rest.index == p.index; /* the gap took the chunk's place */
        p = rest;
    }
    take(m, p, need, is_filed ? &original : NULL);
    *payload = payload_of(m, p);
    return ALLOC_PLACED;
}

/* ---- free ------------------------------------------------------------------------------- */

/* Merges the free segment at `p` with a free right neighbour, then a free left one; returns
   where the merged segment is. It replaces the left neighbour when that was free, else the
   right one (`*old`, when not NULL), else it is filed anew. */
static place merge_free(model *m, place p)
{
    model_arena *a = &m->arenas[p.arena];
    bool has_right = p.index + 1 < a->count && a->segments[p.index + 1].is_free;
    bool has_left = p.index > 0 && a->segments[p.index - 1].is_free;
    segment old = has_left ? a->segments[p.index - 1] : has_right ? a->segments[p.index + 1]
                                                                  : (segment){0};
    if (has_right) {
        a->segments[p.index].size += a->segments[p.index + 1].size;
        segment_remove(a, p.index + 1);
    }
    if (has_left) {
        a->segments[p.index - 1].size += a->segments[p.index].size;
        segment_remove(a, p.index);
        p.index--;
    }
    refile(m, &a->segments[p.index], has_left || has_right ? &old : NULL);
    return p;
}

static size_t empty_standard_arenas(const model *m, size_t except)
{
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
        n += i != except && !m->arenas[i].is_dedicated && arena_is_empty(&m->arenas[i]);
    return n;
}

/* An arena that became one free chunk is retained (standard, room left) or unmapped. */
static void settle_arena(model *m, size_t at)
{
    model_arena *a = &m->arenas[at];
    if (!arena_is_empty(a))
        return;
    if (!a->is_dedicated && empty_standard_arenas(m, at) < m->retained)
        return;
    if (!a->is_dedicated || !pl_cache_keep(m, a->base, a->size))
        pl_expect_unmap(m, a->base, a->size, a->is_dedicated ? "dedicated arena" : "arena");
    arena_remove(m, at);
}

/* The allocated segment at `p` becomes free: merged, its arena settled; when `may_flush`
   and the merged segment has FLUSH_MERGED bytes or more, the quick lists are flushed. */
static void release_at(model *m, place p, bool may_flush)
{
    segment_at(m, p)->is_free = true;
    p = merge_free(m, p);
    bool is_flushed = may_flush && m->quick_count > 0 && segment_at(m, p)->size >= FLUSH_MERGED;
    settle_arena(m, p.arena);
    if (is_flushed)
        flush(m);
}

/* A free: into the quick list of its size when the lists take it (a standard arena's chunk
   of a quick size, within the byte bound), else released. */
static void model_free_at(model *m, place p)
{
    segment *s = segment_at(m, p);
    if (s->size <= QUICK_MAX_CHUNK && !m->arenas[p.arena].is_dedicated &&
        m->quick_bytes + (s->size - CHUNK_HEADER) <= m->quick_bound) {
        s->is_quick = true;
        s->filed = ++m->next_filed;
        m->quick_bytes += s->size - CHUNK_HEADER;
        m->quick_count++;
        return;
    }
    release_at(m, p, true);
}

/* ---- realloc ------------------------------------------------------------------------------ */

/* The segment at `p` keeps `need` bytes; a tail of >= 48 is freed (merging right). */
static void shrink_in_place(model *m, place p, size_t need)
{
    segment *s = segment_at(m, p);
    size_t rest = s->size - need;
    if (rest < MIN_CHUNK)
        return;
    s->size = need;
    segment tail = {s->offset + need, rest, true, false, 0};
    segment_insert(&m->arenas[p.arena], p.index + 1, tail);
    merge_free(m, (place){p.arena, p.index + 1});
}

/* Grows the segment at `p` into a free right neighbour; false when that is too small. */
static bool grow_in_place(model *m, place p, size_t need)
{
    model_arena *a = &m->arenas[p.arena];
    if (p.index + 1 == a->count || !a->segments[p.index + 1].is_free)
        return false;
    segment *s = &a->segments[p.index], *next = s + 1;
    size_t total = s->size + next->size;
    if (total < need)
        return false;
    if (total - need >= MIN_CHUNK) {
        segment old = *next;
        s->size = need;
        *next = (segment){s->offset + need, total - need, true, false, 0};
        refile(m, next, &old);
    } else {
        s->size = total;
        segment_remove(a, p.index + 1);
    }
    return true;
}

/* Keeps the arenas sorted after arena `at` moved to a new base. */
static void resort_arena(model *m, size_t at)
{
    while (at > 0 && m->arenas[at].base < m->arenas[at - 1].base) {
        model_arena t = m->arenas[at];
        m->arenas[at] = m->arenas[at - 1];
        m->arenas[--at] = t;
    }
    while (at + 1 < m->count && m->arenas[at].base > m->arenas[at + 1].base) {
        model_arena t = m->arenas[at];
        m->arenas[at] = m->arenas[at + 1];
        m->arenas[++at] = t;
    }
}

/* A dedicated arena's one block (a free tail aside) grows by remapping the arena: the block
   first takes the tail; then the arena is `need` + 64 bytes rounded to pages, wherever the OS
   put it, the block `need` bytes at its start and a new tail filed when one fits. False when
   that is not the case, or the remap was refused (the block keeps the tail). */
static bool remap_in_place(model *m, place p, size_t need, uintptr_t *payload)
{
    model_arena *a = &m->arenas[p.arena];
    bool has_tail = a->count == 2 && a->segments[1].is_free;
    if (!a->is_dedicated || p.index != 0 || a->count > 2 || (a->count == 2 && !has_tail))
        return false;
    size_t map_size = pl_round_up(need + ARENA_HEADER + ARENA_FENCE, m->page_size);
    if (map_size <= a->size)
        return false;
    if (has_tail) {
        a->segments[0].size += a->segments[1].size;
        segment_remove(a, 1);
    }
    uintptr_t base;
    if (!pl_take_remap(m, a->base, a->size, map_size, &base))
        return false;
    a->base = base;
    a->size = map_size;
    size_t rest = map_size - ARENA_HEADER - ARENA_FENCE - need;
    a->segments[0].size = rest >= MIN_CHUNK ? need : need + rest;
    if (rest >= MIN_CHUNK) {
        segment tail = {ARENA_HEADER + need, rest, true, false, 0};
        file(m, &tail);
        segment_insert(a, 1, tail);
    }
    *payload = base + ARENA_HEADER + CHUNK_HEADER;
    resort_arena(m, p.arena);
    return true;
}

/* realloc(block, size > 0): in place when it can be, else allocate anew and free the old. */
static alloc_outcome model_realloc(model *m, place p, size_t size, uintptr_t *payload)
{
    if (size > (size_t)PTRDIFF_MAX)
        return ALLOC_INVALID;
    size_t need = chunk_size_for(size);
    *payload = payload_of(m, p);
    if (need <= segment_at(m, p)->size) {
        shrink_in_place(m, p, need);
        return ALLOC_PLACED;
    }
    if (grow_in_place(m, p, need))
        return ALLOC_PLACED;
    if (remap_in_place(m, p, need, payload))
        return ALLOC_PLACED;
    uintptr_t old = *payload;
    alloc_outcome outcome = model_alloc(m, size, PLAIN_ALIGNMENT, payload);
    if (outcome == ALLOC_PLACED && find_block(m, (void *)old, &p)) /* indices may have moved */
        model_free_at(m, p);
    return outcome;
}

/* ---- one op ------------------------------------------------------------------------------ */

/* "arena 0x...+offset" for an address inside a model arena, else "no arena". */
static void describe(const model *m, uintptr_t address, char *buf, size_t capacity)
{
    for (size_t i = 0; i < m->count; i++)
        if (address >= m->arenas[i].base && address < m->arenas[i].base + m->arenas[i].size) {
            snprintf(buf, capacity, "arena %p+%zu", (void *)m->arenas[i].base,
                     (size_t)(address - m->arenas[i].base));
            return;
        }
    snprintf(buf, capacity, "no arena");
}

/* The prediction against what the call returned. */
static void compare_outcome(model *m, alloc_outcome outcome, uintptr_t predicted, const th_op_result *r)
{
    uintptr_t actual = (uintptr_t)r->result;
    char want[48], got[48];
    describe(m, predicted, want, sizeof want);
    describe(m, actual, got, sizeof got);
    if (outcome == ALLOC_PLACED && actual != predicted)
        pl_differ(m, r->result, "predicted %p (%s), TAlloc returned %p (%s)", (void *)predicted, want,
               r->result, got);
    else if (outcome == ALLOC_INVALID && actual != 0)
        pl_differ(m, r->result, "predicted a rejected request, TAlloc returned %p", r->result);
    else if (outcome == ALLOC_NO_MAP && (actual != 0 || r->maps_failed == 0))
        pl_differ(m, r->result, "predicted a new arena, none was mapped (returned %p, %zu maps refused)",
               r->result, r->maps_failed);
}

/* The alignment the heap uses for an aligned op, or 0 when the call is rejected (EINVAL). */
static size_t effective_alignment(const th_op *op, size_t alignment)
{
    if (!is_power_of_two(alignment))
        return 0;
    if (op->kind == TH_OP_POSIX_MEMALIGN && alignment % sizeof(void *) != 0)
        return 0;
    return alignment < PLAIN_ALIGNMENT ? PLAIN_ALIGNMENT : alignment;
}

static void apply_alloc(model *m, const th_op *op, const th_op_result *r)
{
    size_t alignment = PLAIN_ALIGNMENT;
    if (op->kind == TH_OP_ALIGNED_ALLOC || op->kind == TH_OP_POSIX_MEMALIGN)
        alignment = effective_alignment(op, r->alignment);
    uintptr_t predicted = 0;
    alloc_outcome outcome = alignment == 0 ? ALLOC_INVALID
                                           : model_alloc(m, r->request_size, alignment, &predicted);
    compare_outcome(m, outcome, predicted, r);
}

static void apply_block_op(model *m, const th_op *op, const th_op_result *r)
{
    place p;
    if (!find_block(m, r->block, &p)) {
        pl_differ(m, r->block, "block %p is no allocated chunk of the model", r->block);
        return;
    }
    if (op->kind == TH_OP_FREE || (op->kind == TH_OP_REALLOC && r->request_size == 0)) {
        model_free_at(m, p);
        return;
    }
    if (op->kind == TH_OP_REALLOC) {
        uintptr_t predicted = 0;
        alloc_outcome outcome = model_realloc(m, p, r->request_size, &predicted);
        compare_outcome(m, outcome, predicted, r);
    }
}

static void apply_op(model *m, const th_op *op, const th_op_result *r)
{
    switch (op->kind) {
    case TH_OP_MALLOC:
    case TH_OP_CALLOC:
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: apply_alloc(m, op, r); break;
    case TH_OP_REALLOC:
    case TH_OP_FREE:
    case TH_OP_USABLE_SIZE:
    case TH_OP_WRITE:
    case TH_OP_VERIFY: apply_block_op(m, op, r); break;
    default: pl_differ(m, NULL, "op kind %u is not modelled", op->kind); break;
    }
}

/* ---- the model against a walk ------------------------------------------------------------ */

typedef struct walk_state {
    model *m;
    size_t arena;       /* model index of the arena being walked, or SIZE_MAX */
    size_t next;        /* next model segment expected in it */
    size_t arenas_seen;
} walk_state;

static const char *state_name(bool is_free, bool is_quick)
{
    return is_free ? "free" : is_quick ? "quick" : "allocated";
}

/* The arena just walked must have had no model segment left over. */
static bool finish_arena(walk_state *w)
{
    if (w->arena == SIZE_MAX)
        return true;
    const model_arena *a = &w->m->arenas[w->arena];
    if (w->next == a->count)
        return true;
    pl_differ(w->m, (void *)(a->base + a->segments[w->next].offset),
           "model has a %s chunk of %zu bytes at %p, the walk has none",
           state_name(a->segments[w->next].is_free, a->segments[w->next].is_quick),
           a->segments[w->next].size,
           (void *)(a->base + a->segments[w->next].offset));
    return false;
}

static int visit_arena(walk_state *w, const TAlloc_arena_info *info)
{
    model *m = w->m;
    if (!finish_arena(w))
        return 1;
    w->arenas_seen++;
    w->next = 0;
    for (w->arena = 0; w->arena < m->count; w->arena++)
        if (m->arenas[w->arena].base == (uintptr_t)info->address)
            break;
    if (w->arena == m->count) {
        pl_differ(m, info->address, "walk has an arena at %p (%zu bytes) the model lacks", info->address, info->size);
        return 1;
    }
    const model_arena *a = &m->arenas[w->arena];
    if (a->size != info->size || a->is_dedicated != (info->is_dedicated != 0)) {
        pl_differ(m, info->address, "arena %p: model %zu bytes %s, walk %zu bytes %s", info->address,
               a->size, a->is_dedicated ? "dedicated" : "standard", info->size,
               info->is_dedicated ? "dedicated" : "standard");
        return 1;
    }
    return 0;
}

static int visit_chunk(walk_state *w, const TAlloc_chunk_info *info)
{
    const model_arena *a = &w->m->arenas[w->arena];
    size_t size = info->size + info->reserved;
    if (w->next == a->count) {
        pl_differ(w->m, info->address, "walk has a %s chunk of %zu bytes at %p past the model's last",
               state_name(info->is_free, info->is_quick), size, info->address);
        return 1;
    }
    const segment *s = &a->segments[w->next++];
    uintptr_t address = a->base + s->offset;
    if (address != (uintptr_t)info->address || s->size != size || s->is_free != (info->is_free != 0) ||
        s->is_quick != (info->is_quick != 0)) {
        pl_differ(w->m, info->address, "model chunk %p %zu bytes %s, walk chunk %p %zu bytes %s",
               (void *)address, s->size, state_name(s->is_free, s->is_quick), info->address, size,
               state_name(info->is_free, info->is_quick));
        return 1;
    }
    return 0;
}

static int visit(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    walk_state *w = ctx;
    if (chunk == NULL)
        return visit_arena(w, arena);
    if (w->arena == SIZE_MAX) {
        pl_differ(w->m, chunk->address, "walk reported a chunk before any arena");
        return 1;
    }
    return visit_chunk(w, chunk);
}

static void compare_with_walk(model *m)
{
    walk_state w = {m, SIZE_MAX, 0, 0};
    if (TAlloc_heap_walk(th_run_heap(m->run), visit, &w) != 0 || m->is_broken)
        return; /* a damaged heap is the checker's to report */
    if (finish_arena(&w) && w.arenas_seen != m->count)
        pl_differ(m, NULL, "model has %zu arenas, the walk %zu", m->count, w.arenas_seen);
}

/* ---- the hook and the target --------------------------------------------------------------- */

static void after_op(void *ctx, th_run *run, size_t op_index, const th_op *op, const th_op_result *r)
{
    (void)op_index; /* th_run_fail records it */
    model *m = ctx;
    m->run = run;
    m->op = op;
    if (th_run_has_failed(run))
        m->is_broken = true;
    if (r->is_executed && !m->is_broken) {
        apply_op(m, op, r);
        pl_expect_no_more_events(m);
        if (!m->is_broken)
            compare_with_walk(m);
    }
    m->event_count = 0;
    m->is_event_overflow = false;
}

static void model_init(model *m, const th_config *config)
{
    *m = (model){0};
    m->page_size = TAlloc_page_size();
    size_t size = config->arena_size;
    if (size < ARENA_HEADER + ARENA_FENCE + MIN_CHUNK)
        size = ARENA_HEADER + ARENA_FENCE + MIN_CHUNK;
    m->arena_size = pl_round_up(size, m->page_size);
    m->retained = config->retained_arena_count;
    m->policy = config->policy;
    m->cache_bound = config->large_cache;
    m->quick_bound = config->quick;
    m->fresh_since_flush = SIZE_MAX;
}

static void model_free(model *m)
{
    for (size_t i = 0; i < m->count; i++)
        free(m->arenas[i].segments);
    free(m->arenas);
    *m = (model){0};
}

/* One model per process; each run starts from an empty one. */
static model the_model;

/* Only arenas (and the large-block cache's mappings) are reported: the heap's control block
   and tables are metadata pages. */
static void on_map(void *ctx, void *base, size_t size)
{
    pl_record(ctx, (os_event){EVENT_MAP, (uintptr_t)base, size, 0, 0, false});
}

static void on_unmap(void *ctx, void *base, size_t size)
{
    pl_record(ctx, (os_event){EVENT_UNMAP, (uintptr_t)base, size, 0, 0, false});
}

static void on_remap(void *ctx, void *old_base, size_t old_size, void *new_base, size_t new_size)
{
    pl_record(ctx, (os_event){EVENT_REMAP, (uintptr_t)old_base, old_size, (uintptr_t)new_base,
                              new_size, false});
}

void th_placement_install(th_config *config)
{
    model_free(&the_model);
    model_init(&the_model, config);
    config->hooks.on_map = on_map;
    config->hooks.on_unmap = on_unmap;
    config->hooks.on_remap = on_remap;
    config->hooks.after_op = after_op;
    config->hooks.ctx = &the_model;
}
