/*
 * test_malloc_limits.c - requests libtallocator-malloc cannot serve, through the C library's
 * names: every allocating call, given a size of SIZE_MAX - k, PTRDIFF_MAX + 1, PTRDIFF_MAX or
 * k << 50 (k = 1..16383: sizes the arithmetic must refuse and sizes no mapping can hold), and
 * the aligned calls with every power-of-two alignment, returns NULL with errno ENOMEM
 * (posix_memalign returns ENOMEM and leaves *out alone); realloc's old block stays intact.
 *
 * Each call kind collects its failures and is asserted once, naming the first bad case.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "malloc_test.h"

enum { K_MAX = 16383 };

#define KIND(text) {.name = text}

/* One call kind under the sweep. */
typedef struct kind {
    const char *name;
    size_t tried;
    size_t bad;
    size_t first_size, first_alignment;
    void *first_result;
    int first_errno;
} kind;

static void note(kind *k, int good, size_t size, size_t alignment, void *result, int error)
{
    k->tried++;
    if (good)
        return;
    if (k->bad++ == 0) {
        k->first_size = size;
        k->first_alignment = alignment;
        k->first_result = result;
        k->first_errno = error;
    }
}

static void report(const kind *k)
{
    EXPECT(k->tried > 0 && k->bad == 0,
           "%s: %zu of %zu calls wrong; first: size %#zx alignment %#zx -> %p errno %d",
           k->name, k->bad, k->tried, k->first_size, k->first_alignment, k->first_result,
           k->first_errno);
}

/* NULL + ENOMEM, recorded in `k`; anything else it returned is freed. */
static void expect_enomem(kind *k, void *p, size_t size, size_t alignment)
{
    int error = errno;
    note(k, p == NULL && error == ENOMEM, size, alignment, p, error);
    if (p != NULL)
        free(p);
}

/* The sizes swept for every call: SIZE_MAX - k (k < 64), PTRDIFF_MAX + 1, PTRDIFF_MAX, then
   k << 50 for k = 1..K_MAX. With `sparse`, only k <= 64 and every 61st k of the last group
   (the aligned calls run it once per alignment). Returns how many were written. */
static size_t sweep_sizes(size_t *out, int sparse)
{
    size_t n = 0;
    for (size_t k = 0; k < 64; k++)
        out[n++] = SIZE_MAX - k;
    out[n++] = (size_t)PTRDIFF_MAX + 1;
    out[n++] = (size_t)PTRDIFF_MAX;
    for (size_t k = 1; k <= K_MAX; k++)
        if (!sparse || k <= 64 || k % 61 == 0)
            out[n++] = k << 50;
    return n;
}

static size_t all_sizes[64 + 2 + K_MAX];

static void test_unaligned_calls(void)
{
    kind kinds[] = {KIND("malloc"), KIND("calloc(n, 1)"), KIND("calloc(1, n)"),
                    KIND("realloc(NULL, n)"), KIND("realloc(p, n)"),
                    KIND("reallocarray(NULL, n, 1)"), KIND("reallocarray(p, 1, n)"),
                    KIND("valloc"), KIND("pvalloc"), KIND("__libc_malloc"),
                    KIND("__libc_calloc"), KIND("__libc_realloc(p, n)"), KIND("__libc_valloc"),
                    KIND("__libc_pvalloc")};
    unsigned char *old = malloc(100);
    mt_mark(old, 100, 9);
    size_t intact = 0, count = sweep_sizes(all_sizes, 0);
    for (size_t i = 0; i < count; i++) {
        size_t n = mt_hide(all_sizes[i]);
        int c = 0;
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], malloc(n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], calloc(n, 1), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], calloc(1, n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], realloc(NULL, n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], realloc(mt_launder(old), n), n, 0);
        intact += mt_marked(old, 100, 9);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], reallocarray(NULL, n, 1), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], reallocarray(mt_launder(old), 1, n), n, 0);
        intact += mt_marked(old, 100, 9);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], valloc(n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], pvalloc(n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], __libc_malloc(n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], __libc_calloc(1, n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], __libc_realloc(mt_launder(old), n), n, 0);
        intact += mt_marked(old, 100, 9);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], __libc_valloc(n), n, 0);
        errno = MT_SENTINEL; expect_enomem(&kinds[c++], __libc_pvalloc(n), n, 0);
    }
    for (size_t c = 0; c < sizeof kinds / sizeof kinds[0]; c++)
        report(&kinds[c]);
    EXPECT(intact == 3 * count && mt_talloc_state(old) == 1,
           "the old block kept its contents through %zu failed reallocs (%zu intact)",
           3 * count, intact);
    unsigned char *grown = realloc(mt_launder(old), 5000);
    EXPECT(grown != NULL && mt_marked(grown, 64, 9), "the old block still grows");
    free(grown ? grown : old);
}

