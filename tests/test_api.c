/*
 * test_api.c - every API function and every C-semantics rule of TAlloc, one assertion per rule.
 *
 * Each static function below checks one rule (or one API function) and names it in its
 * comment. Most rules run on an explicit heap with small (64 KiB) arenas so that dedicated
 * arenas and several standard arenas are cheap to reach; test_default_heap_* exercise the
 * TAlloc_* forms on the process-wide heap. Every group ends with EXPECT_HEAP_OK and destroys
 * the heap it created. Loops collect their failures and assert once, naming the first one.
 */
#undef TALLOC_NO_ALLOC_ATTRIBUTES /* this test checks talloc.h's attributes */
#if defined(__GNUC__) && !defined(__clang__)
/* the C rules for sizes too large for any object are tested with constant sizes */
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#endif
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "talloc.h"
#include "testutil.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define SMALL_ARENA ((size_t)65536)
#define MIB ((size_t)1 << 20)
#define CHUNK_RESERVED ((size_t)16)
#define ARENA_RESERVED ((size_t)64)
#define FIRST_CHUNK_OFFSET ((size_t)48)

/* Sizes above PTRDIFF_MAX: every allocation call must refuse them with ENOMEM. */
static const size_t too_big[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 15};

/* ---- helpers ---------------------------------------------------------------------------- */

static TAlloc_heap *make_heap_with(size_t arena_size, TAlloc_policy policy)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = arena_size;
    config.policy = policy;
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    if (!EXPECT(heap != NULL, "TAlloc_heap_create failed: errno %d", errno))
        exit(test_summary("test_api"));
    return heap;
}

static TAlloc_heap *make_heap(void)
{
    return make_heap_with(SMALL_ARENA, test_policy());
}

static int is_aligned(const void *p, size_t alignment)
{
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static size_t round_up16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static unsigned char pattern_byte(unsigned seed, size_t i)
{
    return (unsigned char)(seed * 31u + (unsigned)i * 7u + 1u);
}

static void fill_pattern(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(seed, i);
}

/* 1 when the first n bytes still hold fill_pattern(seed). */
static int has_pattern(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(seed, i))
            return 0;
    return 1;
}

/* 1 when all n bytes equal v. */
static int all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

static TAlloc_stats stats_of(TAlloc_heap *heap)
{
    TAlloc_stats s;
    memset(&s, 0xFF, sizeof s);
    TAlloc_heap_get_stats(heap, &s);
    return s;
}

/* ---- walk log: a callback that audits the walk's structure and records every chunk ---- */

#define LOG_CHUNKS 8192

typedef struct walk_log {
    size_t arenas;
    size_t dedicated_arenas;
    size_t arena_bytes;
    size_t first_arena_size;
    size_t largest_dedicated;
    size_t chunks;
    size_t allocated_count;
    size_t allocated_bytes;
    size_t free_count;
    size_t free_bytes;
    size_t quick_count;
    size_t quick_bytes;
    size_t errors_orphan; /* a chunk reported before any arena */
    size_t errors_arena;  /* arena reserved != 64 or arena not page aligned */
    size_t errors_range;  /* chunk outside the arena announced before it */
    size_t errors_header; /* chunk address != payload - 16 or reserved != 16 */
    size_t errors_order;  /* chunk not above the previous chunk of its arena */
    size_t errors_tiling; /* chunk not where the previous one ended (first: base + 48) */
    size_t errors_sum;    /* sum of (size + reserved) != arena size - arena reserved */
    /* state of the arena being walked */
    int in_arena;
    uintptr_t arena_base;
    size_t arena_size;
    size_t arena_reserved;
    size_t arena_sum;
    size_t arena_chunks;
    uintptr_t prev_address;
    uintptr_t next_address;
    int overflow;
    size_t recorded;
    struct {
        uintptr_t payload;
        size_t size;
        int is_free;
    } chunk[LOG_CHUNKS];
} walk_log;

static walk_log g_log;

static void log_close_arena(walk_log *log)
{
    if (log->in_arena && log->arena_sum != log->arena_size - log->arena_reserved)
        log->errors_sum++;
    log->in_arena = 0;
}

static int log_visit(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    walk_log *log = ctx;
    if (chunk == NULL) {
        log_close_arena(log);
        if (arena == NULL) {
            log->errors_arena++;
            return 0;
        }
        if (log->arenas == 0)
            log->first_arena_size = arena->size;
        log->arenas++;
        log->arena_bytes += arena->size;
        if (arena->is_dedicated) {
            log->dedicated_arenas++;
            log->largest_dedicated = max_size(log->largest_dedicated, arena->size);
        }
        if (arena->reserved != ARENA_RESERVED || ((uintptr_t)arena->address & 4095) != 0)
            log->errors_arena++;
        log->in_arena = 1;
        log->arena_base = (uintptr_t)arena->address;
        log->arena_size = arena->size;
        log->arena_reserved = arena->reserved;
        log->arena_sum = 0;
        log->arena_chunks = 0;
        log->next_address = log->arena_base + FIRST_CHUNK_OFFSET;
        return 0;
    }
    log->chunks++;
    if (!log->in_arena) {
        log->errors_orphan++;
        return 0;
    }
    uintptr_t address = (uintptr_t)chunk->address;
    uintptr_t payload = (uintptr_t)chunk->payload;
    if (arena == NULL || (uintptr_t)arena->address != log->arena_base ||
        address < log->arena_base + FIRST_CHUNK_OFFSET ||
        address + chunk->reserved + chunk->size > log->arena_base + log->arena_size - 16)
        log->errors_range++;
    if (address != payload - CHUNK_RESERVED || chunk->reserved != CHUNK_RESERVED)
        log->errors_header++;
    if (log->arena_chunks > 0 && address <= log->prev_address)
        log->errors_order++;
    if (address != log->next_address)
        log->errors_tiling++;
    log->prev_address = address;
    log->next_address = address + chunk->reserved + chunk->size;
    log->arena_sum += chunk->size + chunk->reserved;
    log->arena_chunks++;
    if (chunk->is_free) {
        log->free_count++;
        log->free_bytes += chunk->size;
    } else if (chunk->is_quick) {
        log->quick_count++;
        log->quick_bytes += chunk->size;
    } else {
        log->allocated_count++;
        log->allocated_bytes += chunk->size;
    }
    if (log->recorded < LOG_CHUNKS) {
        log->chunk[log->recorded].payload = payload;
        log->chunk[log->recorded].size = chunk->size;
        log->chunk[log->recorded].is_free = chunk->is_free || chunk->is_quick; /* not live */
        log->recorded++;
    } else {
        log->overflow = 1;
    }
    return 0;
}

/* Walks `heap` (NULL: the default heap, through TAlloc_walk) into g_log; returns the walk's
   value. */
static int walk_into_log(TAlloc_heap *heap)
{
    memset(&g_log, 0, sizeof g_log);
    int rc = heap != NULL ? TAlloc_heap_walk(heap, log_visit, &g_log)
                          : TAlloc_walk(log_visit, &g_log);
    log_close_arena(&g_log);
    return rc;
}

/* Asserts the structural rules of the last walk (one assertion per rule). */
static void expect_walk_structure(const char *what)
{
    EXPECT(!g_log.overflow, "%s: walk log overflow", what);
    EXPECT(g_log.errors_orphan == 0, "%s: %zu chunks visited before their arena", what,
           g_log.errors_orphan);
    EXPECT(g_log.errors_arena == 0, "%s: %zu arenas with reserved != 64 or unaligned", what,
           g_log.errors_arena);
    EXPECT(g_log.errors_range == 0, "%s: %zu chunks outside the arena visited before them", what,
           g_log.errors_range);
    EXPECT(g_log.errors_header == 0,
           "%s: %zu chunks with address != payload - 16 or reserved != 16", what,
           g_log.errors_header);
    EXPECT(g_log.errors_order == 0, "%s: %zu chunks not in increasing address order", what,
           g_log.errors_order);
    EXPECT(g_log.errors_tiling == 0, "%s: %zu chunks not adjacent to their predecessor", what,
           g_log.errors_tiling);
    EXPECT(g_log.errors_sum == 0, "%s: %zu arenas whose chunks do not sum to size - reserved",
           what, g_log.errors_sum);
}

/*
 * Number of `ptrs` (NULL entries skipped) that the last walk did not show exactly once as an
 * allocated chunk with payload == ptr and size == usable_size(ptr), or that it also showed free.
 * heap NULL: the default heap.
 */
static size_t blocks_not_walked_once(TAlloc_heap *heap, void *const *ptrs, size_t n,
                                     const char **why)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (ptrs[i] == NULL)
            continue;
        size_t usable = heap != NULL ? TAlloc_heap_usable_size(heap, ptrs[i])
                                     : TAlloc_usable_size(ptrs[i]);
        size_t seen = 0, seen_free = 0, wrong_size = 0;
        for (size_t k = 0; k < g_log.recorded; k++) {
            if (g_log.chunk[k].payload != (uintptr_t)ptrs[i])
                continue;
            if (g_log.chunk[k].is_free) {
                seen_free++;
                continue;
            }
            seen++;
            if (g_log.chunk[k].size != usable)
                wrong_size++;
        }
        if (seen != 1 || seen_free != 0 || wrong_size != 0) {
            if (bad == 0)
                *why = seen != 1   ? "not seen exactly once"
                       : seen_free ? "seen free"
                                   : "size != usable_size";
            bad++;
        }
    }
    return bad;
}

/* ---- C semantics: alignment, malloc(0), free -------------------------------------------- */

