/*
 * test_hardening.c - the checks beyond the pointer validator, each shown to catch its damage:
 *   - free-list links are encoded and verified before they are followed: a write after free
 *     into either link of a free chunk is reported as "corrupted free list <link address>"
 *     by the first call that meets it, and nothing is written through the damaged link.
 *   - canary (config.canary): a write past the requested size - one byte, eight, or over
 *     the stored size - is "canary corrupted <first damaged byte>" at free, realloc or
 *     usable_size, and the block stays allocated; blocks used up to their size never are.
 *   - junk (config.junk): a write into a freed payload is "write after free <byte>" when the
 *     memory is handed out again; memory used properly never is.
 *   - quarantine (config.quarantine = N): a freed block is not reused until N later frees;
 *     freeing it again is "double free", realloc or usable_size of it "use after free", and
 *     with junk a write into it is "write after free" when it leaves the quarantine.
 *   - guard (config.guard): a dedicated arena's block ends at an inaccessible page, so a
 *     large overflow faults (SIGSEGV).
 * Each case runs once as a death test (forked child: SIGABRT and the exact line) and once on
 * a heap with an error handler (the report, then a call that fails or completes safely).
 */
#include "testutil.h"

enum { ARENA_SIZE = 65536, TA_JUNK_BYTE_FOR_TESTS = 0xdf };

static void expect_line(const char *name, void (*fn)(void *), void *arg, TAlloc_error error,
                        const void *address)
{
    char line[128];
    TAlloc_error_format(line, sizeof line, error, address);
    expect_death(name, fn, arg, SIGABRT, line);
}

/* ---- free-list links ------------------------------------------------------------------- */

/* A free chunk `a` between two allocated ones, so that it stays a chunk of its own. */
typedef struct link_setup {
    TAlloc_heap *heap;
    unsigned char *a, *guard_before, *guard_after;
    size_t offset; /* 0: the next link, 8: the prev link */
} link_setup;

static link_setup link_prepare(TAlloc_heap *heap, size_t offset)
{
    link_setup s = {heap, NULL, NULL, NULL, offset};
    s.guard_before = TAlloc_heap_malloc(heap, 64);
    s.a = TAlloc_heap_malloc(heap, 200);
    s.guard_after = TAlloc_heap_malloc(heap, 64);
    TAlloc_heap_free(heap, s.a);
    return s;
}

/* The write after free: 8 bytes over one of a's links. */
static void link_damage(const link_setup *s)
{
    test_unpoison(s->a, 16);
    memset(s->a + s->offset, 0x41, 8);
}

/* A request of a's size takes a, under every policy: the head of its size class, the end of
   a tree search that loads a. */
static void link_meet(void *arg)
{
    link_setup *s = arg;
    link_damage(s);
    void *p = TAlloc_heap_malloc(s->heap, 200);
    (void)p;
}

static void test_links(void)
{
    for (size_t offset = 0; offset <= 8; offset += 8) {
        TAlloc_heap *heap = test_heap(ARENA_SIZE, NULL, NULL, "test_hardening");
        link_setup s = link_prepare(heap, offset);
        expect_line(offset ? "prev link overwritten" : "next link overwritten", link_meet, &s,
                    TALLOC_ERROR_CORRUPTED_FREE_LIST, s.a + offset);
        TAlloc_heap_destroy(heap);

        test_error_log r = {0};
        heap = test_heap(ARENA_SIZE, test_record_error, &r, "test_hardening");
        s = link_prepare(heap, offset);
        link_damage(&s);
        void *p = TAlloc_heap_malloc(heap, 200);
        EXPECT(r.count == 1 && r.error == TALLOC_ERROR_CORRUPTED_FREE_LIST &&
                   r.address == s.a + offset,
               "handler, link at +%zu: %d reports, error %d at %p (want %p)", offset, r.count,
               (int)r.error, r.address, (void *)(s.a + offset));
        EXPECT(offset != 8 || p == NULL || p != s.a, "a chunk behind a damaged link is not handed out");
        EXPECT(TAlloc_heap_check(heap, NULL, NULL) > 0, "the check sees the damage");
        TAlloc_heap_destroy(heap);
    }

    /* a link copied from another free chunk (the same bits at another address) fails too */
    test_error_log r = {0};
    TAlloc_heap *heap = test_heap(ARENA_SIZE, test_record_error, &r, "test_hardening");
    unsigned char *x = TAlloc_heap_malloc(heap, 100), *g1 = TAlloc_heap_malloc(heap, 16);
    unsigned char *y = TAlloc_heap_malloc(heap, 100), *g2 = TAlloc_heap_malloc(heap, 16);
    TAlloc_heap_free(heap, x);
    TAlloc_heap_free(heap, y);
    test_unpoison(x, 16);
    test_unpoison(y, 16);
    memcpy(x, y, 8); /* x's first link := y's, valid only at y */
    /* an allocation of their size takes y (the head of their class) or meets x on the way */
    void *p = TAlloc_heap_malloc(heap, 100);
    if (p != NULL)
        p = TAlloc_heap_malloc(heap, 100);
    EXPECT(p == NULL, "an allocation that meets it fails");
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_CORRUPTED_FREE_LIST && r.address == x,
           "copied link: %d reports at %p", r.count, r.address);
    (void)g1;
    (void)g2;
    TAlloc_heap_destroy(heap);
}

