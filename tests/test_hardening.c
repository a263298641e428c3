/*
 * test_hardening.c - the checks beyond the pointer validator, each shown to catch its damage:
 *   - free-list links are encoded and verified before they are followed: a write after free
 *     into either link of a free chunk is reported as "corrupted free list <link address>"
 *     by the first call that meets it, and nothing is written through the damaged link.
 * Each case runs once as a death test (forked child: SIGABRT and the exact line) and once on
 * a heap with an error handler (the report, then a call that fails or completes safely).
 */
#include "testutil.h"

enum { ARENA_SIZE = 65536 };

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

/* A request larger than a walks past a (next link); one of a's size takes a (both links). */
static void link_meet(void *arg)
{
    link_setup *s = arg;
    link_damage(s);
    void *p = TAlloc_heap_malloc(s->heap, s->offset == 0 ? 1000 : 200);
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
        void *p = TAlloc_heap_malloc(heap, offset == 0 ? 1000 : 200);
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
    memcpy(x, y, 8); /* x's next link := y's next link, valid only at y */
    EXPECT(TAlloc_heap_malloc(heap, 1000) != NULL, "the call completes");
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_CORRUPTED_FREE_LIST && r.address == x,
           "copied link: %d reports at %p", r.count, r.address);
    (void)g1;
    (void)g2;
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    test_links();
    return test_summary("test_hardening");
}
