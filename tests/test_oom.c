/*
 * test_oom.c - OOM: the OS layer fails the N-th map for every N along a scripted sequence;
 * each failing call returns NULL/ENOMEM, old blocks keep their bytes, check returns 0, and
 * allocation works again once the failures stop.
 *
 * The heap gets an OS layer that forwards to TAlloc_os_default() and counts its calls. One
 * fixed script of allocator calls (small, medium and dedicated-arena mallocs, calloc, realloc
 * that grows into a new arena or shrinks, aligned_alloc and posix_memalign with page and 64 KiB
 * alignment, frees that release arenas) runs on a heap with 4096-byte arenas and no retained
 * arena, so arenas are mapped and unmapped all the time. A clean run counts the map calls M
 * (call 1 maps the heap's control block). Then, for every N in 2..M+1 and in two variants -
 * only the N-th map fails, or the N-th and every later one until the script ends - the script
 * runs again on a fresh heap and, after every operation:
 *   - a NULL result (posix_memalign: nonzero) comes with ENOMEM and happens exactly in the
 *     operations during which a map was refused; the heap counts one MAP_FAILED per refusal;
 *   - a failed realloc leaves the old block live with its bytes;
 *   - every live block keeps its pattern, the stats agree with the OS layer's counts, and the
 *     heap check finds nothing.
 * Per run those checks are aggregated into one EXPECT (the first few problems are printed).
 * After the script the failures stop; a large and a small malloc must succeed, and freeing
 * everything must leave no allocated chunk and (no retention) no arena.
 */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "talloc.h"
#include "testutil.h"

/* ---- the failing OS layer ------------------------------------------------------------------ */

typedef struct fail_os {
    unsigned long calls;    /* map calls so far, refused ones included */
    unsigned long fail_at;  /* the first call to refuse; 0: none */
    int sticky;             /* refuse every call from fail_at on, not just that one */
    int enabled;            /* refusals switched on */
    unsigned long failures; /* calls refused */
    unsigned long maps_ok;  /* calls answered with memory */
    unsigned long unmaps;
    size_t live_bytes;      /* mapped and not unmapped */
} fail_os;

static void *fail_map(void *ctx, size_t size)
{
    fail_os *f = ctx;
    f->calls++;
    if (f->enabled && f->fail_at != 0 &&
        (f->calls == f->fail_at || (f->sticky && f->calls > f->fail_at))) {
        f->failures++;
        return NULL;
    }
    const TAlloc_os *os = TAlloc_os_default();
    void *p = os->map(os->ctx, size);
    if (p != NULL) {
        f->maps_ok++;
        f->live_bytes += size;
    }
    return p;
}

static void fail_unmap(void *ctx, void *address, size_t size)
{
    fail_os *f = ctx;
    f->unmaps++;
    f->live_bytes -= size;
    const TAlloc_os *os = TAlloc_os_default();
    os->unmap(os->ctx, address, size);
}

/* ---- the script ----------------------------------------------------------------------------- */

typedef enum op_kind { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_MEMALIGN, OP_FREE } op_kind;

typedef struct op {
    op_kind kind;
    int slot;
    size_t a; /* malloc/realloc: size; calloc: count; aligned/memalign: alignment */
    size_t b; /* calloc: element size; aligned/memalign: size */
} op;

enum { SLOTS = 12 };

/*
 * Arenas are 4096 bytes: 4032 bytes of chunks, so a 1990-byte block (chunk 2016) takes half a
 * standard arena and a 4016-byte block (chunk 4032) a whole one; with no retained arena every
 * such block maps an arena and its free unmaps it. Requests above 4016 bytes get a dedicated
 * arena: 8112, 12208, 16304 and 20400 bytes fill 2, 3, 4 and 5 pages exactly; 4096- and
 * 65536-aligned requests need a chunk bigger than a standard arena, so they map too.
 */
