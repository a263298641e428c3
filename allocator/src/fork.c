/*
 * fork.c - every live heap is on one registry, so that fork() can take every allocator lock
 * in a fixed order (the registry's, then each heap's in registry order) before the process is
 * copied. The parent releases them afterwards; the child, where the threads that may have
 * held them no longer exist, initialises them afresh and can allocate at once.
 *
 * The child also draws a new secret for every heap whose config.fork_rekey is set, so that
 * forked workers do not share the keys of their headers, links and canaries; the heap is
 * re-keyed when the child first calls into it, not in the handler: a child that only execs
 * writes no page of the heap, and copy-on-write keeps sharing it.
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

/* Re-keys one chunk that was valid under `old`: its check value, and its links (free) or
   its canary (allocated; damaged canary bytes stay damaged). */
static void rekey_chunk(ta_heap *heap, ta_chunk *c, uint64_t old, uint64_t fresh)
{
    uint64_t flags = c->size_word & TA_FLAG_MASK;
    bool is_block = ta_chunk_size(c) != 0 && !(flags & (TA_FREE | TA_QUARANTINED));
    ta_chunk *next = NULL, *prev = NULL;
    if (flags & TA_FREE) {
        next = ta_link_get(heap, &c->next_link);
        prev = ta_link_get(heap, &c->prev_link);
    } else if (is_block && heap->config.canary) {
        ta_canary_rekey(c, old, fresh);
    }
    heap->secret = fresh;
    ta_chunk_seal(heap, c); /* the header only: a damaged boundary tag stays damaged */
    if (flags & TA_FREE) {
        ta_link_set(heap, &c->next_link, next);
        ta_link_set(heap, &c->prev_link, prev);
    }
    heap->secret = old;
}

/*
 * A header, arena check or link that fails under the old secret is left as it is: it fails
 * under the new one too and is reported when met, never laundered into a valid one. A
 * damaged header ends the arena's walk (what follows it cannot be found).
 */
void ta_heap_rekey(ta_heap *heap)
{
    uint64_t old = heap->secret, fresh = ta_os_random_secret();
    for (ta_arena *a = heap->arena_first; a; a = a->next) {
        if (!ta_arena_is_sealed(heap, a))
            continue;
        ta_chunk *fence = ta_arena_fence(a);
        for (ta_chunk *c = ta_arena_first_chunk(a); c <= fence;) {
            bool is_fence = c == fence;
            if (is_fence ? !ta_chunk_is_sealed(heap, c) : !ta_chunk_is_valid(heap, c))
                break;
            ta_chunk *after = ta_chunk_next(c);
            rekey_chunk(heap, c, old, fresh);
            if (is_fence)
                break;
            c = after;
        }
        heap->secret = fresh;
        ta_arena_seal(heap, a);
        heap->secret = old;
    }
    heap->secret = fresh;
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}