/* ---- canary ----------------------------------------------------------------------------- */

static TAlloc_heap *heap_with(int canary, int junk, int guard, size_t quarantine,
                              TAlloc_error_fn handler, void *ctx)
{
    TAlloc_config config = test_config(ARENA_SIZE, handler, ctx);
    config.canary = canary;
    config.junk = junk;
    config.guard = guard;
    config.quarantine = quarantine;
    return test_heap_from(&config, "test_hardening");
}

static TAlloc_heap *options_heap(int canary, int junk, TAlloc_error_fn handler, void *ctx)
{
    return heap_with(canary, junk, 0, 0, handler, ctx);
}

typedef struct overflow_case {
    TAlloc_heap *heap;
    unsigned char *p;
    size_t at, length;   /* bytes written: p[at .. at + length) */
    int call;            /* 0 free, 1 realloc, 2 usable_size */
} overflow_case;

static void overflow_then_call(void *arg)
{
    overflow_case *c = arg;
    test_unpoison(c->p + c->at, c->length);
    memset(c->p + c->at, 0, c->length);
    if (c->call == 0)
        TAlloc_heap_free(c->heap, c->p);
    else if (c->call == 1)
        c->p = TAlloc_heap_realloc(c->heap, c->p, 5000);
    else
        c->at = TAlloc_heap_usable_size(c->heap, c->p);
}

