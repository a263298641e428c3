/*
 * os.c - the OS layer: the only file that maps memory, asks for the page size or draws
 * randomness. Heaps reach the OS through a TAlloc_os table (talloc.h), so tests can swap in
 * functions that fail on purpose; this file provides the default table, and the helpers that
 * give every heap the whole table (the optional entries a table leaves NULL).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

static void *os_map(void *ctx, size_t size)
{
    (void)ctx;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void os_unmap(void *ctx, void *address, size_t size)
{
    (void)ctx;
    munmap(address, size);
}

/* Maps size + alignment - page bytes and returns the head and tail that are not needed. */
static void *os_map_aligned(void *ctx, size_t size, size_t alignment)
{
    size_t page = ta_os_page_size();
    if (alignment <= page)
        return os_map(ctx, size);
    size_t span = size + alignment - page;
    if (span < size)
        return NULL;
    char *p = os_map(ctx, span);
    if (p == NULL)
        return NULL;
    char *aligned = (char *)ta_align_up((uintptr_t)p, alignment);
    size_t head = (size_t)(aligned - p), tail = span - head - size;
    if (head)
        munmap(p, head);
    if (tail)
        munmap(aligned + size, tail);
    return aligned;
}

static void *os_remap(void *ctx, void *address, size_t old_size, size_t new_size)
{
    (void)ctx;
    void *p = mremap(address, old_size, new_size, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}

static int os_protect(void *ctx, void *address, size_t size)
{
    (void)ctx;
    return mprotect(address, size, PROT_NONE);
}

static int os_purge(void *ctx, void *address, size_t size)
{
    (void)ctx;
    return madvise(address, size, MADV_DONTNEED);
}

static const TAlloc_os default_os = {
    .map = os_map,
    .unmap = os_unmap,
    .map_aligned = os_map_aligned,
    .remap = os_remap,
    .protect = os_protect,
    .purge = os_purge,
};

const TAlloc_os *TAlloc_os_default(void)
{
    return &default_os;
}

/* ---- the heap's calls into its table, errno left as it was ------------------------------ */

void *ta_os_map(const TAlloc_os *os, size_t size, size_t alignment)
{
    int saved = errno;
    void *p = alignment && os->map_aligned ? os->map_aligned(os->ctx, size, alignment)
                                           : os->map(os->ctx, size);
    errno = saved;
    return p;
}

void ta_os_unmap(const TAlloc_os *os, void *address, size_t size)
{
    int saved = errno;
    os->unmap(os->ctx, address, size);
    errno = saved;
}

void *ta_os_remap(const TAlloc_os *os, void *address, size_t old_size, size_t new_size)
{
    int saved = errno;
    void *p = os->remap ? os->remap(os->ctx, address, old_size, new_size) : NULL;
    errno = saved;
    return p;
}

bool ta_os_protect(const TAlloc_os *os, void *address, size_t size)
{
    int saved = errno;
    bool ok = os->protect && os->protect(os->ctx, address, size) == 0;
    errno = saved;
    return ok;
}

bool ta_os_purge(const TAlloc_os *os, void *address, size_t size)
{
    int saved = errno;
    bool ok = os->purge && os->purge(os->ctx, address, size) == 0;
    errno = saved;
    return ok;
}

void *ta_os_map_metadata(const TAlloc_os *os, size_t size)
{
    int saved = errno;
    void *p = os->map_metadata && os->unmap_metadata ? os->map_metadata(os->ctx, size)
                                                     : os->map(os->ctx, size);
    errno = saved;
    return p;
}

void ta_os_unmap_metadata(const TAlloc_os *os, void *address, size_t size)
{
    int saved = errno;
    if (os->map_metadata && os->unmap_metadata)
        os->unmap_metadata(os->ctx, address, size);
    else
        os->unmap(os->ctx, address, size);
    errno = saved;
}

size_t ta_os_page_size(void)
{
    static atomic_size_t cached;
    size_t page = atomic_load_explicit(&cached, memory_order_relaxed);
    if (page == 0) {
        long n = sysconf(_SC_PAGESIZE);
        page = n > 0 ? (size_t)n : 4096;
        atomic_store_explicit(&cached, page, memory_order_relaxed);
    }
    return page;
}

size_t TAlloc_page_size(void)
{
    return ta_os_page_size();
}

/* A key for check values. getrandom does not allocate; without it, fall back on addresses
   that ASLR randomises. errno is left as it was. */
uint64_t ta_os_random_secret(void)
{
    int saved = errno;
    uint64_t secret = 0;
    if (getrandom(&secret, sizeof secret, GRND_NONBLOCK) != (ssize_t)sizeof secret)
        secret = (uint64_t)(uintptr_t)&secret * 0x9E3779B97F4A7C15u ^ (uint64_t)(uintptr_t)&os_map;
    errno = saved;
    return secret | 1;
}
