/*
 * default_heap.c - the process-wide heap behind the TAlloc_* calls. It lives in static
 * storage (creating it allocates nothing) and is initialised on first use, with the
 * configuration TALLOC_OPTIONS gives (options.c); calls that race on the first use wait for
 * the one that won to finish.
 */
#include <sched.h>
#include <stdatomic.h>

#include "internal.h"

enum { UNINITIALISED, INITIALISING, READY };

static ta_heap default_heap;
static atomic_int default_state = UNINITIALISED;

__attribute__((noinline, cold)) static ta_heap *initialise_slow(void)
{
    int expected = UNINITIALISED;
    if (atomic_compare_exchange_strong_explicit(&default_state, &expected, INITIALISING,
                                                memory_order_acquire, memory_order_acquire)) {
        TAlloc_config config;
        ta_options_load(&config);
        if (!ta_heap_setup(&default_heap, &config))
            ta_heap_setup(&default_heap, NULL);
        default_heap.is_default = true;
        ta_registry_add(&default_heap);
        ta_options_announce(&default_heap);
        atomic_store_explicit(&default_state, READY, memory_order_release);
    }
    while (atomic_load_explicit(&default_state, memory_order_acquire) != READY)
        sched_yield();
    return &default_heap;
}

ta_heap *ta_default_heap(void)
{
    if (atomic_load_explicit(&default_state, memory_order_acquire) == READY)
        return &default_heap;
    return initialise_slow();
}

TAlloc_heap *TAlloc_default_heap(void)
{
    return ta_default_heap();
}
