/*
 * test_malloc_conformance.c - libtallocator-malloc through the C library's names only: every
 * call of the family and its glibc aliases returns TAlloc's blocks with the alignment, size,
 * contents and errno that C and glibc specify, and the tuning and introspection calls
 * (malloc_trim, mallinfo2, malloc_info, mallopt, malloc_stats) report TAlloc's heap.
 *
 * Requests too large to be served are swept in test_malloc_limits.c. Each result is checked
 * with mt_ok / mt_failed (malloc_test.h): errno is set to a sentinel before every call, so a
 * call that succeeds must leave it alone. TAlloc_* is called only to observe the heap.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "malloc_test.h"

#define MAX_ALIGN_SHIFT 20 /* 1 MiB */
#define HOLD 8

static TAlloc_stats stats(void)
{
    TAlloc_stats s;
    TAlloc_get_stats(&s);
    return s;
}

/* The family is TAlloc's: a malloc'd block and one libc allocates for itself (strdup) are
   allocated chunks of TAlloc's default heap, counted in its statistics, and free returns them;
   no brk heap was ever grown. */
static void test_malloc_is_talloc(void)
{
    TAlloc_stats before = stats();
    errno = MT_SENTINEL;
    char *p = malloc(1000);
    mt_ok("malloc", p, 1000, 16);
    TAlloc_stats after = stats();
    EXPECT(after.alloc_total == before.alloc_total + 1 &&
               after.allocated_count == before.allocated_count + 1,
           "malloc counted: allocations %llu -> %llu, live %zu -> %zu",
           (unsigned long long)before.alloc_total, (unsigned long long)after.alloc_total,
           before.allocated_count, after.allocated_count);
    EXPECT(TAlloc_usable_size(p) == malloc_usable_size(p) && TAlloc_usable_size(p) >= 1000,
           "usable sizes %zu / %zu", TAlloc_usable_size(p), malloc_usable_size(p));
    char *copy = strdup("allocated inside the C library");
    EXPECT(copy != NULL && mt_talloc_state(copy) == 1, "strdup's block %p is TAlloc's", copy);
    free(copy);
    errno = MT_SENTINEL;
    free(p);
    EXPECT(errno == MT_SENTINEL, "free changed errno to %d", errno);
    EXPECT(mt_talloc_state(p) != 1, "freed block %p still allocated", (void *)p);
    EXPECT(stats().free_total == after.free_total + 2, "two frees counted");
    EXPECT(mt_brk_unmoved() == 1, "the program break moved (or /proc/self/stat unreadable)");
}

/* Every result of every allocating call, for sizes around the interesting edges, is 16-byte
   aligned, TAlloc's, large enough and writable; each frees with its own free. */
static void test_every_result_aligned(void)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4095, 4096, 4097,
                                   65536, 1000000, 16383900, 20000000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p[12];
        errno = MT_SENTINEL; p[0] = malloc(n); mt_ok("malloc", p[0], n, 16);
        errno = MT_SENTINEL; p[1] = calloc(1, n); mt_ok("calloc", p[1], n, 16);
        errno = MT_SENTINEL; p[2] = realloc(NULL, n); mt_ok("realloc(NULL)", p[2], n, 16);
        errno = MT_SENTINEL; p[3] = reallocarray(NULL, 1, n); mt_ok("reallocarray", p[3], n, 16);
        errno = MT_SENTINEL; p[4] = __libc_malloc(n); mt_ok("__libc_malloc", p[4], n, 16);
        errno = MT_SENTINEL; p[5] = __libc_calloc(n, 1); mt_ok("__libc_calloc", p[5], n, 16);
        errno = MT_SENTINEL; p[6] = __libc_realloc(NULL, n); mt_ok("__libc_realloc", p[6], n, 16);
        errno = MT_SENTINEL; p[7] = memalign(8, n); mt_ok("memalign(8)", p[7], n, 16);
        errno = MT_SENTINEL; p[8] = aligned_alloc(1, n); mt_ok("aligned_alloc(1)", p[8], n, 16);
        errno = MT_SENTINEL; p[9] = NULL;
        EXPECT(posix_memalign(&p[9], 8, n) == 0, "posix_memalign(8, %zu)", n);
        mt_ok("posix_memalign(8)", p[9], n, 16);
        errno = MT_SENTINEL; p[10] = valloc(n); mt_ok("valloc", p[10], n, mt_page());
        errno = MT_SENTINEL; p[11] = pvalloc(n); mt_ok("pvalloc", p[11], n, mt_page());
        for (int k = 0; k < 12; k++)
            if (p[k])
                memset(p[k], 0x5A, n);
        errno = MT_SENTINEL;
        free(p[0]);
        cfree(p[1]);
        free_sized(p[2], n);
        __libc_free(p[3]);
        free(p[4]);
        free_sized(p[5], n);
        free(p[6]);
        free_aligned_sized(p[7], 16, n);
        free_aligned_sized(p[8], 1, n);
        free(p[9]);
        __libc_free(p[10]);
        cfree(p[11]);
        EXPECT(errno == MT_SENTINEL, "a free of %zu-byte blocks changed errno to %d", n, errno);
        int still = 0;
        for (int k = 0; k < 12; k++)
            still += mt_talloc_state(p[k]) == 1;
        EXPECT(still == 0, "%d of the %zu-byte blocks still allocated after their free", still, n);
    }
}