/* Rule: every pointer malloc/calloc/realloc/aligned_alloc/posix_memalign returns is 16-aligned. */
static void test_every_pointer_aligned(void)
{
    TAlloc_heap *heap = make_heap();
    static void *blocks[4 * 301];
    size_t count = 0, misaligned = 0, first_bad = 0;
    for (size_t n = 0; n <= 300; n++) {
        void *p[4];
        p[0] = TAlloc_heap_malloc(heap, n);
        p[1] = TAlloc_heap_calloc(heap, 1, n);
        p[2] = TAlloc_heap_realloc(heap, NULL, n);
        p[3] = TAlloc_heap_aligned_alloc(heap, 8, n);
        for (size_t k = 0; k < 4; k++) {
            if (p[k] == NULL || !is_aligned(p[k], TALLOC_ALIGNMENT)) {
                if (misaligned++ == 0)
                    first_bad = n;
            }
            blocks[count++] = p[k];
        }
    }
    EXPECT(misaligned == 0, "%zu NULL or misaligned pointers, first for size %zu", misaligned,
           first_bad);
    EXPECT_HEAP_OK(heap, "alignment: 1204 live blocks");
    for (size_t i = 0; i < count; i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "alignment: all freed");
    TAlloc_heap_destroy(heap);
}

/* Rule: malloc(0) returns a unique, non-NULL, freeable pointer. */
static void test_malloc_zero(void)
{
    TAlloc_heap *heap = make_heap();
    void *a = TAlloc_heap_malloc(heap, 0);
    void *b = TAlloc_heap_malloc(heap, 0);
    EXPECT(a != NULL && b != NULL && a != b, "malloc(0) twice gave %p and %p", a, b);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    EXPECT(stats_of(heap).allocated_count == 0, "malloc(0) blocks were not freed");
    EXPECT_HEAP_OK(heap, "malloc(0)");
    TAlloc_heap_destroy(heap);
}

/* Rule: free(NULL) does nothing; free never changes errno. */
static void test_free_null_and_errno(void)
{
    TAlloc_heap *heap = make_heap();
    void *p = TAlloc_heap_malloc(heap, 100);
    TAlloc_stats before = stats_of(heap);
    errno = 12345;
    TAlloc_heap_free(heap, NULL);
    int e = errno;
    TAlloc_stats after = stats_of(heap);
    EXPECT(e == 12345, "free(NULL) changed errno to %d", e);
    EXPECT(after.allocated_count == before.allocated_count &&
               after.free_count == before.free_count,
           "free(NULL) changed the heap");
    errno = 12345;
    TAlloc_heap_free(heap, p);
    e = errno;
    EXPECT(e == 12345, "free(valid) changed errno to %d", e);
    /* freeing a dedicated block unmaps its arena: errno must survive that too */
    void *big = TAlloc_heap_malloc(heap, MIB);
    errno = 12345;
    TAlloc_heap_free(heap, big);
    e = errno;
    EXPECT(e == 12345, "free(dedicated) changed errno to %d", e);
    EXPECT_HEAP_OK(heap, "free(NULL) and errno");
    TAlloc_heap_destroy(heap);
}

/* An error handler that sets errno, as one that writes a log line may. */
static void errno_setting_handler(void *ctx, TAlloc_error error, const void *address)
{
    (void)address;
    *(TAlloc_error *)ctx = error;
    errno = EIO;
}

/* Rule: free keeps errno even when it reports misuse to a handler that changes errno. */
static void test_free_report_keeps_errno(void)
{
    TAlloc_error seen = TALLOC_ERROR_NONE;
    TAlloc_config config = test_config(SMALL_ARENA, errno_setting_handler, &seen);
    TAlloc_heap *heap = test_heap_from(&config, "test_api");
    void *p = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_free(heap, p);
    errno = 12345;
    TAlloc_heap_free(heap, p); /* a double free, reported */
    int e = errno;
    EXPECT(seen == TALLOC_ERROR_DOUBLE_FREE, "double free reported as %s", TAlloc_error_string(seen));
    EXPECT(e == 12345, "free that reported changed errno to %d", e);
    TAlloc_heap_destroy(heap);
}

/* ---- sizes above PTRDIFF_MAX: NULL/ENOMEM from every call ------------------------------- */

/* Rule: malloc(size > PTRDIFF_MAX) returns NULL with errno ENOMEM. */
static void test_malloc_too_large(void)
{
    TAlloc_heap *heap = make_heap();
    for (size_t i = 0; i < COUNT_OF(too_big); i++) {
        errno = 0;
        void *p = TAlloc_heap_malloc(heap, too_big[i]);
        int e = errno;
        EXPECT(p == NULL && e == ENOMEM, "malloc(%zu) gave %p errno %d", too_big[i], p, e);
        TAlloc_heap_free(heap, p);
    }
    EXPECT_HEAP_OK(heap, "malloc too large");
    TAlloc_heap_destroy(heap);
}

/* Rule: calloc with a single size > PTRDIFF_MAX returns NULL with errno ENOMEM. */
static void test_calloc_too_large(void)
{
    TAlloc_heap *heap = make_heap();
    for (size_t i = 0; i < COUNT_OF(too_big); i++) {
        errno = 0;
        void *p = TAlloc_heap_calloc(heap, 1, too_big[i]);
        int e1 = errno;
        errno = 0;
        void *q = TAlloc_heap_calloc(heap, too_big[i], 1);
        int e2 = errno;
        EXPECT(p == NULL && e1 == ENOMEM && q == NULL && e2 == ENOMEM,
               "calloc of %zu bytes gave %p errno %d / %p errno %d", too_big[i], p, e1, q, e2);
        TAlloc_heap_free(heap, p);
        TAlloc_heap_free(heap, q);
    }
    EXPECT_HEAP_OK(heap, "calloc too large");
    TAlloc_heap_destroy(heap);
}

/* Rule: realloc(p, size > PTRDIFF_MAX) returns NULL/ENOMEM and leaves p intact and valid. */
static void test_realloc_too_large(void)
{
    TAlloc_heap *heap = make_heap();
    void *p = TAlloc_heap_malloc(heap, 200);
    size_t usable = TAlloc_heap_usable_size(heap, p);
    fill_pattern(p, usable, 3);
    size_t failed = 0;
    for (size_t i = 0; i < COUNT_OF(too_big); i++) {
        errno = 0;
        void *q = TAlloc_heap_realloc(heap, p, too_big[i]);
        int e = errno;
        EXPECT(q == NULL && e == ENOMEM, "realloc(p, %zu) gave %p errno %d", too_big[i], q, e);
        if (q != NULL)
            failed++;
    }
    if (failed == 0) {
        EXPECT(TAlloc_heap_usable_size(heap, p) == usable && has_pattern(p, usable, 3),
               "failed realloc changed the old block");
        void *r = TAlloc_heap_realloc(heap, p, 300); /* still valid: a normal realloc works */
        EXPECT(r != NULL && has_pattern(r, 200, 3), "old block unusable after failed realloc");
        TAlloc_heap_free(heap, r);
    }
    EXPECT_HEAP_OK(heap, "realloc too large");
    EXPECT(stats_of(heap).allocated_count == 0, "old block not freeable after failed realloc");
    TAlloc_heap_destroy(heap);
}

/* Rule: aligned_alloc(a, size > PTRDIFF_MAX) returns NULL with errno ENOMEM. */
static void test_aligned_alloc_too_large(void)
{
    TAlloc_heap *heap = make_heap();
    for (size_t i = 0; i < COUNT_OF(too_big); i++) {
        errno = 0;
        void *p = TAlloc_heap_aligned_alloc(heap, 16, too_big[i]);
        int e1 = errno;
        errno = 0;
        void *q = TAlloc_heap_aligned_alloc(heap, 4096, too_big[i]);
        int e2 = errno;
        EXPECT(p == NULL && e1 == ENOMEM && q == NULL && e2 == ENOMEM,
               "aligned_alloc(16|4096, %zu) gave %p errno %d / %p errno %d", too_big[i], p, e1,
               q, e2);
        TAlloc_heap_free(heap, p);
        TAlloc_heap_free(heap, q);
    }
    EXPECT_HEAP_OK(heap, "aligned_alloc too large");
    TAlloc_heap_destroy(heap);
}

/* Rule: posix_memalign(&out, a, size > PTRDIFF_MAX) returns ENOMEM and leaves *out untouched. */
static void test_posix_memalign_too_large(void)
{
    TAlloc_heap *heap = make_heap();
    void *const sentinel = (void *)(uintptr_t)0x1234;
    for (size_t i = 0; i < COUNT_OF(too_big); i++) {
        void *out = sentinel;
        int rc = TAlloc_heap_posix_memalign(heap, &out, 64, too_big[i]);
        EXPECT(rc == ENOMEM && out == sentinel, "posix_memalign(64, %zu) returned %d, *out %p",
               too_big[i], rc, out);
    }
    EXPECT_HEAP_OK(heap, "posix_memalign too large");
    TAlloc_heap_destroy(heap);
}

/* ---- calloc ---------------------------------------------------------------------------- */

/* Rule: calloc(n, size) whose product overflows returns NULL with errno ENOMEM. */
static void test_calloc_overflow(void)
{
    TAlloc_heap *heap = make_heap();
    const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 1, 2},
        {2, SIZE_MAX},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2}, /* no size_t overflow, but the product > PTRDIFF_MAX */
    };
    for (size_t i = 0; i < COUNT_OF(pairs); i++) {
        errno = 0;
        void *p = TAlloc_heap_calloc(heap, pairs[i][0], pairs[i][1]);
        int e = errno;
        EXPECT(p == NULL && e == ENOMEM, "calloc(%zu, %zu) gave %p errno %d", pairs[i][0],
               pairs[i][1], p, e);
        TAlloc_heap_free(heap, p);
    }
    EXPECT_HEAP_OK(heap, "calloc overflow");
    TAlloc_heap_destroy(heap);
}

