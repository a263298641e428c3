/*
 * test_events.c - scripted sequences that reach each allocator event: exact fit, split,
 * remainder too small to split, merge left / right / both, new arena, own (dedicated) arena
 * for a large request, arena released, arena retained, realloc grow in place / shrink in
 * place / moved, aligned split, map failed. Each event gets its own fresh heap and a minimal
 * sequence; the decisive call is bracketed by two stats snapshots, the event deltas are
 * compared (the named event by the exact amount, every event the sequence cannot reach must
 * stay unchanged), the concrete outcome is checked through the walk, and the heap check must
 * return 0. A few more tests pin the placement policy (first fit over an address-ordered free
 * list spanning all arenas), the dedicated-arena threshold, arena retention and the OS layer
 * accounting.
 *
 * Layout facts used throughout: a chunk is a 16-byte header plus payload, chunk size for a
 * request n is max(48, round_up(n, 16) + 16); an arena is a 48-byte header, the chunks and a
 * 16-byte fence (64 reserved bytes); the first chunk header sits at arena base + 48.
 */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "talloc.h"
#include "testutil.h"

enum {
    HDR = 16,       /* chunk header bytes */
    MIN_CHUNK = 48, /* smallest chunk */
    ARENA_HDR = 48, /* arena header bytes: first chunk at base + 48 */
    RESERVED = 64,  /* arena header + end fence */
};

/* ---- helpers ---------------------------------------------------------------------------- */

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static size_t chunk_for(size_t request)
{
    size_t c = round_up(request, 16) + HDR;
    return c < MIN_CHUNK ? MIN_CHUNK : c;
}

/* Bytes of a standard arena configured with `arena_size`. */
static size_t std_arena(size_t arena_size) { return round_up(arena_size, TAlloc_page_size()); }

/* Chunk bytes of a fresh standard arena (one free chunk of this size). */
static size_t std_chunk_space(size_t arena_size) { return std_arena(arena_size) - RESERVED; }

static const void *header_of(const void *payload) { return (const char *)payload - HDR; }

static TAlloc_heap *make_heap_in(size_t arena_size, size_t retained, const TAlloc_os *os,
                                 TAlloc_policy policy)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.policy = policy;
    config.large_cache = 0; /* releases unmap: test_large_cache keeps them */
    config.quick = 0;       /* frees merge at once: test_quick covers the quick lists */
    config.arena_size = arena_size;
    config.retained_arena_count = retained;
    if (os != NULL)
        config.os = *os;
    errno = 0;
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    EXPECT(heap != NULL, "heap_create(arena_size %zu, retained %zu) failed, errno %d", arena_size,
           retained, errno);
    return heap;
}

/* Under the policy ctest names (TALLOC_TEST_POLICY): the events do not depend on it. */
static TAlloc_heap *make_heap_os(size_t arena_size, size_t retained, const TAlloc_os *os)
{
    return make_heap_in(arena_size, retained, os, test_policy());
}

static TAlloc_heap *make_heap(size_t arena_size, size_t retained)
{
    return make_heap_os(arena_size, retained, NULL);
}

/* For the tests that pin where a policy places blocks. */
static TAlloc_heap *make_policy_heap(size_t arena_size, TAlloc_policy policy)
{
    return make_heap_in(arena_size, 1, NULL, policy);
}

static TAlloc_stats stats_of(TAlloc_heap *heap)
{
    TAlloc_stats s;
    memset(&s, 0, sizeof s);
    TAlloc_heap_get_stats(heap, &s);
    return s;
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 8) + 1u);
}

static int is_filled(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 31u + i * 7u + (i >> 8) + 1u))
            return 0;
    return 1;
}

/* Stops a test (after destroying its heap) when its setup failed. */
#define REQUIRE(heap, cond, ...)                                                             \
    do {                                                                                     \
        if (!EXPECT(cond, __VA_ARGS__)) {                                                    \
            TAlloc_heap_destroy(heap);                                                       \
            return;                                                                          \
        }                                                                                    \
    } while (0)

/*
 * Event deltas between two snapshots. The variadic part lists (event, delta) pairs; a delta
 * of ANY means "not checked"; every event not listed must not have moved.
 */
#define ANY (-1)
#define END_EVENTS (-2)
#define EXPECT_EVENTS(what, before, after, ...)                                              \
    expect_events(__LINE__, (what), &(before), &(after), __VA_ARGS__, END_EVENTS)
#define NO_EVENTS END_EVENTS

static void expect_events(int line, const char *what, const TAlloc_stats *before,
                          const TAlloc_stats *after, ...)
{
    int want[TALLOC_EVENT_COUNT];
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++)
        want[e] = 0;
    va_list ap;
    va_start(ap, after);
    for (;;) {
        int e = va_arg(ap, int);
        if (e == END_EVENTS)
            break;
        int n = va_arg(ap, int);
        if (e >= 0 && e < TALLOC_EVENT_COUNT)
            want[e] = n;
    }
    va_end(ap);

    char msg[768] = "";
    int ok = 1;
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++) {
        uint64_t delta = after->event_count[e] - before->event_count[e];
        if (want[e] == ANY || delta == (uint64_t)want[e])
            continue;
        ok = 0;
        const char *name = TAlloc_event_name((TAlloc_event)e);
        size_t used = strlen(msg);
        snprintf(msg + used, sizeof msg - used, " %s went up by %llu (want %d);",
                 name ? name : "?", (unsigned long long)delta, want[e]);
    }
    test_expect(ok, __FILE__, line, "event deltas", "%s:%s", what, msg);
}

/* ---- the walk, collected ------------------------------------------------------------------ */

enum { MAX_ARENAS = 32, MAX_CHUNKS = 512 };

typedef struct walk_chunk {
    TAlloc_chunk_info info;
    size_t arena; /* index into walk_result.arenas */
} walk_chunk;

typedef struct walk_result {
    size_t arena_count;
    size_t chunk_count;
    int overflow;
    int rc;
    TAlloc_arena_info arenas[MAX_ARENAS];
    walk_chunk chunks[MAX_CHUNKS];
} walk_result;

static walk_result walk_buffer;

static int collect(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    walk_result *w = ctx;
    if (chunk == NULL) {
        if (w->arena_count == MAX_ARENAS) {
            w->overflow = 1;
            return 1;
        }
        w->arenas[w->arena_count++] = *arena;
        return 0;
    }
    if (w->chunk_count == MAX_CHUNKS || w->arena_count == 0) {
        w->overflow = 1;
        return 1;
    }
    w->chunks[w->chunk_count].info = *chunk;
    w->chunks[w->chunk_count].arena = w->arena_count - 1;
    w->chunk_count++;
    return 0;
}

static const walk_result *walk(TAlloc_heap *heap, const char *what)
{
    memset(&walk_buffer, 0, sizeof walk_buffer);
    walk_buffer.rc = TAlloc_heap_walk(heap, collect, &walk_buffer);
    EXPECT(walk_buffer.rc == 0 && !walk_buffer.overflow, "%s: walk returned %d (overflow %d)",
           what, walk_buffer.rc, walk_buffer.overflow);
    return &walk_buffer;
}

/* Index of the chunk whose payload is `payload`, or -1. */
static long chunk_with_payload(const walk_result *w, const void *payload)
{
    for (size_t i = 0; i < w->chunk_count; i++)
        if (w->chunks[i].info.payload == payload)
            return (long)i;
    return -1;
}

/* Index of the chunk whose header is at `address`, or -1. */
static long chunk_at(const walk_result *w, const void *address)
{
    for (size_t i = 0; i < w->chunk_count; i++)
        if (w->chunks[i].info.address == address)
            return (long)i;
    return -1;
}

/* Index of the arena whose mapping contains `p`, or -1. */
static long arena_containing(const walk_result *w, const void *p)
{
    const char *c = p;
    for (size_t i = 0; i < w->arena_count; i++) {
        const char *base = w->arenas[i].address;
        if (c >= base && c < base + w->arenas[i].size)
            return (long)i;
    }
    return -1;
}

/* The chunk after chunk i in the same arena, or NULL. */
static const TAlloc_chunk_info *next_chunk(const walk_result *w, long i)
{
    if (i < 0 || (size_t)i + 1 >= w->chunk_count)
        return NULL;
    if (w->chunks[i + 1].arena != w->chunks[i].arena)
        return NULL;
    return &w->chunks[i + 1].info;
}

/* The chunk before chunk i in the same arena, or NULL. */
static const TAlloc_chunk_info *prev_chunk(const walk_result *w, long i)
{
    if (i <= 0 || (size_t)i >= w->chunk_count)
        return NULL;
    if (w->chunks[i - 1].arena != w->chunks[i].arena)
        return NULL;
    return &w->chunks[i - 1].info;
}

static size_t chunks_in_arena(const walk_result *w, long arena)
{
    size_t n = 0;
    for (size_t i = 0; i < w->chunk_count; i++)
        if ((long)w->chunks[i].arena == arena)
            n++;
    return n;
}

/* An OS layer that counts map/unmap calls and fails maps while `fail` is set. */
typedef struct count_os {
    unsigned long maps;   /* map calls, failed ones included */
    unsigned long failed; /* map calls answered with NULL */
    unsigned long unmaps;
    size_t live_bytes;    /* mapped and not yet unmapped */
    int fail;
} count_os;

static void *count_map(void *ctx, size_t size)
{
    count_os *c = ctx;
    c->maps++;
    if (c->fail) {
        c->failed++;
        return NULL;
    }
    const TAlloc_os *os = TAlloc_os_default();
    void *p = os->map(os->ctx, size);
    if (p != NULL)
        c->live_bytes += size;
    return p;
}

static void count_unmap(void *ctx, void *address, size_t size)
{
    count_os *c = ctx;
    c->unmaps++;
    c->live_bytes -= size;
    const TAlloc_os *os = TAlloc_os_default();
    os->unmap(os->ctx, address, size);
}

