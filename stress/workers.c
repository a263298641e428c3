/*
 * workers.c - what each stress thread does: pick ops from its profile with a per-(seed,
 * thread, profile) splitmix64 RNG, execute them on the chosen allocator, keep the live
 * blocks in allocation order, fill every block with its pattern (pattern.c) and verify it
 * before the block is freed or reallocated. Nothing here reads a clock: the op
 * stream of a thread depends only on the seed and (for cross-thread) on the queue.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

/* ---- RNG ------------------------------------------------------------------- */

static uint64_t profile_rng[STRESS_MAX_THREADS][P_COUNT];

static uint64_t rnd(stress_thread *t)
{
    uint64_t *s = &profile_rng[t->index][t->profile];
    *s += 0x9E3779B97F4A7C15u;
    return stress_mix(*s);
}

static size_t rnd_range(stress_thread *t, size_t lo, size_t hi) /* inclusive */
{
    return lo + (size_t)(rnd(t) % (uint64_t)(hi - lo + 1));
}

/* ---- recording --------------------------------------------------------------------------- */

static th_size make_size(uint64_t size, uint8_t *notes)
{
    if (size > 0xFFFFFF) {
        *notes |= NOTE_SIZE_CLIPPED;
        return (th_size){TH_SIZE_U24, 0xFFFFFF};
    }
    uint8_t form = size <= 0xFF ? TH_SIZE_U8 : size <= 0xFFFF ? TH_SIZE_U16 : TH_SIZE_U24;
    return (th_size){form, (uint32_t)size};
}

static uint8_t align_selector(size_t align)
{
    uint8_t k = 0;
    while (((size_t)1 << k) < align)
        k++;
    return k;
}

/* Records the op about to run (ring buffer, digest, counters). */
static void record(stress_thread *t, th_op_kind kind, size_t index, uint64_t size, size_t align,
                   unsigned count, uint8_t notes)
{
    ring_entry *e = &t->ring[t->ring_count % STRESS_RING];
    e->notes = notes;
    if (index > 0xFF)
        e->notes |= NOTE_INDEX_WRAPPED;
    e->size = size;
    e->index = index;
    e->op = (th_op){.kind = (uint8_t)kind, .block = (uint8_t)index, .count = (uint8_t)count,
                    .align = align_selector(align)};
    e->op.size = make_size(size, &e->notes);
    t->ring_count++;
    uint64_t d = t->digest ^ ((uint64_t)kind << 56 ^ (uint64_t)count << 48 ^ align);
    d = stress_mix(d) ^ size;
    t->digest = stress_mix(stress_mix(d) ^ index);
    t->op_kind[kind]++;
    t->op_index++;
    atomic_store_explicit(&t->ops_done, t->op_index, memory_order_relaxed);
}

/* ---- the live-bytes ceiling -------------------------------------------------------------- */

static bool reserve(size_t size)
{
    size_t cur = atomic_load(&g.live_bytes);
    do {
        if (size > g.opt.max_live || cur > g.opt.max_live - size)
            return false;
    } while (!atomic_compare_exchange_weak(&g.live_bytes, &cur, cur + size));
    size_t peak = atomic_load(&g.peak_live);
    while (cur + size > peak && !atomic_compare_exchange_weak(&g.peak_live, &peak, cur + size)) {
    }
    atomic_fetch_add(&g.live_blocks, 1);
    return true;
}

static void unreserve(size_t size)
{
    atomic_fetch_sub(&g.live_bytes, size);
    atomic_fetch_sub(&g.live_blocks, 1);
}

static size_t thread_share(void)
{
    return g.opt.max_live / (size_t)g.opt.threads;
}

/* ---- ops --------------------------------------------------------------------------------- */

static bool check_pattern(stress_thread *t, const stress_block *b, const char *when)
{
    size_t bad = 0;
    if (stress_verify_block(b->id, b->ptr, b->size, &bad))
        return true;
    stress_fail(t, "pattern", "block %p (%zu bytes, id %llu) byte %zu changed, %s", (void *)b->ptr,
                b->size, (unsigned long long)b->id, bad, when);
    return false;
}

static void push_block(stress_thread *t, unsigned char *p, size_t size, bool is_short)
{
    if (t->live == t->capacity) {
        t->capacity = t->capacity ? t->capacity * 2 : 256;
        t->blocks = realloc(t->blocks, t->capacity * sizeof *t->blocks);
        if (t->blocks == NULL)
            abort();
    }
    uint64_t id = ((uint64_t)t->index << 40) | t->next_id++;
    t->blocks[t->live++] = (stress_block){p, size, id, is_short};
    t->live_bytes += size;
    stress_fill_pattern(id, p, 0, size);
}