/* memalign, __libc_memalign, aligned_alloc, posix_memalign and __posix_memalign honour every
   power of two up to 1 MiB; HOLD blocks of each are live at once (so an alignment met by
   chance once cannot pass), with sizes below, at and above the alignment. */
static void test_power_of_two_alignments(void)
{
    for (unsigned shift = 0; shift <= MAX_ALIGN_SHIFT; shift++) {
        size_t a = (size_t)1 << shift;
        size_t want = a < 16 ? 16 : a;
        void *held[5][HOLD];
        for (int h = 0; h < HOLD; h++) {
            size_t n = h % 3 == 0 ? 1 : h % 3 == 1 ? a : 3 * a + 40;
            errno = MT_SENTINEL; held[0][h] = memalign(a, n);
            mt_ok("memalign", held[0][h], n, want);
            errno = MT_SENTINEL; held[1][h] = __libc_memalign(a, n);
            mt_ok("__libc_memalign", held[1][h], n, want);
            errno = MT_SENTINEL; held[2][h] = aligned_alloc(a, n);
            mt_ok("aligned_alloc", held[2][h], n, want);
            held[3][h] = held[4][h] = NULL;
            if (a >= sizeof(void *)) {
                errno = MT_SENTINEL;
                EXPECT(posix_memalign(&held[3][h], a, n) == 0, "posix_memalign(%zu, %zu)", a, n);
                mt_ok("posix_memalign", held[3][h], n, want);
                errno = MT_SENTINEL;
                EXPECT(__posix_memalign(&held[4][h], a, n) == 0, "__posix_memalign(%zu)", a);
                mt_ok("__posix_memalign", held[4][h], n, want);
            }
            for (int c = 0; c < 5; c++)
                if (held[c][h])
                    mt_mark(held[c][h], n, (unsigned)(c * HOLD + h));
        }
        for (int h = 0; h < HOLD; h++) {
            size_t n = h % 3 == 0 ? 1 : h % 3 == 1 ? a : 3 * a + 40;
            for (int c = 0; c < 5; c++) {
                if (held[c][h] == NULL)
                    continue;
                EXPECT(mt_marked(held[c][h], n, (unsigned)(c * HOLD + h)),
                       "aligned block (alignment %zu, call %d) overwritten", a, c);
                free(held[c][h]);
            }
        }
    }
}

/* glibc's memalign rounds an alignment that is not a power of two up to the next one. */
static void test_memalign_rounds_up(void)
{
    static const size_t odd[] = {3, 17, 24, 33, 48, 100, 1000, 3000, 4097, 12288, 65537,
                                 (1 << 20) - 1};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t want = 16;
        while (want < odd[i])
            want <<= 1;
        void *held[HOLD];
        for (int h = 0; h < HOLD; h++) {
            errno = MT_SENTINEL;
            held[h] = memalign(odd[i], 100);
            mt_ok("memalign(odd)", held[h], 100, want);
        }
        for (int h = 0; h < HOLD; h++)
            free(held[h]);
    }
}