/* Rule: calloc memory is all zero, also when it reuses a freed block that held 0xAA. */
static void test_calloc_zeroes_reused_memory(void)
{
    TAlloc_heap *heap = make_heap();
    const size_t sizes[] = {1, 16, 24, 100, 128, 500, 4000, 20000, 40000};
    size_t dirty = 0, first_bad = 0;
    for (size_t i = 0; i < COUNT_OF(sizes); i++) {
        size_t n = sizes[i];
        /* a hole between two live blocks */
        void *a = TAlloc_heap_malloc(heap, n);
        void *guard = TAlloc_heap_malloc(heap, 32);
        memset(a, 0xAA, TAlloc_heap_usable_size(heap, a));
        TAlloc_heap_free(heap, a);
        void *z = TAlloc_heap_calloc(heap, 1, n);
        int ok = z != NULL && all_bytes(z, n, 0);
        /* the same with count * size split differently, at the end of the arena */
        TAlloc_heap_free(heap, z);
        TAlloc_heap_free(heap, guard);
        void *b = TAlloc_heap_malloc(heap, n);
        memset(b, 0xAA, TAlloc_heap_usable_size(heap, b));
        TAlloc_heap_free(heap, b);
        void *w = TAlloc_heap_calloc(heap, n, 1);
        ok = ok && w != NULL && all_bytes(w, n, 0);
        TAlloc_heap_free(heap, w);
        if (!ok && dirty++ == 0)
            first_bad = n;
    }
    EXPECT(dirty == 0, "%zu sizes where calloc returned non-zero bytes, first %zu", dirty,
           first_bad);
    /* an emptied, retained standard arena is reused dirty: calloc must still zero it */
    void *a = TAlloc_heap_malloc(heap, 60000);
    memset(a, 0xAA, TAlloc_heap_usable_size(heap, a));
    TAlloc_heap_free(heap, a);
    void *z = TAlloc_heap_calloc(heap, 600, 100);
    EXPECT(z != NULL && all_bytes(z, 60000, 0), "calloc over a retained dirty arena not zero");
    TAlloc_heap_free(heap, z);
    EXPECT_HEAP_OK(heap, "calloc reuse");
    TAlloc_heap_destroy(heap);
}

/* Rule: calloc(0, x) and calloc(x, 0) return unique non-NULL pointers. */
static void test_calloc_zero_sizes(void)
{
    TAlloc_heap *heap = make_heap();
    void *a = TAlloc_heap_calloc(heap, 0, 10);
    void *b = TAlloc_heap_calloc(heap, 10, 0);
    void *c = TAlloc_heap_calloc(heap, 0, 0);
    EXPECT(a != NULL && b != NULL && c != NULL && a != b && b != c && a != c,
           "calloc with a zero gave %p %p %p", a, b, c);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    TAlloc_heap_free(heap, c);
    EXPECT_HEAP_OK(heap, "calloc zero sizes");
    TAlloc_heap_destroy(heap);
}

/* Rule: a large calloc (dedicated arena) is all zero, even after a dirty large block. */
static void test_calloc_large(void)
{
    TAlloc_heap *heap = make_heap();
    void *dirty = TAlloc_heap_malloc(heap, MIB);
    if (dirty != NULL)
        memset(dirty, 0xAA, MIB);
    TAlloc_heap_free(heap, dirty);
    void *z = TAlloc_heap_calloc(heap, 1, MIB);
    void *z2 = TAlloc_heap_calloc(heap, 256, 4096);
    EXPECT(z != NULL && all_bytes(z, MIB, 0) && z2 != NULL && all_bytes(z2, MIB, 0),
           "1 MiB calloc not all zero");
    walk_into_log(heap);
    EXPECT(g_log.dedicated_arenas == 2 && g_log.largest_dedicated >= MIB,
           "1 MiB callocs on a 64 KiB heap: %zu dedicated arenas", g_log.dedicated_arenas);
    TAlloc_heap_free(heap, z);
    TAlloc_heap_free(heap, z2);
    EXPECT_HEAP_OK(heap, "large calloc");
    TAlloc_heap_destroy(heap);
}

/* ---- realloc --------------------------------------------------------------------------- */

/* Rule: realloc(NULL, n) behaves as malloc(n). */
static void test_realloc_null(void)
{
    TAlloc_heap *heap = make_heap();
    void *p = TAlloc_heap_realloc(heap, NULL, 100);
    EXPECT(p != NULL && is_aligned(p, TALLOC_ALIGNMENT) &&
               TAlloc_heap_usable_size(heap, p) >= 100 && stats_of(heap).allocated_count == 1,
           "realloc(NULL, 100) gave %p", p);
    fill_pattern(p, 100, 1);
    TAlloc_heap_free(heap, p);
    EXPECT_HEAP_OK(heap, "realloc(NULL, n)");
    TAlloc_heap_destroy(heap);
}

/* Rule: realloc(p, 0) frees p and returns NULL (glibc behaviour). */
static void test_realloc_zero(void)
{
    TAlloc_heap *heap = make_heap();
    void *keep = TAlloc_heap_malloc(heap, 10);
    void *p = TAlloc_heap_malloc(heap, 100);
    size_t before = stats_of(heap).allocated_count;
    void *q = TAlloc_heap_realloc(heap, p, 0);
    size_t after = stats_of(heap).allocated_count;
    EXPECT(q == NULL && after == before - 1, "realloc(p, 0) gave %p, allocated %zu -> %zu", q,
           before, after);
    TAlloc_heap_free(heap, keep);
    EXPECT_HEAP_OK(heap, "realloc(p, 0)");
    TAlloc_heap_destroy(heap);
}

/* Rule: a growing realloc keeps the old bytes (in place, moved, and into a dedicated arena). */
static void test_realloc_grow_keeps_bytes(void)
{
    TAlloc_heap *heap = make_heap();
    /* in place: p is followed by the arena's free tail */
    void *p = TAlloc_heap_malloc(heap, 100);
    fill_pattern(p, 100, 11);
    void *p2 = TAlloc_heap_realloc(heap, p, 1000);
    /* moved: q is followed by a live block */
    void *q = TAlloc_heap_malloc(heap, 100);
    void *wall = TAlloc_heap_malloc(heap, 100);
    fill_pattern(q, 100, 12);
    void *q2 = TAlloc_heap_realloc(heap, q, 3000);
    /* into a dedicated arena */
    void *r = TAlloc_heap_malloc(heap, 5000);
    fill_pattern(r, 5000, 13);
    void *r2 = TAlloc_heap_realloc(heap, r, 300000);
    EXPECT(p2 != NULL && has_pattern(p2, 100, 11) && q2 != NULL && has_pattern(q2, 100, 12) &&
               r2 != NULL && has_pattern(r2, 5000, 13),
           "grown blocks lost their bytes: %p %p %p", p2, q2, r2);
    TAlloc_heap_free(heap, p2);
    TAlloc_heap_free(heap, q2);
    TAlloc_heap_free(heap, wall);
    TAlloc_heap_free(heap, r2);
    EXPECT_HEAP_OK(heap, "realloc grow");
    TAlloc_heap_destroy(heap);
}

/* Rule: a shrinking realloc keeps the prefix. */
static void test_realloc_shrink_keeps_prefix(void)
{
    TAlloc_heap *heap = make_heap();
    void *p = TAlloc_heap_malloc(heap, 3000);
    void *wall = TAlloc_heap_malloc(heap, 10);
    fill_pattern(p, 3000, 21);
    void *p2 = TAlloc_heap_realloc(heap, p, 50);
    void *big = TAlloc_heap_malloc(heap, 300000);
    fill_pattern(big, 300000, 22);
    void *big2 = TAlloc_heap_realloc(heap, big, 70);
    EXPECT(p2 != NULL && has_pattern(p2, 50, 21) && big2 != NULL && has_pattern(big2, 70, 22),
           "shrunk blocks lost their prefix: %p %p", p2, big2);
    TAlloc_heap_free(heap, p2);
    TAlloc_heap_free(heap, big2);
    TAlloc_heap_free(heap, wall);
    EXPECT_HEAP_OK(heap, "realloc shrink");
    TAlloc_heap_destroy(heap);
}

/* Rule: usable_size after realloc >= the requested size, through a chain of reallocs. */
static void test_realloc_usable_size(void)
{
    TAlloc_heap *heap = make_heap();
    const size_t sizes[] = {1, 17, 33, 64, 200, 4000, 30000, 70000, 5, 65000, 48, 2};
    void *wall = NULL;
    void *p = TAlloc_heap_malloc(heap, 8);
    size_t old = 8, bad = 0, first_bad = 0;
    fill_pattern(p, old, 30);
    for (size_t i = 0; i < COUNT_OF(sizes); i++) {
        void *q = TAlloc_heap_realloc(heap, p, sizes[i]);
        if (q == NULL || TAlloc_heap_usable_size(heap, q) < sizes[i] ||
            !has_pattern(q, min_size(old, sizes[i]), 30)) {
            if (bad++ == 0)
                first_bad = sizes[i];
            if (q == NULL)
                break;
        }
        p = q;
        old = sizes[i];
        fill_pattern(p, old, 30);
        if (i == 3)
            wall = TAlloc_heap_malloc(heap, 16); /* later growth must move */
    }
    EXPECT(bad == 0, "%zu reallocs with usable < requested or lost bytes, first to %zu", bad,
           first_bad);
    TAlloc_heap_free(heap, p);
    TAlloc_heap_free(heap, wall);
    EXPECT_HEAP_OK(heap, "realloc usable size");
    TAlloc_heap_destroy(heap);
}

/* ---- usable_size ----------------------------------------------------------------------- */