static void remove_block(stress_thread *t, size_t i)
{
    t->live_bytes -= t->blocks[i].size;
    memmove(&t->blocks[i], &t->blocks[i + 1], (t->live - i - 1) * sizeof *t->blocks);
    t->live--;
}

/* Checks a fresh allocation: non-NULL, aligned, zero for calloc. */
static bool check_new(stress_thread *t, const unsigned char *p, size_t size, size_t align,
                      bool is_zeroed)
{
    if (p == NULL) {
        stress_fail(t, "API contract", "allocation of %zu bytes (align %zu) returned NULL: %s",
                    size, align, strerror(errno));
        return false;
    }
    if ((uintptr_t)p % align != 0) {
        stress_fail(t, "API contract", "%p is not %zu-aligned", (const void *)p, align);
        return false;
    }
    for (size_t i = 0; is_zeroed && i < size; i++)
        if (p[i] != 0) {
            stress_fail(t, "API contract", "calloc block %p byte %zu is not zero",
                        (const void *)p, i);
            return false;
        }
    return true;
}

typedef enum alloc_how { HOW_MALLOC, HOW_CALLOC, HOW_ALIGNED, HOW_MEMALIGN } alloc_how;

/* Allocates `size` bytes (calloc: count * size/count) within the ceiling; false if skipped
   or failed (stress_fail was called then). `notes` marks a hand-off. */
static unsigned char *do_alloc(stress_thread *t, alloc_how how, size_t size, size_t align,
                               unsigned count, uint8_t notes)
{
    if (size == 0 || !reserve(size))
        return NULL;
    void *p = NULL;
    switch (how) {
    case HOW_MALLOC:
        record(t, TH_OP_MALLOC, 0, size, 1, 0, notes);
        p = g.alloc.malloc_fn(size);
        break;
    case HOW_CALLOC:
        record(t, TH_OP_CALLOC, 0, size / count, 1, count, notes);
        p = g.alloc.calloc_fn(count, size / count);
        break;
    case HOW_ALIGNED:
        record(t, TH_OP_ALIGNED_ALLOC, 0, size, align, 0, notes);
        p = g.alloc.aligned_fn(align, size);
        break;
    case HOW_MEMALIGN: {
        record(t, TH_OP_POSIX_MEMALIGN, 0, size, align, 0, notes);
        int rc = g.alloc.memalign_fn(&p, align, size);
        if (rc != 0) {
            errno = rc;
            p = NULL;
        }
        break;
    }
    }
    if (!check_new(t, p, size, how >= HOW_ALIGNED ? align : stress_min_alignment(size), how == HOW_CALLOC))
        return NULL;
    return p;
}

static bool op_alloc(stress_thread *t, alloc_how how, size_t size, size_t align, bool is_short)
{
    unsigned count = 1;
    if (how == HOW_CALLOC) {
        count = (unsigned)rnd_range(t, 1, 16);
        size = size / count * count;
    }
    unsigned char *p = do_alloc(t, how, size, align, count, 0);
    if (p != NULL)
        push_block(t, p, size, is_short);
    return p != NULL;
}

static bool op_free(stress_thread *t, size_t i)
{
    stress_block b = t->blocks[i];
    record(t, TH_OP_FREE, i, 0, 1, 0, 0);
    if (!check_pattern(t, &b, "before free"))
        return false;
    g.alloc.free_fn(b.ptr);
    remove_block(t, i);
    unreserve(b.size);
    return true;
}

static bool op_realloc(stress_thread *t, size_t i, size_t size)
{
    stress_block *b = &t->blocks[i];
    if (size == 0)
        size = 1;
    if (size > b->size && !reserve(size - b->size))
        size = b->size / 2 + 1; /* no room to grow: shrink instead */
    else if (size > b->size)
        atomic_fetch_sub(&g.live_blocks, 1); /* reserve counted a block; this is the same one */
    record(t, TH_OP_REALLOC, i, size, 1, 0, 0);
    if (!check_pattern(t, b, "before realloc"))
        return false;
    unsigned char *p = g.alloc.realloc_fn(b->ptr, size);
    if (!check_new(t, p, size, stress_min_alignment(size), false))
        return false;
    size_t keep = size < b->size ? size : b->size;
    stress_block moved = {p, keep, b->id, b->is_short};
    if (!check_pattern(t, &moved, "after realloc (prefix)"))
        return false;
    if (size < b->size)
        atomic_fetch_sub(&g.live_bytes, b->size - size);
    t->live_bytes = t->live_bytes - b->size + size;
    stress_fill_pattern(b->id, p, keep, size);
    b->ptr = p;
    b->size = size;
    return true;
}

