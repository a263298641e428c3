/*
 * enter.h - entering and leaving a heap: the recursion guard, the lock, the sanitizers'
 * view. The common case (a thread outside every heap, one thread in the process, no re-key
 * pending) is inline; every other case takes heap.c's slow path.
 *
 * The calls that run no code but TAlloc's (allocate, free, realloc, usable size) skip the
 * mutex while the process has one thread: no other thread exists to take it, and one can only
 * be created between such calls (pthread_create then orders them). Calls that run user
 * callbacks under the lock (walk, check) always take it (ta_heap_lock).
 */
#ifndef TALLOC_ENTER_H
#define TALLOC_ENTER_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "track.h"

#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define TA_HAS_SINGLE_THREADED 1
#endif
#endif
#ifndef TA_HAS_SINGLE_THREADED
#define TA_HAS_SINGLE_THREADED 0
#endif

static inline bool ta_is_single_threaded(void)
{
#if TA_HAS_SINGLE_THREADED
    return __libc_single_threaded;
#else
    return false;
#endif
}

/* The heaps this thread is inside, innermost last (a walk callback may use another heap).
   A heap is entered before its lock is taken and left after it is released, so a signal
   handler that interrupts the thread anywhere in between sees it. Initial-exec TLS in the
   malloc library: no allocation on a thread's first access. */
enum { TA_MAX_NESTING = 4 };
typedef struct ta_thread_state {
    unsigned depth;
    const ta_heap *inside[TA_MAX_NESTING];
} ta_thread_state;
extern TA_HIDDEN _Thread_local ta_thread_state ta_thread;

TA_HIDDEN int ta_heap_enter_slow(ta_heap *heap);

/* The common case: the thread is in no heap, the process has one thread, no re-key is due. */
static inline bool ta_heap_is_alone(const ta_heap *heap)
{
    return __builtin_expect(ta_thread.depth == 0 && ta_is_single_threaded() &&
                                !heap->is_rekey_pending, 1);
}

/* Enters `heap` in the common case (ta_heap_is_alone); leave with TA_SINGLE_THREADED. */
static inline void ta_heap_enter_alone(ta_heap *heap)
{
    ta_thread.inside[0] = heap;
    atomic_signal_fence(memory_order_seq_cst);
    ta_thread.depth = 1;
    atomic_signal_fence(memory_order_seq_cst); /* entered before the heap is touched */
    ta_track_enter();
}

static inline int ta_heap_enter(ta_heap *heap)
{
    if (!ta_heap_is_alone(heap))
        return ta_heap_enter_slow(heap);
    ta_heap_enter_alone(heap);
    return TA_SINGLE_THREADED;
}

static inline void ta_heap_leave(ta_heap *heap, int mode)
{
    ta_track_leave();
    if (mode == TA_LOCKED)
        pthread_mutex_unlock(&heap->lock);
    atomic_signal_fence(memory_order_seq_cst); /* left after the lock is released */
    ta_thread.depth--;
}

#endif /* TALLOC_ENTER_H */