/* ---- one test per event -------------------------------------------------------------------- */

static void test_exact_fit(void)
{
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100); /* chunk 128 */
    char *b = TAlloc_heap_malloc(h, 100); /* keeps a's hole from merging with the tail */
    REQUIRE(h, a != NULL && b != NULL && b == a + 128, "exact fit: setup a=%p b=%p", (void *)a,
            (void *)b);
    TAlloc_heap_free(h, a);

    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, 97); /* also chunk 128 */
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == a, "exact fit: got %p, want the freed block %p", (void *)p, (void *)a);
    EXPECT_EVENTS("exact fit", s0, s1, TALLOC_EVENT_EXACT_FIT, 1);
    EXPECT(TAlloc_heap_usable_size(h, p) == 112, "exact fit: usable size %zu, want 112",
           TAlloc_heap_usable_size(h, p));
    EXPECT(s1.free_count == s0.free_count - 1 && s1.allocated_count == s0.allocated_count + 1,
           "exact fit: free %zu -> %zu, allocated %zu -> %zu", s0.free_count, s1.free_count,
           s0.allocated_count, s1.allocated_count);
    EXPECT_HEAP_OK(h, "exact fit");

    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, b);
    EXPECT_HEAP_OK(h, "exact fit: after frees");
    TAlloc_heap_destroy(h);
}

static void test_split(void)
{
    const size_t space = std_chunk_space(4096);
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *x = TAlloc_heap_malloc(h, 16); /* chunk 48 at the start of the arena */
    REQUIRE(h, x != NULL, "split: setup malloc(16) failed");

    TAlloc_stats s0 = stats_of(h);
    char *a = TAlloc_heap_malloc(h, 200); /* chunk 224 cut from the arena's free tail */
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, a != NULL, "split: malloc(200) failed");
    EXPECT(a == x + 48, "split: got %p, want %p (first fit, right after the first block)",
           (void *)a, (void *)(x + 48));
    EXPECT_EVENTS("split", s0, s1, TALLOC_EVENT_SPLIT, 1);

    const walk_result *w = walk(h, "split");
    long ia = chunk_with_payload(w, a);
    const TAlloc_chunk_info *tail = next_chunk(w, ia);
    EXPECT(ia >= 0 && !w->chunks[ia].info.is_free && w->chunks[ia].info.size == 208,
           "split: the block's chunk (index %ld) should be allocated with 208 payload bytes, "
           "has %zu",
           ia, ia >= 0 ? w->chunks[ia].info.size : 0);
    EXPECT(tail != NULL && tail->is_free && tail->address == (const char *)header_of(a) + 224 &&
               tail->size == space - 48 - 224 - HDR,
           "split: want a free tail at %p with %zu payload bytes; got %p free %d size %zu",
           (const void *)((const char *)header_of(a) + 224), space - 48 - 224 - HDR,
           tail ? tail->address : NULL, tail ? tail->is_free : -1, tail ? tail->size : 0);
    EXPECT_HEAP_OK(h, "split");

    TAlloc_heap_free(h, a);
    TAlloc_heap_free(h, x);
    EXPECT_HEAP_OK(h, "split: after frees");
    TAlloc_heap_destroy(h);
}

/* Remainder 48 is split off; remainder 32 is too small and the whole chunk is handed out
   (first fit picks the holes). */
static void test_no_split(void)
{
    TAlloc_heap *h = make_policy_heap(4096, TALLOC_POLICY_FIRST_FIT);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100);  /* chunk 128 */
    char *g1 = TAlloc_heap_malloc(h, 16);  /* guard */
    char *b = TAlloc_heap_malloc(h, 100);  /* chunk 128 */
    char *g2 = TAlloc_heap_malloc(h, 16);  /* guard */
    REQUIRE(h, a && g1 && b && g2 && g1 == a + 128 && b == g1 + 48 && g2 == b + 128,
            "no split: setup a=%p g1=%p b=%p g2=%p", (void *)a, (void *)g1, (void *)b,
            (void *)g2);
    TAlloc_heap_free(h, a);
    TAlloc_heap_free(h, b);

    /* chunk 80 from the 128 hole: remainder exactly 48 -> split */
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, 64);
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == a, "no split: malloc(64) got %p, want %p", (void *)p, (void *)a);
    EXPECT_EVENTS("remainder 48 splits", s0, s1, TALLOC_EVENT_SPLIT, 1);
    EXPECT(TAlloc_heap_usable_size(h, p) == 64, "no split: usable size %zu, want 64",
           TAlloc_heap_usable_size(h, p));

    /* chunk 96: the 48-byte rest of a's hole is too small, b's 128 hole leaves 32 -> whole */
    TAlloc_stats s2 = stats_of(h);
    char *q = TAlloc_heap_malloc(h, 80);
    TAlloc_stats s3 = stats_of(h);
    EXPECT(q == b, "no split: malloc(80) got %p, want the 128-byte hole %p", (void *)q,
           (void *)b);
    EXPECT_EVENTS("remainder 32 is not split", s2, s3, TALLOC_EVENT_NO_SPLIT, 1);
    EXPECT(TAlloc_heap_usable_size(h, q) == 112,
           "no split: usable size %zu, want 112 (the whole chunk)",
           TAlloc_heap_usable_size(h, q));

    const walk_result *w = walk(h, "no split");
    long ip = chunk_with_payload(w, p);
    const TAlloc_chunk_info *rest = next_chunk(w, ip);
    EXPECT(rest != NULL && rest->is_free && rest->size == 32 &&
               rest->address == (const char *)header_of(a) + 80,
           "no split: want the 48-byte remainder free after malloc(64)'s block; got %p free %d "
           "size %zu",
           rest ? rest->address : NULL, rest ? rest->is_free : -1, rest ? rest->size : 0);
    long iq = chunk_with_payload(w, q);
    const TAlloc_chunk_info *after_q = next_chunk(w, iq);
    EXPECT(iq >= 0 && w->chunks[iq].info.size == 112 && after_q != NULL &&
               after_q->payload == g2,
           "no split: want q's chunk of 112 bytes followed directly by the guard");
    EXPECT_HEAP_OK(h, "no split");

    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, q);
    TAlloc_heap_free(h, g1);
    TAlloc_heap_free(h, g2);
    EXPECT_HEAP_OK(h, "no split: after frees");
    TAlloc_heap_destroy(h);
}

/* Three adjacent 128-byte chunks a, b, c and a guard d after them. */
typedef struct three {
    char *a, *b, *c, *d;
} three;

static int make_three(TAlloc_heap *h, three *t)
{
    t->a = TAlloc_heap_malloc(h, 100);
    t->b = TAlloc_heap_malloc(h, 100);
    t->c = TAlloc_heap_malloc(h, 100);
    t->d = TAlloc_heap_malloc(h, 100);
    return EXPECT(t->a && t->b && t->c && t->d && t->b == t->a + 128 && t->c == t->b + 128 &&
                      t->d == t->c + 128,
                  "merge setup: a=%p b=%p c=%p d=%p", (void *)t->a, (void *)t->b, (void *)t->c,
                  (void *)t->d);
}

/* Expects one free chunk at a's header of `payload` bytes, followed by the block `next`. */
static void expect_merged(TAlloc_heap *h, const char *what, const char *a, size_t payload,
                          const char *next)
{
    const walk_result *w = walk(h, what);
    long i = chunk_at(w, header_of(a));
    const TAlloc_chunk_info *after = next_chunk(w, i);
    EXPECT(i >= 0 && w->chunks[i].info.is_free && w->chunks[i].info.size == payload &&
               after != NULL && after->payload == next && !after->is_free,
           "%s: want one free chunk at %p with %zu payload bytes followed by %p; got index %ld "
           "free %d size %zu next %p",
           what, header_of(a), payload, (const void *)next, i,
           i >= 0 ? w->chunks[i].info.is_free : -1, i >= 0 ? w->chunks[i].info.size : 0,
           after ? after->payload : NULL);
}

static void test_merge_left(void)
{
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    three t;
    if (!make_three(h, &t)) {
        TAlloc_heap_destroy(h);
        return;
    }
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, t.a); /* neighbours: none / allocated */
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("merge left: freeing a", s0, s1, NO_EVENTS);

    TAlloc_heap_free(h, t.b); /* predecessor a free, successor c allocated */
    TAlloc_stats s2 = stats_of(h);
    EXPECT_EVENTS("merge left", s1, s2, TALLOC_EVENT_MERGE_LEFT, 1);
    EXPECT(s2.free_count == s1.free_count, "merge left: free count %zu -> %zu", s1.free_count,
           s2.free_count);
    expect_merged(h, "merge left", t.a, 2 * 128 - HDR, t.c);
    EXPECT_HEAP_OK(h, "merge left");
    TAlloc_heap_destroy(h);
}

static void test_merge_right(void)
{
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    three t;
    if (!make_three(h, &t)) {
        TAlloc_heap_destroy(h);
        return;
    }
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, t.b); /* neighbours a, c allocated */
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("merge right: freeing b", s0, s1, NO_EVENTS);

    TAlloc_heap_free(h, t.a); /* no predecessor, successor b free */
    TAlloc_stats s2 = stats_of(h);
    EXPECT_EVENTS("merge right", s1, s2, TALLOC_EVENT_MERGE_RIGHT, 1);
    expect_merged(h, "merge right", t.a, 2 * 128 - HDR, t.c);
    EXPECT_HEAP_OK(h, "merge right");
    TAlloc_heap_destroy(h);
}