/* Rule: usable_size(malloc(n)) >= n for n = 0..300; all usable bytes are writable. */
static void test_usable_size_small(void)
{
    TAlloc_heap *heap = make_heap();
    static void *blocks[301];
    size_t too_small = 0, first_small = 0, wasteful = 0, first_waste = 0, damaged = 0;
    for (size_t n = 0; n <= 300; n++) {
        blocks[n] = TAlloc_heap_malloc(heap, n);
        size_t u = blocks[n] != NULL ? TAlloc_heap_usable_size(heap, blocks[n]) : 0;
        if (blocks[n] == NULL || u < n) {
            if (too_small++ == 0)
                first_small = n;
            continue;
        }
        /* layout fact: max(32, round_up(n, 16)), or up to 32 more when the rest is no chunk */
        if (u > max_size(32, round_up16(n)) + 32 && wasteful++ == 0)
            first_waste = n;
        fill_pattern(blocks[n], u, (unsigned)n);
    }
    EXPECT(too_small == 0, "%zu sizes with usable_size < n, first %zu", too_small, first_small);
    EXPECT(wasteful == 0, "%zu sizes with usable_size > max(32, round16(n)) + 32, first %zu",
           wasteful, first_waste);
    EXPECT_HEAP_OK(heap, "every usable byte written");
    for (size_t n = 0; n <= 300; n++)
        if (blocks[n] != NULL &&
            !has_pattern(blocks[n], TAlloc_heap_usable_size(heap, blocks[n]), (unsigned)n))
            damaged++;
    EXPECT(damaged == 0, "%zu blocks overwritten by their neighbours", damaged);
    for (size_t n = 0; n <= 300; n++)
        TAlloc_heap_free(heap, blocks[n]);
    EXPECT_HEAP_OK(heap, "usable_size small: freed");
    TAlloc_heap_destroy(heap);
}

/* Rule: usable_size >= n for big sizes too (standard and dedicated arenas). */
static void test_usable_size_big(void)
{
    TAlloc_heap *heap = make_heap();
    const size_t sizes[] = {1000, 4095, 4096, 30000, 65000, 65536, 100000, MIB, 3 * MIB + 7};
    void *blocks[COUNT_OF(sizes)];
    size_t bad = 0, first_bad = 0, damaged = 0;
    for (size_t i = 0; i < COUNT_OF(sizes); i++) {
        blocks[i] = TAlloc_heap_malloc(heap, sizes[i]);
        size_t u = blocks[i] != NULL ? TAlloc_heap_usable_size(heap, blocks[i]) : 0;
        if (blocks[i] == NULL || u < sizes[i]) {
            if (bad++ == 0)
                first_bad = sizes[i];
            continue;
        }
        memset(blocks[i], (int)(i + 1), u);
    }
    EXPECT(bad == 0, "%zu big sizes with usable_size < n, first %zu", bad, first_bad);
    EXPECT_HEAP_OK(heap, "big blocks fully written");
    for (size_t i = 0; i < COUNT_OF(sizes); i++)
        if (blocks[i] != NULL &&
            !all_bytes(blocks[i], TAlloc_heap_usable_size(heap, blocks[i]), (unsigned char)(i + 1)))
            damaged++;
    EXPECT(damaged == 0, "%zu big blocks overwritten", damaged);
    for (size_t i = 0; i < COUNT_OF(sizes); i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "usable_size big: freed");
    TAlloc_heap_destroy(heap);
}

/* Rule: usable_size(NULL) == 0. */
static void test_usable_size_null(void)
{
    TAlloc_heap *heap = make_heap();
    EXPECT(TAlloc_heap_usable_size(heap, NULL) == 0, "usable_size(NULL) != 0");
    EXPECT_HEAP_OK(heap, "usable_size(NULL)");
    TAlloc_heap_destroy(heap);
}

/* ---- aligned_alloc and posix_memalign -------------------------------------------------- */

#define ALIGN_SIZES 4
static const size_t align_sizes[ALIGN_SIZES] = {0, 1, 100, 5000};

/* Rule: aligned_alloc(2^k, n), 2^k <= 1 MiB, is aligned to max(2^k, 16) with usable >= n. */
static void test_aligned_alloc_valid(void)
{
    TAlloc_heap *heap = make_heap();
    static void *blocks[21 * ALIGN_SIZES];
    static size_t usable[21 * ALIGN_SIZES];
    size_t count = 0, bad = 0, bad_align = 0, bad_size = 0, damaged = 0;
    for (size_t a = 1; a <= MIB; a <<= 1) {
        for (size_t s = 0; s < ALIGN_SIZES; s++) {
            void *p = TAlloc_heap_aligned_alloc(heap, a, align_sizes[s]);
            blocks[count] = p;
            usable[count] = p != NULL ? TAlloc_heap_usable_size(heap, p) : 0;
            if (p == NULL || !is_aligned(p, max_size(a, 16)) || usable[count] < align_sizes[s]) {
                if (bad++ == 0) {
                    bad_align = a;
                    bad_size = align_sizes[s];
                }
            } else {
                fill_pattern(p, usable[count], (unsigned)count);
            }
            count++;
        }
    }
    EXPECT(bad == 0, "%zu aligned_allocs NULL, misaligned or short, first (%zu, %zu)", bad,
           bad_align, bad_size);
    EXPECT_HEAP_OK(heap, "aligned_alloc: all live");
    walk_into_log(heap);
    expect_walk_structure("aligned_alloc walk");
    const char *why = "";
    size_t unseen = blocks_not_walked_once(heap, blocks, count, &why);
    EXPECT(unseen == 0, "%zu aligned blocks not walked as allocated chunks (%s)", unseen, why);
    for (size_t i = 0; i < count; i++)
        if (blocks[i] != NULL && !has_pattern(blocks[i], usable[i], (unsigned)i))
            damaged++;
    EXPECT(damaged == 0, "%zu aligned blocks overwritten", damaged);
    for (size_t i = 0; i < count; i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "aligned_alloc: freed");
    TAlloc_heap_destroy(heap);
}

/* Rule: aligned_alloc with an alignment that is not a power of two returns NULL/EINVAL. */
static void test_aligned_alloc_invalid(void)
{
    TAlloc_heap *heap = make_heap();
    const size_t bad[] = {0, 3, 24, 48, 1000};
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        errno = 0;
        void *p = TAlloc_heap_aligned_alloc(heap, bad[i], 64);
        int e = errno;
        EXPECT(p == NULL && e == EINVAL, "aligned_alloc(%zu, 64) gave %p errno %d", bad[i], p, e);
        TAlloc_heap_free(heap, p);
    }
    EXPECT_HEAP_OK(heap, "aligned_alloc invalid");
    TAlloc_heap_destroy(heap);
}

/* Rule: posix_memalign with sizeof(void *) * 2^k <= 1 MiB returns 0 and an aligned *out. */
static void test_posix_memalign_valid(void)
{
    TAlloc_heap *heap = make_heap();
    static void *blocks[21 * ALIGN_SIZES];
    size_t count = 0, bad = 0, bad_align = 0, bad_size = 0;
    int bad_rc = 0;
    for (size_t a = sizeof(void *); a <= MIB; a <<= 1) {
        for (size_t s = 0; s < ALIGN_SIZES; s++) {
            void *out = NULL;
            int rc = TAlloc_heap_posix_memalign(heap, &out, a, align_sizes[s]);
            blocks[count++] = rc == 0 ? out : NULL;
            if (rc != 0 || out == NULL || !is_aligned(out, max_size(a, 16)) ||
                TAlloc_heap_usable_size(heap, out) < align_sizes[s]) {
                if (bad++ == 0) {
                    bad_align = a;
                    bad_size = align_sizes[s];
                    bad_rc = rc;
                }
            } else {
                memset(out, 0x5C, align_sizes[s]);
            }
        }
    }
    EXPECT(bad == 0, "%zu posix_memaligns failed, first (%zu, %zu) rc %d", bad, bad_align,
           bad_size, bad_rc);
    EXPECT_HEAP_OK(heap, "posix_memalign: all live");
    for (size_t i = 0; i < count; i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "posix_memalign: freed");
    TAlloc_heap_destroy(heap);
}

/* Rule: posix_memalign with a bad alignment returns EINVAL and leaves *out untouched. */
static void test_posix_memalign_invalid(void)
{
    TAlloc_heap *heap = make_heap();
    void *const sentinel = (void *)(uintptr_t)0x1234;
    const size_t bad[] = {0, sizeof(void *) / 2, 24, 3, 1000};
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        void *out = sentinel;
        int rc = TAlloc_heap_posix_memalign(heap, &out, bad[i], 64);
        EXPECT(rc == EINVAL && out == sentinel, "posix_memalign(%zu, 64) returned %d, *out %p",
               bad[i], rc, out);
    }
    EXPECT_HEAP_OK(heap, "posix_memalign invalid");
    TAlloc_heap_destroy(heap);
}

/* ---- heaps, configuration, OS layer ---------------------------------------------------- */

/* Function: TAlloc_config_init fills the documented defaults. */
static void test_config_init(void)
{
    TAlloc_config config;
    memset(&config, 0xA5, sizeof config);
    TAlloc_config_init(&config);
    EXPECT(config.arena_size == TALLOC_DEFAULT_ARENA_SIZE && config.arena_size == 16384000,
           "arena_size %zu", config.arena_size);
    EXPECT(config.retained_arena_count == 1, "retained_arena_count %zu",
           config.retained_arena_count);
    EXPECT(config.policy == TALLOC_POLICY_SEGREGATED, "policy %d", (int)config.policy);
    EXPECT(config.os.map == NULL, "os.map not NULL");
    EXPECT(config.error_handler == NULL, "error_handler not NULL");
}