static bool op_verify(stress_thread *t, size_t i)
{
    record(t, TH_OP_VERIFY, i, 0, 1, 0, 0);
    return check_pattern(t, &t->blocks[i], "on verify");
}

static bool op_usable(stress_thread *t, size_t i)
{
    record(t, TH_OP_USABLE_SIZE, i, 0, 1, 0, 0);
    size_t n = g.alloc.usable_fn(t->blocks[i].ptr);
    if (n >= t->blocks[i].size)
        return true;
    stress_fail(t, "API contract", "usable_size %zu < requested %zu", n, t->blocks[i].size);
    return false;
}

static size_t pick(stress_thread *t)
{
    return (size_t)(rnd(t) % t->live);
}

/* Frees a random block, or allocates a small one, or takes one from the queue: any op. */
static int fallback_op(stress_thread *t);

/* ---- cross-thread queue ------------------------------------------------------------------ */

static bool queue_push(stress_thread *t)
{
    size_t size = rnd_range(t, 16, 16384);
    pthread_mutex_lock(&g.queue_lock);
    bool is_full = g.queue_count == STRESS_QUEUE_CAP;
    pthread_mutex_unlock(&g.queue_lock);
    if (is_full)
        return false;
    unsigned char *p = do_alloc(t, HOW_MALLOC, size, 16, 1, NOTE_HANDOFF);
    if (p == NULL)
        return false;
    uint64_t id = ((uint64_t)t->index << 40) | t->next_id++;
    stress_fill_pattern(id, p, 0, size);
    pthread_mutex_lock(&g.queue_lock);
    if (g.queue_count < STRESS_QUEUE_CAP) {
        g.queue[g.queue_count++] = (stress_queue_item){p, size, id, t->index};
        p = NULL;
    }
    pthread_mutex_unlock(&g.queue_lock);
    if (p != NULL) { /* filled up meanwhile: keep it as an ordinary block */
        push_block(t, p, size, false);
    }
    return true;
}

/* Takes the oldest block another thread produced (or any, alone or when the queue is
   more than half full). */
static bool queue_pop(stress_thread *t, stress_queue_item *out)
{
    bool found = false;
    pthread_mutex_lock(&g.queue_lock);
    for (size_t i = 0; i < g.queue_count && !found; i++) {
        if (g.queue[i].producer == t->index && g.opt.threads > 1 &&
            g.queue_count <= STRESS_QUEUE_CAP / 2)
            continue;
        *out = g.queue[i];
        memmove(&g.queue[i], &g.queue[i + 1], (g.queue_count - i - 1) * sizeof g.queue[0]);
        g.queue_count--;
        found = true;
    }
    pthread_mutex_unlock(&g.queue_lock);
    return found;
}

static bool free_foreign(stress_thread *t, const stress_queue_item *it)
{
    record(t, TH_OP_FREE, 0, 0, 1, 0, NOTE_FOREIGN);
    stress_block b = {it->ptr, it->size, it->id, false};
    if (!check_pattern(t, &b, "before cross-thread free"))
        return false;
    g.alloc.free_fn(it->ptr);
    unreserve(it->size);
    return true;
}

/* Called after the workers stopped: frees what is still queued. */
void stress_drain_queue(void)
{
    for (size_t i = 0; i < g.queue_count; i++) {
        g.alloc.free_fn(g.queue[i].ptr);
        unreserve(g.queue[i].size);
    }
    g.queue_count = 0;
}

/* ---- profiles: each runs one op; returns 1 done, 0 nothing run, -1 failed ---------------- */

#define RUN(expr) ((expr) ? 1 : -1)
#define TRY(expr) ((expr) ? 1 : atomic_load(&g.has_failed) ? -1 : 0)

static int step_small(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live == 0 || (r < 55 && t->live < 20000))
        return TRY(op_alloc(t, HOW_MALLOC, rnd_range(t, 8, 256), 16, false));
    if (r < 85)
        return RUN(op_free(t, pick(t)));
    if (r < 92)
        return RUN(op_realloc(t, pick(t), rnd_range(t, 8, 256)));
    if (r < 96)
        return RUN(op_verify(t, pick(t)));
    return RUN(op_usable(t, pick(t)));
}