static void test_merge_both(void)
{
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    three t;
    if (!make_three(h, &t)) {
        TAlloc_heap_destroy(h);
        return;
    }
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, t.a);
    TAlloc_heap_free(h, t.c);
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("merge both: freeing a and c", s0, s1, NO_EVENTS);
    size_t chunks_before = walk(h, "merge both: before")->chunk_count;

    TAlloc_heap_free(h, t.b);
    TAlloc_stats s2 = stats_of(h);
    EXPECT_EVENTS("merge both", s1, s2, TALLOC_EVENT_MERGE_BOTH, 1);
    EXPECT(s2.free_count == s1.free_count - 1, "merge both: free count %zu -> %zu",
           s1.free_count, s2.free_count);
    expect_merged(h, "merge both", t.a, 3 * 128 - HDR, t.d);
    EXPECT(walk(h, "merge both: after")->chunk_count == chunks_before - 2,
           "merge both: three chunks should have become one");
    EXPECT_HEAP_OK(h, "merge both");
    TAlloc_heap_destroy(h);
}

static void test_new_arena(void)
{
    const size_t arena = std_arena(4096), space = std_chunk_space(4096);
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    size_t a_req = space / 2;
    char *a = TAlloc_heap_malloc(h, a_req);
    REQUIRE(h, a != NULL, "new arena: malloc(%zu) failed", a_req);
    /* needs one chunk more than what is left of the first arena, fits a fresh one */
    size_t b_req = space - chunk_for(a_req);

    TAlloc_stats s0 = stats_of(h);
    char *b = TAlloc_heap_malloc(h, b_req);
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, b != NULL, "new arena: malloc(%zu) failed", b_req);
    EXPECT_EVENTS("new arena", s0, s1, TALLOC_EVENT_NEW_ARENA, 1, TALLOC_EVENT_SPLIT, 1);
    EXPECT(s1.map_count == s0.map_count + 1 && s1.arena_count == s0.arena_count + 1 &&
               s1.mapped_bytes == s0.mapped_bytes + arena,
           "new arena: map_count %llu -> %llu, arena_count %zu -> %zu, mapped %zu -> %zu",
           (unsigned long long)s0.map_count, (unsigned long long)s1.map_count, s0.arena_count,
           s1.arena_count, s0.mapped_bytes, s1.mapped_bytes);

    const walk_result *w = walk(h, "new arena");
    long aa = arena_containing(w, a), ab = arena_containing(w, b);
    EXPECT(aa >= 0 && ab >= 0 && aa != ab, "new arena: a and b should be in different arenas");
    if (ab >= 0) {
        const TAlloc_arena_info *ai = &w->arenas[ab];
        EXPECT(ai->size == arena && ai->reserved == RESERVED && ai->is_dedicated == 0,
               "new arena: size %zu reserved %zu dedicated %d; want %zu, %d, 0", ai->size,
               ai->reserved, ai->is_dedicated, arena, (int)RESERVED);
        EXPECT(header_of(b) == (const char *)ai->address + ARENA_HDR,
               "new arena: first chunk header %p, want arena base %p + 48", header_of(b),
               ai->address);
    }
    long ib = chunk_with_payload(w, b);
    const TAlloc_chunk_info *tail = next_chunk(w, ib);
    EXPECT(tail != NULL && tail->is_free && tail->size == space - chunk_for(b_req) - HDR,
           "new arena: want the free tail of %zu bytes after b", space - chunk_for(b_req) - HDR);
    EXPECT_HEAP_OK(h, "new arena");
    TAlloc_heap_free(h, b);
    TAlloc_heap_free(h, a);
    EXPECT_HEAP_OK(h, "new arena: after frees");
    TAlloc_heap_destroy(h);
}

static void test_dedicated_arena(void)
{
    const size_t page = TAlloc_page_size(), arena = std_arena(4096);
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *x = TAlloc_heap_malloc(h, 16);
    REQUIRE(h, x != NULL, "dedicated: setup malloc(16) failed");

    /* a request whose chunk exceeds arena_size - 64: own arena, with a free leftover */
    size_t req = arena + 904;
    size_t chunk = chunk_for(req);
    size_t map = round_up(chunk + RESERVED, page);
    size_t leftover = map - RESERVED - chunk;
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, req);
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, p != NULL, "dedicated: malloc(%zu) failed", req);
    EXPECT_EVENTS("dedicated arena", s0, s1, TALLOC_EVENT_DEDICATED_ARENA, 1,
                  TALLOC_EVENT_SPLIT, ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT,
                  ANY);
    EXPECT(s1.map_count == s0.map_count + 1 && s1.arena_count == s0.arena_count + 1 &&
               s1.mapped_bytes == s0.mapped_bytes + map,
           "dedicated: map_count %llu -> %llu, arena_count %zu -> %zu, mapped %zu -> %zu (+%zu "
           "wanted)",
           (unsigned long long)s0.map_count, (unsigned long long)s1.map_count, s0.arena_count,
           s1.arena_count, s0.mapped_bytes, s1.mapped_bytes, map);
    EXPECT(TAlloc_heap_usable_size(h, p) == chunk - HDR, "dedicated: usable size %zu, want %zu",
           TAlloc_heap_usable_size(h, p), chunk - HDR);
    fill(p, req, 7);

    const walk_result *w = walk(h, "dedicated");
    long ai = arena_containing(w, p);
    long ip = chunk_with_payload(w, p);
    if (EXPECT(ai >= 0 && ip >= 0, "dedicated: block not found in the walk")) {
        const TAlloc_arena_info *info = &w->arenas[ai];
        EXPECT(info->is_dedicated == 1 && info->size == map && info->reserved == RESERVED,
               "dedicated: arena dedicated %d size %zu reserved %zu; want 1, %zu, %d",
               info->is_dedicated, info->size, info->reserved, map, (int)RESERVED);
        EXPECT(header_of(p) == (const char *)info->address + ARENA_HDR &&
                   w->chunks[ip].info.size == chunk - HDR,
               "dedicated: block chunk at %p size %zu", w->chunks[ip].info.address,
               w->chunks[ip].info.size);
        const TAlloc_chunk_info *rest = next_chunk(w, ip);
        if (leftover >= MIN_CHUNK)
            EXPECT(rest != NULL && rest->is_free && rest->size == leftover - HDR &&
                       chunks_in_arena(w, ai) == 2,
                   "dedicated: want the %zu-byte leftover as one free chunk after the block",
                   leftover);
    }
    EXPECT_HEAP_OK(h, "dedicated");

    /* freeing the only block unmaps the dedicated arena */
    TAlloc_stats s2 = stats_of(h);
    TAlloc_heap_free(h, p);
    TAlloc_stats s3 = stats_of(h);
    EXPECT_EVENTS("dedicated arena released", s2, s3, TALLOC_EVENT_ARENA_RELEASED, 1,
                  TALLOC_EVENT_MERGE_LEFT, ANY, TALLOC_EVENT_MERGE_RIGHT, ANY,
                  TALLOC_EVENT_MERGE_BOTH, ANY);
    EXPECT(s3.unmap_count == s2.unmap_count + 1 && s3.arena_count == s2.arena_count - 1 &&
               s3.mapped_bytes == s2.mapped_bytes - map,
           "dedicated release: unmap_count %llu -> %llu, arena_count %zu -> %zu",
           (unsigned long long)s2.unmap_count, (unsigned long long)s3.unmap_count,
           s2.arena_count, s3.arena_count);
    w = walk(h, "dedicated released");
    for (size_t i = 0; i < w->arena_count; i++)
        EXPECT(w->arenas[i].is_dedicated == 0, "dedicated: a dedicated arena is still mapped");
    EXPECT_HEAP_OK(h, "dedicated released");

    /* a request that fills its dedicated arena exactly: no leftover chunk */
    size_t req2 = 2 * arena - RESERVED - HDR;
    size_t map2 = round_up(chunk_for(req2) + RESERVED, page);
    TAlloc_stats s4 = stats_of(h);
    char *q = TAlloc_heap_malloc(h, req2);
    TAlloc_stats s5 = stats_of(h);
    REQUIRE(h, q != NULL, "dedicated: malloc(%zu) failed", req2);
    EXPECT_EVENTS("dedicated arena, no leftover", s4, s5, TALLOC_EVENT_DEDICATED_ARENA, 1,
                  TALLOC_EVENT_SPLIT, ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT,
                  ANY);
    w = walk(h, "dedicated, no leftover");
    ai = arena_containing(w, q);
    ip = chunk_with_payload(w, q);
    EXPECT(ai >= 0 && ip >= 0 && w->arenas[ai].is_dedicated == 1 &&
               w->arenas[ai].size == map2 && chunks_in_arena(w, ai) == 1 &&
               w->chunks[ip].info.size == req2,
           "dedicated, no leftover: want a dedicated arena of %zu bytes holding one chunk of %zu",
           map2, req2);
    EXPECT_HEAP_OK(h, "dedicated, no leftover");
    TAlloc_stats s6 = stats_of(h);
    TAlloc_heap_free(h, q);
    TAlloc_stats s7 = stats_of(h);
    EXPECT_EVENTS("dedicated arena (no leftover) released", s6, s7, TALLOC_EVENT_ARENA_RELEASED,
                  1);
    TAlloc_heap_free(h, x);
    EXPECT_HEAP_OK(h, "dedicated: after frees");
    TAlloc_heap_destroy(h);
}

static void test_arena_released(void)
{
    TAlloc_heap *h = make_heap(4096, 0);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100);
    REQUIRE(h, a != NULL, "arena released: malloc failed");
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, a);
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("arena released", s0, s1, TALLOC_EVENT_ARENA_RELEASED, 1,
                  TALLOC_EVENT_MERGE_LEFT, ANY, TALLOC_EVENT_MERGE_RIGHT, ANY,
                  TALLOC_EVENT_MERGE_BOTH, ANY);
    EXPECT(s1.arena_count == s0.arena_count - 1 && s1.unmap_count == s0.unmap_count + 1 &&
               s1.map_count == s0.map_count,
           "arena released: arena_count %zu -> %zu, unmap_count %llu -> %llu", s0.arena_count,
           s1.arena_count, (unsigned long long)s0.unmap_count,
           (unsigned long long)s1.unmap_count);
    EXPECT(s1.allocated_count == 0 && s1.arena_count == 0 && s1.mapped_bytes == 0,
           "arena released: %zu allocated, %zu arenas, %zu bytes mapped remain",
           s1.allocated_count, s1.arena_count, s1.mapped_bytes);
    const walk_result *w = walk(h, "arena released");
    EXPECT(arena_containing(w, a) < 0, "arena released: the arena is still in the walk");
    EXPECT_HEAP_OK(h, "arena released");
    TAlloc_heap_destroy(h);
}