static const op script[] = {
    {OP_MALLOC, 0, 1990, 0},        /* arena 1 */
    {OP_CALLOC, 1, 2, 995},         /* fills arena 1 */
    {OP_MALLOC, 2, 100, 0},         /* arena 2 */
    {OP_MALLOC, 3, 3800, 0},        /* fills arena 2 but for 80 bytes */
    {OP_REALLOC, 2, 1000, 0},       /* successor allocated, nothing fits: moves to arena 3 */
    {OP_MALLOC, 4, 8112, 0},        /* dedicated, no leftover */
    {OP_MALLOC, 5, 4016, 0},        /* a whole standard arena */
    {OP_ALIGNED, 6, 4096, 4096},    /* dedicated, page aligned */
    {OP_FREE, 6, 0, 0},             /* releases it */
    {OP_MEMALIGN, 7, 65536, 100},   /* dedicated, 64 KiB aligned */
    {OP_FREE, 7, 0, 0},             /* releases it */
    {OP_CALLOC, 8, 3, 4000},        /* dedicated, zeroed */
    {OP_FREE, 4, 0, 0},             /* releases a dedicated arena */
    {OP_REALLOC, 0, 4016, 0},       /* grows out of full arena 1 into a new arena */
    {OP_FREE, 1, 0, 0},             /* empties arena 1: released */
    {OP_MALLOC, 1, 16, 0},
    {OP_REALLOC, 3, 20000, 0},      /* moves into a dedicated arena */
    {OP_FREE, 5, 0, 0},             /* releases a whole-arena block's arena */
    {OP_MEMALIGN, 4, 4096, 8192},
    {OP_FREE, 4, 0, 0},
    {OP_MALLOC, 6, 3000, 0},
    {OP_REALLOC, 8, 24000, 0},      /* dedicated to a bigger dedicated arena */
    {OP_MALLOC, 4, 4016, 0},
    {OP_MALLOC, 7, 4016, 0},
    {OP_FREE, 4, 0, 0},
    {OP_REALLOC, 7, 100, 0},        /* shrinks in place */
    {OP_MALLOC, 9, 1990, 0},
    {OP_MALLOC, 10, 1990, 0},
    {OP_MALLOC, 11, 1990, 0},
    {OP_ALIGNED, 4, 65536, 65536},  /* dedicated, 64 KiB aligned */
    {OP_FREE, 4, 0, 0},
    {OP_FREE, 9, 0, 0},
    {OP_CALLOC, 9, 1, 4016},        /* a whole standard arena, zeroed */
    {OP_REALLOC, 10, 3500, 0},
    {OP_FREE, 11, 0, 0},
    {OP_MALLOC, 11, 8112, 0},
    {OP_REALLOC, 11, 16304, 0},     /* its dedicated arena is full: moves */
    {OP_FREE, 0, 0, 0},
    {OP_MALLOC, 0, 1990, 0},
    {OP_MALLOC, 4, 1990, 0},
    {OP_MEMALIGN, 5, 64, 300},
    {OP_FREE, 3, 0, 0},
    {OP_ALIGNED, 3, 64, 192},
    {OP_REALLOC, 0, 2400, 0},
    {OP_FREE, 9, 0, 0},
    {OP_MALLOC, 9, 12208, 0},       /* dedicated, 3 pages */
    {OP_REALLOC, 9, 6000, 0},       /* shrinks a dedicated block */
    {OP_FREE, 11, 0, 0},
    {OP_CALLOC, 11, 50, 80},
    {OP_REALLOC, 4, 4016, 0},
    {OP_FREE, 2, 0, 0},
    {OP_ALIGNED, 2, 4096, 8192},
    {OP_FREE, 2, 0, 0},
    {OP_FREE, 10, 0, 0},
    {OP_REALLOC, 5, 20400, 0},      /* aligned block moves into a 5-page dedicated arena */
    {OP_MALLOC, 10, 4016, 0},
    {OP_FREE, 6, 0, 0},
    {OP_FREE, 9, 0, 0},
    {OP_REALLOC, 1, 3990, 0},
    {OP_FREE, 8, 0, 0},
    {OP_MALLOC, 8, 4016, 0},
    {OP_FREE, 5, 0, 0},
    {OP_MALLOC, 2, 8112, 0},
    {OP_FREE, 2, 0, 0},
};

enum { SCRIPT_LENGTH = (int)(sizeof script / sizeof script[0]) };

/* ---- one run ---------------------------------------------------------------------------------- */

typedef struct slot {
    unsigned char *p;
    size_t size;
} slot;

typedef struct run {
    const char *variant;
    unsigned long fail_at;
    fail_os os;
    TAlloc_heap *heap;
    slot slots[SLOTS];
    unsigned long errors;    /* problems found */
    unsigned long null_ops;  /* operations that returned NULL */
    unsigned long misuse;    /* reports from the heap's error handler */
    char text[700];          /* the first few problems */
} run;

