/*
 * fork_driver.h - fork while other threads allocate: the body of test_fork (TAlloc_* calls,
 * default heap plus an explicit heap) and test_malloc_fork (the C library's names).
 *
 * FORK_THREADS threads allocate, free and resize blocks of varied sizes on every heap the
 * including file names, without pause, while the main thread forks FORK_COUNT times. Each
 * child allocates a few hundred blocks on every heap - one of them needs a new arena -,
 * verifies and frees them, runs the heap check and leaves with _exit. A child that has not
 * left within FORK_DEADLINE_S seconds is killed and reported as a deadlock: a lock copied
 * held into the child (fork.c's handlers take every heap lock around fork so none is).
 *
 * The including file defines, before including this header:
 *   FORK_HEAPS                              how many heaps the calls below reach (0..)
 *   static void *fork_alloc(int heap, size_t size);
 *   static void fork_free(int heap, void *p);
 *   static void *fork_realloc(int heap, void *p, size_t size);
 *   static size_t fork_check(void);         violations over every heap
 *   static uint64_t fork_maps(void);        arenas mapped (or made from a kept large
 *                                           mapping) so far over every heap
 */
#ifndef TALLOC_FORK_DRIVER_H
#define TALLOC_FORK_DRIVER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#ifndef FORK_COUNT
#define FORK_COUNT 200
#endif
#define FORK_THREADS 4
#define FORK_SLOTS 64
#define FORK_CHILD_BLOCKS 300
#define FORK_DEADLINE_S 10
#define FORK_LARGE_SIZE ((size_t)20 * 1000 * 1000) /* the threads' largest: above an arena */
#define FORK_NEW_ARENA_SIZE ((size_t)48 * 1000 * 1000) /* no free chunk can hold it */

/* How a child ended (its exit status). */
enum {
    FORK_CHILD_OK = 0,
    FORK_CHILD_NO_MEMORY = 10,  /* an allocation failed */
    FORK_CHILD_CORRUPTED = 11,  /* a block lost its contents */
    FORK_CHILD_CHECK = 12,      /* the heap check found violations */
    FORK_CHILD_NO_MAP = 13,     /* the block that needs a new arena got none */
};

typedef struct fork_block {
    unsigned char *p;
    size_t size;
    int heap;
    unsigned seed;
} fork_block;

typedef struct fork_worker {
    pthread_t thread;
    unsigned index;
    uint64_t ops;
    int failures; /* allocation failures or damaged contents seen */
} fork_worker;

static atomic_int fork_stop;

static uint64_t fork_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Mostly small, sometimes up to 64 KiB, rarely 1 MiB or a block above the arena size. */
static size_t fork_size(uint64_t *state)
{
    uint64_t r = fork_rand(state);
    switch (r % 64) {
    case 0:
        return (size_t)(r >> 8) % (1 << 20) + 1;
    case 1:
        return (r >> 8) % 16 == 0 ? FORK_LARGE_SIZE : 70000;
    case 2: case 3: case 4: case 5: case 6: case 7:
        return (size_t)(r >> 8) % 65536 + 1;
    default:
        return (size_t)(r >> 8) % 2048;
    }
}

/* The first and last 32 bytes of a block carry a pattern of its seed, so damage and lost
   contents show. */
static unsigned char fork_byte(const fork_block *b, size_t i)
{
    return (unsigned char)(b->seed + i * 7);
}

static void fork_fill(fork_block *b)
{
    for (size_t i = 0; i < b->size && i < 32; i++)
        b->p[i] = fork_byte(b, i);
    for (size_t i = b->size > 32 ? b->size - 32 : 0; i < b->size; i++)
        b->p[i] = fork_byte(b, i);
}

/* 1 when the pattern is intact in the first `keep` bytes (a resize keeps no more). */
static int fork_intact(const fork_block *b, size_t keep)
{
    if (keep > b->size)
        keep = b->size;
    for (size_t i = 0; i < keep && i < 32; i++)
        if (b->p[i] != fork_byte(b, i))
            return 0;
    for (size_t i = b->size > 32 ? b->size - 32 : 0; i < keep; i++)
        if (b->p[i] != fork_byte(b, i))
            return 0;
    return 1;
}

static int fork_new_block(fork_block *b, int heap, size_t size, unsigned seed)
{
    b->p = fork_alloc(heap, size);
    b->size = size;
    b->heap = heap;
    b->seed = seed;
    if (b->p == NULL)
        return 0;
    fork_fill(b);
    return 1;
}

static void *fork_worker_main(void *arg)
{
    fork_worker *w = arg;
    fork_block slots[FORK_SLOTS];
    memset(slots, 0, sizeof slots);
    uint64_t state = 0x9E3779B97F4A7C15u * (w->index + 1);
    while (!atomic_load_explicit(&fork_stop, memory_order_relaxed)) {
        uint64_t r = fork_rand(&state);
        fork_block *b = &slots[r % FORK_SLOTS];
        w->ops++;
        if (b->p == NULL) {
            int heap = FORK_HEAPS > 1 ? (int)((r >> 32) % FORK_HEAPS) : 0;
            w->failures += !fork_new_block(b, heap, fork_size(&state), (unsigned)(r >> 16));
        } else if ((r >> 40) % 3 == 0) {
            size_t size = fork_size(&state);
            unsigned char *q = fork_realloc(b->heap, b->p, size);
            if (q == NULL && size > 0) {
                w->failures++;
                continue;
            }
            b->p = q;
            w->failures += !fork_intact(b, size);
            b->size = size;
            if (q)
                fork_fill(b);
        } else {
            w->failures += !fork_intact(b, b->size);
            fork_free(b->heap, b->p);
            b->p = NULL;
        }
    }
    for (int i = 0; i < FORK_SLOTS; i++) {
        if (slots[i].p) {
            w->failures += !fork_intact(&slots[i], slots[i].size);
            fork_free(slots[i].heap, slots[i].p);
        }
    }
    return NULL;
}