/* Function: TAlloc_heap_create(NULL) makes a working heap with the default arena size. */
static void test_heap_create_null(void)
{
    TAlloc_heap *heap = TAlloc_heap_create(NULL);
    EXPECT(heap != NULL, "TAlloc_heap_create(NULL) failed: errno %d", errno);
    if (heap == NULL)
        return;
    void *p = TAlloc_heap_malloc(heap, 1000);
    EXPECT(p != NULL && is_aligned(p, TALLOC_ALIGNMENT), "malloc on a default heap gave %p", p);
    walk_into_log(heap);
    EXPECT(g_log.arenas == 1 && g_log.first_arena_size == TALLOC_DEFAULT_ARENA_SIZE,
           "default heap: %zu arenas, first of %zu bytes", g_log.arenas, g_log.first_arena_size);
    TAlloc_heap_free(heap, p);
    EXPECT_HEAP_OK(heap, "heap_create(NULL)");
    TAlloc_heap_destroy(heap);
}

/* Rule: config.arena_size 0 means TALLOC_DEFAULT_ARENA_SIZE. */
static void test_arena_size_zero(void)
{
    TAlloc_heap *heap = make_heap_with(0, TALLOC_POLICY_FIRST_FIT);
    void *p = TAlloc_heap_malloc(heap, 64);
    walk_into_log(heap);
    EXPECT(g_log.arenas == 1 && g_log.first_arena_size == TALLOC_DEFAULT_ARENA_SIZE,
           "arena_size 0: %zu arenas, first of %zu bytes", g_log.arenas, g_log.first_arena_size);
    TAlloc_heap_free(heap, p);
    EXPECT_HEAP_OK(heap, "arena_size 0");
    TAlloc_heap_destroy(heap);
}

/* Rule: config.arena_size is rounded up to a page. */
static void test_arena_size_rounded(void)
{
    size_t page = TAlloc_page_size();
    TAlloc_heap *heap = make_heap_with(5000, TALLOC_POLICY_FIRST_FIT);
    void *p = TAlloc_heap_malloc(heap, 64);
    walk_into_log(heap);
    size_t want = (5000 + page - 1) / page * page;
    EXPECT(g_log.arenas == 1 && g_log.first_arena_size == want,
           "arena_size 5000: %zu arenas, first of %zu bytes (want %zu)", g_log.arenas,
           g_log.first_arena_size, want);
    TAlloc_heap_free(heap, p);
    EXPECT_HEAP_OK(heap, "arena_size rounded");
    TAlloc_heap_destroy(heap);
}

/* Function: TAlloc_page_size is a power of two >= 4096. */
static void test_page_size(void)
{
    size_t page = TAlloc_page_size();
    EXPECT(page >= 4096 && (page & (page - 1)) == 0, "page size %zu", page);
}

/* Function: TAlloc_os_default is non-NULL with map and unmap set. */
static void test_os_default(void)
{
    const TAlloc_os *os = TAlloc_os_default();
    EXPECT(os != NULL && os->map != NULL && os->unmap != NULL, "TAlloc_os_default incomplete");
    if (os == NULL || os->map == NULL || os->unmap == NULL)
        return;
    size_t page = TAlloc_page_size();
    unsigned char *m = os->map(os->ctx, 2 * page);
    EXPECT(m != NULL && is_aligned(m, page) && all_bytes(m, 2 * page, 0),
           "default map gave %p, not page aligned and zero", (void *)m);
    if (m != NULL) {
        m[0] = 1;
        os->unmap(os->ctx, m, 2 * page);
    }
}

/* An OS layer that forwards to TAlloc_os_default() and records every mapping. */
typedef struct counting_os {
    size_t maps, unmaps;
    size_t mapped_bytes, unmapped_bytes;
    size_t first_size;   /* the control block's mapping */
    size_t bad_unmaps;   /* unmaps that do not match one live map exactly */
    size_t odd_sizes;    /* map sizes that are not a multiple of the page size */
    size_t live;
    struct {
        void *address;
        size_t size;
    } map[64];
} counting_os;

static void *counting_map(void *ctx, size_t size)
{
    counting_os *c = ctx;
    const TAlloc_os *os = TAlloc_os_default();
    void *p = os->map(os->ctx, size);
    if (p == NULL)
        return NULL;
    if (c->maps == 0)
        c->first_size = size;
    c->maps++;
    c->mapped_bytes += size;
    if (size % TAlloc_page_size() != 0)
        c->odd_sizes++;
    size_t slot = 0;
    while (slot < COUNT_OF(c->map) && c->map[slot].address != NULL)
        slot++;
    if (slot < COUNT_OF(c->map)) {
        c->map[slot].address = p;
        c->map[slot].size = size;
        c->live++;
    } else {
        c->bad_unmaps++; /* cannot track it: make the test fail */
    }
    return p;
}

static void counting_unmap(void *ctx, void *address, size_t size)
{
    counting_os *c = ctx;
    const TAlloc_os *os = TAlloc_os_default();
    c->unmaps++;
    c->unmapped_bytes += size;
    size_t slot = 0;
    while (slot < COUNT_OF(c->map) &&
           (c->map[slot].address != address || c->map[slot].size != size))
        slot++;
    if (slot < COUNT_OF(c->map)) {
        c->map[slot].address = NULL;
        c->map[slot].size = 0;
        c->live--;
    } else {
        c->bad_unmaps++;
    }
    os->unmap(os->ctx, address, size);
}

static TAlloc_heap *make_counting_heap(counting_os *c)
{
    memset(c, 0, sizeof *c);
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = SMALL_ARENA;
    config.policy = test_policy();
    config.large_cache = 0; /* every release an unmap */
    config.os.map = counting_map;
    config.os.unmap = counting_unmap;
    config.os.ctx = c;
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    if (!EXPECT(heap != NULL, "TAlloc_heap_create with a counting OS failed: errno %d", errno))
        exit(test_summary("test_api"));
    return heap;
}

/* Function: TAlloc_heap_destroy unmaps every mapping the heap made, control block included. */
static void test_heap_destroy_unmaps_all(void)
{
    counting_os c;
    TAlloc_heap *heap = make_counting_heap(&c);
    EXPECT(c.maps == 1 && c.unmaps == 0, "heap creation made %zu maps, %zu unmaps", c.maps,
           c.unmaps);
    void *blocks[8];
    blocks[0] = TAlloc_heap_malloc(heap, 100);
    blocks[1] = TAlloc_heap_malloc(heap, 40000); /* three standard arenas */
    blocks[2] = TAlloc_heap_malloc(heap, 40000);
    blocks[3] = TAlloc_heap_malloc(heap, 40000);
    blocks[4] = TAlloc_heap_malloc(heap, 100000); /* two dedicated arenas */
    blocks[5] = TAlloc_heap_calloc(heap, 1, MIB);
    blocks[6] = TAlloc_heap_aligned_alloc(heap, MIB, 10);
    blocks[7] = TAlloc_heap_malloc(heap, 5000);
    size_t made = 0;
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        made += blocks[i] != NULL;
    EXPECT(made == COUNT_OF(blocks), "only %zu of %zu blocks allocated", made, COUNT_OF(blocks));
    EXPECT_HEAP_OK(heap, "counting OS heap");
    TAlloc_stats s = stats_of(heap);
    EXPECT(s.map_count == c.maps - 1 && s.arena_count == c.live - 1 &&
               s.mapped_bytes == c.mapped_bytes - c.unmapped_bytes - c.first_size,
           "stats map_count %llu arena_count %zu mapped %zu vs OS maps %zu live %zu bytes %zu",
           (unsigned long long)s.map_count, s.arena_count, s.mapped_bytes, c.maps, c.live,
           c.mapped_bytes - c.unmapped_bytes);
    /* a freed dedicated block is unmapped at once */
    size_t unmaps_before = c.unmaps;
    TAlloc_heap_free(heap, blocks[4]);
    s = stats_of(heap);
    EXPECT(c.unmaps == unmaps_before + 1 && s.unmap_count == 1,
           "freeing a dedicated block: %zu OS unmaps, stats unmap_count %llu",
           c.unmaps - unmaps_before, (unsigned long long)s.unmap_count);
    TAlloc_heap_destroy(heap);
    EXPECT(c.maps == c.unmaps && c.mapped_bytes == c.unmapped_bytes && c.live == 0,
           "after destroy: %zu maps / %zu unmaps, %zu / %zu bytes, %zu live", c.maps, c.unmaps,
           c.mapped_bytes, c.unmapped_bytes, c.live);
    EXPECT(c.bad_unmaps == 0, "%zu unmaps did not match a map exactly", c.bad_unmaps);
    EXPECT(c.odd_sizes == 0, "%zu map sizes not a multiple of the page size", c.odd_sizes);
}

/* ---- stats ---------------------------------------------------------------------------- */

/* Function: TAlloc_heap_get_stats on a fresh heap is all zero. */
static void test_stats_fresh(void)
{
    TAlloc_heap *heap = make_heap();
    TAlloc_stats s = stats_of(heap);
    size_t nonzero_events = 0;
    for (size_t e = 0; e < TALLOC_EVENT_COUNT; e++)
        nonzero_events += s.event_count[e] != 0;
    EXPECT(s.allocated_count == 0 && s.allocated_bytes == 0 && s.free_count == 0 &&
               s.free_bytes == 0 && s.arena_count == 0 && s.mapped_bytes == 0 &&
               s.map_count == 0 && s.unmap_count == 0 && nonzero_events == 0,
           "fresh heap stats: alloc %zu/%zu free %zu/%zu arenas %zu/%zu maps %llu/%llu "
           "events %zu",
           s.allocated_count, s.allocated_bytes, s.free_count, s.free_bytes, s.arena_count,
           s.mapped_bytes, (unsigned long long)s.map_count, (unsigned long long)s.unmap_count,
           nonzero_events);
    EXPECT_HEAP_OK(heap, "fresh heap");
    TAlloc_heap_destroy(heap);
}

