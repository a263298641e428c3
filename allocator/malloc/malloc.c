/*
 * malloc.c - TAlloc as the program's malloc: the C library's allocation family, its glibc
 * aliases and its introspection calls, each a thin forwarder to the default heap.
 *
 * Built into libtallocator-malloc.so (for LD_PRELOAD or linking) and libtallocator-malloc.a
 * (static linking). Every exported name lives in this one object file, so a linker that pulls
 * one of them from the archive pulls all of them: a program never ends up with TAlloc's
 * malloc and the C library's free.
 *
 * The first call may come from the dynamic loader or the C library before any constructor
 * has run; the default heap initialises itself lazily on that call without allocating.
 * Rules that differ between the calls (rounding of memalign's alignment, valloc's and
 * pvalloc's pages, reallocarray's overflow) follow glibc; aligned_alloc follows C17 and
 * rejects an alignment that is not a power of two, as the TAlloc_ call does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "talloc.h"

#define EXPORT __attribute__((visibility("default")))

/* Not declared by the C library's headers (or no longer). */
EXPORT void cfree(void *ptr);
EXPORT void free_sized(void *ptr, size_t size);
EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size);
EXPORT void *__libc_malloc(size_t size);
EXPORT void *__libc_calloc(size_t count, size_t size);
EXPORT void *__libc_realloc(void *ptr, size_t size);
EXPORT void __libc_free(void *ptr);
EXPORT void *__libc_memalign(size_t alignment, size_t size);
EXPORT void *__libc_valloc(size_t size);
EXPORT void *__libc_pvalloc(size_t size);
EXPORT int __posix_memalign(void **out, size_t alignment, size_t size);

EXPORT void *malloc(size_t size)
{
    return TAlloc_malloc(size);
}

EXPORT void free(void *ptr)
{
    TAlloc_free(ptr);
}

EXPORT void *calloc(size_t count, size_t size)
{
    return TAlloc_calloc(count, size);
}

EXPORT void *realloc(void *ptr, size_t size)
{
    return TAlloc_realloc(ptr, size);
}

/* realloc(ptr, count * size), or NULL + ENOMEM with ptr untouched when the product
   overflows. */
EXPORT void *reallocarray(void *ptr, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return TAlloc_realloc(ptr, total);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    return TAlloc_posix_memalign(out, alignment, size);
}

EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    return TAlloc_aligned_alloc(alignment, size);
}

/* glibc's memalign: an alignment TAlloc gives anyway is plain malloc; any other is rounded up
   to a power of two; one above SIZE_MAX / 2 + 1 cannot be and is EINVAL. */
EXPORT void *memalign(size_t alignment, size_t size)
{
    if (alignment <= TALLOC_ALIGNMENT)
        return TAlloc_malloc(size);
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t power = TALLOC_ALIGNMENT;
    while (power < alignment)
        power <<= 1;
    return TAlloc_aligned_alloc(power, size);
}

EXPORT void *valloc(size_t size)
{
    return TAlloc_aligned_alloc(TAlloc_page_size(), size);
}

/* Whole pages, aligned to a page: pvalloc(0) is one page. */
EXPORT void *pvalloc(size_t size)
{
    size_t page = TAlloc_page_size();
    size_t rounded;
    if (__builtin_add_overflow(size, page - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(page - 1);
    return TAlloc_aligned_alloc(page, rounded ? rounded : page);
}

EXPORT size_t malloc_usable_size(void *ptr)
{
    return TAlloc_usable_size(ptr);
}

/* C23. The size is not stored, so it cannot be verified here: these are free. */
EXPORT void free_sized(void *ptr, size_t size)
{
    (void)size;
    TAlloc_free(ptr);
}

EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size)
{
    (void)alignment;
    (void)size;
    TAlloc_free(ptr);
}

EXPORT void cfree(void *ptr)
{
    TAlloc_free(ptr);
}

/* ---- the glibc aliases ----------------------------------------------------------------- */

void *__libc_malloc(size_t size) { return TAlloc_malloc(size); }
void *__libc_calloc(size_t count, size_t size) { return TAlloc_calloc(count, size); }
void *__libc_realloc(void *ptr, size_t size) { return TAlloc_realloc(ptr, size); }
void __libc_free(void *ptr) { TAlloc_free(ptr); }
void *__libc_memalign(size_t alignment, size_t size) { return memalign(alignment, size); }
void *__libc_valloc(size_t size) { return valloc(size); }
void *__libc_pvalloc(size_t size) { return pvalloc(size); }
int __posix_memalign(void **out, size_t alignment, size_t size) { return TAlloc_posix_memalign(out, alignment, size); }

/* ---- tuning and introspection ---------------------------------------------------------- */

/* TAlloc has no mallopt parameters: every one is refused (0), so the caller sees that
   nothing changed. Its settings come from TALLOC_OPTIONS. */
EXPORT int mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 0;
}

/* Unmaps the empty arenas kept for reuse; 1 when memory went back to the system. */
EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    int saved = errno;
    size_t released = TAlloc_trim();
    errno = saved;
    return released > 0;
}

EXPORT void malloc_stats(void)
{
    int saved = errno;
    TAlloc_write_stats(2);
    errno = saved;
}

typedef struct dedicated_total {
    size_t count, bytes;
} dedicated_total;

static int count_dedicated(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    dedicated_total *total = ctx;
    if (chunk == NULL && arena->is_dedicated) {
        total->count++;
        total->bytes += arena->size;
    }
    return 0;
}

/* glibc's fields filled from TAlloc's statistics: arena = bytes mapped for arenas, ordblks /
   fordblks = free chunks and their bytes, uordblks = bytes allocated, hblks / hblkhd =
   arenas mapped for one large block and their bytes; the fast-bin and top-chunk fields
   describe structures TAlloc does not have and are 0. */
EXPORT struct mallinfo2 mallinfo2(void)
{
    int saved = errno;
    TAlloc_stats s;
    TAlloc_get_stats(&s);
    dedicated_total dedicated = {0, 0};
    TAlloc_walk(count_dedicated, &dedicated);
    errno = saved;
    return (struct mallinfo2){
        .arena = s.mapped_bytes - dedicated.bytes,
        .ordblks = s.free_count,
        .hblks = dedicated.count,
        .hblkhd = dedicated.bytes,
        .uordblks = s.allocated_bytes,
        .fordblks = s.free_bytes,
    };
}

static int clamp(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    return (struct mallinfo){
        .arena = clamp(m.arena),
        .ordblks = clamp(m.ordblks),
        .hblks = clamp(m.hblks),
        .hblkhd = clamp(m.hblkhd),
        .uordblks = clamp(m.uordblks),
        .fordblks = clamp(m.fordblks),
    };
}

/* XML in the spirit of glibc's: one heap, its totals. `options` must be 0. */
EXPORT int malloc_info(int options, FILE *out)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    TAlloc_stats s;
    TAlloc_get_stats(&s);
    fprintf(out,
            "<malloc version=\"talloc-1\">\n"
            "<heap nr=\"0\">\n"
            "<total type=\"allocated\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"free\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<arenas count=\"%zu\" maps=\"%llu\" unmaps=\"%llu\"/>\n"
            "<calls allocations=\"%llu\" frees=\"%llu\"/>\n"
            "</heap>\n"
            "</malloc>\n",
            s.allocated_count, s.allocated_bytes, s.free_count, s.free_bytes, s.mapped_bytes,
            s.arena_count, (unsigned long long)s.map_count, (unsigned long long)s.unmap_count,
            (unsigned long long)s.alloc_total, (unsigned long long)s.free_total);
    return 0;
}