/* Alignments that are refused: aligned_alloc's not a power of two (0 included) with EINVAL,
   posix_memalign's not a power-of-two multiple of sizeof(void *) returned as EINVAL with *out
   untouched, memalign's above SIZE_MAX / 2 + 1 with EINVAL. */
static void test_bad_alignments(void)
{
    static const size_t bad[] = {0, 3, 6, 12, 24, 48, 100, 4095, 4097, 65535, (1 << 20) + 16,
                                 SIZE_MAX, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = MT_SENTINEL;
        void *p = aligned_alloc(mt_hide(bad[i]), 64);
        mt_failed("aligned_alloc(bad alignment)", p, bad[i], EINVAL);
        void *out = &out;
        errno = MT_SENTINEL;
        int r = posix_memalign(&out, mt_hide(bad[i]), 64);
        EXPECT(r == EINVAL && out == &out && errno == MT_SENTINEL,
               "posix_memalign(%zu): %d, out %s, errno %d", bad[i], r,
               out == &out ? "untouched" : "written", errno);
        r = __posix_memalign(&out, mt_hide(bad[i]), 64);
        EXPECT(r == EINVAL && out == &out, "__posix_memalign(%zu): %d", bad[i], r);
    }
    static const size_t small[] = {1, 2, 4};
    for (size_t i = 0; i < 3; i++) {
        void *out = &out;
        int r = posix_memalign(&out, small[i], 64);
        EXPECT(r == EINVAL && out == &out, "posix_memalign(%zu) below sizeof(void *): %d",
               small[i], r);
    }
    static const size_t huge[] = {SIZE_MAX / 2 + 2, SIZE_MAX - 1, SIZE_MAX};
    for (size_t i = 0; i < 3; i++) {
        errno = MT_SENTINEL;
        void *p = memalign(mt_hide(huge[i]), 64);
        mt_failed("memalign(alignment > SIZE_MAX/2+1)", p, huge[i], EINVAL);
        errno = MT_SENTINEL;
        p = __libc_memalign(mt_hide(huge[i]), 64);
        mt_failed("__libc_memalign(alignment > SIZE_MAX/2+1)", p, huge[i], EINVAL);
    }
}

/* valloc: page-aligned. pvalloc: page-aligned, at least the size rounded up to whole pages,
   and pvalloc(0) at least one page. */
static void test_valloc_pvalloc(void)
{
    size_t page = mt_page();
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 10000, 65536 + 1, 3000000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        size_t pages = n == 0 ? page : (n + page - 1) / page * page;
        void *v[2], *pv[2];
        errno = MT_SENTINEL; v[0] = valloc(n); mt_ok("valloc", v[0], n, page);
        errno = MT_SENTINEL; v[1] = __libc_valloc(n); mt_ok("__libc_valloc", v[1], n, page);
        errno = MT_SENTINEL; pv[0] = pvalloc(n); mt_ok("pvalloc", pv[0], pages, page);
        errno = MT_SENTINEL; pv[1] = __libc_pvalloc(n); mt_ok("__libc_pvalloc", pv[1], pages, page);
        for (int k = 0; k < 2; k++) {
            if (pv[k])
                memset(pv[k], 0xC3, pages);
            free(v[k]);
            free(pv[k]);
        }
    }
}

/* malloc(0) gives distinct, non-NULL, freeable blocks. */
static void test_malloc_zero_unique(void)
{
    enum { N = 64 };
    void *p[N];
    int distinct = 1;
    for (int i = 0; i < N; i++) {
        errno = MT_SENTINEL;
        p[i] = malloc(0);
        mt_ok("malloc(0)", p[i], 0, 16);
        for (int j = 0; j < i; j++)
            distinct &= p[i] != p[j];
    }
    EXPECT(distinct, "malloc(0) returned the same pointer twice");
    for (int i = 0; i < N; i++)
        free(p[i]);
}

