/*
 * os.c - the OS layer: the only file that maps memory, asks for the page size or draws
 * randomness. Heaps reach the OS through a TAlloc_os table (talloc.h), so tests can swap in
 * functions that fail on purpose; this file provides the default table.
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

/* Pages for the allocator's own scratch text (debug print), outside any heap's OS table. */
void *ta_os_scratch_map(size_t size)
{
    int saved = errno;
    void *p = os_map(NULL, size);
    errno = saved;
    return p;
}

void ta_os_scratch_unmap(void *address, size_t size)
{
    os_unmap(NULL, address, size);
}

/* Makes pages inaccessible (guard pages); false if the OS refuses. */
bool ta_os_protect_none(void *address, size_t size)
{
    int saved = errno;
    bool ok = mprotect(address, size, PROT_NONE) == 0;
    errno = saved;
    return ok;
}

static const TAlloc_os default_os = {os_map, os_unmap, NULL};

const TAlloc_os *TAlloc_os_default(void)
{
    return &default_os;
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
