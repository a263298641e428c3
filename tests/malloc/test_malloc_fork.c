/*
 * test_malloc_fork.c - fork while four threads call malloc, free and realloc of
 * libtallocator-malloc: each child allocates a few hundred blocks (one in a new arena) with
 * the C library's names, passes TAlloc's heap check and exits; a child stuck on an allocator
 * lock copied held is killed after 10 s and reported as a deadlock. The driver is shared
 * with the TAlloc_* form, tests/test_fork.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "malloc_test.h"

#define FORK_HEAPS 1

static void *fork_alloc(int heap, size_t size)
{
    (void)heap;
    return malloc(size);
}

static void fork_free(int heap, void *p)
{
    (void)heap;
    free(p);
}

static void *fork_realloc(int heap, void *p, size_t size)
{
    (void)heap;
    return realloc(p, size);
}

static size_t fork_check(void)
{
    return TAlloc_check(NULL, NULL);
}

static uint64_t fork_maps(void)
{
    TAlloc_stats s;
    TAlloc_get_stats(&s);
    return s.map_count + s.event_count[TALLOC_EVENT_LARGE_REUSED];
}

#include "fork_driver.h"

int main(void)
{
    /* the blocks are TAlloc's: the driver's heap check and arena count speak of them */
    void *probe = malloc(100);
    EXPECT(mt_talloc_state(probe) == 1, "malloc is TAlloc's");
    free(probe);
    fork_run("test_malloc_fork");
    return test_summary("test_malloc_fork");
}
