/*
 * test_threads - four threads, a million mixed operations each (argv[1] overrides the count),
 * on the default heap and on one shared explicit heap at once. Every block is filled with a
 * byte pattern when allocated and verified before it is reallocated or freed; a quarter of
 * the blocks are handed to another thread through an exchange array and freed there. At the
 * end every block is freed and both heaps must pass the check with nothing left allocated.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "testutil.h"

enum { THREAD_COUNT = 4, SLOT_COUNT = 64, EXCHANGE_COUNT = 64 };

typedef struct block {
    TAlloc_heap *heap;
    unsigned char *ptr;
    size_t size;
    unsigned char fill;
} block;

typedef struct worker {
    int index;
    long op_count;
    uint64_t rng;
    block slots[SLOT_COUNT];
    long corrupt_count;
    long null_count;
} worker;

static TAlloc_heap *shared_heap;
static _Atomic(block *) exchange[EXCHANGE_COUNT];

static uint64_t next_random(worker *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Du;
}

static size_t pick_size(worker *w)
{
    uint64_t r = next_random(w);
    switch (r % 16) {
    case 0: return (size_t)(r >> 8) % 16384;           /* medium */
    case 1: return r % 64 == 1 ? 65536 + (size_t)(r >> 20) % 200000 : 0; /* large, or zero */
    default: return (size_t)(r >> 8) % 512;             /* small */
    }
}

static void fill(block *b)
{
    memset(b->ptr, b->fill, b->size);
}

static int verify(const block *b)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->ptr[i] != b->fill)
            return 0;
    return 1;
}

static void *allocate(worker *w, TAlloc_heap *heap, size_t size)
{
    switch (next_random(w) % 5) {
    case 0: return TAlloc_heap_calloc(heap, 1, size);
    case 1: return TAlloc_heap_aligned_alloc(heap, (size_t)64 << (next_random(w) % 7), size);
    case 2: {
        void *p = NULL;
        return TAlloc_heap_posix_memalign(heap, &p, 32, size) == 0 ? p : NULL;
    }
    default: return TAlloc_heap_malloc(heap, size);
    }
}

static void release(worker *w, block *b)
{
    if (!verify(b))
        w->corrupt_count++;
    TAlloc_heap_free(b->heap, b->ptr);
    b->ptr = NULL;
}

/* Gives `b` to whichever thread takes this exchange slot next, in a descriptor that is
   itself allocated from the default heap; frees what was there. */
static void hand_over(worker *w, block *b)
{
    size_t i = next_random(w) % EXCHANGE_COUNT;
    block *parcel = TAlloc_malloc(sizeof *parcel);
    if (parcel == NULL) {
        w->null_count++;
        release(w, b);
        return;
    }
    *parcel = *b;
    b->ptr = NULL;
    block *old = atomic_exchange(&exchange[i], parcel);
    if (old) {
        release(w, old);
        TAlloc_free(old);
    }
}

static void operate(worker *w, block *b)
{
    if (b->ptr == NULL) {
        b->heap = next_random(w) % 2 ? shared_heap : TAlloc_default_heap();
        b->size = pick_size(w);
        b->fill = (unsigned char)next_random(w);
        b->ptr = allocate(w, b->heap, b->size);
        if (b->ptr == NULL)
            w->null_count++;
        else
            fill(b);
        return;
    }
    uint64_t r = next_random(w) % 8;
    if (r < 2) {
        if (!verify(b))
            w->corrupt_count++;
        size_t size = pick_size(w) + 1;
        unsigned char *p = TAlloc_heap_realloc(b->heap, b->ptr, size);
        if (p == NULL) {
            w->null_count++;
            return;
        }
        b->ptr = p;
        b->size = size;
        fill(b);
    } else if (r == 2 && b->ptr) {
        hand_over(w, b);
    } else {
        release(w, b);
    }
}

static void *run(void *arg)
{
    worker *w = arg;
    w->rng = 0x9E3779B97F4A7C15u * (uint64_t)(w->index + 1);
    for (long op = 0; op < w->op_count; op++)
        operate(w, &w->slots[next_random(w) % SLOT_COUNT]);
    for (int i = 0; i < SLOT_COUNT; i++)
        if (w->slots[i].ptr)
            release(w, &w->slots[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    long op_count = argc > 1 ? atol(argv[1]) : 1000000;
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = 1 << 20;
    shared_heap = TAlloc_heap_create(&config);
    EXPECT(shared_heap != NULL, "heap created");

    static worker workers[THREAD_COUNT];
    pthread_t threads[THREAD_COUNT];
    for (int i = 0; i < THREAD_COUNT; i++) {
        workers[i] = (worker){.index = i, .op_count = op_count};
        EXPECT(pthread_create(&threads[i], NULL, run, &workers[i]) == 0, "thread %d", i);
    }
    for (int i = 0; i < THREAD_COUNT; i++)
        pthread_join(threads[i], NULL);

    worker cleaner = {.index = 0};
    for (int i = 0; i < EXCHANGE_COUNT; i++) {
        block *b = atomic_exchange(&exchange[i], NULL);
        if (b) {
            release(&cleaner, b);
            TAlloc_free(b);
        }
    }
    long corrupt = cleaner.corrupt_count, nulls = 0;
    for (int i = 0; i < THREAD_COUNT; i++) {
        corrupt += workers[i].corrupt_count;
        nulls += workers[i].null_count;
    }
    EXPECT(corrupt == 0, "%ld blocks lost their fill pattern", corrupt);
    EXPECT(nulls == 0, "%ld allocations failed", nulls);

    EXPECT_HEAP_OK(shared_heap, "shared heap after the run");
    EXPECT_HEAP_OK(TAlloc_default_heap(), "default heap after the run");
    TAlloc_stats s;
    TAlloc_heap_get_stats(shared_heap, &s);
    EXPECT(s.allocated_count == 0 && s.allocated_bytes == 0, "shared heap drained: %zu left",
           s.allocated_count);
    TAlloc_heap_flush(shared_heap); /* the quick lists' blocks merge, emptying the arenas */
    TAlloc_heap_get_stats(shared_heap, &s);
    EXPECT(s.arena_count <= 1, "at most the retained arena stays: %zu", s.arena_count);
    TAlloc_get_stats(&s);
    EXPECT(s.allocated_count == 0, "default heap drained: %zu left", s.allocated_count);
    printf("ops: %ld per thread x %d threads; merges %llu, splits %llu, realloc moved %llu\n",
           op_count, THREAD_COUNT,
           (unsigned long long)s.event_count[TALLOC_EVENT_MERGE_BOTH],
           (unsigned long long)s.event_count[TALLOC_EVENT_SPLIT],
           (unsigned long long)s.event_count[TALLOC_EVENT_REALLOC_MOVED]);
    TAlloc_heap_destroy(shared_heap);
    return test_summary("test_threads");
}
