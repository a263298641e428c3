/*
 * test_fork.c - fork while four threads allocate on the default heap and on two explicit
 * heaps through the TAlloc_* calls: every child can allocate at once on every heap (a new
 * arena included), its heaps pass the check, and it exits; a child stuck on a lock copied
 * held is killed after 10 s and reported as a deadlock. The driver is shared with the
 * C-library-names form, tests/malloc/test_malloc_fork.c.
 *
 * The explicit heaps have 64 KiB arenas, so arenas are mapped and released all the time
 * while the process is copied; one runs first fit, the other best fit.
 */
#include <stdint.h>
#include <stdio.h>

#include "talloc.h"
#include "testutil.h"

#define FORK_HEAPS 3

static TAlloc_heap *heaps[FORK_HEAPS]; /* [0] is the default heap */

static void *fork_alloc(int heap, size_t size)
{
    return heap == 0 ? TAlloc_malloc(size) : TAlloc_heap_malloc(heaps[heap], size);
}

static void fork_free(int heap, void *p)
{
    if (heap == 0)
        TAlloc_free(p);
    else
        TAlloc_heap_free(heaps[heap], p);
}

static void *fork_realloc(int heap, void *p, size_t size)
{
    return heap == 0 ? TAlloc_realloc(p, size) : TAlloc_heap_realloc(heaps[heap], p, size);
}

static size_t fork_check(void)
{
    size_t violations = 0;
    for (int i = 0; i < FORK_HEAPS; i++)
        violations += TAlloc_heap_check(heaps[i], NULL, NULL);
    return violations;
}

static uint64_t fork_maps(void)
{
    uint64_t maps = 0;
    for (int i = 0; i < FORK_HEAPS; i++) {
        TAlloc_stats s;
        TAlloc_heap_get_stats(heaps[i], &s);
        maps += s.map_count + s.event_count[TALLOC_EVENT_LARGE_REUSED];
    }
    return maps;
}

#include "malloc/fork_driver.h"

int main(void)
{
    heaps[0] = TAlloc_default_heap();
    for (int i = 1; i < FORK_HEAPS; i++) {
        TAlloc_config config;
        TAlloc_config_init(&config);
        config.arena_size = 64 * 1024;
        config.policy = i == 1 ? TALLOC_POLICY_FIRST_FIT : TALLOC_POLICY_BEST_FIT;
        heaps[i] = TAlloc_heap_create(&config);
        if (!EXPECT(heaps[i] != NULL, "TAlloc_heap_create failed"))
            return test_summary("test_fork");
    }
    fork_run("test_fork");
    for (int i = 1; i < FORK_HEAPS; i++) {
        TAlloc_stats s;
        TAlloc_heap_get_stats(heaps[i], &s);
        EXPECT(s.allocated_count == 0, "explicit heap %d drained: %zu blocks left", i,
               s.allocated_count);
        TAlloc_heap_destroy(heaps[i]);
    }
    return test_summary("test_fork");
}