static void test_canary(void)
{
    static const char *const calls[] = {"free", "realloc", "usable_size"};
    /* 100 requested bytes: chunk of 128, canary bytes 100..103, stored size at 104..111;
       96 requested bytes: canary bytes 96..103. Damage to the stored size is reported at it. */
    static const struct {
        const char *name;
        size_t request, at, length, reported;
    } cases[] = {
        {"one byte past the end", 100, 100, 1, 100},
        {"eight bytes past the end", 96, 96, 8, 96},
        {"eight bytes past the end, into the stored size", 100, 100, 8, 104},
        {"the last canary byte", 100, 103, 1, 103},
        {"the stored size", 100, 104, 8, 104},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int call = 0; call < 3; call++) {
            TAlloc_heap *heap = options_heap(1, 0, NULL, NULL);
            overflow_case c = {heap, TAlloc_heap_malloc(heap, cases[i].request), cases[i].at,
                               cases[i].length, call};
            char name[128];
            snprintf(name, sizeof name, "canary: %s, then %s", cases[i].name, calls[call]);
            expect_line(name, overflow_then_call, &c, TALLOC_ERROR_CANARY_CORRUPTED,
                        c.p + cases[i].reported);
            TAlloc_heap_destroy(heap);
        }

    /* with a handler: the call fails safely and the block stays allocated */
    test_error_log r = {0};
    TAlloc_heap *heap = options_heap(1, 0, test_record_error, &r);
    unsigned char *p = TAlloc_heap_malloc(heap, 100);
    EXPECT(TAlloc_heap_usable_size(heap, p) == 100, "usable size is the requested size");
    test_unpoison(p + 100, 1);
    p[100] = 'x';
    TAlloc_heap_free(heap, p);
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_CANARY_CORRUPTED && r.address == p + 100,
           "free: %d reports at %p", r.count, r.address);
    errno = 0;
    EXPECT(TAlloc_heap_realloc(heap, p, 50) == NULL && errno == EINVAL && r.count == 2,
           "realloc refuses the damaged block");
    TAlloc_stats stats;
    TAlloc_heap_get_stats(heap, &stats);
    EXPECT(stats.allocated_count == 1, "the damaged block stays allocated");
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "the heap is consistent");
    TAlloc_heap_destroy(heap);

    /* never a false report: every size filled exactly, resized, freed */
    r = (test_error_log){0};
    heap = options_heap(1, 0, test_record_error, &r);
    for (size_t n = 0; n <= 600; n++) {
        unsigned char *b = n % 3 ? TAlloc_heap_malloc(heap, n) : TAlloc_heap_calloc(heap, 1, n);
        EXPECT(b && TAlloc_heap_usable_size(heap, b) == n, "usable size of %zu", n);
        memset(b, 0xff, n);
        b = TAlloc_heap_realloc(heap, b, n + 1 + n % 7 * 300);
        memset(b, 0x80, n + 1 + n % 7 * 300);
        b = TAlloc_heap_realloc(heap, b, n / 2 + 1);
        memset(b, 0xa5, n / 2 + 1);
        unsigned char *a = TAlloc_heap_aligned_alloc(heap, (size_t)64 << (n % 4), n + 1);
        memset(a, 0xfe, n + 1);
        TAlloc_heap_free(heap, a);
        TAlloc_heap_free(heap, b);
    }
    EXPECT(r.count == 0, "no false canary report: %d (first at %p)", r.count, r.address);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "the heap is consistent");
    TAlloc_heap_destroy(heap);
}

/* ---- junk ------------------------------------------------------------------------------- */

typedef struct junk_case {
    TAlloc_heap *heap;
    unsigned char *a;
    size_t at;
} junk_case;

static junk_case junk_prepare(TAlloc_heap *heap, size_t at)
{
    junk_case c = {heap, NULL, at};
    void *before = TAlloc_heap_malloc(heap, 64);
    c.a = TAlloc_heap_malloc(heap, 200);
    void *after = TAlloc_heap_malloc(heap, 64);
    (void)before;
    (void)after;
    TAlloc_heap_free(heap, c.a);
    return c;
}

static void write_after_free_then_malloc(void *arg)
{
    junk_case *c = arg;
    test_unpoison(c->a + c->at, 1);
    c->a[c->at] = 'w';
    void *again = TAlloc_heap_malloc(c->heap, 200);
    (void)again;
}