static void test_arena_retained(void)
{
    const size_t space = std_chunk_space(4096);
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100);
    REQUIRE(h, a != NULL, "arena retained: malloc failed");
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, a);
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("arena retained", s0, s1, TALLOC_EVENT_ARENA_RETAINED, 1,
                  TALLOC_EVENT_MERGE_LEFT, ANY, TALLOC_EVENT_MERGE_RIGHT, ANY,
                  TALLOC_EVENT_MERGE_BOTH, ANY);
    EXPECT(s1.arena_count == s0.arena_count && s1.unmap_count == s0.unmap_count,
           "arena retained: arena_count %zu -> %zu, unmap_count %llu -> %llu", s0.arena_count,
           s1.arena_count, (unsigned long long)s0.unmap_count,
           (unsigned long long)s1.unmap_count);
    const walk_result *w = walk(h, "arena retained");
    long ai = arena_containing(w, a);
    long i = chunk_at(w, header_of(a));
    EXPECT(ai >= 0 && i >= 0 && chunks_in_arena(w, ai) == 1 && w->chunks[i].info.is_free &&
               w->chunks[i].info.size == space - HDR &&
               w->chunks[i].info.address == (const char *)w->arenas[ai].address + ARENA_HDR,
           "arena retained: want the arena kept as one free chunk of %zu bytes at base + 48",
           space - HDR);
    EXPECT_HEAP_OK(h, "arena retained");
    TAlloc_heap_destroy(h);
}

/* Two arenas, each filled by one block, then both freed. */
static void test_retention_zero_and_one(void)
{
    const size_t space = std_chunk_space(4096);
    const size_t whole = space - HDR; /* a request that takes a whole fresh arena */

    /* retained_arena_count 0: every empty standard arena is unmapped at once */
    TAlloc_heap *h = make_heap(4096, 0);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, whole);
    char *b = TAlloc_heap_malloc(h, whole);
    REQUIRE(h, a && b, "retention 0: setup failed");
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, a);
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("retention 0: first empty arena", s0, s1, TALLOC_EVENT_ARENA_RELEASED, 1);
    TAlloc_heap_free(h, b);
    TAlloc_stats s2 = stats_of(h);
    EXPECT_EVENTS("retention 0: second empty arena", s1, s2, TALLOC_EVENT_ARENA_RELEASED, 1);
    EXPECT(s1.arena_count == s0.arena_count - 1 && s2.arena_count == 0 &&
               s2.unmap_count == s0.unmap_count + 2,
           "retention 0: arena_count %zu -> %zu -> %zu", s0.arena_count, s1.arena_count,
           s2.arena_count);
    EXPECT_HEAP_OK(h, "retention 0");
    TAlloc_heap_destroy(h);

    /* retained_arena_count 1: the first empty arena is kept, a second one is unmapped */
    h = make_heap(4096, 1);
    if (h == NULL)
        return;
    a = TAlloc_heap_malloc(h, whole);
    b = TAlloc_heap_malloc(h, whole);
    REQUIRE(h, a && b, "retention 1: setup failed");
    s0 = stats_of(h);
    TAlloc_heap_free(h, a);
    s1 = stats_of(h);
    EXPECT_EVENTS("retention 1: first empty arena", s0, s1, TALLOC_EVENT_ARENA_RETAINED, 1);
    EXPECT(s1.arena_count == s0.arena_count && s1.unmap_count == s0.unmap_count,
           "retention 1: the first empty arena should stay mapped");
    TAlloc_heap_free(h, b);
    s2 = stats_of(h);
    EXPECT_EVENTS("retention 1: second empty arena", s1, s2, TALLOC_EVENT_ARENA_RELEASED, 1);
    EXPECT(s2.arena_count == s1.arena_count - 1 && s2.unmap_count == s1.unmap_count + 1,
           "retention 1: the second empty arena should be unmapped (arena_count %zu -> %zu)",
           s1.arena_count, s2.arena_count);
    EXPECT_HEAP_OK(h, "retention 1: both freed");

    /* the kept arena serves the next request without a map, and is kept again after it */
    char *c = TAlloc_heap_malloc(h, whole);
    TAlloc_stats s3 = stats_of(h);
    EXPECT(c == a, "retention 1: the next whole-arena block %p should reuse the kept arena %p",
           (void *)c, (void *)a);
    EXPECT_EVENTS("retention 1: reuse", s2, s3, TALLOC_EVENT_EXACT_FIT, 1);
    EXPECT(s3.map_count == s2.map_count, "retention 1: reuse mapped an arena");
    TAlloc_heap_free(h, c);
    TAlloc_stats s4 = stats_of(h);
    EXPECT_EVENTS("retention 1: kept again", s3, s4, TALLOC_EVENT_ARENA_RETAINED, 1);
    EXPECT_HEAP_OK(h, "retention 1");
    TAlloc_heap_destroy(h);
}

/* malloc/free of a block that needs a fresh arena maps only once with one retained arena. */
static void test_retained_loop(void)
{
    const size_t whole = std_chunk_space(4096) - HDR;
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    int bad = 0, first_bad = -1;
    uint64_t bad_maps = 0;
    for (int i = 0; i < 100; i++) {
        char *p = TAlloc_heap_malloc(h, whole);
        if (p != NULL) {
            p[0] = 1;
            p[whole - 1] = 2;
        }
        TAlloc_heap_free(h, p);
        TAlloc_stats s = stats_of(h);
        if (p == NULL || s.map_count != 1 || s.unmap_count != 0) {
            if (bad++ == 0) {
                first_bad = i;
                bad_maps = s.map_count;
            }
        }
    }
    EXPECT(bad == 0, "retained loop: %d of 100 iterations off; first at %d with map_count %llu",
           bad, first_bad, (unsigned long long)bad_maps);
    TAlloc_stats s = stats_of(h);
    EXPECT(s.map_count == 1 && s.event_count[TALLOC_EVENT_ARENA_RETAINED] == 100 &&
               s.event_count[TALLOC_EVENT_ARENA_RELEASED] == 0,
           "retained loop: map_count %llu, retained %llu, released %llu",
           (unsigned long long)s.map_count,
           (unsigned long long)s.event_count[TALLOC_EVENT_ARENA_RETAINED],
           (unsigned long long)s.event_count[TALLOC_EVENT_ARENA_RELEASED]);
    EXPECT_HEAP_OK(h, "retained loop");
    TAlloc_heap_destroy(h);
}

static void test_realloc_grow_in_place(void)
{
    const size_t space = std_chunk_space(4096);
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;

    /* successor is the arena's big free tail: grow, the rest stays free */
    char *a = TAlloc_heap_malloc(h, 100);
    REQUIRE(h, a != NULL, "grow: malloc failed");
    fill(a, 100, 1);
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_realloc(h, a, 500); /* chunk 528 */
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == a, "grow: realloc moved %p -> %p", (void *)a, (void *)p);
    EXPECT_EVENTS("grow in place", s0, s1, TALLOC_EVENT_REALLOC_GROW_IN_PLACE, 1,
                  TALLOC_EVENT_SPLIT, ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT,
                  ANY);
    REQUIRE(h, p != NULL, "grow: realloc failed");
    EXPECT(is_filled(p, 100, 1), "grow: the old bytes changed");
    EXPECT(TAlloc_heap_usable_size(h, p) == 512, "grow: usable size %zu, want 512",
           TAlloc_heap_usable_size(h, p));
    fill(p, 500, 2);
    const walk_result *w = walk(h, "grow");
    long ip = chunk_with_payload(w, p);
    const TAlloc_chunk_info *tail = next_chunk(w, ip);
    EXPECT(tail != NULL && tail->is_free && tail->size == space - 528 - HDR,
           "grow: want the free rest of %zu bytes after the grown block", space - 528 - HDR);
    EXPECT_HEAP_OK(h, "grow in place");

    /* successor is a hole too small to leave a remainder: the grown block takes all of it */
    char *b = TAlloc_heap_malloc(h, 400); /* chunk 416 */
    char *c = TAlloc_heap_malloc(h, 100); /* guard */
    REQUIRE(h, b && c && b == p + 528 && c == b + 416, "grow 2: setup b=%p c=%p", (void *)b,
            (void *)c);
    TAlloc_heap_free(h, b);
    TAlloc_stats s2 = stats_of(h);
    char *q = TAlloc_heap_realloc(h, p, 900); /* chunk 928 <= 528 + 416 = 944, rest 16 */
    TAlloc_stats s3 = stats_of(h);
    EXPECT(q == p, "grow 2: realloc moved %p -> %p", (void *)p, (void *)q);
    EXPECT_EVENTS("grow in place into a small hole", s2, s3,
                  TALLOC_EVENT_REALLOC_GROW_IN_PLACE, 1, TALLOC_EVENT_SPLIT, ANY,
                  TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT, ANY);
    REQUIRE(h, q != NULL, "grow 2: realloc failed");
    EXPECT(is_filled(q, 500, 2), "grow 2: the old bytes changed");
    EXPECT(TAlloc_heap_usable_size(h, q) == 944 - HDR, "grow 2: usable size %zu, want %d",
           TAlloc_heap_usable_size(h, q), 944 - HDR);
    w = walk(h, "grow 2");
    const TAlloc_chunk_info *after = next_chunk(w, chunk_with_payload(w, q));
    EXPECT(after != NULL && after->payload == c, "grow 2: the guard should follow directly");
    EXPECT_HEAP_OK(h, "grow in place 2");
    TAlloc_heap_free(h, q);
    TAlloc_heap_free(h, c);
    EXPECT_HEAP_OK(h, "grow: after frees");
    TAlloc_heap_destroy(h);
}

