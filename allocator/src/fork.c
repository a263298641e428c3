/*
 * fork.c - every live heap is on one registry, so that fork() can take every allocator lock
 * in a fixed order (the registry's, then each heap's in registry order) before the process is
 * copied. The parent releases them afterwards; the child, where the threads that may have
 * held them no longer exist, initialises them afresh and can allocate at once.
 *
 * The child also marks every heap whose config.fork_rekey is set, so that forked workers do
 * not share the keys of their headers, links and canaries: the heap is re-keyed
 * (hardening.c) when the child first calls into it, not in the handler: a child that only
 * execs writes no page of the heap, and copy-on-write keeps sharing it.
 *
 * The handlers are registered by a constructor rather than on the first allocation:
 * pthread_atfork may allocate, and the first allocation may come from the C library or the
 * dynamic loader before any constructor runs.
 */
#include <pthread.h>

#include "internal.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ta_heap *registry_first;

void ta_registry_add(ta_heap *heap)
{
    pthread_mutex_lock(&registry_lock);
    heap->registry_prev = NULL;
    heap->registry_next = registry_first;
    if (registry_first)
        registry_first->registry_prev = heap;
    registry_first = heap;
    pthread_mutex_unlock(&registry_lock);
}

void ta_registry_remove(ta_heap *heap)
{
    pthread_mutex_lock(&registry_lock);
    if (heap->registry_prev)
        heap->registry_prev->registry_next = heap->registry_next;
    else
        registry_first = heap->registry_next;
    if (heap->registry_next)
        heap->registry_next->registry_prev = heap->registry_prev;
    pthread_mutex_unlock(&registry_lock);
}

static void before_fork(void)
{
    (void)ta_default_heap(); /* not half-created while the process is copied */
    pthread_mutex_lock(&registry_lock);
    for (ta_heap *h = registry_first; h; h = h->registry_next)
        pthread_mutex_lock(&h->lock);
}

static void after_fork_parent(void)
{
    for (ta_heap *h = registry_first; h; h = h->registry_next)
        pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&registry_lock);
}

static void after_fork_child(void)
{
    for (ta_heap *h = registry_first; h; h = h->registry_next) {
        pthread_mutex_init(&h->lock, NULL);
        h->is_rekey_pending = h->config.fork_rekey != 0;
    }
    pthread_mutex_init(&registry_lock, NULL);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}