static unsigned char pattern(int slot_index, size_t i)
{
    return (unsigned char)((unsigned)slot_index * 29u + i * 7u + (i >> 8) * 3u + 1u);
}

static void fill_slot(slot *s, int index, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        s->p[i] = pattern(index, i);
}

/* Index of the first byte of slot `index` (first `n` bytes) that lost its pattern, or n. */
static size_t first_bad_byte(const slot *s, int index, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->p[i] != pattern(index, i))
            return i;
    return n;
}

__attribute__((format(printf, 2, 3))) static void run_error(run *r, const char *fmt, ...)
{
    r->errors++;
    size_t used = strlen(r->text);
    if (r->errors > 4 || used + 8 >= sizeof r->text)
        return;
    snprintf(r->text + used, sizeof r->text - used, " [");
    used = strlen(r->text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text + used, sizeof r->text - used, fmt, ap);
    va_end(ap);
    used = strlen(r->text);
    snprintf(r->text + used, sizeof r->text - used, "]");
}

static void on_misuse(void *ctx, TAlloc_error error, const void *address)
{
    run *r = ctx;
    r->misuse++;
    const char *what = TAlloc_error_string(error);
    run_error(r, "heap reported %s at %p", what ? what : "?", address);
}

static TAlloc_stats stats_of(TAlloc_heap *heap)
{
    TAlloc_stats s;
    memset(&s, 0, sizeof s);
    TAlloc_heap_get_stats(heap, &s);
    return s;
}

/* Creates the run's heap; returns 0 (with errno) when creation failed. */
static int run_start(run *r, const char *variant, unsigned long fail_at, int sticky)
{
    memset(r, 0, sizeof *r);
    r->variant = variant;
    r->fail_at = fail_at;
    r->os.fail_at = fail_at;
    r->os.sticky = sticky;
    r->os.enabled = 1;
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = 4096;
    config.policy = test_policy();
    config.retained_arena_count = 0;
    config.large_cache = 0; /* every dedicated arena a map of its own, each one refusable */
    config.os.map = fail_map;
    config.os.unmap = fail_unmap;
    config.os.ctx = &r->os;
    config.error_handler = on_misuse;
    config.error_ctx = r;
    errno = 0;
    r->heap = TAlloc_heap_create(&config);
    return r->heap != NULL;
}

/* The per-operation checks: OS-layer accounting, live blocks' bytes, the heap check.
   `extra` counts allocated blocks that are not in a slot. */
static void run_verify(run *r, int step, size_t extra)
{
    TAlloc_stats s = stats_of(r->heap);
    if (s.map_count != r->os.maps_ok - 1 || s.unmap_count != r->os.unmaps ||
        s.arena_count + s.cached_count != s.map_count - s.unmap_count)
        run_error(r, "op %d: stats map %llu unmap %llu arenas %zu kept %zu; OS layer: %lu maps, "
                  "%lu unmaps", step, (unsigned long long)s.map_count,
                  (unsigned long long)s.unmap_count, s.arena_count, s.cached_count,
                  r->os.maps_ok, r->os.unmaps);
    size_t live = 0;
    for (int i = 0; i < SLOTS; i++) {
        slot *sl = &r->slots[i];
        if (sl->p == NULL)
            continue;
        live++;
        size_t bad = first_bad_byte(sl, i, sl->size);
        if (bad != sl->size)
            run_error(r, "op %d: slot %d (%p, %zu bytes) lost its pattern at byte %zu", step, i,
                      (void *)sl->p, sl->size, bad);
    }
    if (s.allocated_count != live + extra)
        run_error(r, "op %d: %zu allocated chunks, %zu live blocks", step, s.allocated_count,
                  live + extra);
    test_violations tv = {0, {0}};
    size_t n = TAlloc_heap_check(r->heap, test_violation_cb, &tv);
    if (n != 0 || tv.count != 0)
        run_error(r, "op %d: check: %zu violations:%s", step, n, tv.text);
}