/* The child: a few hundred blocks on every heap, one needing a new arena; all verified and
   freed; the heap check. Only the allocator and write-free calls: no stdio here. */
static void fork_child(unsigned round)
{
    static fork_block blocks[FORK_CHILD_BLOCKS + 1];
    uint64_t state = 0xC2B2AE3D27D4EB4Fu ^ round;
    uint64_t maps = fork_maps();
    for (int i = 0; i < FORK_CHILD_BLOCKS; i++) {
        int heap = FORK_HEAPS > 1 ? i % FORK_HEAPS : 0;
        size_t size = (size_t)(fork_rand(&state) % 4096);
        if (!fork_new_block(&blocks[i], heap, size, (unsigned)i * 2654435761u))
            _exit(FORK_CHILD_NO_MEMORY);
    }
    if (!fork_new_block(&blocks[FORK_CHILD_BLOCKS], 0, FORK_NEW_ARENA_SIZE, round))
        _exit(FORK_CHILD_NO_MEMORY);
    if (fork_maps() <= maps)
        _exit(FORK_CHILD_NO_MAP);
    for (int i = 0; i < FORK_CHILD_BLOCKS; i += 3) {
        size_t size = blocks[i].size * 2 + 100;
        unsigned char *q = fork_realloc(blocks[i].heap, blocks[i].p, size);
        if (q == NULL)
            _exit(FORK_CHILD_NO_MEMORY);
        blocks[i].p = q;
        if (!fork_intact(&blocks[i], size))
            _exit(FORK_CHILD_CORRUPTED);
        blocks[i].size = size;
        fork_fill(&blocks[i]);
    }
    if (fork_check() != 0)
        _exit(FORK_CHILD_CHECK);
    for (int i = 0; i <= FORK_CHILD_BLOCKS; i++) {
        if (!fork_intact(&blocks[i], blocks[i].size))
            _exit(FORK_CHILD_CORRUPTED);
        fork_free(blocks[i].heap, blocks[i].p);
    }
    _exit(fork_check() == 0 ? FORK_CHILD_OK : FORK_CHILD_CHECK);
}

static double fork_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits for `pid` up to FORK_DEADLINE_S seconds; kills it after that. Returns its status,
   or -1 when it had to be killed. */
static int fork_wait(pid_t pid)
{
    double deadline = fork_now() + FORK_DEADLINE_S;
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return status;
        if (got < 0)
            return -2;
        if (fork_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
}

/* The whole test: threads, forks, children checked, threads stopped and their work checked. */
static void fork_run(const char *name)
{
    fork_worker workers[FORK_THREADS];
    atomic_store(&fork_stop, 0);
    for (unsigned i = 0; i < FORK_THREADS; i++) {
        workers[i] = (fork_worker){.index = i};
        if (pthread_create(&workers[i].thread, NULL, fork_worker_main, &workers[i]) != 0) {
            EXPECT(0, "%s: pthread_create failed", name);
            exit(test_summary(name));
        }
    }
    int forks = 0, good = 0;
    for (unsigned round = 0; round < FORK_COUNT; round++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            fork_child(round);
        if (!EXPECT(pid > 0, "%s: fork failed: %s", name, strerror(errno)))
            break;
        forks++;
        int status = fork_wait(pid);
        if (status == -1) {
            EXPECT(0, "%s: deadlock: child %u did not exit within %d s (killed)", name, round,
                   FORK_DEADLINE_S);
            break;
        }
        int ok = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == FORK_CHILD_OK;
        if (!ok) {
            EXPECT(0, "%s: child %u: %s %d (10 no memory, 11 corrupted, 12 check, 13 no map)",
                   name, round, status < 0 ? "waitpid failed" : WIFSIGNALED(status) ? "signal"
                                                                                  : "exit",
                   status < 0 ? status : WIFSIGNALED(status) ? WTERMSIG(status)
                                                            : WEXITSTATUS(status));
            break;
        }
        good++;
    }
    atomic_store(&fork_stop, 1);
    uint64_t ops = 0;
    int failures = 0;
    for (unsigned i = 0; i < FORK_THREADS; i++) {
        pthread_join(workers[i].thread, NULL);
        ops += workers[i].ops;
        failures += workers[i].failures;
    }
    EXPECT(good == FORK_COUNT, "%s: %d of %d children exited cleanly", name, good, forks);
    EXPECT(failures == 0, "%s: %d allocation failures or damaged blocks in the threads", name,
           failures);
    EXPECT(ops > 0, "%s: the threads ran", name);
    EXPECT(fork_check() == 0, "%s: heap check in the parent", name);
    printf("%s: %d forks while %d threads made %llu calls\n", name, forks, FORK_THREADS,
           (unsigned long long)ops);
}

#endif /* TALLOC_FORK_DRIVER_H */
