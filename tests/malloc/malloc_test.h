/*
 * malloc_test.h - what the libtallocator-malloc tests share: declarations of the C library
 * names glibc's headers no longer (or do not yet) declare, barriers that hide a value from
 * the compiler, the check that a pointer really is a block of TAlloc's default heap, block
 * patterns, and the check that the program break never moved (no brk heap was grown).
 *
 * mt_ok() and mt_failed() check a call's result and errno; the caller sets errno to MT_SENTINEL
 * just before the call, so that a successful call is seen to leave errno alone.
 *
 * The tests are compiled with -fno-builtin so that the compiler neither folds nor removes a
 * call of the family: every call reaches the library.
 */
#ifndef TALLOC_MALLOC_TEST_H
#define TALLOC_MALLOC_TEST_H

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "talloc.h"
#include "testutil.h"

void cfree(void *ptr);
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void __libc_free(void *ptr);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **out, size_t alignment, size_t size);

#define MT_MIB ((size_t)1 << 20)

/* The value, unknown to the optimiser (no size warnings, no folding). */
static inline size_t mt_hide(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

static inline int mt_is_aligned(const void *p, size_t alignment)
{
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

static inline size_t mt_page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct mt_find {
    const void *payload;
    int found;     /* 1 allocated chunk, 2 free chunk or quick chunk (freed), 0 not in any arena */
    size_t size;
} mt_find;

static inline int mt_find_visit(void *ctx, const TAlloc_arena_info *arena,
                                const TAlloc_chunk_info *chunk)
{
    mt_find *f = ctx;
    (void)arena;
    if (chunk && chunk->payload == f->payload) {
        f->found = chunk->is_free || chunk->is_quick ? 2 : 1;
        f->size = chunk->size;
        return 1;
    }
    return 0;
}

/* 1 when `p` is an allocated block of TAlloc's default heap (walking it: no misuse report
   for a pointer that is not), 2 when it is a freed chunk's payload (free, or kept in a quick
   list), 0 otherwise. */
static inline int mt_talloc_state(const void *p)
{
    mt_find f = {p, 0, 0};
    TAlloc_walk(mt_find_visit, &f);
    return f.found;
}

static inline unsigned char mt_byte(unsigned seed, size_t i)
{
    return (unsigned char)(seed * 131u + (unsigned)(i * 7u) + 1u);
}

/* Writes (and checks) a pattern at both ends of a block: 64 bytes each, or all of it. */
static inline void mt_mark(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    size_t ends = n < 128 ? n : 64;
    for (size_t i = 0; i < ends; i++)
        b[i] = mt_byte(seed, i);
    for (size_t i = n - ends; i < n; i++)
        b[i] = mt_byte(seed, i);
}

static inline int mt_marked(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    size_t ends = n < 128 ? n : 64;
    for (size_t i = 0; i < ends; i++)
        if (b[i] != mt_byte(seed, i))
            return 0;
    for (size_t i = n - ends; i < n; i++)
        if (b[i] != mt_byte(seed, i))
            return 0;
    return 1;
}

/* Fills (and checks) all n bytes with the pattern of `seed`: any prefix of a filled block
   can be checked after it was resized. */
static inline void mt_fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = mt_byte(seed, i);
}

static inline int mt_filled(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != mt_byte(seed, i))
            return 0;
    return 1;
}

/* The pointer, unknown to the optimiser: a block a failed realloc left alone can be used
   without the compiler taking it for freed. */
static inline void *mt_launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* errno before each call: a call that succeeds must leave it unchanged. */
#define MT_SENTINEL 4242

/* 1 when the call that just returned `p` succeeded as it should: non-NULL, errno untouched,
   `alignment`-aligned, an allocated block of TAlloc's heap with at least `size` usable bytes.
   Otherwise records a failure naming `what` and returns 0. Reads errno first. */
static inline int mt_ok(const char *what, const void *p, size_t size, size_t alignment)
{
    int error = errno;
    if (p == NULL)
        return EXPECT(0, "%s, %zu bytes: NULL, errno %d", what, size, error);
    if (error != MT_SENTINEL)
        return EXPECT(0, "%s, %zu bytes: errno changed to %d on success", what, size, error);
    if (!mt_is_aligned(p, alignment))
        return EXPECT(0, "%s, %zu bytes: %p not %zu-aligned", what, size, p, alignment);
    if (mt_talloc_state(p) != 1)
        return EXPECT(0, "%s, %zu bytes: %p is not an allocated block of TAlloc", what, size, p);
    size_t usable = malloc_usable_size((void *)p);
    if (usable < size)
        return EXPECT(0, "%s, %zu bytes: usable size %zu", what, size, usable);
    return EXPECT(1, "%s", what);
}

/* 1 when the call that just returned `p` failed with `want` in errno. Reads errno first. */
static inline int mt_failed(const char *what, const void *p, size_t size, int want)
{
    int error = errno;
    return EXPECT(p == NULL && error == want, "%s, %zu: want NULL + errno %d, got %p errno %d",
                  what, size, want, p, error);
}

/* The program break now equals the one the kernel set at exec (start_brk, field 47 of
   /proc/self/stat): nothing in the process grew a brk heap. -1 when it cannot be read. */
static inline int mt_brk_unmoved(void)
{
    char text[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *s = strrchr(text, ')');
    if (s == NULL)
        return -1;
    /* field 3 follows ") "; start_brk is field 47 */
    s += 2;
    for (int field = 3; field < 47; field++) {
        s = strchr(s, ' ');
        if (s == NULL)
            return -1;
        s++;
    }
    unsigned long long start_brk = strtoull(s, NULL, 10);
    return (uintptr_t)sbrk(0) == (uintptr_t)start_brk;
}

#endif /* TALLOC_MALLOC_TEST_H */