/* Runs script[step]. */
static void run_op(run *r, int step)
{
    const op *o = &script[step];
    slot *s = &r->slots[o->slot];
    TAlloc_heap *h = r->heap;
    TAlloc_stats before = stats_of(h);
    unsigned long refused_before = r->os.failures;
    int failed = 0, err = 0;
    size_t old_size = s->size;
    const char *name = "?";

    errno = 0;
    switch (o->kind) {
    case OP_MALLOC:
    case OP_CALLOC:
    case OP_ALIGNED:
    case OP_MEMALIGN: {
        if (s->p != NULL) {
            run_error(r, "op %d: script error: slot %d is live", step, o->slot);
            return;
        }
        void *p = NULL;
        size_t size = o->kind == OP_MALLOC ? o->a : o->kind == OP_CALLOC ? o->a * o->b : o->b;
        size_t align = (o->kind == OP_ALIGNED || o->kind == OP_MEMALIGN) ? o->a : 16;
        if (o->kind == OP_MALLOC) {
            name = "malloc";
            p = TAlloc_heap_malloc(h, o->a);
            err = errno;
        } else if (o->kind == OP_CALLOC) {
            name = "calloc";
            p = TAlloc_heap_calloc(h, o->a, o->b);
            err = errno;
        } else if (o->kind == OP_ALIGNED) {
            name = "aligned_alloc";
            p = TAlloc_heap_aligned_alloc(h, o->a, o->b);
            err = errno;
        } else {
            name = "posix_memalign";
            err = TAlloc_heap_posix_memalign(h, &p, o->a, o->b);
            if (err != 0)
                p = NULL;
        }
        if (p == NULL) {
            failed = 1;
            break;
        }
        if (((uintptr_t)p & (align - 1)) != 0)
            run_error(r, "op %d: %s: %p is not %zu-aligned", step, name, p, align);
        if (TAlloc_heap_usable_size(h, p) < size)
            run_error(r, "op %d: %s: usable size %zu < %zu", step, name,
                      TAlloc_heap_usable_size(h, p), size);
        s->p = p;
        s->size = size;
        if (o->kind == OP_CALLOC) {
            for (size_t i = 0; i < size; i++)
                if (s->p[i] != 0) {
                    run_error(r, "op %d: calloc: byte %zu is %d", step, i, s->p[i]);
                    break;
                }
        }
        fill_slot(s, o->slot, 0, size);
        break;
    }
    case OP_REALLOC: {
        name = "realloc";
        if (s->p == NULL) {
            /* an earlier allocation of this slot failed: allocate instead */
            if (r->fail_at == 0)
                run_error(r, "op %d: script error: realloc of empty slot %d", step, o->slot);
            void *p = TAlloc_heap_malloc(h, o->a);
            err = errno;
            if (p == NULL) {
                failed = 1;
                break;
            }
            s->p = p;
            s->size = o->a;
            fill_slot(s, o->slot, 0, o->a);
            break;
        }
        size_t keep = old_size < o->a ? old_size : o->a;
        void *q = TAlloc_heap_realloc(h, s->p, o->a);
        err = errno;
        if (q == NULL) {
            failed = 1;
            /* the old block must still be live and whole (its bytes: run_verify) */
            size_t usable = TAlloc_heap_usable_size(h, s->p);
            if (usable < old_size) {
                run_error(r, "op %d: failed realloc: old block's usable size %zu < %zu", step,
                          usable, old_size);
                s->p = NULL; /* gone: do not read or free it again */
                s->size = 0;
            }
            break;
        }
        s->p = q;
        s->size = o->a;
        if (((uintptr_t)q & 15) != 0)
            run_error(r, "op %d: realloc: %p is not 16-aligned", step, q);
        if (TAlloc_heap_usable_size(h, q) < o->a)
            run_error(r, "op %d: realloc: usable size %zu < %zu", step,
                      TAlloc_heap_usable_size(h, q), o->a);
        size_t bad = first_bad_byte(s, o->slot, keep);
        if (bad != keep)
            run_error(r, "op %d: realloc %zu -> %zu lost byte %zu", step, old_size, o->a, bad);
        fill_slot(s, o->slot, 0, o->a);
        break;
    }
    case OP_FREE:
        name = "free";
        if (s->p != NULL) {
            TAlloc_heap_free(h, s->p);
            s->p = NULL;
            s->size = 0;
        } else if (r->fail_at == 0) {
            run_error(r, "op %d: script error: free of empty slot %d", step, o->slot);
        }
        break;
    }

    TAlloc_stats after = stats_of(h);
    unsigned long refused = r->os.failures - refused_before;
    uint64_t counted =
        after.event_count[TALLOC_EVENT_MAP_FAILED] - before.event_count[TALLOC_EVENT_MAP_FAILED];
    if (counted != refused)
        run_error(r, "op %d (%s): %lu maps refused, MAP_FAILED went up by %llu", step, name,
                  refused, (unsigned long long)counted);
    if (failed) {
        r->null_ops++;
        if (err != ENOMEM)
            run_error(r, "op %d (%s): failed with %d, want ENOMEM", step, name, err);
        if (refused == 0)
            run_error(r, "op %d (%s): failed although no map was refused", step, name);
    } else if (refused != 0) {
        run_error(r, "op %d (%s): succeeded although %lu map(s) were refused", step, name,
                  refused);
    }
    run_verify(r, step, 0);
}