/* Rule: stats count the live blocks and their usable bytes, and the arenas a walk sees. */
static void test_stats_match_blocks_and_walk(void)
{
    TAlloc_heap *heap = make_heap();
    const size_t sizes[] = {0, 1, 24, 100, 1000, 40000, 40000, 100000, 7, 333};
    void *blocks[COUNT_OF(sizes)];
    for (size_t i = 0; i < COUNT_OF(sizes); i++)
        blocks[i] = TAlloc_heap_malloc(heap, sizes[i]);
    TAlloc_heap_free(heap, blocks[3]); /* one hole */
    blocks[3] = NULL;
    size_t usable_sum = 0;
    for (size_t i = 0; i < COUNT_OF(sizes); i++)
        usable_sum += TAlloc_heap_usable_size(heap, blocks[i]);
    TAlloc_stats s = stats_of(heap);
    EXPECT(s.allocated_count == COUNT_OF(sizes) - 1 && s.allocated_bytes == usable_sum,
           "allocated %zu/%zu, want %zu/%zu", s.allocated_count, s.allocated_bytes,
           COUNT_OF(sizes) - 1, usable_sum);
    int rc = walk_into_log(heap);
    EXPECT(rc == 0 && s.arena_count == g_log.arenas && s.mapped_bytes == g_log.arena_bytes,
           "stats arenas %zu/%zu bytes, walk %zu/%zu (rc %d)", s.arena_count, s.mapped_bytes,
           g_log.arenas, g_log.arena_bytes, rc);
    EXPECT(s.free_count == g_log.free_count && s.free_bytes == g_log.free_bytes &&
               s.allocated_count == g_log.allocated_count &&
               s.allocated_bytes == g_log.allocated_bytes && s.quick_count == g_log.quick_count &&
               s.quick_bytes == g_log.quick_bytes,
           "stats free %zu/%zu quick %zu/%zu, walk free %zu/%zu quick %zu/%zu", s.free_count,
           s.free_bytes, s.quick_count, s.quick_bytes, g_log.free_count, g_log.free_bytes,
           g_log.quick_count, g_log.quick_bytes);
    EXPECT(s.quick_count == 1 && s.quick_bytes == 112,
           "the freed malloc(100) is the one quick chunk (112 payload bytes): %zu, %zu bytes",
           s.quick_count, s.quick_bytes);
    EXPECT(s.map_count == s.arena_count && s.unmap_count == 0,
           "map_count %llu, unmap_count %llu with %zu arenas and nothing unmapped",
           (unsigned long long)s.map_count, (unsigned long long)s.unmap_count, s.arena_count);
    for (size_t i = 0; i < COUNT_OF(sizes); i++)
        TAlloc_heap_free(heap, blocks[i]);
    s = stats_of(heap);
    EXPECT(s.allocated_count == 0 && s.allocated_bytes == 0, "after freeing all: %zu/%zu",
           s.allocated_count, s.allocated_bytes);
    EXPECT_HEAP_OK(heap, "stats");
    TAlloc_heap_destroy(heap);
}

/* ---- walk ----------------------------------------------------------------------------- */

/* Function: TAlloc_heap_walk visits arenas then their chunks in order, tiling each arena, and
   shows each live block once with payload == ptr and size == usable_size. */
static void test_walk_structure_and_blocks(void)
{
    TAlloc_heap *heap = make_heap();
    void *blocks[40];
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        blocks[i] = TAlloc_heap_malloc(heap, i % 7 == 0 ? 9000 + i : i * 37);
    blocks[39] = TAlloc_heap_realloc(heap, blocks[39], 200000); /* a dedicated arena */
    for (size_t i = 1; i < COUNT_OF(blocks); i += 3) {       /* holes */
        TAlloc_heap_free(heap, blocks[i]);
        blocks[i] = NULL;
    }
    int rc = walk_into_log(heap);
    EXPECT(rc == 0, "full walk returned %d", rc);
    EXPECT(g_log.arenas >= 2 && g_log.dedicated_arenas == 1,
           "walk saw %zu arenas (%zu dedicated); want several, one dedicated", g_log.arenas,
           g_log.dedicated_arenas);
    expect_walk_structure("walk");
    const char *why = "";
    size_t unseen = blocks_not_walked_once(heap, blocks, COUNT_OF(blocks), &why);
    EXPECT(unseen == 0, "%zu live blocks not walked correctly (%s)", unseen, why);
    size_t live = 0;
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        live += blocks[i] != NULL;
    EXPECT(g_log.allocated_count == live, "walk saw %zu allocated chunks, %zu blocks are live",
           g_log.allocated_count, live);
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "walk");
    TAlloc_heap_destroy(heap);
}

typedef struct stop_ctx {
    size_t calls;
    size_t stop_at;
} stop_ctx;

static int stop_visit(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    stop_ctx *s = ctx;
    (void)arena;
    (void)chunk;
    return ++s->calls == s->stop_at ? 7 : 0;
}

/* Rule: a nonzero callback value stops the walk at once and is the walk's result. */
static void test_walk_stops(void)
{
    TAlloc_heap *heap = make_heap();
    void *blocks[6];
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        blocks[i] = TAlloc_heap_malloc(heap, 30000);
    stop_ctx s = {0, 3};
    int rc = TAlloc_heap_walk(heap, stop_visit, &s);
    EXPECT(rc == 7 && s.calls == 3, "walk returned %d after %zu calls; want 7 after 3", rc,
           s.calls);
    stop_ctx first = {0, 1};
    rc = TAlloc_heap_walk(heap, stop_visit, &first);
    EXPECT(rc == 7 && first.calls == 1, "walk stopped on the first arena returned %d after %zu",
           rc, first.calls);
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT_HEAP_OK(heap, "walk stop");
    TAlloc_heap_destroy(heap);
}

/* ---- names ---------------------------------------------------------------------------- */

/* Function: TAlloc_event_name gives distinct non-empty names. */
static void test_event_names(void)
{
    size_t bad = 0;
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++) {
        const char *a = TAlloc_event_name((TAlloc_event)e);
        if (a == NULL || a[0] == 0) {
            bad++;
            continue;
        }
        for (int f = 0; f < e; f++) {
            const char *b = TAlloc_event_name((TAlloc_event)f);
            if (b != NULL && strcmp(a, b) == 0)
                bad++;
        }
    }
    EXPECT(bad == 0, "%zu event names empty or repeated", bad);
}

/* Function: TAlloc_error_string gives distinct non-empty strings; DOUBLE_FREE is "double free". */
/* TAlloc_error_format writes the exact report line, NUL-terminated, cut to fit. */
static void test_error_format(void)
{
    char line[128], want[128];
    void *p = (void *)0x7f0012345670;
    size_t n = TAlloc_error_format(line, sizeof line, TALLOC_ERROR_DOUBLE_FREE, p);
    snprintf(want, sizeof want, "talloc: double free %p\n", p);
    EXPECT(strcmp(line, want) == 0 && n == strlen(want), "report line \"%s\"", line);
    TAlloc_error_format(line, sizeof line, TALLOC_ERROR_FOREIGN_POINTER, NULL);
    EXPECT(strcmp(line, "talloc: foreign pointer (nil)\n") == 0, "NULL prints as (nil): \"%s\"", line);
    n = TAlloc_error_format(line, 12, TALLOC_ERROR_DOUBLE_FREE, p);
    EXPECT(n == 11 && strcmp(line, "talloc: dou") == 0, "cut to fit: \"%s\"", line);
    EXPECT(TAlloc_error_format(line, 0, TALLOC_ERROR_DOUBLE_FREE, p) == 0, "capacity 0 writes nothing");
}

static void test_error_strings(void)
{
    size_t bad = 0;
    for (int e = 0; e < TALLOC_ERROR_COUNT; e++) {
        const char *a = TAlloc_error_string((TAlloc_error)e);
        if (a == NULL || a[0] == 0) {
            bad++;
            continue;
        }
        for (int f = 0; f < e; f++) {
            const char *b = TAlloc_error_string((TAlloc_error)f);
            if (b != NULL && strcmp(a, b) == 0)
                bad++;
        }
    }
    EXPECT(bad == 0, "%zu error strings empty or repeated", bad);
    const char *df = TAlloc_error_string(TALLOC_ERROR_DOUBLE_FREE);
    EXPECT(df != NULL && strcmp(df, "double free") == 0, "DOUBLE_FREE is \"%s\"",
           df != NULL ? df : "(null)");
}

/* ---- placement policies --------------------------------------------------------------- */

/*
 * Holes of 512 bytes (lower address) and 128 bytes (higher), separated by live blocks; returns
 * where malloc(100) lands: 512, 128, or 0 for anywhere else.
 */
static int fit_script(TAlloc_policy policy, const char *what)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = SMALL_ARENA;
    config.policy = policy;
    config.quick = 0; /* the holes must be free chunks, not kept whole in quick lists */
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    if (!EXPECT(heap != NULL, "TAlloc_heap_create failed: errno %d", errno))
        return 0;
    void *hole512 = TAlloc_heap_malloc(heap, 512);
    void *sep1 = TAlloc_heap_malloc(heap, 64);
    void *hole128 = TAlloc_heap_malloc(heap, 128);
    void *sep2 = TAlloc_heap_malloc(heap, 64);
    uintptr_t at512 = (uintptr_t)hole512, at128 = (uintptr_t)hole128;
    EXPECT(at512 != 0 && at512 < at128, "%s: the 512 hole is not below the 128 hole", what);
    TAlloc_heap_free(heap, hole512);
    TAlloc_heap_free(heap, hole128);
    void *p = TAlloc_heap_malloc(heap, 100);
    uintptr_t at = (uintptr_t)p;
    int where = at == at128 ? 128 : at == at512 ? 512 : 0;
    TAlloc_heap_free(heap, p);
    TAlloc_heap_free(heap, sep1);
    TAlloc_heap_free(heap, sep2);
    EXPECT_HEAP_OK(heap, what);
    TAlloc_heap_destroy(heap);
    return where;
}