/* realloc(NULL, n) allocates; realloc(p, 0) frees p and returns NULL, errno untouched;
   growing and shrinking (in place, moved, into and out of a dedicated arena) keep the
   contents up to the smaller size. */
static void test_realloc(void)
{
    errno = MT_SENTINEL;
    unsigned char *p = realloc(NULL, 40);
    mt_ok("realloc(NULL, 40)", p, 40, 16);
    TAlloc_stats before = stats();
    errno = MT_SENTINEL;
    void *r = realloc(p, 0);
    EXPECT(r == NULL && errno == MT_SENTINEL, "realloc(p, 0): %p errno %d", r, errno);
    EXPECT(stats().free_total == before.free_total + 1 && mt_talloc_state(p) != 1,
           "realloc(p, 0) freed p");
    errno = MT_SENTINEL;
    p = __libc_realloc(NULL, 40);
    mt_ok("__libc_realloc(NULL, 40)", p, 40, 16);
    errno = MT_SENTINEL;
    r = __libc_realloc(p, 0);
    EXPECT(r == NULL && errno == MT_SENTINEL && mt_talloc_state(p) != 1,
           "__libc_realloc(p, 0) frees");

    static const size_t steps[] = {1, 24, 100, 5000, 70000, 1000000, 20000000, 300000, 64, 3,
                                   17000000, 33};
    size_t have = 0;
    p = NULL;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        errno = MT_SENTINEL;
        unsigned char *q = i % 2 ? __libc_realloc(p, n) : realloc(p, n);
        if (!mt_ok("realloc", q, n, 16))
            break;
        size_t keep = have < n ? have : n;
        EXPECT(mt_filled(q, keep, 7), "realloc %zu -> %zu lost contents", have, n);
        mt_fill(q, n, 7);
        p = q;
        have = n;
    }
    free(p);
}

/* calloc zeroes, also memory that held data before; count * size overflowing, or above
   PTRDIFF_MAX, is NULL + ENOMEM. */
static void test_calloc(void)
{
    static const size_t sizes[] = {1, 24, 200, 5000, 300000, 17000000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *dirty = malloc(n);
        memset(dirty, 0xEE, n);
        free(dirty);
        errno = MT_SENTINEL;
        unsigned char *z = i % 2 ? __libc_calloc(n, 1) : calloc(1, n);
        mt_ok("calloc", z, n, 16);
        size_t nonzero = 0;
        for (size_t k = 0; z && k < n; k++)
            nonzero += z[k] != 0;
        EXPECT(nonzero == 0, "calloc(%zu): %zu nonzero bytes (reused %s)", n, nonzero,
               z == dirty ? "the same block" : "another block");
        free(z);
    }
    static const size_t pairs[][2] = {
        {2, SIZE_MAX / 2 + 1}, {SIZE_MAX, 2}, {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX, SIZE_MAX}, {65537, SIZE_MAX / 65536}, {2, (size_t)PTRDIFF_MAX / 2 + 1},
        {(size_t)PTRDIFF_MAX, 1}, {(size_t)1 << 25, (size_t)1 << 25},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = MT_SENTINEL;
        void *p = calloc(mt_hide(pairs[i][0]), mt_hide(pairs[i][1]));
        mt_failed("calloc(overflow)", p, pairs[i][0], ENOMEM);
        errno = MT_SENTINEL;
        p = __libc_calloc(mt_hide(pairs[i][1]), mt_hide(pairs[i][0]));
        mt_failed("__libc_calloc(overflow)", p, pairs[i][1], ENOMEM);
    }
}

/* reallocarray resizes to count * size; an overflowing product is NULL + ENOMEM and the old
   block keeps its contents and stays usable. */