/*
 * After the script: failures off, a large and a small block must be allocatable, then
 * everything is freed and the quick lists flushed. Returns nothing; problems go to the run.
 */
static void run_finish(run *r)
{
    TAlloc_heap *h = r->heap;
    r->os.enabled = 0;
    unsigned char *large = TAlloc_heap_malloc(h, 10000);
    unsigned char *small = TAlloc_heap_malloc(h, 100);
    if (large == NULL || small == NULL)
        run_error(r, "after the failures: malloc large %p, small %p", (void *)large,
                  (void *)small);
    if (large != NULL)
        memset(large, 0xa5, 10000);
    if (small != NULL)
        memset(small, 0x5a, 100);
    run_verify(r, SCRIPT_LENGTH, (size_t)(large != NULL) + (small != NULL));
    TAlloc_heap_free(h, large);
    TAlloc_heap_free(h, small);
    for (int i = 0; i < SLOTS; i++) {
        if (r->slots[i].p != NULL)
            TAlloc_heap_free(h, r->slots[i].p);
        r->slots[i].p = NULL;
        r->slots[i].size = 0;
    }
    TAlloc_heap_flush(h); /* the quick lists' blocks merge too, emptying their arenas */
    TAlloc_stats s = stats_of(h);
    if (s.allocated_count != 0 || s.allocated_bytes != 0 || s.arena_count != 0)
        run_error(r, "after freeing everything: %zu allocated (%zu bytes), %zu arenas",
                  s.allocated_count, s.allocated_bytes, s.arena_count);
    run_verify(r, SCRIPT_LENGTH + 1, 0);
}

/* Destroys the heap and checks that every mapping went back to the OS layer. */
static void run_end(run *r)
{
    TAlloc_heap_destroy(r->heap);
    r->heap = NULL;
    if (r->os.unmaps != r->os.maps_ok || r->os.live_bytes != 0)
        run_error(r, "after destroy: %lu maps, %lu unmaps, %zu bytes still mapped",
                  r->os.maps_ok, r->os.unmaps, r->os.live_bytes);
}

/* ---- the tests ---------------------------------------------------------------------------- */

static run the_run; /* one run at a time; static to keep the stack small */

/* The clean run: counts the map calls the script makes (M) and those of heap creation. */
static unsigned long clean_run(unsigned long *create_calls)
{
    run *r = &the_run;
    *create_calls = 0;
    if (!EXPECT(run_start(r, "clean", 0, 0), "clean run: heap_create failed, errno %d", errno))
        return 0;
    *create_calls = r->os.calls;
    EXPECT(r->os.calls >= 1 && r->os.maps_ok == r->os.calls,
           "clean run: heap creation made %lu map calls", r->os.calls);
    for (int i = 0; i < SCRIPT_LENGTH; i++)
        run_op(r, i);
    unsigned long total = r->os.calls;
    TAlloc_stats s = stats_of(r->heap);
    EXPECT(r->null_ops == 0 && r->os.failures == 0, "clean run: %lu operations failed",
           r->null_ops);
    /* the script is meant to exercise the interesting paths */
    EXPECT(s.event_count[TALLOC_EVENT_DEDICATED_ARENA] >= 5 &&
               s.event_count[TALLOC_EVENT_NEW_ARENA] >= 3 &&
               s.event_count[TALLOC_EVENT_ARENA_RELEASED] >= 5 &&
               s.event_count[TALLOC_EVENT_REALLOC_MOVED] >= 3 &&
               s.event_count[TALLOC_EVENT_ALIGNED_SPLIT] >= 1,
           "clean run: script coverage: dedicated %llu, new %llu, released %llu, moved %llu, "
           "aligned split %llu",
           (unsigned long long)s.event_count[TALLOC_EVENT_DEDICATED_ARENA],
           (unsigned long long)s.event_count[TALLOC_EVENT_NEW_ARENA],
           (unsigned long long)s.event_count[TALLOC_EVENT_ARENA_RELEASED],
           (unsigned long long)s.event_count[TALLOC_EVENT_REALLOC_MOVED],
           (unsigned long long)s.event_count[TALLOC_EVENT_ALIGNED_SPLIT]);
    run_finish(r);
    EXPECT_HEAP_OK(r->heap, "clean run");
    run_end(r);
    EXPECT(r->errors == 0 && r->misuse == 0, "clean run: %lu problems:%s", r->errors, r->text);
    EXPECT(total >= *create_calls + 15, "clean run: only %lu map calls in the script",
           total - *create_calls);
    return total;
}