/* Rule: BEST_FIT takes the smallest hole that fits. */
static void test_policy_best_fit(void)
{
    int where = fit_script(TALLOC_POLICY_BEST_FIT, "best fit");
    EXPECT(where == 128, "best fit put malloc(100) in the %d hole", where);
}

/* Rule: FIRST_FIT takes the lowest-addressed hole that fits. */
static void test_policy_first_fit(void)
{
    int where = fit_script(TALLOC_POLICY_FIRST_FIT, "first fit");
    EXPECT(where == 512, "first fit put malloc(100) in the %d hole", where);
}

/* ---- debug print ---------------------------------------------------------------------- */

/* Function: TAlloc_heap_debug_print writes a description of the heap to the given stream. */
static void test_heap_debug_print(void)
{
    TAlloc_heap *heap = make_heap();
    void *p = TAlloc_heap_malloc(heap, 100);
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    EXPECT(out != NULL, "open_memstream failed");
    if (out != NULL) {
        TAlloc_heap_debug_print(heap, out);
        fclose(out);
        EXPECT(length > 0 && text != NULL && text[0] != 0, "debug print wrote nothing");
        free(text);
    }
    TAlloc_heap_free(heap, p);
    EXPECT_HEAP_OK(heap, "debug print");
    TAlloc_heap_destroy(heap);
}

/* ---- many blocks ---------------------------------------------------------------------- */

#define MANY 2000

