/*
 * test_reentry.c - a thread that re-enters a heap it is already inside gets the report
 * "talloc: recursive call <heap>" instead of a deadlock on the heap's lock:
 *   - a signal handler that interrupted an allocation and allocates itself, made
 *     deterministic by an OS layer that raises the signal while the heap maps an arena;
 *   - a walk callback that allocates from the heap it walks;
 *   - the default heap under a storm of timer signals whose handler allocates;
 *   - with an error handler, the inner call fails (NULL, errno EDEADLK), the outer one
 *     completes, and the heap is consistent.
 * Every case runs in a forked child with a watchdog, so a deadlock fails instead of hanging.
 */
#include <sys/mman.h>
#include <sys/time.h>

#include "testutil.h"

enum { WATCHDOG_SECONDS = 20 };

static TAlloc_heap *signal_heap;    /* the heap the signal handler allocates from */
static void *inner_result = (void *)1;
static int inner_errno;

static void allocate_in_handler(int signo)
{
    (void)signo;
    int saved = errno;
    inner_result = signal_heap ? TAlloc_heap_malloc(signal_heap, 32) : TAlloc_malloc(32);
    inner_errno = errno;
    errno = saved;
}

/* An OS layer that raises SIGUSR1 from inside the heap (holding its lock) before mapping. */
static void *raising_map(void *ctx, size_t size)
{
    (void)ctx;
    if (signal_heap)
        raise(SIGUSR1);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void raising_unmap(void *ctx, void *address, size_t size)
{
    (void)ctx;
    munmap(address, size);
}

static TAlloc_heap *raising_heap(TAlloc_error_fn handler, void *ctx)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = 65536;
    config.os = (TAlloc_os){.map = raising_map, .unmap = raising_unmap};
    config.error_handler = handler;
    config.error_ctx = ctx;
    return TAlloc_heap_create(&config);
}

static void watchdog(void)
{
    signal(SIGALRM, SIG_DFL);
    alarm(WATCHDOG_SECONDS);
}

/* ---- the child bodies ------------------------------------------------------------------- */

static void child_signal_during_malloc(void *arg)
{
    watchdog();
    TAlloc_heap *heap = arg;
    signal(SIGUSR1, allocate_in_handler);
    signal_heap = heap;
    inner_result = TAlloc_heap_malloc(heap, 100); /* maps an arena: the handler re-enters */
    _exit(3);                       /* not reached: the report aborts */
}

static int allocate_in_walk(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    (void)chunk;
    inner_result = TAlloc_heap_malloc(ctx, 10);
    return 1;
}

static void child_walk_allocates(void *arg)
{
    watchdog();
    TAlloc_heap *heap = arg;
    TAlloc_heap_free(heap, TAlloc_heap_malloc(heap, 10));
    TAlloc_heap_walk(heap, allocate_in_walk, heap);
    _exit(3);
}

/* Timer signals every 50 us while the thread allocates and frees on the default heap; the
   handler allocates too. Sooner or later a signal lands while the lock is held. */
static void child_timer_storm(void *arg)
{
    (void)arg;
    watchdog();
    signal_heap = NULL;
    struct sigaction sa = {.sa_handler = allocate_in_handler};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval every = {{0, 50}, {0, 50}};
    setitimer(ITIMER_PROF, &every, NULL);
    static void *blocks[256];
    for (unsigned long i = 0;; i++) {
        unsigned slot = (unsigned)(i * 2654435761u) % 256;
        TAlloc_free(blocks[slot]);
        blocks[slot] = TAlloc_malloc(16 + (i * 7919) % 4000);
    }
}

static void expect_abort_with(const char *name, void (*fn)(void *), void *arg, const char *line)
{
    char buf[512];
    int status = test_run_child(fn, arg, buf, sizeof buf);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
           "%s: want SIGABRT, got %s %d (stderr: %s)", name,
           WIFSIGNALED(status) ? "signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), buf);
    EXPECT(strstr(buf, line) != NULL, "%s: want \"%s\" in stderr \"%s\"", name, line, buf);
}

static void test_reports(void)
{
    char line[128];
    TAlloc_heap *heap = raising_heap(NULL, NULL);
    TAlloc_error_format(line, sizeof line, TALLOC_ERROR_RECURSIVE_CALL, heap);
    expect_death("signal handler allocates during malloc", child_signal_during_malloc, heap,
                 SIGABRT, line);
    TAlloc_heap_destroy(heap);

    heap = test_heap(65536, NULL, NULL, "test_reentry");
    TAlloc_error_format(line, sizeof line, TALLOC_ERROR_RECURSIVE_CALL, heap);
    expect_death("walk callback allocates", child_walk_allocates, heap, SIGABRT, line);
    TAlloc_heap_destroy(heap);

    TAlloc_error_format(line, sizeof line, TALLOC_ERROR_RECURSIVE_CALL, TAlloc_default_heap());
    expect_abort_with("timer storm on the default heap", child_timer_storm, NULL, line);
}

/* ---- with an error handler: the inner call fails, the outer completes ------------------- */

static void test_handler(void)
{
    test_error_log r = {0};
    TAlloc_heap *heap = raising_heap(test_record_error, &r);
    signal(SIGUSR1, allocate_in_handler);
    signal_heap = heap;
    void *outer = TAlloc_heap_malloc(heap, 100);
    signal_heap = NULL;
    signal(SIGUSR1, SIG_DFL);
    EXPECT(outer != NULL, "the interrupted malloc completes");
    EXPECT(inner_result == NULL && inner_errno == EDEADLK, "inner: %p errno %d", inner_result,
           inner_errno);
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_RECURSIVE_CALL && r.address == heap,
           "handler: %d calls, error %d, address %p", r.count, (int)r.error, r.address);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "heap consistent after the recursive call");

    /* the walk returns -1 and the check SIZE_MAX when they cannot take the lock */
    r.count = 0;
    EXPECT(TAlloc_heap_walk(heap, allocate_in_walk, heap) == 1, "walk stopped by its callback");
    EXPECT(r.count == 1 && r.error == TALLOC_ERROR_RECURSIVE_CALL, "walk: %d reports", r.count);
    TAlloc_heap_free(heap, outer);
    EXPECT(TAlloc_heap_check(heap, NULL, NULL) == 0, "heap consistent at the end");
    EXPECT(strcmp(TAlloc_error_string(TALLOC_ERROR_RECURSIVE_CALL), "recursive call") == 0,
           "error string");
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    test_reports();
    test_handler();
    return test_summary("test_reentry");
}
