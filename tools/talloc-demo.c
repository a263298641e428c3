/*
 * talloc-demo - a tour of TAlloc on the default heap: allocations of every kind, frees that
 * merge, a realloc chain, then the heap as TAlloc_debug_print shows it, the event counters,
 * and the result of the invariant check. Exit status 0 when the check finds nothing.
 */
#include <stdio.h>
#include <string.h>

#include "talloc.h"

static void print_stats(void)
{
    TAlloc_stats s;
    TAlloc_get_stats(&s);
    printf("stats: %zu allocated chunks (%zu bytes), %zu free chunks (%zu bytes), "
           "%zu arenas (%zu bytes mapped), %llu maps, %llu unmaps\n",
           s.allocated_count, s.allocated_bytes, s.free_count, s.free_bytes, s.arena_count,
           s.mapped_bytes, (unsigned long long)s.map_count, (unsigned long long)s.unmap_count);
    printf("events:");
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++)
        printf(" %s=%llu", TAlloc_event_name((TAlloc_event)e),
               (unsigned long long)s.event_count[e]);
    printf("\n");
}

static void report(void *ctx, int invariant, const void *address, const char *detail)
{
    (void)ctx;
    printf("violation: I%d at %p: %s\n", invariant, address, detail);
}

int main(void)
{
    char *small[8];
    for (int i = 0; i < 8; i++) {
        small[i] = TAlloc_malloc((size_t)(i + 1) * 24);
        memset(small[i], 'a' + i, (size_t)(i + 1) * 24);
    }
    TAlloc_free(small[1]);
    TAlloc_free(small[3]);
    TAlloc_free(small[2]); /* merges with both neighbours */

    int *numbers = TAlloc_calloc(1000, sizeof *numbers);
    numbers = TAlloc_realloc(numbers, 4000 * sizeof *numbers);
    void *page = TAlloc_aligned_alloc(4096, 100);
    void *big = TAlloc_malloc(20u * 1000 * 1000); /* too large for a standard arena */

    printf("== heap after the allocations ==\n");
    TAlloc_debug_print();
    print_stats();

    TAlloc_free(big);
    TAlloc_free(page);
    TAlloc_free(numbers);
    for (int i = 0; i < 8; i++)
        if (i < 1 || i > 3)
            TAlloc_free(small[i]);

    printf("== heap after freeing everything ==\n");
    TAlloc_debug_print();
    print_stats();
    size_t violations = TAlloc_check(report, NULL);
    printf("check: %zu violations\n", violations);
    return violations == 0 ? 0 : 1;
}