static void test_realloc_shrink_in_place(void)
{
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 1000); /* chunk 1024 */
    char *g = TAlloc_heap_malloc(h, 16);   /* guard */
    REQUIRE(h, a && g && g == a + 1024, "shrink: setup a=%p g=%p", (void *)a, (void *)g);
    fill(a, 1000, 3);

    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_realloc(h, a, 100); /* chunk 128, tail 896 split off */
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == a, "shrink: realloc moved %p -> %p", (void *)a, (void *)p);
    EXPECT_EVENTS("shrink in place", s0, s1, TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE, 1,
                  TALLOC_EVENT_SPLIT, ANY);
    REQUIRE(h, p != NULL, "shrink: realloc failed");
    EXPECT(is_filled(p, 100, 3), "shrink: the kept bytes changed");
    EXPECT(TAlloc_heap_usable_size(h, p) == 112, "shrink: usable size %zu, want 112",
           TAlloc_heap_usable_size(h, p));
    const walk_result *w = walk(h, "shrink");
    long ip = chunk_with_payload(w, p);
    const TAlloc_chunk_info *tail = next_chunk(w, ip);
    const TAlloc_chunk_info *after = next_chunk(w, ip + 1);
    EXPECT(tail != NULL && tail->is_free && tail->size == 1024 - 128 - HDR &&
               tail->address == (const char *)header_of(p) + 128 && after != NULL &&
               after->payload == g,
           "shrink: want a free tail of %d bytes between the block and the guard",
           1024 - 128 - HDR);
    EXPECT_HEAP_OK(h, "shrink in place");

    /* a tail smaller than a chunk stays with the block */
    TAlloc_stats s2 = stats_of(h);
    char *q = TAlloc_heap_realloc(h, p, 90); /* chunk 112, rest 16 */
    TAlloc_stats s3 = stats_of(h);
    EXPECT(q == p, "shrink 2: realloc moved %p -> %p", (void *)p, (void *)q);
    EXPECT_EVENTS("shrink in place, tail too small", s2, s3,
                  TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE, 1);
    EXPECT(q != NULL && is_filled(q, 90, 3) && TAlloc_heap_usable_size(h, q) == 112,
           "shrink 2: want the same 112-byte block with its bytes");
    EXPECT_HEAP_OK(h, "shrink in place 2");
    TAlloc_heap_free(h, q);
    TAlloc_heap_free(h, g);
    EXPECT_HEAP_OK(h, "shrink: after frees");
    TAlloc_heap_destroy(h);
}

static void test_realloc_moved(void)
{
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100);
    char *b = TAlloc_heap_malloc(h, 100); /* allocated successor: no growing in place */
    REQUIRE(h, a && b && b == a + 128, "moved: setup a=%p b=%p", (void *)a, (void *)b);
    fill(a, 100, 4);
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_realloc(h, a, 1000);
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, p != NULL, "moved: realloc failed");
    EXPECT(p != a && p == b + 128, "moved: got %p, want %p (the free tail after b)", (void *)p,
           (void *)(b + 128));
    /* malloc from the tail (split) + copy + free of a (no free neighbour) */
    EXPECT_EVENTS("moved", s0, s1, TALLOC_EVENT_REALLOC_MOVED, 1, TALLOC_EVENT_SPLIT, 1);
    EXPECT(is_filled(p, 100, 4), "moved: bytes not copied");
    const walk_result *w = walk(h, "moved");
    long ia = chunk_at(w, header_of(a));
    EXPECT(ia >= 0 && w->chunks[ia].info.is_free && w->chunks[ia].info.size == 112,
           "moved: the old chunk should be free with 112 bytes");
    EXPECT_HEAP_OK(h, "realloc moved");
    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, b);
    EXPECT_HEAP_OK(h, "moved: after frees");
    TAlloc_heap_destroy(h);
}

static void test_aligned_split(void)
{
    TAlloc_heap *h = make_heap(65536, 1);
    if (h == NULL)
        return;
    char *x = TAlloc_heap_malloc(h, 16); /* chunk 48 at base + 48: the tail starts at + 96 */
    REQUIRE(h, x != NULL, "aligned split: setup failed");
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_aligned_alloc(h, 4096, 4096);
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, p != NULL, "aligned split: aligned_alloc(4096, 4096) failed, errno %d", errno);
    EXPECT(((uintptr_t)p & 4095) == 0, "aligned split: %p is not 4096-aligned", (void *)p);
    EXPECT_EVENTS("aligned split", s0, s1, TALLOC_EVENT_ALIGNED_SPLIT, 1, TALLOC_EVENT_SPLIT,
                  ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT, ANY);
    EXPECT(TAlloc_heap_usable_size(h, p) >= 4096, "aligned split: usable size %zu",
           TAlloc_heap_usable_size(h, p));
    fill(p, 4096, 5);

    const walk_result *w = walk(h, "aligned split");
    long ip = chunk_with_payload(w, p);
    const TAlloc_chunk_info *gap = prev_chunk(w, ip);
    EXPECT(gap != NULL && gap->is_free && gap->address == (const char *)header_of(x) + 48 &&
               (const char *)gap->address + HDR + gap->size == header_of(p),
           "aligned split: want a free gap chunk from %p right up to %p; got %p free %d size %zu",
           (const void *)((const char *)header_of(x) + 48), header_of(p),
           gap ? gap->address : NULL, gap ? gap->is_free : -1, gap ? gap->size : 0);
    EXPECT(arena_containing(w, p) == arena_containing(w, x),
           "aligned split: the aligned block should come from the existing arena");
    EXPECT_HEAP_OK(h, "aligned split");

    /* posix_memalign takes the same path */
    void *q = NULL;
    TAlloc_stats s2 = stats_of(h);
    int rc = TAlloc_heap_posix_memalign(h, &q, 4096, 100);
    TAlloc_stats s3 = stats_of(h);
    EXPECT(rc == 0 && q != NULL && ((uintptr_t)q & 4095) == 0,
           "aligned split: posix_memalign rc %d, %p", rc, q);
    EXPECT_EVENTS("posix_memalign aligned split", s2, s3, TALLOC_EVENT_ALIGNED_SPLIT, 1,
                  TALLOC_EVENT_SPLIT, ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT,
                  ANY);
    EXPECT(is_filled(p, 4096, 5), "aligned split: the first aligned block changed");
    EXPECT_HEAP_OK(h, "aligned split 2");
    TAlloc_heap_free(h, q);
    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, x);
    EXPECT_HEAP_OK(h, "aligned split: after frees");
    TAlloc_heap_destroy(h);
}

static void test_map_failed(void)
{
    const size_t arena = std_arena(4096), space = std_chunk_space(4096);
    count_os counter = {0, 0, 0, 0, 0};
    TAlloc_os os = {.map = count_map, .unmap = count_unmap, .ctx = &counter};
    TAlloc_heap *h = make_heap_os(4096, 1, &os);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100);
    char *guard = TAlloc_heap_malloc(h, 16); /* a cannot grow in place */
    REQUIRE(h, a != NULL && guard == a + 128, "map failed: setup failed");
    fill(a, 100, 6);

    counter.fail = 1;
    /* a whole-arena block needs a new standard arena */
    TAlloc_stats s0 = stats_of(h);
    errno = 0;
    char *p = TAlloc_heap_malloc(h, space - HDR);
    int err = errno;
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == NULL && err == ENOMEM, "map failed: want NULL/ENOMEM, got %p errno %d",
           (void *)p, err);
    EXPECT_EVENTS("map failed (standard arena)", s0, s1, TALLOC_EVENT_MAP_FAILED, 1);
    EXPECT(s1.arena_count == s0.arena_count && s1.map_count == s0.map_count &&
               counter.failed == 1,
           "map failed: arena_count %zu -> %zu, map_count %llu -> %llu, failed maps %lu",
           s0.arena_count, s1.arena_count, (unsigned long long)s0.map_count,
           (unsigned long long)s1.map_count, counter.failed);
    EXPECT_HEAP_OK(h, "map failed (standard arena)");

    /* a dedicated arena */
    errno = 0;
    p = TAlloc_heap_malloc(h, 3 * arena);
    err = errno;
    TAlloc_stats s2 = stats_of(h);
    EXPECT(p == NULL && err == ENOMEM, "map failed (dedicated): want NULL/ENOMEM, got %p %d",
           (void *)p, err);
    EXPECT_EVENTS("map failed (dedicated)", s1, s2, TALLOC_EVENT_MAP_FAILED, 1);
    EXPECT(is_filled(a, 100, 6), "map failed: the live block changed");
    EXPECT_HEAP_OK(h, "map failed (dedicated)");

    /* a realloc that would need a new arena fails and leaves the block as it was */
    errno = 0;
    p = TAlloc_heap_realloc(h, a, space - HDR);
    err = errno;
    TAlloc_stats s2b = stats_of(h);
    EXPECT(p == NULL && err == ENOMEM, "map failed (realloc): want NULL/ENOMEM, got %p %d",
           (void *)p, err);
    EXPECT_EVENTS("map failed (realloc)", s2, s2b, TALLOC_EVENT_MAP_FAILED, 1);
    EXPECT(is_filled(a, 100, 6) && TAlloc_heap_usable_size(h, a) == 112,
           "map failed (realloc): the old block changed");
    EXPECT_HEAP_OK(h, "map failed (realloc)");
    s2 = s2b;

    /* small requests still fit the existing arena */
    char *small = TAlloc_heap_malloc(h, 200);
    TAlloc_stats s3 = stats_of(h);
    EXPECT(small != NULL, "map failed: a request that fits the arena failed");
    EXPECT_EVENTS("no map needed", s2, s3, TALLOC_EVENT_SPLIT, 1);

    /* failures stop: the same request works */
    counter.fail = 0;
    p = TAlloc_heap_malloc(h, space - HDR);
    TAlloc_stats s4 = stats_of(h);
    EXPECT(p != NULL, "map failed: allocation after the failures stopped failed");
    EXPECT_EVENTS("after map failures", s3, s4, TALLOC_EVENT_NEW_ARENA, 1,
                  TALLOC_EVENT_EXACT_FIT, 1);
    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, small);
    TAlloc_heap_free(h, a);
    TAlloc_heap_free(h, guard);
    EXPECT_HEAP_OK(h, "map failed: after frees");
    TAlloc_heap_destroy(h);
    EXPECT(counter.live_bytes == 0 && counter.unmaps == counter.maps - counter.failed,
           "map failed: %zu bytes still mapped after destroy", counter.live_bytes);
}