/* One run with the N-th map (and, sticky, every later one) refused until the script ends. */
static void failing_run(unsigned long n, int sticky, unsigned long total_calls,
                        unsigned long create_calls)
{
    run *r = &the_run;
    const char *variant = sticky ? "from N on" : "only N";
    int created = run_start(r, variant, n, sticky);
    if (n <= create_calls) {
        /* heap creation itself maps more than the control block: its failure must be clean */
        EXPECT(!created && errno == ENOMEM && r->os.live_bytes == 0,
               "N=%lu (%s): heap_create should fail cleanly with ENOMEM", n, variant);
        if (created)
            TAlloc_heap_destroy(r->heap);
        return;
    }
    if (!EXPECT(created, "N=%lu (%s): heap_create failed, errno %d", n, variant, errno))
        return;
    for (int i = 0; i < SCRIPT_LENGTH; i++)
        run_op(r, i);
    unsigned long refused = r->os.failures;
    unsigned long null_ops = r->null_ops;
    run_finish(r);
    EXPECT_HEAP_OK(r->heap, "after the failing run");
    run_end(r);
    EXPECT(r->errors == 0 && r->misuse == 0, "N=%lu (%s): %lu problems:%s", n, variant,
           r->errors, r->text);
    if (n <= total_calls) {
        if (sticky)
            EXPECT(refused >= 1 && null_ops >= 1,
                   "N=%lu (%s): %lu maps refused, %lu operations failed", n, variant, refused,
                   null_ops);
        else
            EXPECT(refused == 1 && null_ops == 1,
                   "N=%lu (%s): %lu maps refused, %lu operations failed (want 1 and 1)", n,
                   variant, refused, null_ops);
    } else {
        EXPECT(refused == 0 && null_ops == 0,
               "N=%lu (%s): past the last map call, yet %lu refused, %lu failed", n, variant,
               refused, null_ops);
    }
}

static void test_fail_every_map(void)
{
    unsigned long create_calls = 0;
    unsigned long total = clean_run(&create_calls);
    if (total == 0)
        return;
    for (unsigned long n = 2; n <= total + 1; n++) {
        failing_run(n, 0, total, create_calls);
        failing_run(n, 1, total, create_calls);
    }
}

/* Map #1 is the control block: heap creation fails with ENOMEM and maps nothing. */
static void test_create_fails(void)
{
    run *r = &the_run;
    int created = run_start(r, "create", 1, 0);
    int err = errno;
    EXPECT(!created && err == ENOMEM, "create: want NULL/ENOMEM when map #1 fails, got %p/%d",
           (void *)r->heap, err);
    if (created)
        TAlloc_heap_destroy(r->heap);
    EXPECT(r->os.calls == 1 && r->os.failures == 1 && r->os.maps_ok == 0 && r->os.unmaps == 0,
           "create: %lu map calls, %lu unmaps after the failed creation", r->os.calls,
           r->os.unmaps);

    /* every map failing: still clean */
    created = run_start(r, "create", 1, 1);
    err = errno;
    EXPECT(!created && err == ENOMEM && r->os.maps_ok == 0,
           "create (all maps fail): want NULL/ENOMEM, got %p/%d", (void *)r->heap, err);
    if (created)
        TAlloc_heap_destroy(r->heap);

    /* the same configuration works once the OS layer does */
    created = run_start(r, "create", 0, 0);
    if (EXPECT(created, "create: heap_create failed with a working OS layer")) {
        void *p = TAlloc_heap_malloc(r->heap, 100);
        EXPECT(p != NULL, "create: malloc on the new heap failed");
        TAlloc_heap_free(r->heap, p);
        EXPECT_HEAP_OK(r->heap, "create");
        run_end(r);
        EXPECT(r->errors == 0, "create: %lu problems:%s", r->errors, r->text);
    }
}