/* The aligned calls, for every power-of-two alignment from 1 to 2^63 (posix_memalign from
   sizeof(void *): below it is EINVAL, checked in the conformance test). */
static void test_aligned_calls(void)
{
    kind kinds[] = {KIND("memalign"), KIND("__libc_memalign"), KIND("aligned_alloc"),
                    KIND("posix_memalign"), KIND("__posix_memalign")};
    size_t count = sweep_sizes(all_sizes, 1);
    for (unsigned shift = 0; shift < 64; shift++) {
        size_t a = mt_hide((size_t)1 << shift);
        for (size_t i = 0; i < count; i++) {
            size_t n = mt_hide(all_sizes[i]);
            errno = MT_SENTINEL; expect_enomem(&kinds[0], memalign(a, n), n, a);
            errno = MT_SENTINEL; expect_enomem(&kinds[1], __libc_memalign(a, n), n, a);
            errno = MT_SENTINEL; expect_enomem(&kinds[2], aligned_alloc(a, n), n, a);
            if (a < sizeof(void *))
                continue;
            void *out = &out;
            errno = MT_SENTINEL;
            int r = posix_memalign(&out, a, n);
            note(&kinds[3], r == ENOMEM && out == &out && errno == MT_SENTINEL, n, a,
                 out, r);
            r = __posix_memalign(&out, a, n);
            note(&kinds[4], r == ENOMEM && out == &out, n, a, out, r);
        }
    }
    for (size_t c = 0; c < sizeof kinds / sizeof kinds[0]; c++)
        report(&kinds[c]);
}

/* calloc whose count * size overflows or exceeds what can be mapped, in both orders. */
static void test_calloc_products(void)
{
    kind k = KIND("calloc(count, size)");
    for (unsigned a = 1; a < 64; a++) {
        for (unsigned b = 64 - a; b < 64; b++) {
            size_t x = mt_hide((size_t)1 << a), y = mt_hide(((size_t)1 << b) + 1);
            errno = MT_SENTINEL; expect_enomem(&k, calloc(x, y), x, y);
            errno = MT_SENTINEL; expect_enomem(&k, calloc(y, x), y, x);
            errno = MT_SENTINEL; expect_enomem(&k, __libc_calloc(x, y), x, y);
        }
        /* products between 2^50 and 2^63: representable, not mappable */
        size_t x = mt_hide((size_t)1 << a), y = mt_hide(((size_t)1 << (a < 50 ? 50 - a : 0)) + 3);
        errno = MT_SENTINEL; expect_enomem(&k, calloc(x, y), x, y);
    }
    report(&k);
}

int main(void)
{
    TAlloc_stats before, after;
    TAlloc_get_stats(&before);
    test_unaligned_calls();
    test_aligned_calls();
    test_calloc_products();
    /* the sizes from 2^50 to 2^63 passed the arithmetic and were refused by the OS: at least
       the 8191 such sizes times the 10 unaligned calls that map for them */
    TAlloc_get_stats(&after);
    uint64_t refused = after.event_count[TALLOC_EVENT_MAP_FAILED] -
                       before.event_count[TALLOC_EVENT_MAP_FAILED];
    EXPECT(refused >= 8191 * 10, "maps refused by the OS during the sweep: %llu",
           (unsigned long long)refused);
    /* after all of that, the heap still serves a request and is consistent */
    errno = MT_SENTINEL;
    void *p = malloc(1000);
    mt_ok("malloc after the sweep", p, 1000, 16);
    free(p);
    EXPECT_HEAP_OK(TAlloc_default_heap(), "after the sweep");
    return test_summary("test_malloc_limits");
}