/* ---- placement policy and OS-layer facts ---------------------------------------------------- */

/* First fit: the lowest-addressed fitting hole wins even when a later one fits exactly. */
static void test_first_fit_lowest_hole(void)
{
    TAlloc_heap *h = make_policy_heap(4096, TALLOC_POLICY_FIRST_FIT);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 1000); /* 1024 */
    char *g1 = TAlloc_heap_malloc(h, 16);
    char *b = TAlloc_heap_malloc(h, 100); /* 128: an exact fit for the request below */
    char *g2 = TAlloc_heap_malloc(h, 16);
    REQUIRE(h, a && g1 && b && g2 && a < b, "first fit: setup failed");
    TAlloc_heap_free(h, a);
    TAlloc_heap_free(h, b);

    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, 112); /* chunk 128 */
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == a, "first fit: got %p, want the lower hole %p (not the exact fit %p)",
           (void *)p, (void *)a, (void *)b);
    EXPECT_EVENTS("first fit", s0, s1, TALLOC_EVENT_SPLIT, 1);

    /* the rest of the lower hole (880 bytes) is still lower than b */
    char *q = TAlloc_heap_malloc(h, 112);
    EXPECT(q == a + 128, "first fit: second block %p, want %p", (void *)q, (void *)(a + 128));
    const walk_result *w = walk(h, "first fit");
    long ib = chunk_with_payload(w, b);
    EXPECT(ib >= 0 && w->chunks[ib].info.is_free, "first fit: the exact hole should be free");
    EXPECT_HEAP_OK(h, "first fit");
    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, q);
    TAlloc_heap_free(h, g1);
    TAlloc_heap_free(h, g2);
    EXPECT_HEAP_OK(h, "first fit: after frees");
    TAlloc_heap_destroy(h);
}

/* Per arena: a 1024 block, a guard, a 128 block, a filler taking the rest exactly. */
typedef struct filled_arena {
    char *big, *guard, *small, *filler;
} filled_arena;

static int fill_arena(TAlloc_heap *h, filled_arena *f, size_t space)
{
    f->big = TAlloc_heap_malloc(h, 1008);   /* 1024 */
    f->guard = TAlloc_heap_malloc(h, 16);   /* 48 */
    f->small = TAlloc_heap_malloc(h, 112);  /* 128 */
    f->filler = TAlloc_heap_malloc(h, space - 1024 - 48 - 128 - HDR);
    return f->big && f->guard && f->small && f->filler && f->guard == f->big + 1024 &&
           f->small == f->guard + 48 && f->filler == f->small + 128;
}

/* The free list spans all arenas in address order: the lower arena's hole wins. */
static void test_first_fit_across_arenas(void)
{
    const size_t space = std_chunk_space(4096);
    TAlloc_heap *h = make_policy_heap(4096, TALLOC_POLICY_FIRST_FIT);
    if (h == NULL)
        return;
    filled_arena f1, f2;
    int ok1 = fill_arena(h, &f1, space);
    int ok2 = fill_arena(h, &f2, space);
    REQUIRE(h, ok1 && ok2, "across arenas: setup failed");
    const walk_result *w = walk(h, "across arenas: setup");
    REQUIRE(h, arena_containing(w, f1.big) != arena_containing(w, f2.big),
            "across arenas: the two sets should be in two arenas");
    filled_arena *lo = f1.big < f2.big ? &f1 : &f2;
    filled_arena *hi = f1.big < f2.big ? &f2 : &f1;

    /* the higher arena offers an exact fit, the lower one a bigger hole */
    TAlloc_heap_free(h, lo->big);
    TAlloc_heap_free(h, hi->small);
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, 112);
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p == lo->big, "across arenas: got %p, want the lower arena's hole %p (exact fit at %p)",
           (void *)p, (void *)lo->big, (void *)hi->small);
    EXPECT_EVENTS("first fit across arenas", s0, s1, TALLOC_EVENT_SPLIT, 1);
    EXPECT(s1.map_count == s0.map_count, "across arenas: a hole fitted but an arena was mapped");

    /* once the lower arena has no fitting hole, the higher one's exact fit is used */
    char *q = TAlloc_heap_malloc(h, 1000 - 128); /* chunk 896 = the rest of the lower hole */
    char *r = TAlloc_heap_malloc(h, 112);
    TAlloc_stats s2 = stats_of(h);
    EXPECT(q == lo->big + 128 && r == hi->small,
           "across arenas: q %p (want %p), r %p (want %p)", (void *)q, (void *)(lo->big + 128),
           (void *)r, (void *)hi->small);
    EXPECT_EVENTS("exact fits", s1, s2, TALLOC_EVENT_EXACT_FIT, 2);
    EXPECT_HEAP_OK(h, "first fit across arenas");
    TAlloc_heap_destroy(h);
}

/* Best fit: the smallest fitting hole wins over a lower, bigger one; on a tie the lower. */
static void test_best_fit_smallest_hole(void)
{
    TAlloc_heap *h = make_policy_heap(4096, TALLOC_POLICY_BEST_FIT);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 1000), *g1 = TAlloc_heap_malloc(h, 16);
    char *b = TAlloc_heap_malloc(h, 200), *g2 = TAlloc_heap_malloc(h, 16);
    char *c = TAlloc_heap_malloc(h, 200), *g3 = TAlloc_heap_malloc(h, 16);
    REQUIRE(h, a && g1 && b && g2 && c && g3 && a < b && b < c, "best fit: setup failed");
    TAlloc_heap_free(h, a);
    TAlloc_heap_free(h, c);
    TAlloc_heap_free(h, b);
    char *p = TAlloc_heap_malloc(h, 150);
    EXPECT(p == b, "best fit: got %p, want the lower of the two small holes %p", (void *)p,
           (void *)b);
    char *q = TAlloc_heap_malloc(h, 150);
    EXPECT(q == c, "best fit: got %p, want the other small hole %p", (void *)q, (void *)c);
    char *r = TAlloc_heap_malloc(h, 150);
    EXPECT(r == a, "best fit: got %p, want the big hole %p now", (void *)r, (void *)a);
    EXPECT_HEAP_OK(h, "best fit");
    TAlloc_heap_destroy(h);
}

/* Segregated fit: the request's own class's most recently freed chunk when it fits, else
   the most recently freed chunk of the first size class whose every chunk fits; when no
   class above holds one, the request's own class is searched. */
static void test_segregated_classes(void)
{
    TAlloc_heap *h = make_policy_heap(65536, TALLOC_POLICY_SEGREGATED);
    if (h == NULL)
        return;
    /* chunk sizes 1040 and 1072 share a class (1024..1087, 64 bytes wide); 1104 is in the
       next one */
    char *a = TAlloc_heap_malloc(h, 1024), *g1 = TAlloc_heap_malloc(h, 16); /* chunk 1040 */
    char *b = TAlloc_heap_malloc(h, 1056), *g2 = TAlloc_heap_malloc(h, 16); /* chunk 1072 */
    char *c = TAlloc_heap_malloc(h, 1088), *g3 = TAlloc_heap_malloc(h, 16); /* chunk 1104 */
    char *d = TAlloc_heap_malloc(h, 1088), *g4 = TAlloc_heap_malloc(h, 16); /* chunk 1104 */
    REQUIRE(h, a && b && c && d && g1 && g2 && g3 && g4, "segregated: setup failed");
    TAlloc_heap_free(h, a);
    TAlloc_heap_free(h, b);
    TAlloc_heap_free(h, c);
    TAlloc_heap_free(h, d);
    /* a 1024-byte chunk fits every chunk of a and b's class: b was freed last */
    char *p = TAlloc_heap_malloc(h, 1008);
    EXPECT(p == b, "segregated: got %p, want b %p, freed last in the fitting class", (void *)p,
           (void *)b);
    TAlloc_heap_free(h, p);
    /* a 1040-byte chunk: the last one filed in its own class, b, holds it */
    char *q = TAlloc_heap_malloc(h, 1024);
    EXPECT(q == b, "segregated: got %p, want b %p, the own class's last filed", (void *)q,
           (void *)b);
    /* a 1056-byte chunk: the own class's last filed, a, is too small, and not every chunk of
       that class holds it: the next class, d freed last there */
    char *r = TAlloc_heap_malloc(h, 1040);
    EXPECT(r == d, "segregated: got %p, want d %p from the next class", (void *)r, (void *)d);
    char *t = TAlloc_heap_malloc(h, 1040);
    EXPECT(t == c, "segregated: got %p, want c %p", (void *)t, (void *)c);
    /* 1088 bytes: that class is empty now, the next non-empty one is the arena's tail's */
    char *u = TAlloc_heap_malloc(h, 1072);
    EXPECT(u > g4, "segregated: got %p, want the tail beyond %p", (void *)u, (void *)g4);
    EXPECT_HEAP_OK(h, "segregated");
    TAlloc_heap_destroy(h);

    /* the request's own class: the only chunk that holds it, found there */
    h = make_policy_heap(16384, TALLOC_POLICY_SEGREGATED);
    if (h == NULL)
        return;
    size_t space = std_chunk_space(16384);
    char *whole = TAlloc_heap_malloc(h, space - HDR);
    REQUIRE(h, whole != NULL, "segregated: a block filling the arena");
    TAlloc_heap_free(h, whole); /* retained: one free chunk of the whole arena */
    TAlloc_stats s0 = stats_of(h);
    char *again = TAlloc_heap_malloc(h, space - HDR);
    TAlloc_stats s1 = stats_of(h);
    EXPECT(again == whole && s1.map_count == s0.map_count,
           "segregated: the arena's one chunk is found in the request's own class (got %p, "
           "want %p, %llu maps)", (void *)again, (void *)whole,
           (unsigned long long)(s1.map_count - s0.map_count));
    TAlloc_heap_destroy(h);
}