/* ---- the arena registry's growth refused ------------------------------------------------ */

typedef struct meta_os {
    int refuse;             /* refuse metadata maps */
    unsigned long refused;  /* metadata maps refused */
    unsigned long granted;  /* metadata maps answered */
    size_t live;            /* metadata bytes mapped */
} meta_os;

static void *meta_map(void *ctx, size_t size)
{
    (void)ctx;
    return TAlloc_os_default()->map(NULL, size);
}

static void meta_unmap(void *ctx, void *address, size_t size)
{
    (void)ctx;
    TAlloc_os_default()->unmap(NULL, address, size);
}

static void *meta_map_metadata(void *ctx, size_t size)
{
    meta_os *m = ctx;
    if (m->refuse) {
        m->refused++;
        return NULL;
    }
    void *p = TAlloc_os_default()->map(NULL, size);
    if (p) {
        m->granted++;
        m->live += size;
    }
    return p;
}

static void meta_unmap_metadata(void *ctx, void *address, size_t size)
{
    meta_os *m = ctx;
    m->live -= size;
    TAlloc_os_default()->unmap(NULL, address, size);
}

/* Each 4016-byte block takes a 4096-byte arena of its own; once the registry of arenas is
   full, the next arena needs a bigger one. With that map refused the malloc fails cleanly
   (NULL, ENOMEM, no arena left mapped for it), every block keeps its bytes, and the heap
   grows again as soon as the OS layer gives memory. */
static void test_registry_growth_refused(void)
{
    meta_os m = {0, 0, 0, 0};
    TAlloc_config config = test_config(4096, NULL, NULL);
    config.retained_arena_count = 0;
    config.os = (TAlloc_os){.map = meta_map, .unmap = meta_unmap, .ctx = &m,
                            .map_metadata = meta_map_metadata,
                            .unmap_metadata = meta_unmap_metadata};
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    if (!EXPECT(heap != NULL, "registry: heap creation"))
        return;
    enum { MAX_BLOCKS = 4096 };
    static unsigned char *blocks[MAX_BLOCKS];
    size_t count = 0, failed_at = 0;
    unsigned long granted_before = m.granted;
    m.refuse = 1;
    while (count < MAX_BLOCKS) {
        errno = 0;
        unsigned char *p = TAlloc_heap_malloc(heap, 4016);
        if (p == NULL) {
            failed_at = count;
            break;
        }
        memset(p, (int)(count & 0xff), 4016);
        blocks[count++] = p;
    }
    int err = errno;
    EXPECT(failed_at > 0 && m.refused > 0 && m.granted == granted_before,
           "registry: a malloc failed once the registry had to grow (%zu blocks, %lu refused)",
           failed_at, m.refused);
    EXPECT(err == ENOMEM, "registry: errno %d, want ENOMEM", err);
    TAlloc_stats st;
    TAlloc_heap_get_stats(heap, &st);
    EXPECT(st.arena_count == count, "registry: %zu arenas for %zu blocks (none left for the "
           "refused one)", (size_t)st.arena_count, count);
    EXPECT_HEAP_OK(heap, "registry: after the refusal");
    m.refuse = 0;
    unsigned char *more = TAlloc_heap_malloc(heap, 4016);
    EXPECT(more != NULL && m.granted > granted_before,
           "registry: the heap grows once metadata can be mapped");
    for (size_t i = 0; i < count; i++) {
        size_t bad = 4016;
        for (size_t j = 0; j < 4016 && bad == 4016; j++)
            if (blocks[i][j] != (unsigned char)(i & 0xff))
                bad = j;
        EXPECT(bad == 4016, "registry: block %zu damaged at byte %zu", i, bad);
    }
    for (size_t i = 0; i < count; i++)
        TAlloc_heap_free(heap, blocks[i]);
    TAlloc_heap_free(heap, more);
    EXPECT_HEAP_OK(heap, "registry: drained");
    TAlloc_heap_destroy(heap);
    EXPECT(m.live == 0, "registry: %zu metadata bytes left mapped", m.live);
}

int main(void)
{
    test_create_fails();
    test_registry_growth_refused();
    test_fail_every_map();
    return test_summary("test_oom");
}