static void test_reallocarray(void)
{
    errno = MT_SENTINEL;
    unsigned char *p = reallocarray(NULL, 10, 30);
    mt_ok("reallocarray(NULL, 10, 30)", p, 300, 16);
    mt_mark(p, 300, 3);
    static const size_t pairs[][2] = {
        {2, SIZE_MAX / 2 + 1}, {SIZE_MAX, 2}, {(size_t)1 << 33, (size_t)1 << 33},
        {SIZE_MAX, SIZE_MAX},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = MT_SENTINEL;
        void *r = reallocarray(mt_launder(p), mt_hide(pairs[i][0]), mt_hide(pairs[i][1]));
        mt_failed("reallocarray(overflow)", r, pairs[i][0], ENOMEM);
        EXPECT(mt_talloc_state(p) == 1 && mt_marked(p, 300, 3),
               "old block intact after a failed reallocarray");
        errno = MT_SENTINEL;
        r = reallocarray(NULL, mt_hide(pairs[i][0]), mt_hide(pairs[i][1]));
        mt_failed("reallocarray(NULL, overflow)", r, pairs[i][0], ENOMEM);
    }
    errno = MT_SENTINEL;
    unsigned char *q = reallocarray(mt_launder(p), 1000, 1000);
    if (mt_ok("reallocarray(p, 1000, 1000)", q, 1000000, 16)) {
        EXPECT(mt_marked(q, 300, 3), "reallocarray kept the contents");
        memset(q, 1, 1000000);
        p = q;
    }
    free(p);
}

/* malloc_usable_size: 0 for NULL; at least the request, and all of it writable. */
static void test_usable_size(void)
{
    errno = MT_SENTINEL;
    EXPECT(malloc_usable_size(NULL) == 0 && errno == MT_SENTINEL, "malloc_usable_size(NULL)");
    for (size_t n = 0; n < 5000; n += 37) {
        unsigned char *p = malloc(n);
        errno = MT_SENTINEL;
        size_t usable = malloc_usable_size(p);
        EXPECT(usable >= n && usable == TAlloc_usable_size(p) && errno == MT_SENTINEL,
               "malloc_usable_size(malloc(%zu)) = %zu", n, usable);
        memset(p, 0x77, usable);
        free(p);
    }
    EXPECT_HEAP_OK(TAlloc_default_heap(), "after writing whole usable sizes");
}

/* malloc_trim: after many blocks filling several 16 MB arenas are freed, the one empty arena
   TAlloc retains goes back to the system (1) and the arena count drops; with nothing left
   to return, 0. */
static void test_malloc_trim(void)
{
    enum { N = 80 };
    void *p[N];
    TAlloc_stats start = stats();
    for (int i = 0; i < N; i++) {
        p[i] = malloc(MT_MIB);
        memset(p[i], i, 4096);
    }
    TAlloc_stats full = stats();
    EXPECT(full.arena_count >= start.arena_count + 4, "80 MiB took %zu -> %zu arenas",
           start.arena_count, full.arena_count);
    for (int i = 0; i < N; i++)
        free(p[i]);
    TAlloc_stats freed = stats();
    errno = MT_SENTINEL;
    int r = malloc_trim(0);
    TAlloc_stats trimmed = stats();
    EXPECT(r == 1 && errno == MT_SENTINEL, "malloc_trim after freeing 80 MiB: %d", r);
    EXPECT(trimmed.arena_count == freed.arena_count - 1 && trimmed.cached_count == 0 &&
               trimmed.unmap_count == freed.unmap_count + 1 + freed.cached_count,
           "trim unmapped one arena and %zu kept mappings: arenas %zu -> %zu", freed.cached_count,
           freed.arena_count, trimmed.arena_count);
    r = malloc_trim(mt_hide(1 << 20));
    EXPECT(r == 0, "malloc_trim with nothing retained: %d", r);
}

/* mallinfo2 follows the heap: uordblks grows by at least n after malloc(n), hblks/hblkhd
   count a 100 MB block's dedicated arena, and both go back when the blocks are freed. */