static void test_junk(void)
{
    /* bytes 0-15 of a freed payload are its free-list links (test_links), 16-23 the checker's
       mark (not verified), the last 8 its footer (verified when it merges) */
    static const size_t offsets[] = {24, 100, 199};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        TAlloc_heap *heap = options_heap(0, 1, NULL, NULL);
        junk_case c = junk_prepare(heap, offsets[i]);
        char name[64];
        snprintf(name, sizeof name, "junk: write after free at +%zu", offsets[i]);
        expect_line(name, write_after_free_then_malloc, &c, TALLOC_ERROR_WRITE_AFTER_FREE,
                    c.a + offsets[i]);
        TAlloc_heap_destroy(heap);
    }

    /* a write into a chunk swallowed by a merge, met by a larger request */
    test_error_log r = {0};
    TAlloc_heap *heap = options_heap(0, 1, test_record_error, &r);
    unsigned char *x = TAlloc_heap_malloc(heap, 64), *y = TAlloc_heap_malloc(heap, 64);
    unsigned char *z = TAlloc_heap_malloc(heap, 64);
    (void)z;
    TAlloc_heap_free(heap, x);
    TAlloc_heap_free(heap, y);
    TAlloc_heap_flush(heap); /* out of the quick lists: y, then x merging with it */
    test_unpoison(y - 16, 16);
    y[-8] = 1; /* inside y's old header, now the middle of a free chunk */
    unsigned char *big = TAlloc_heap_malloc(heap, 120);
    EXPECT(big == x && r.count == 1 && r.error == TALLOC_ERROR_WRITE_AFTER_FREE &&
               r.address == y - 8,
           "merged: got %p (x %p), %d reports at %p (want %p)", (void *)big, (void *)x, r.count,
           r.address, (void *)(y - 8));
    EXPECT(big[50] == TA_JUNK_BYTE_FOR_TESTS, "a new block holds junk, not old data");
    TAlloc_heap_destroy(heap);

    /* never a false report: mixed use with every call, then everything freed and reused */
    r = (test_error_log){0};
    heap = options_heap(0, 1, test_record_error, &r);
    static unsigned char *blocks[512];
    for (unsigned round = 0; round < 8; round++)
        for (unsigned i = 0; i < 512; i++) {
            unsigned k = (i * 2654435761u + round) % 512;
            size_t n = 1 + (i * 7919u + round * 31) % 3000;
            if (blocks[k] && (i + round) % 3 == 0) {
                blocks[k] = TAlloc_heap_realloc(heap, blocks[k], n);
                memset(blocks[k], 0x11, n);
                continue;
            }
            TAlloc_heap_free(heap, blocks[k]);
            blocks[k] = i % 5 == 0 ? TAlloc_heap_calloc(heap, 1, n)
                        : i % 7 == 0 ? TAlloc_heap_aligned_alloc(heap, 256, n)
                                     : TAlloc_heap_malloc(heap, n);
            memset(blocks[k], 0x22, n);
        }
    for (unsigned i = 0; i < 512; i++)
        TAlloc_heap_free(heap, blocks[i]);
    EXPECT(r.count == 0, "no false junk report: %d (first at %p)", r.count, r.address);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "the heap is consistent");
    TAlloc_heap_destroy(heap);
}

/* ---- quarantine ------------------------------------------------------------------------ */

typedef struct pointer_case {
    TAlloc_heap *heap;
    unsigned char *p;
    int call; /* 0 free, 1 realloc, 2 usable_size, 3 write then release the quarantine */
} pointer_case;

static void call_on_freed(void *arg)
{
    pointer_case *c = arg;
    if (c->call == 0) {
        TAlloc_heap_free(c->heap, c->p);
    } else if (c->call == 1) {
        c->p = TAlloc_heap_realloc(c->heap, c->p, 10);
    } else if (c->call == 2) {
        c->call = (int)TAlloc_heap_usable_size(c->heap, c->p);
    } else {
        test_unpoison(c->p + 40, 1);
        c->p[40] = 0;
        TAlloc_heap_trim(c->heap);
    }
}

