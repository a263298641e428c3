/*
 * placement_os.c - the placement oracle's view of the OS layer: every map, unmap and remap an
 * op causes is recorded (through the harness's hooks) and must be one the model predicted,
 * in any order within the op; and the model of the large-block cache (README "Large
 * blocks"): released dedicated arenas' mappings kept, up to 8 and the heap's byte bound, the
 * oldest given back first, any older than 64 later large events given back when the next
 * comes; a new dedicated arena made from the kept mapping of its size, else the smallest
 * bigger one whole, else the biggest smaller one, grown; the last kept first on a tie.
 */
#include "placement.h"

void pl_record(model *m, os_event e)
{
    if (m->event_count == MAX_OS_EVENTS) {
        m->is_event_overflow = true;
        return;
    }
    m->events[m->event_count++] = e;
}

static os_event *find_event(model *m, event_kind kind, uintptr_t base, size_t size)
{
    for (size_t i = 0; i < m->event_count; i++) {
        os_event *e = &m->events[i];
        if (!e->is_taken && e->kind == kind && (kind == EVENT_MAP || e->base == base) &&
            e->size == size)
            return e;
    }
    return NULL;
}

bool pl_take_map(model *m, size_t size, uintptr_t *base)
{
    os_event *e = find_event(m, EVENT_MAP, 0, size);
    if (e == NULL)
        return false;
    e->is_taken = true;
    *base = e->base;
    return true;
}

void pl_expect_unmap(model *m, uintptr_t base, size_t size, const char *what)
{
    os_event *e = find_event(m, EVENT_UNMAP, base, size);
    if (e == NULL) {
        pl_differ(m, (void *)base, "predicted %s %p (%zu bytes) unmapped, TAlloc kept it", what,
                  (void *)base, size);
        return;
    }
    e->is_taken = true;
}

bool pl_take_remap(model *m, uintptr_t base, size_t old_size, size_t new_size, uintptr_t *new_base)
{
    os_event *e = find_event(m, EVENT_REMAP, base, old_size);
    if (e == NULL || e->new_size != new_size)
        return false;
    e->is_taken = true;
    *new_base = e->new_base;
    return true;
}

void pl_expect_no_more_events(model *m)
{
    static const char *const names[] = {"map", "unmap", "remap"};
    if (m->is_event_overflow) {
        pl_differ(m, NULL, "more than %d maps, unmaps and remaps in one op", MAX_OS_EVENTS);
        return;
    }
    for (size_t i = 0; i < m->event_count; i++) {
        const os_event *e = &m->events[i];
        if (!e->is_taken) {
            pl_differ(m, (void *)e->base, "unpredicted %s of %zu bytes at %p", names[e->kind],
                      e->size, (void *)e->base);
            return;
        }
    }
}

/* ---- the large-block cache ---------------------------------------------------------------- */

static void give_back(model *m, size_t at)
{
    pl_expect_unmap(m, m->kept[at].base, m->kept[at].size, "kept mapping");
    m->kept[at] = m->kept[--m->kept_count];
}

/* A large event: the clock moves, and what is now too old goes back. */
static void decay(model *m)
{
    m->large_clock++;
    for (size_t i = 0; i < m->kept_count;)
        if (m->large_clock - m->kept[i].stamp > KEPT_DECAY)
            give_back(m, i);
        else
            i++;
}

static size_t kept_bytes(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->kept_count; i++)
        n += m->kept[i].size;
    return n;
}

bool pl_cache_keep(model *m, uintptr_t base, size_t size)
{
    decay(m);
    if (m->cache_bound == 0 || size > m->cache_bound)
        return false;
    while (m->kept_count > 0 &&
           (m->kept_count == KEPT_SLOTS || kept_bytes(m) + size > m->cache_bound)) {
        size_t oldest = 0;
        for (size_t i = 1; i < m->kept_count; i++)
            if (m->kept[i].stamp < m->kept[oldest].stamp)
                oldest = i;
        give_back(m, oldest);
    }
    m->kept[m->kept_count++] = (kept_mapping){base, size, m->large_clock};
    return true;
}

/* Whether kept mapping i is a better choice than `best` (SIZE_MAX: none) for `size` bytes. */
static bool is_better(const model *m, size_t i, size_t best, size_t size)
{
    if (best == SIZE_MAX)
        return true;
    size_t s = m->kept[i].size, b = m->kept[best].size;
    int rank_s = s == size ? 0 : s > size ? 1 : 2, rank_b = b == size ? 0 : b > size ? 1 : 2;
    if (rank_s != rank_b)
        return rank_s < rank_b;
    if (s != b)
        return rank_s == 1 ? s < b : s > b;
    return m->kept[i].stamp > m->kept[best].stamp;
}

bool pl_cache_take(model *m, size_t size, uintptr_t *base, size_t *got)
{
    decay(m);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < m->kept_count; i++)
        if (is_better(m, i, best, size))
            best = i;
    if (best == SIZE_MAX)
        return false;
    kept_mapping k = m->kept[best];
    *got = k.size > size ? k.size : size;
    if (k.size < size && !pl_take_remap(m, k.base, k.size, size, base))
        return false; /* refused: it stays kept */
    if (k.size >= size)
        *base = k.base;
    m->kept[best] = m->kept[--m->kept_count];
    return true;
}