static size_t power_law(stress_thread *t, unsigned max_bits)
{
    unsigned bits = (unsigned)rnd_range(t, 3, max_bits);
    return (size_t)rnd_range(t, 1, (size_t)1 << bits);
}

static int step_mixed(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live == 0 || (r < 50 && t->live < 2000))
        return TRY(op_alloc(t, r % 10 == 0 ? HOW_CALLOC : HOW_MALLOC, power_law(t, 20), 16, false));
    if (r < 88)
        return RUN(op_free(t, pick(t)));
    if (r < 96)
        return RUN(op_realloc(t, pick(t), power_law(t, 20)));
    return RUN(op_verify(t, pick(t)));
}

static size_t large_size(stress_thread *t)
{
    const size_t a = TALLOC_DEFAULT_ARENA_SIZE, max = a - 80;
    size_t size;
    switch (rnd(t) % 6) {
    case 0: size = max - rnd_range(t, 0, 4096); break;
    case 1: size = max + rnd_range(t, 0, 2); break;
    case 2: size = a + rnd_range(t, 0, 65536); break;
    case 3: size = 2 * a + 1 + rnd_range(t, 0, a / 2); break;
    case 4: size = a / 2 + rnd_range(t, 0, a / 2); break;
    default: size = rnd_range(t, 65536, 1 << 20); break;
    }
    size_t cap = thread_share() / 2;
    if (size > cap)
        size = cap / 2 + rnd_range(t, 1, cap / 2 + 1);
    return size;
}

static int step_large(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live < 3 && r < 70)
        return TRY(op_alloc(t, r % 7 == 0 ? HOW_CALLOC : HOW_MALLOC, large_size(t), 16, false));
    if (t->live == 0)
        return 0;
    if (r < 80)
        return RUN(op_realloc(t, pick(t), large_size(t)));
    return RUN(op_free(t, r % 2 ? 0 : pick(t)));
}

static int step_realloc(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live < 16 || r < 8)
        return TRY(op_alloc(t, HOW_MALLOC, rnd_range(t, 1, 4096), 16, false));
    size_t i = pick(t), size = t->blocks[i].size;
    if (r < 60)
        return RUN(op_realloc(t, i, size < (1u << 21) ? size * 2 + rnd_range(t, 0, 64) : 1));
    if (r < 92)
        return RUN(op_realloc(t, i, size / 2 + 1));
    return RUN(op_free(t, i));
}

static int step_aligned(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live == 0 || (r < 55 && t->live < 1000)) {
        size_t align = (size_t)1 << rnd_range(t, 4, 16);
        size_t size = r % 5 == 0 ? rnd_range(t, 1, 262144) : rnd_range(t, 1, 8192);
        return TRY(op_alloc(t, r % 2 ? HOW_ALIGNED : HOW_MEMALIGN, size, align, false));
    }
    if (r < 95)
        return RUN(op_free(t, pick(t)));
    return RUN(op_verify(t, pick(t)));
}

static int step_calloc(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live == 0 || (r < 55 && t->live < 2000))
        return TRY(op_alloc(t, HOW_CALLOC, rnd_range(t, 16, r % 10 ? 4096 : 1 << 20), 16, false));
    return RUN(op_free(t, pick(t)));
}

/* Fill this thread's share of the ceiling, drain to empty, repeat; check at each turn. */
static int step_phases(stress_thread *t)
{
    if (t->is_filling) {
        size_t size = rnd_range(t, 64, 65536);
        if (t->live_bytes + size <= thread_share() &&
            op_alloc(t, t->live % 8 ? HOW_MALLOC : HOW_CALLOC, size, 16, false))
            return 1;
        if (atomic_load(&g.has_failed))
            return -1;
        t->is_filling = false;
        if (!pause_full_check(t, "phase end (fill)"))
            return -1;
        return t->live ? RUN(op_free(t, pick(t))) : 0;
    }
    if (t->live > 0)
        return RUN(op_free(t, pick(t)));
    t->is_filling = true;
    if (!pause_full_check(t, "phase end (drain)"))
        return -1;
    return 0;
}

static int step_cross(stress_thread *t)
{
    stress_queue_item it;
    unsigned r = (unsigned)(rnd(t) % 100);
    if (r < 50 && queue_push(t))
        return 1;
    if (atomic_load(&g.has_failed))
        return -1;
    if (r >= 50 && queue_pop(t, &it))
        return RUN(free_foreign(t, &it));
    return step_small(t);
}