static uint32_t lcg_next(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static unsigned char many_byte(size_t i)
{
    return (unsigned char)(i % 251 + 1);
}

/* Rule: 2000 varied blocks keep their bytes through scattered frees and reallocs, and freeing
   everything leaves no allocation and at most the one retained arena. */
static void test_many_blocks(void)
{
    TAlloc_heap *heap = make_heap();
    static void *ptr[MANY];
    static size_t size[MANY];
    uint32_t rng = 12345;
    size_t failed_alloc = 0, damaged = 0;
    for (size_t i = 0; i < MANY; i++) {
        uint32_t r = lcg_next(&rng);
        size[i] = i % 250 == 7 ? 70000 + r % 1000 : i % 10 == 0 ? r % 8000 : r % 700;
        ptr[i] = TAlloc_heap_malloc(heap, size[i]);
        if (ptr[i] == NULL || !is_aligned(ptr[i], TALLOC_ALIGNMENT) ||
            TAlloc_heap_usable_size(heap, ptr[i]) < size[i]) {
            failed_alloc++;
            ptr[i] = NULL;
            continue;
        }
        memset(ptr[i], many_byte(i), size[i]);
    }
    EXPECT(failed_alloc == 0, "%zu of %d allocations failed or were short", failed_alloc, MANY);
    EXPECT_HEAP_OK(heap, "many: all allocated");
    walk_into_log(heap);
    expect_walk_structure("many: walk");
    const char *why = "";
    size_t unseen = blocks_not_walked_once(heap, ptr, MANY, &why);
    EXPECT(unseen == 0, "many: %zu blocks not walked correctly (%s)", unseen, why);

    for (size_t k = 0; k < MANY / 2; k++) { /* 7919 is prime: a permutation of 0..1999 */
        size_t i = k * 7919 % MANY;
        TAlloc_heap_free(heap, ptr[i]);
        ptr[i] = NULL;
    }
    EXPECT_HEAP_OK(heap, "many: half freed");
    for (size_t i = 0; i < MANY; i++)
        if (ptr[i] != NULL && !all_bytes(ptr[i], size[i], many_byte(i)))
            damaged++;
    EXPECT(damaged == 0, "many: %zu survivors damaged by the frees", damaged);

    size_t failed_realloc = 0, live = 0;
    for (size_t i = 0; i < MANY; i++) {
        if (ptr[i] == NULL)
            continue;
        live++;
        if (i % 3 != 0)
            continue;
        size_t new_size = 1 + lcg_next(&rng) % (i % 30 == 0 ? 20000 : 1500);
        void *q = TAlloc_heap_realloc(heap, ptr[i], new_size);
        if (q == NULL || !all_bytes(q, min_size(size[i], new_size), many_byte(i))) {
            failed_realloc++;
            if (q == NULL)
                continue;
        }
        ptr[i] = q;
        size[i] = new_size;
        memset(q, many_byte(i), new_size);
    }
    EXPECT(failed_realloc == 0, "many: %zu reallocs failed or lost bytes", failed_realloc);
    EXPECT_HEAP_OK(heap, "many: after reallocs");
    damaged = 0;
    for (size_t i = 0; i < MANY; i++)
        if (ptr[i] != NULL && !all_bytes(ptr[i], size[i], many_byte(i)))
            damaged++;
    EXPECT(damaged == 0, "many: %zu survivors damaged by the reallocs", damaged);
    TAlloc_stats s = stats_of(heap);
    EXPECT(s.allocated_count == live, "many: %zu allocated, %zu live", s.allocated_count, live);

    for (size_t k = 0; k < MANY; k++) { /* 1237 is prime: another permutation */
        size_t i = k * 1237 % MANY;
        TAlloc_heap_free(heap, ptr[i]);
        ptr[i] = NULL;
    }
    EXPECT_HEAP_OK(heap, "many: all freed");
    s = stats_of(heap);
    EXPECT(s.allocated_count == 0 && s.allocated_bytes == 0 && s.quick_bytes <= TALLOC_DEFAULT_QUICK,
           "many: after freeing all, %zu allocated (%zu bytes), %zu bytes quick",
           s.allocated_count, s.allocated_bytes, s.quick_bytes);
    TAlloc_heap_flush(heap); /* the quick lists' blocks merge: every arena empties */
    s = stats_of(heap);
    EXPECT(s.allocated_count == 0 && s.allocated_bytes == 0 && s.arena_count <= 1 &&
               s.quick_count == 0,
           "many: after the flush, %zu allocated (%zu bytes), %zu arenas", s.allocated_count,
           s.allocated_bytes, s.arena_count);
    TAlloc_heap_destroy(heap);
}

/* ---- the default heap: the TAlloc_* forms --------------------------------------------- */

static TAlloc_stats default_stats(void)
{
    TAlloc_stats s;
    memset(&s, 0xFF, sizeof s);
    TAlloc_get_stats(&s);
    return s;
}

/* Function: TAlloc_default_heap returns the same heap every time; TAlloc_get_stats reads it. */
static void test_default_heap_identity(void)
{
    TAlloc_heap *a = TAlloc_default_heap();
    TAlloc_heap *b = TAlloc_default_heap();
    EXPECT(a != NULL && a == b, "default heap %p then %p", (void *)a, (void *)b);
    TAlloc_stats via_get = default_stats();
    TAlloc_stats via_heap = stats_of(a);
    EXPECT(memcmp(&via_get, &via_heap, sizeof via_get) == 0,
           "TAlloc_get_stats differs from TAlloc_heap_get_stats(default heap)");
}

/* Function: TAlloc_malloc / TAlloc_free / TAlloc_usable_size on the default heap. */
static void test_default_malloc_free(void)
{
    size_t base = default_stats().allocated_count;
    void *p = TAlloc_malloc(100);
    EXPECT(p != NULL && is_aligned(p, TALLOC_ALIGNMENT) && TAlloc_usable_size(p) >= 100,
           "TAlloc_malloc(100) gave %p", p);
    EXPECT(default_stats().allocated_count == base + 1, "TAlloc_malloc not counted");
    void *z1 = TAlloc_malloc(0);
    void *z2 = TAlloc_malloc(0);
    EXPECT(z1 != NULL && z2 != NULL && z1 != z2, "TAlloc_malloc(0) twice gave %p %p", z1, z2);
    EXPECT(TAlloc_usable_size(NULL) == 0, "TAlloc_usable_size(NULL) != 0");
    errno = 0;
    void *huge = TAlloc_malloc(SIZE_MAX);
    int e = errno;
    EXPECT(huge == NULL && e == ENOMEM, "TAlloc_malloc(SIZE_MAX) gave %p errno %d", huge, e);
    /* a block from TAlloc_heap_malloc(default heap) is freed by TAlloc_free */
    void *h = TAlloc_heap_malloc(TAlloc_default_heap(), 50);
    errno = 12345;
    TAlloc_free(NULL);
    TAlloc_free(p);
    TAlloc_free(z1);
    TAlloc_free(z2);
    TAlloc_free(h);
    e = errno;
    EXPECT(e == 12345, "TAlloc_free changed errno to %d", e);
    EXPECT(default_stats().allocated_count == base, "default heap: %zu allocated, want %zu",
           default_stats().allocated_count, base);
    EXPECT_HEAP_OK(TAlloc_default_heap(), "default malloc/free");
}

/* Function: TAlloc_calloc on the default heap. */
static void test_default_calloc(void)
{
    void *a = TAlloc_malloc(400);
    if (a != NULL)
        memset(a, 0xAA, 400);
    TAlloc_free(a);
    void *z = TAlloc_calloc(20, 20);
    EXPECT(z != NULL && all_bytes(z, 400, 0), "TAlloc_calloc(20, 20) not zero");
    errno = 0;
    void *o = TAlloc_calloc(SIZE_MAX / 2 + 1, 2);
    int e = errno;
    EXPECT(o == NULL && e == ENOMEM, "TAlloc_calloc overflow gave %p errno %d", o, e);
    void *c0 = TAlloc_calloc(0, 5);
    void *c1 = TAlloc_calloc(5, 0);
    EXPECT(c0 != NULL && c1 != NULL && c0 != c1, "TAlloc_calloc with a zero gave %p %p", c0, c1);
    TAlloc_free(z);
    TAlloc_free(c0);
    TAlloc_free(c1);
    EXPECT_HEAP_OK(TAlloc_default_heap(), "default calloc");
}

/* Function: TAlloc_realloc on the default heap. */
static void test_default_realloc(void)
{
    size_t base = default_stats().allocated_count;
    void *p = TAlloc_realloc(NULL, 64);
    EXPECT(p != NULL && default_stats().allocated_count == base + 1,
           "TAlloc_realloc(NULL, 64) gave %p", p);
    if (p == NULL)
        return;
    fill_pattern(p, 64, 40);
    void *q = TAlloc_realloc(p, 5000);
    EXPECT(q != NULL && has_pattern(q, 64, 40) && TAlloc_usable_size(q) >= 5000,
           "TAlloc_realloc grow gave %p", q);
    if (q == NULL)
        return;
    errno = 0;
    void *r = TAlloc_realloc(q, SIZE_MAX);
    int e = errno;
    EXPECT(r == NULL && e == ENOMEM && has_pattern(q, 64, 40),
           "TAlloc_realloc(q, SIZE_MAX) gave %p errno %d", r, e);
    void *s = TAlloc_realloc(q, 10);
    EXPECT(s != NULL && has_pattern(s, 10, 40), "TAlloc_realloc shrink gave %p", s);
    void *t = TAlloc_realloc(s, 0);
    EXPECT(t == NULL && default_stats().allocated_count == base,
           "TAlloc_realloc(p, 0) gave %p and left %zu allocated (want %zu)", t,
           default_stats().allocated_count, base);
    EXPECT_HEAP_OK(TAlloc_default_heap(), "default realloc");
}

/* Function: TAlloc_aligned_alloc and TAlloc_posix_memalign on the default heap. */
static void test_default_aligned(void)
{
    void *a = TAlloc_aligned_alloc(4096, 100);
    EXPECT(a != NULL && is_aligned(a, 4096) && TAlloc_usable_size(a) >= 100,
           "TAlloc_aligned_alloc(4096, 100) gave %p", a);
    void *big = TAlloc_aligned_alloc(MIB, 10);
    EXPECT(big != NULL && is_aligned(big, MIB), "TAlloc_aligned_alloc(1 MiB, 10) gave %p", big);
    errno = 0;
    void *bad = TAlloc_aligned_alloc(24, 100);
    int e = errno;
    EXPECT(bad == NULL && e == EINVAL, "TAlloc_aligned_alloc(24, 100) gave %p errno %d", bad, e);
    void *out = NULL;
    int rc = TAlloc_posix_memalign(&out, 256, 300);
    EXPECT(rc == 0 && out != NULL && is_aligned(out, 256) && TAlloc_usable_size(out) >= 300,
           "TAlloc_posix_memalign(256, 300) returned %d, %p", rc, out);
    void *const sentinel = (void *)(uintptr_t)0x1234;
    void *untouched = sentinel;
    rc = TAlloc_posix_memalign(&untouched, 4, 100);
    EXPECT(rc == EINVAL && untouched == sentinel, "TAlloc_posix_memalign(4) returned %d, %p", rc,
           untouched);
    untouched = sentinel;
    rc = TAlloc_posix_memalign(&untouched, 64, SIZE_MAX);
    EXPECT(rc == ENOMEM && untouched == sentinel,
           "TAlloc_posix_memalign(64, SIZE_MAX) returned %d, %p", rc, untouched);
    TAlloc_free(a);
    TAlloc_free(big);
    TAlloc_free(out);
    EXPECT_HEAP_OK(TAlloc_default_heap(), "default aligned");
}

/* Function: TAlloc_walk / TAlloc_check / TAlloc_debug_print on the default heap. */
static void test_default_introspection(void)
{
    void *blocks[3];
    blocks[0] = TAlloc_malloc(10);
    blocks[1] = TAlloc_malloc(1000);
    blocks[2] = TAlloc_calloc(3, 100);
    int rc = walk_into_log(NULL);
    EXPECT(rc == 0 && g_log.arenas >= 1, "TAlloc_walk returned %d with %zu arenas", rc,
           g_log.arenas);
    expect_walk_structure("default walk");
    const char *why = "";
    size_t unseen = blocks_not_walked_once(NULL, blocks, COUNT_OF(blocks), &why);
    EXPECT(unseen == 0, "TAlloc_walk: %zu blocks not walked correctly (%s)", unseen, why);
    TAlloc_stats s = default_stats();
    EXPECT(s.arena_count == g_log.arenas && s.mapped_bytes == g_log.arena_bytes &&
               s.allocated_count == g_log.allocated_count,
           "TAlloc_get_stats disagrees with TAlloc_walk");
    stop_ctx stop = {0, 2};
    rc = TAlloc_walk(stop_visit, &stop);
    EXPECT(rc == 7 && stop.calls == 2, "TAlloc_walk stop returned %d after %zu", rc, stop.calls);
    test_violations v = {0, {0}};
    size_t count = TAlloc_check(test_violation_cb, &v);
    EXPECT(count == 0 && v.count == 0, "TAlloc_check: %zu violations:%s", count, v.text);
    EXPECT(TAlloc_check(NULL, NULL) == 0, "TAlloc_check(NULL, NULL) != 0");
    fflush(stdout);
    TAlloc_debug_print();
    fflush(stdout);
    for (size_t i = 0; i < COUNT_OF(blocks); i++)
        TAlloc_free(blocks[i]);
    EXPECT_HEAP_OK(TAlloc_default_heap(), "default introspection");
}

/* The header's version, the library's and the project's agree; the invariant ids the harness
   extends start where TAlloc's end. */
static void test_version(void)
{
    EXPECT(TAlloc_version() == TALLOC_VERSION, "TAlloc_version %d, header %d", TAlloc_version(),
           TALLOC_VERSION);
    EXPECT(strcmp(TAlloc_version_string(), TALLOC_VERSION_STRING) == 0, "version string %s",
           TAlloc_version_string());
    EXPECT(strcmp(TALLOC_VERSION_STRING, TALLOC_PROJECT_VERSION) == 0,
           "header version %s, CMake project version %s", TALLOC_VERSION_STRING,
           TALLOC_PROJECT_VERSION);
    char built[32];
    snprintf(built, sizeof built, "%d.%d.%d", TALLOC_VERSION_MAJOR, TALLOC_VERSION_MINOR,
             TALLOC_VERSION_PATCH);
    EXPECT(strcmp(built, TALLOC_VERSION_STRING) == 0, "version parts %s", built);
#if defined(__OPTIMIZE__) && defined(__GNUC__)
    /* alloc_size tells the compiler each block's size (needs optimization to be seen) */
    char *m = TAlloc_malloc(100);
    char *c = TAlloc_calloc(10, 30);
    char *r = TAlloc_realloc(NULL, 70);
    char *al = TAlloc_aligned_alloc(64, 200);
    EXPECT(__builtin_object_size(m, 0) == 100 && __builtin_object_size(c, 0) == 300 &&
               __builtin_object_size(r, 0) == 70 && __builtin_object_size(al, 0) == 200,
           "alloc_size: %zu %zu %zu %zu", __builtin_object_size(m, 0),
           __builtin_object_size(c, 0), __builtin_object_size(r, 0), __builtin_object_size(al, 0));
    TAlloc_free(m);
    TAlloc_free(c);
    TAlloc_free(r);
    TAlloc_free(al);
#endif
    TAlloc_invariant last = TALLOC_I6_ACCOUNTING;
    EXPECT(last + 1 == TALLOC_INVARIANT_COUNT, "invariant count %d", TALLOC_INVARIANT_COUNT);
}

int main(void)
{
    test_version();
    /* C semantics */
    test_every_pointer_aligned();
    test_malloc_zero();
    test_free_null_and_errno();
    test_free_report_keeps_errno();
    test_malloc_too_large();
    test_calloc_too_large();
    test_realloc_too_large();
    test_aligned_alloc_too_large();
    test_posix_memalign_too_large();
    test_calloc_overflow();
    test_calloc_zeroes_reused_memory();
    test_calloc_zero_sizes();
    test_calloc_large();
    test_realloc_null();
    test_realloc_zero();
    test_realloc_grow_keeps_bytes();
    test_realloc_shrink_keeps_prefix();
    test_realloc_usable_size();
    test_usable_size_small();
    test_usable_size_big();
    test_usable_size_null();
    test_aligned_alloc_valid();
    test_aligned_alloc_invalid();
    test_posix_memalign_valid();
    test_posix_memalign_invalid();

    /* heaps, configuration, OS layer */
    test_config_init();
    test_heap_create_null();
    test_arena_size_zero();
    test_arena_size_rounded();
    test_page_size();
    test_os_default();
    test_heap_destroy_unmaps_all();

    /* introspection */
    test_stats_fresh();
    test_stats_match_blocks_and_walk();
    test_walk_structure_and_blocks();
    test_walk_stops();
    test_event_names();
    test_error_strings();
    test_error_format();
    test_heap_debug_print();

    /* placement policies and volume */
    test_policy_best_fit();
    test_policy_first_fit();
    test_many_blocks();

    /* the default heap */
    test_default_heap_identity();
    test_default_malloc_free();
    test_default_calloc();
    test_default_realloc();
    test_default_aligned();
    test_default_introspection();

    return test_summary("test_api");
}