static void test_mallinfo2(void)
{
    struct mallinfo2 m0 = mallinfo2();
    size_t n = 50000;
    void *p = malloc(n);
    struct mallinfo2 m1 = mallinfo2();
    EXPECT(m1.uordblks >= m0.uordblks + n, "uordblks %zu -> %zu after malloc(%zu)",
           m0.uordblks, m1.uordblks, n);
    EXPECT(m1.arena >= m1.uordblks - m1.hblkhd && m1.arena > 0, "arena %zu, uordblks %zu",
           m1.arena, m1.uordblks);
    void *big = malloc(100 * 1000 * 1000);
    struct mallinfo2 m2 = mallinfo2();
    EXPECT(m2.hblks == m1.hblks + 1 && m2.hblkhd >= m1.hblkhd + 100 * 1000 * 1000,
           "hblks %zu -> %zu, hblkhd %zu -> %zu", m1.hblks, m2.hblks, m1.hblkhd, m2.hblkhd);
    EXPECT(m2.uordblks >= m1.uordblks + 100 * 1000 * 1000, "uordblks with the 100 MB block");
    free(big);
    free(p);
    struct mallinfo2 m3 = mallinfo2();
    EXPECT(m3.hblks == m0.hblks && m3.uordblks == m0.uordblks,
           "after the frees: hblks %zu (was %zu), uordblks %zu (was %zu)", m3.hblks, m0.hblks,
           m3.uordblks, m0.uordblks);
    TAlloc_stats s = stats();
    EXPECT(m3.uordblks == s.allocated_bytes && m3.ordblks == s.free_count &&
               m3.fordblks == s.free_bytes,
           "mallinfo2 agrees with TAlloc_get_stats");
}

/* malloc_info(0, f) writes the XML summary; any other option is -1 + EINVAL. */
static void test_malloc_info(void)
{
    char *text = NULL;
    size_t length = 0;
    FILE *f = open_memstream(&text, &length);
    errno = MT_SENTINEL;
    int r = malloc_info(0, f);
    EXPECT(r == 0 && errno == MT_SENTINEL, "malloc_info(0): %d errno %d", r, errno);
    fclose(f);
    EXPECT(text && strncmp(text, "<malloc", 7) == 0 && strstr(text, "</malloc>\n"),
           "malloc_info XML: %s", text ? text : "(none)");
    free(text);
    f = fopen("/dev/null", "w");
    errno = MT_SENTINEL;
    r = malloc_info(1, f);
    EXPECT(r == -1 && errno == EINVAL, "malloc_info(1): %d errno %d", r, errno);
    fclose(f);
}

/* mallopt: TAlloc takes no parameters, so every one is refused with 0. */
static void test_mallopt(void)
{
    static const int params[][2] = {{M_MMAP_THRESHOLD, 1 << 20}, {M_TRIM_THRESHOLD, 0},
                                    {M_ARENA_MAX, 1}, {M_TOP_PAD, 4096}, {M_MXFAST, 0}};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        errno = MT_SENTINEL;
        int r = mallopt(params[i][0], params[i][1]);
        EXPECT(r == 0 && errno == MT_SENTINEL, "mallopt(%d): %d", params[i][0], r);
    }
}

static void call_malloc_stats(void *arg)
{
    (void)arg;
    errno = MT_SENTINEL;
    malloc_stats();
    if (errno != MT_SENTINEL)
        _exit(3);
}

/* malloc_stats writes TAlloc's statistics lines to stderr (in a child, stderr captured). */
static void test_malloc_stats(void)
{
    char buf[4096];
    int status = test_run_child(call_malloc_stats, NULL, buf, sizeof buf);
    EXPECT(status == 0, "malloc_stats child status %d", status);
    EXPECT(strncmp(buf, "talloc: statistics", 18) == 0 && strstr(buf, "(unchanged)"),
           "malloc_stats wrote: %s", buf);
}

int main(void)
{
    test_malloc_is_talloc();
    test_every_result_aligned();
    test_power_of_two_alignments();
    test_memalign_rounds_up();
    test_bad_alignments();
    test_valloc_pvalloc();
    test_malloc_zero_unique();
    test_realloc();
    test_calloc();
    test_reallocarray();
    test_usable_size();
    test_malloc_trim();
    test_mallinfo2();
    test_malloc_info();
    test_mallopt();
    test_malloc_stats();
    EXPECT_HEAP_OK(TAlloc_default_heap(), "at the end");
    return test_summary("test_malloc_conformance");
}