/* Many small long-lived blocks interleaved with large short-lived ones. */
static int step_fragment(stress_thread *t)
{
    unsigned r = (unsigned)(rnd(t) % 100);
    if (t->live == 0 || (r < 45 && t->live < 30000))
        return TRY(op_alloc(t, HOW_MALLOC, rnd_range(t, 16, 512), 16, false));
    if (r < 70)
        return TRY(op_alloc(t, HOW_MALLOC, rnd_range(t, 32768, 524288), 16, true));
    for (size_t k = 0, i = t->live; k < 64 && i-- > 0; k++)
        if (t->blocks[i].is_short)
            return RUN(op_free(t, i));
    return RUN(op_free(t, pick(t)));
}

typedef int (*step_fn)(stress_thread *);
/* `share` divides --rotate-every for that profile: an op of `large` fills and verifies
   megabytes, so it gets 1/200 of the ops of the others and about the same time. */
static const struct { const char *name; step_fn step; uint64_t share; } profiles[P_COUNT] = {
    [P_SMALL] = {"small", step_small, 1},       [P_MIXED] = {"mixed", step_mixed, 1},
    [P_LARGE] = {"large", step_large, 200},     [P_REALLOC] = {"realloc", step_realloc, 1},
    [P_ALIGNED] = {"aligned", step_aligned, 1}, [P_CALLOC] = {"calloc", step_calloc, 1},
    [P_PHASES] = {"phases", step_phases, 1},    [P_CROSS] = {"cross-thread", step_cross, 1},
    [P_FRAGMENT] = {"fragment", step_fragment, 1},
};

static uint64_t turn_length(int profile)
{
    uint64_t ops = g.opt.rotate_every / profiles[profile].share;
    return ops ? ops : 1;
}

/* The profile for op `op_index`: the profiles take turns of turn_length() ops each. */
static int profile_at(uint64_t op_index)
{
    uint64_t cycle = 0;
    for (int i = 0; i < g.opt.profile_count; i++)
        cycle += turn_length(g.opt.profiles[i]);
    uint64_t at = op_index % cycle;
    for (int i = 0;; i++) {
        uint64_t length = turn_length(g.opt.profiles[i]);
        if (at < length)
            return g.opt.profiles[i];
        at -= length;
    }
}

const char *stress_profile_name(int profile)
{
    return profiles[profile].name;
}

int stress_profile_find(const char *name)
{
    for (int i = 0; i < P_COUNT; i++)
        if (strcmp(profiles[i].name, name) == 0)
            return i;
    return -1;
}

static int fallback_op(stress_thread *t)
{
    stress_queue_item it;
    if (op_alloc(t, HOW_MALLOC, 16, 16, false))
        return 1;
    if (atomic_load(&g.has_failed))
        return -1;
    if (t->live > 0)
        return RUN(op_free(t, pick(t)));
    if (queue_pop(t, &it))
        return RUN(free_foreign(t, &it));
    sched_yield(); /* the ceiling is held by other threads: wait for them */
    return 0;
}

/* ---- the thread ---------------------------------------------------------------------------- */

/* Frees every live block, newest first (no O(n^2) shifting), verifying each. */
void stress_free_all(stress_thread *t)
{
    while (t->live > 0 && !atomic_load(&g.has_failed))
        if (!op_free(t, t->live - 1))
            return;
}

static bool is_done(const stress_thread *t)
{
    if (atomic_load_explicit(&g.stop, memory_order_relaxed))
        return true;
    return g.opt.ops != 0 && t->op_index >= g.opt.ops;
}

void *stress_worker(void *arg)
{
    stress_thread *t = arg;
    stress_set_current(t);
    for (int p = 0; p < P_COUNT; p++)
        profile_rng[t->index][p] = stress_mix(g.opt.seed ^ stress_mix(((uint64_t)t->index << 8) | (uint64_t)p));
    t->is_filling = true;
    uint64_t next_check = g.opt.check_every;
    while (!is_done(t)) {
        pause_safe_point();
        if (!stress_fault_maybe(t))
            break;
        t->profile = profile_at(t->op_index);
        int rc = profiles[t->profile].step(t);
        if (rc == 0)
            rc = fallback_op(t);
        if (rc < 0)
            break;
        if (g.opt.check_every && t->op_index >= next_check) {
            next_check = t->op_index + g.opt.check_every;
            if (!pause_full_check(t, "periodic"))
                break;
        }
    }
    stress_free_all(t);
    pause_thread_exit();
    return NULL;
}