/* ---- the large-block cache and remap ------------------------------------------------------- */

static TAlloc_heap *make_cache_heap(size_t bound)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.policy = test_policy();
    config.arena_size = 16384;
    config.large_cache = bound;
    config.quick = 0;
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    EXPECT(heap != NULL, "heap_create with a large cache of %zu bytes failed", bound);
    return heap;
}

/* A dedicated block freed keeps its mapping; the next of that size reuses it (no map), a
   bigger one reuses it grown, a smaller one the bigger mapping whole (nothing unmapped);
   calloc from a kept mapping is still zero. */
static void test_large_cache_reuse(void)
{
    TAlloc_heap *h = make_cache_heap((size_t)1 << 20);
    if (h == NULL)
        return;
    size_t map = round_up(chunk_for(100000) + RESERVED, TAlloc_page_size());
    char *a = TAlloc_heap_malloc(h, 100000);
    REQUIRE(h, a != NULL, "large cache: malloc(100000)");
    memset(a, 0xab, 100000);
    TAlloc_stats s0 = stats_of(h);
    TAlloc_heap_free(h, a);
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("large block freed", s0, s1, TALLOC_EVENT_ARENA_RELEASED, 1,
                  TALLOC_EVENT_LARGE_CACHED, 1, TALLOC_EVENT_MERGE_RIGHT, ANY);
    EXPECT(s1.unmap_count == s0.unmap_count && s1.cached_count == 1 && s1.cached_bytes == map &&
               s1.arena_count == s0.arena_count - 1,
           "large cache: kept %zu mappings of %zu bytes (want 1 of %zu), %llu unmaps",
           s1.cached_count, s1.cached_bytes, map, (unsigned long long)(s1.unmap_count - s0.unmap_count));
    char *b = TAlloc_heap_calloc(h, 1, 100000);
    TAlloc_stats s2 = stats_of(h);
    EXPECT_EVENTS("same size again", s1, s2, TALLOC_EVENT_DEDICATED_ARENA, 1,
                  TALLOC_EVENT_LARGE_REUSED, 1, TALLOC_EVENT_SPLIT, ANY);
    EXPECT(b == a && s2.map_count == s1.map_count && s2.cached_count == 0,
           "large cache: reused at %p (want %p), %llu maps", (void *)b, (void *)a,
           (unsigned long long)(s2.map_count - s1.map_count));
    size_t nonzero = 0;
    for (size_t i = 0; b && i < 100000; i++)
        nonzero += b[i] != 0;
    EXPECT(nonzero == 0, "large cache: calloc from a kept mapping has %zu nonzero bytes", nonzero);
    TAlloc_heap_free(h, b);
    char *c = TAlloc_heap_malloc(h, 300000); /* bigger: the kept mapping, resized */
    TAlloc_stats s3 = stats_of(h);
    EXPECT(c != NULL && s3.map_count == s2.map_count && s3.cached_count == 0 &&
               s3.event_count[TALLOC_EVENT_LARGE_REUSED] == s2.event_count[TALLOC_EVENT_LARGE_REUSED] + 1,
           "large cache: a bigger block from the kept mapping, resized (%llu maps)",
           (unsigned long long)(s3.map_count - s2.map_count));
    TAlloc_heap_free(h, c);
    size_t big_map = round_up(chunk_for(300000) + RESERVED, TAlloc_page_size());
    char *d = TAlloc_heap_malloc(h, 100000); /* smaller: the kept mapping whole */
    TAlloc_stats s5 = stats_of(h);
    EXPECT(d == c && s5.map_count == s3.map_count && s5.cached_count == 0 &&
               s5.mapped_bytes == s2.mapped_bytes - map + big_map &&
               s5.free_bytes + map >= s2.free_bytes + big_map - 64,
           "large cache: a smaller block takes the bigger kept mapping whole, its tail a free "
           "chunk (%p, want %p; %zu mapped bytes, want %zu)", (void *)d, (void *)c,
           s5.mapped_bytes, s2.mapped_bytes - map + big_map);
    EXPECT_HEAP_OK(h, "large cache: smaller block in a bigger mapping");
    TAlloc_heap_free(h, d);
    EXPECT(stats_of(h).cached_bytes == big_map, "large cache: the whole mapping is kept again");
    EXPECT_HEAP_OK(h, "large cache reuse");
    TAlloc_stats s4 = stats_of(h);
    EXPECT(s4.cached_count == 1 && TAlloc_heap_trim(h) == 1 && stats_of(h).cached_count == 0,
           "large cache: trim gives every kept mapping back");
    TAlloc_heap_destroy(h);
}

/* The bound in bytes and in mappings, and the decay, give the oldest back first. */
static void test_large_cache_bounds(void)
{
    TAlloc_heap *h = make_cache_heap((size_t)1 << 20);
    if (h == NULL)
        return;
    char *p[10];
    for (int i = 0; i < 3; i++)
        p[i] = TAlloc_heap_malloc(h, 400000);
    TAlloc_stats s0 = stats_of(h);
    for (int i = 0; i < 3; i++)
        TAlloc_heap_free(h, p[i]);
    TAlloc_stats s1 = stats_of(h);
    EXPECT(s1.cached_count == 2 && s1.unmap_count == s0.unmap_count + 1 &&
               s1.cached_bytes <= ((size_t)1 << 20),
           "large cache: 3 x 400 KB under a 1 MiB bound: %zu kept, %llu unmapped", s1.cached_count,
           (unsigned long long)(s1.unmap_count - s0.unmap_count));
    TAlloc_heap_trim(h);
    for (int i = 0; i < 10; i++)
        p[i] = TAlloc_heap_malloc(h, 20000 + (size_t)i * 4096);
    TAlloc_stats s2 = stats_of(h);
    for (int i = 0; i < 10; i++)
        TAlloc_heap_free(h, p[i]);
    TAlloc_stats s3 = stats_of(h);
    EXPECT(s3.cached_count == 8 && s3.unmap_count == s2.unmap_count + 2,
           "large cache: 10 small dedicated arenas, 8 slots: %zu kept, %llu unmapped",
           s3.cached_count, (unsigned long long)(s3.unmap_count - s2.unmap_count));
    TAlloc_heap_trim(h);
    char *other = TAlloc_heap_malloc(h, 60000), *old = TAlloc_heap_malloc(h, 30000);
    TAlloc_heap_free(h, old); /* kept: the one the decay must give back */
    TAlloc_heap_free(h, other);
    TAlloc_stats s4 = stats_of(h);
    for (int i = 0; i < 40; i++) /* 80 large events, each reusing the other's exact size */
        TAlloc_heap_free(h, TAlloc_heap_malloc(h, 60000));
    TAlloc_stats s5 = stats_of(h);
    EXPECT(s5.cached_count == 1 && s5.unmap_count == s4.unmap_count + 1,
           "large cache: after 80 later large events the old mapping went: %zu kept, %llu unmapped",
           s5.cached_count, (unsigned long long)(s5.unmap_count - s4.unmap_count));
    EXPECT_HEAP_OK(h, "large cache bounds");
    TAlloc_heap_destroy(h);

    h = make_cache_heap(0); /* no cache: every release an unmap */
    if (h == NULL)
        return;
    TAlloc_stats s6 = stats_of(h);
    TAlloc_heap_free(h, TAlloc_heap_malloc(h, 100000));
    TAlloc_stats s7 = stats_of(h);
    EXPECT(s7.cached_count == 0 && s7.unmap_count == s6.unmap_count + 1, "large_cache 0 unmaps");
    TAlloc_heap_destroy(h);
}

/* A dedicated arena's one block grows by remapping its arena: no map, no copy of the bytes by
   TAlloc, the bytes kept; a free tail is taken along. */
static void test_realloc_remap(void)
{
    TAlloc_heap *h = make_cache_heap(0);
    if (h == NULL)
        return;
    unsigned char *p = TAlloc_heap_malloc(h, 50000);
    REQUIRE(h, p != NULL, "remap: malloc(50000)");
    for (size_t i = 0; i < 50000; i++)
        p[i] = (unsigned char)(i * 7);
    TAlloc_stats s0 = stats_of(h);
    unsigned char *q = TAlloc_heap_realloc(h, p, 500000);
    TAlloc_stats s1 = stats_of(h);
    EXPECT_EVENTS("realloc by remap", s0, s1, TALLOC_EVENT_REALLOC_REMAPPED, 1);
    size_t bad = 0;
    for (size_t i = 0; q && i < 50000; i++)
        bad += q[i] != (unsigned char)(i * 7);
    EXPECT(q != NULL && bad == 0 && s1.map_count == s0.map_count && s1.unmap_count == s0.unmap_count &&
               TAlloc_heap_usable_size(h, q) >= 500000,
           "remap: %zu bytes changed, %llu maps, %llu unmaps", bad,
           (unsigned long long)(s1.map_count - s0.map_count),
           (unsigned long long)(s1.unmap_count - s0.unmap_count));
    EXPECT_HEAP_OK(h, "realloc by remap");
    /* a small block in the arena's tail: the arena holds two blocks, so the grow copies */
    char *small = TAlloc_heap_malloc(h, 64);
    TAlloc_stats s2 = stats_of(h);
    char *r = TAlloc_heap_realloc(h, q, 900000);
    TAlloc_stats s3 = stats_of(h);
    EXPECT(r != NULL && s3.event_count[TALLOC_EVENT_REALLOC_REMAPPED] ==
                            s2.event_count[TALLOC_EVENT_REALLOC_REMAPPED] + (small < (char *)q),
           "remap: a block sharing its arena is %s", small < (char *)q ? "remapped" : "moved");
    TAlloc_heap_free(h, small);
    TAlloc_heap_free(h, r);
    EXPECT_HEAP_OK(h, "realloc by remap: freed");
    TAlloc_heap_destroy(h);
}

