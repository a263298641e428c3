/* A single-producer single-consumer ring of pointers (C11 atomics), how the threaded
 * workloads hand blocks from the thread that allocated them to the thread that frees them.
 * A full or empty ring makes the waiting side yield the processor. */
#ifndef BENCH_RING_H
#define BENCH_RING_H

#include "bench.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#define RING_SIZE 1024 /* a power of two */

typedef struct {
    _Alignas(64) atomic_size_t head; /* next slot to pop; written by the consumer */
    _Alignas(64) atomic_size_t tail; /* next slot to push; written by the producer */
    _Alignas(64) void *slot[RING_SIZE];
} ring;

static inline void ring_init(ring *r)
{
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
}

static inline bool ring_try_push(ring *r, void *p)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - atomic_load_explicit(&r->head, memory_order_acquire) == RING_SIZE)
        return false;
    r->slot[tail & (RING_SIZE - 1)] = p;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

static inline void *ring_try_pop(ring *r)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (atomic_load_explicit(&r->tail, memory_order_acquire) == head)
        return NULL;
    void *p = r->slot[head & (RING_SIZE - 1)];
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return p;
}

static inline void ring_push(ring *r, void *p)
{
    while (!ring_try_push(r, p))
        sched_yield();
}

static inline void *ring_pop(ring *r)
{
    void *p;
    while ((p = ring_try_pop(r)) == NULL)
        sched_yield();
    return p;
}

/* A message handed between threads: its size and a tag at the start, a byte at the end. */
typedef struct {
    uint32_t size; /* at least sizeof(message) + 1 */
    uint32_t tag;
} message;

static inline message *message_new(size_t size, uint32_t tag)
{
    message *m = bench_malloc(size);
    m->size = (uint32_t)size;
    m->tag = tag;
    ((unsigned char *)m)[size - 1] = (unsigned char)(tag ^ size);
    return m;
}

/* Reads the message back and frees it. */
static inline uint64_t message_free(message *m)
{
    uint64_t sum = (uint64_t)m->size + m->tag + ((unsigned char *)m)[m->size - 1];
    free(m);
    return sum;
}

#endif