static void test_quarantine(void)
{
    enum { N = 8 };
    static const TAlloc_error errors[] = {TALLOC_ERROR_DOUBLE_FREE, TALLOC_ERROR_USE_AFTER_FREE,
                                          TALLOC_ERROR_USE_AFTER_FREE, TALLOC_ERROR_WRITE_AFTER_FREE};
    static const char *const names[] = {"quarantine: double free", "quarantine: realloc of a freed block",
                                        "quarantine: usable_size of a freed block",
                                        "quarantine with junk: write after free, found at release"};
    for (int call = 0; call < 4; call++) {
        TAlloc_heap *heap = heap_with(0, call == 3, 0, N, NULL, NULL);
        pointer_case c = {heap, TAlloc_heap_malloc(heap, 100), call};
        TAlloc_heap_free(heap, c.p);
        expect_line(names[call], call_on_freed, &c, errors[call], call == 3 ? c.p + 40 : c.p);
        TAlloc_heap_destroy(heap);
    }

    /* a freed block is not handed out again until N later frees push it out */
    test_error_log r = {0};
    TAlloc_heap *heap = heap_with(0, 1, 0, N, test_record_error, &r);
    void *first = TAlloc_heap_malloc(heap, 100);
    TAlloc_heap_free(heap, first);
    int reused_early = 0;
    for (int i = 0; i < N - 1; i++) {
        void *p = TAlloc_heap_malloc(heap, 100);
        reused_early += p == first;
        TAlloc_heap_free(heap, p);
    }
    EXPECT(reused_early == 0, "reused while in quarantine %d times", reused_early);
    TAlloc_stats s;
    TAlloc_heap_get_stats(heap, &s);
    EXPECT(s.allocated_count == N, "quarantined blocks count as allocated: %zu", s.allocated_count);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "the check accepts the quarantine");
    void *p = TAlloc_heap_malloc(heap, 100); /* pushes `first` out: now free */
    TAlloc_heap_free(heap, p);
    p = TAlloc_heap_malloc(heap, 100);
    EXPECT(p == first, "released after %d frees: reused", N);
    TAlloc_heap_free(heap, p);
    TAlloc_heap_trim(heap);
    EXPECT(r.count == 0, "no report: %d", r.count);
    TAlloc_heap_get_stats(heap, &s);
    EXPECT(s.allocated_count == 0 && TAlloc_heap_check(heap, NULL, NULL) == 0,
           "trim releases the quarantine: %zu allocated", s.allocated_count);

    /* releasing the quarantine alone: the blocks become free, the arenas stay */
    for (int i = 0; i < 3; i++)
        TAlloc_heap_free(heap, TAlloc_heap_malloc(heap, 64));
    TAlloc_heap_get_stats(heap, &s);
    size_t arenas = s.arena_count;
    EXPECT(s.allocated_count == 3, "three blocks held: %zu", s.allocated_count);
    TAlloc_heap_release_quarantine(heap);
    TAlloc_heap_get_stats(heap, &s);
    EXPECT(s.allocated_count == 0 && s.arena_count == arenas && r.count == 0,
           "released: %zu allocated, %zu arenas", s.allocated_count, s.arena_count);

    /* with a handler: a double free of a quarantined block is refused, the heap stays whole */
    p = TAlloc_heap_malloc(heap, 300);
    TAlloc_heap_free(heap, p);
    TAlloc_heap_free(heap, p);
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_DOUBLE_FREE && r.address == p, "handled: %d",
           r.count);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "consistent after the double free");
    TAlloc_heap_destroy(heap);
}

/* ---- guard pages and large blocks ------------------------------------------------------- */

static void write_past_large(void *arg)
{
    pointer_case *c = arg;
    size_t usable = TAlloc_heap_usable_size(c->heap, c->p);
    signal(SIGSEGV, SIG_DFL); /* the fault itself, not a sanitizer's report of it */
    test_unpoison(c->p + usable, 17);
    c->p[usable + 16] = 1; /* past the block and the arena's end fence: the guard page */
}

static void test_guard(void)
{
    TAlloc_heap *heap = heap_with(0, 0, 1, 0, NULL, NULL);
    pointer_case c = {heap, TAlloc_heap_malloc(heap, 200000), 0};
    size_t usable = TAlloc_heap_usable_size(heap, c.p);
    size_t page = TAlloc_page_size();
    EXPECT(((uintptr_t)c.p + usable + 16) % page == 0, "the block ends at the guard page");
    expect_death("guard: a large overflow faults", write_past_large, &c, SIGSEGV, "");
    memset(c.p, 1, usable); /* the whole usable size is the program's */
    TAlloc_heap_free(heap, c.p);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "guarded arena released cleanly");
    TAlloc_heap_destroy(heap);

    /* with canary: the usable size is the request, and the slack up to the guard is checked */
    test_error_log r = {0};
    heap = heap_with(1, 0, 1, 0, test_record_error, &r);
    unsigned char *p = TAlloc_heap_malloc(heap, 200001);
    EXPECT(TAlloc_heap_usable_size(heap, p) == 200001, "canary and guard: usable = request");
    test_unpoison(p + 200001, 501);
    p[200001 + 500] = 0; /* the mapping has 623 bytes past the request: canary up to the guard */
    TAlloc_heap_free(heap, p);
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_CANARY_CORRUPTED && r.address == p + 200501,
           "slack overflow: %d reports at %p", r.count, r.address);
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    test_links();
    test_canary();
    test_junk();
    test_quarantine();
    test_guard();
    return test_summary("test_hardening");
}