/* A chunk of exactly arena_size - 64 is a standard arena; 16 more bytes get a dedicated one. */
static void test_dedicated_threshold(void)
{
    const size_t page = TAlloc_page_size(), arena = std_arena(4096);
    const size_t space = std_chunk_space(4096);
    TAlloc_heap *h = make_heap(4096, 1);
    if (h == NULL)
        return;
    char *x = TAlloc_heap_malloc(h, 16);
    REQUIRE(h, x != NULL, "threshold: setup failed");

    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, space - HDR); /* chunk == arena_size - 64 */
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, p != NULL, "threshold: malloc(%zu) failed", space - HDR);
    EXPECT_EVENTS("largest standard request", s0, s1, TALLOC_EVENT_NEW_ARENA, 1,
                  TALLOC_EVENT_EXACT_FIT, 1);
    const walk_result *w = walk(h, "threshold");
    long ai = arena_containing(w, p);
    EXPECT(ai >= 0 && w->arenas[ai].is_dedicated == 0 && w->arenas[ai].size == arena &&
               chunks_in_arena(w, ai) == 1,
           "threshold: want a standard arena of %zu bytes wholly taken by the block", arena);

    TAlloc_stats s2 = stats_of(h);
    char *q = TAlloc_heap_malloc(h, space - HDR + 1); /* chunk == arena_size - 64 + 16 */
    TAlloc_stats s3 = stats_of(h);
    REQUIRE(h, q != NULL, "threshold: malloc(%zu) failed", space - HDR + 1);
    EXPECT_EVENTS("smallest dedicated request", s2, s3, TALLOC_EVENT_DEDICATED_ARENA, 1,
                  TALLOC_EVENT_SPLIT, ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT,
                  ANY);
    size_t want = round_up(space + HDR + RESERVED, page);
    w = walk(h, "threshold 2");
    ai = arena_containing(w, q);
    EXPECT(ai >= 0 && w->arenas[ai].is_dedicated == 1 && w->arenas[ai].size == want,
           "threshold: want a dedicated arena of %zu bytes; got %zu dedicated %d", want,
           ai >= 0 ? w->arenas[ai].size : 0, ai >= 0 ? w->arenas[ai].is_dedicated : -1);
    EXPECT_HEAP_OK(h, "threshold");
    TAlloc_heap_free(h, q);
    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, x);
    EXPECT_HEAP_OK(h, "threshold: after frees");
    TAlloc_heap_destroy(h);
}

/* The control block is the first map and is not counted; every later map is an arena map;
   destroy returns everything. */
static void test_os_accounting(void)
{
    count_os counter = {0, 0, 0, 0, 0};
    TAlloc_os os = {.map = count_map, .unmap = count_unmap, .ctx = &counter};
    TAlloc_heap *h = make_heap_os(4096, 0, &os);
    if (h == NULL)
        return;
    TAlloc_stats s = stats_of(h);
    EXPECT(counter.maps >= 1 && s.map_count == counter.maps - 1 && s.unmap_count == 0,
           "os: after create %lu map calls, map_count %llu", counter.maps,
           (unsigned long long)s.map_count);
    char *a = TAlloc_heap_malloc(h, 100);
    char *b = TAlloc_heap_malloc(h, 3 * 4096);            /* dedicated */
    char *c = TAlloc_heap_malloc(h, std_chunk_space(4096) - HDR); /* second standard arena */
    TAlloc_heap_free(h, b);
    s = stats_of(h);
    EXPECT(a && b && c, "os: allocation failed");
    EXPECT(s.map_count == counter.maps - 1 && s.unmap_count == counter.unmaps &&
               s.arena_count == s.map_count - s.unmap_count,
           "os: %lu map calls, %lu unmap calls; stats say %llu maps, %llu unmaps, %zu arenas",
           counter.maps, counter.unmaps, (unsigned long long)s.map_count,
           (unsigned long long)s.unmap_count, s.arena_count);
    EXPECT_HEAP_OK(h, "os accounting");
    TAlloc_heap_destroy(h); /* a and c still live: destroy unmaps their arenas */
    EXPECT(counter.unmaps == counter.maps && counter.live_bytes == 0,
           "os: after destroy %lu maps, %lu unmaps, %zu bytes still mapped", counter.maps,
           counter.unmaps, counter.live_bytes);
}

/* arena_size is rounded up to whole pages, and the dedicated threshold follows the rounding. */
static void test_arena_size_rounding(void)
{
    const size_t page = TAlloc_page_size();
    const size_t asked = page + page / 4; /* not a page multiple */
    const size_t arena = round_up(asked, page);
    const size_t space = arena - RESERVED;
    TAlloc_heap *h = make_heap(asked, 1);
    if (h == NULL)
        return;
    char *a = TAlloc_heap_malloc(h, 100);
    REQUIRE(h, a != NULL, "rounding: malloc failed");
    const walk_result *w = walk(h, "rounding");
    long ai = arena_containing(w, a);
    long ia = chunk_with_payload(w, a);
    const TAlloc_chunk_info *tail = next_chunk(w, ia);
    EXPECT(ai >= 0 && w->arenas[ai].size == arena && w->arenas[ai].is_dedicated == 0 &&
               tail != NULL && tail->is_free && tail->size == space - 128 - HDR,
           "rounding: arena_size %zu should map %zu bytes with %zu bytes of chunks", asked,
           arena, space);
    TAlloc_heap_free(h, a);

    /* a chunk of exactly (rounded arena) - 64 still goes to a standard arena */
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_malloc(h, space - HDR);
    TAlloc_stats s1 = stats_of(h);
    EXPECT(p != NULL && p == a, "rounding: the whole-arena block %p should reuse the kept arena "
           "at %p", (void *)p, (void *)a);
    EXPECT_EVENTS("rounding: whole arena", s0, s1, TALLOC_EVENT_EXACT_FIT, 1);
    EXPECT_HEAP_OK(h, "rounding");
    TAlloc_heap_free(h, p);
    TAlloc_heap_destroy(h);
}

/* An aligned request only takes a free chunk of at least size + alignment + 48 bytes. */
static void test_aligned_search_size(void)
{
    TAlloc_heap *h = make_heap(65536, 1);
    if (h == NULL)
        return;
    /* holes of chunk 176 (too small for 80 + 64 + 48 = 192) and 192 (just enough) */
    char *h1 = TAlloc_heap_malloc(h, 160); /* chunk 176 */
    char *g1 = TAlloc_heap_malloc(h, 16);
    char *h2 = TAlloc_heap_malloc(h, 176); /* chunk 192 */
    char *g2 = TAlloc_heap_malloc(h, 16);
    REQUIRE(h, h1 && g1 && h2 && g2 && g1 == h1 + 176 && h2 == g1 + 48 && g2 == h2 + 192,
            "aligned search: setup failed");
    TAlloc_heap_free(h, h1);
    TAlloc_heap_free(h, h2);
    TAlloc_stats s0 = stats_of(h);
    char *p = TAlloc_heap_aligned_alloc(h, 64, 64); /* chunk 80 */
    TAlloc_stats s1 = stats_of(h);
    REQUIRE(h, p != NULL, "aligned search: aligned_alloc(64, 64) failed");
    EXPECT(((uintptr_t)p & 63) == 0, "aligned search: %p is not 64-aligned", (void *)p);
    EXPECT(p >= h2 && p + 64 <= h2 + 176,
           "aligned search: got %p, want it inside the 192-byte hole at %p (the lower 176-byte "
           "hole at %p is too small)",
           (void *)p, (void *)h2, (void *)h1);
    EXPECT_EVENTS("aligned search", s0, s1, TALLOC_EVENT_ALIGNED_SPLIT, ANY, TALLOC_EVENT_SPLIT,
                  ANY, TALLOC_EVENT_NO_SPLIT, ANY, TALLOC_EVENT_EXACT_FIT, ANY);
    const walk_result *w = walk(h, "aligned search");
    long i1 = chunk_at(w, header_of(h1));
    EXPECT(i1 >= 0 && w->chunks[i1].info.is_free && w->chunks[i1].info.size == 160,
           "aligned search: the 176-byte hole should be untouched");
    EXPECT_HEAP_OK(h, "aligned search");
    TAlloc_heap_free(h, p);
    TAlloc_heap_free(h, g1);
    TAlloc_heap_free(h, g2);
    EXPECT_HEAP_OK(h, "aligned search: after frees");
    TAlloc_heap_destroy(h);
}

int main(void)
{
    test_exact_fit();
    test_split();
    test_no_split();
    test_merge_left();
    test_merge_right();
    test_merge_both();
    test_new_arena();
    test_dedicated_arena();
    test_arena_released();
    test_arena_retained();
    test_retention_zero_and_one();
    test_retained_loop();
    test_realloc_grow_in_place();
    test_realloc_shrink_in_place();
    test_realloc_moved();
    test_aligned_split();
    test_map_failed();
    test_first_fit_lowest_hole();
    test_first_fit_across_arenas();
    test_best_fit_smallest_hole();
    test_segregated_classes();
    test_large_cache_reuse();
    test_large_cache_bounds();
    test_realloc_remap();
    test_dedicated_threshold();
    test_arena_size_rounding();
    test_aligned_search_size();
    test_os_accounting();
    return test_summary("test_events");
}
