/*
 * test_malloc_oom.c - libtallocator-malloc out of memory. A child process limits its address
 * space (RLIMIT_AS) to OOM_HEADROOM above what it uses, then 8 threads allocate with every
 * allocating call of the family - malloc, calloc, realloc growth, reallocarray growth,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc - in sizes from a few bytes to
 * tens of MB, holding what they get, until each call has failed OOM_GOAL times in each thread.
 *
 * Every failure must be clean: NULL with errno ENOMEM (posix_memalign: ENOMEM returned, errno
 * and *out untouched); a failed realloc or reallocarray leaves the old block intact (its
 * pattern is verified). Every success must be aligned and keep its contents. Afterwards
 * TAlloc's heap check passes, every block is verified and freed, and a 64 MB malloc succeeds
 * under the same limit. The parent reads the counts through a pipe and asserts that the child
 * exited 0 and that every call really failed.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "malloc_test.h"

#define OOM_THREADS 8
#define OOM_SLOTS 32
#define OOM_GOAL 3                      /* failures of each call per thread */
#define OOM_MAX_ITERATIONS 200000       /* per thread, should the goal never be reached */
#define OOM_HEADROOM ((size_t)384 << 20)

enum { K_MALLOC, K_CALLOC, K_REALLOC, K_REALLOCARRAY, K_POSIX_MEMALIGN, K_ALIGNED_ALLOC,
       K_MEMALIGN, K_VALLOC, K_PVALLOC, K_COUNT };

static const char *const kind_names[K_COUNT] = {
    "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc"};

/* What the child reports to the parent. */
typedef struct oom_report {
    uint64_t ok[K_COUNT];
    uint64_t failed[K_COUNT];
    uint64_t bad[K_COUNT];       /* failures that were not clean, or bad successes */
    int threads_at_goal;
    size_t violations;           /* TAlloc_check after the threads */
    int damaged;                 /* blocks found damaged when they were freed */
    int recovered;               /* the 64 MB malloc after everything was freed */
    int limit_set;
} oom_report;

typedef struct oom_block {
    unsigned char *p;
    size_t size;
    unsigned seed;
} oom_block;

typedef struct oom_thread {
    pthread_t thread;
    unsigned index;
    uint64_t state;
    oom_block slots[OOM_SLOTS];
    uint64_t ok[K_COUNT], failed[K_COUNT], bad[K_COUNT];
    int damaged; /* blocks whose pattern was damaged when they were freed */
    int at_goal;
} oom_thread;

static pthread_barrier_t start_line;

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    return *state >> 33;
}

/* A third small, a third up to 1 MiB, a third 1 to 48 MiB. */
static size_t random_size(uint64_t *state)
{
    uint64_t r = next_random(state);
    switch (r % 3) {
    case 0: return (size_t)(r >> 2) % 4096;
    case 1: return (size_t)(r >> 2) % ((size_t)1 << 20) + 4096;
    default: return (size_t)(r >> 2) % ((size_t)47 << 20) + ((size_t)1 << 20);
    }
}

/* calloc's block reads zero at both ends and at sampled places in between. */
static int looks_zeroed(const unsigned char *p, size_t n)
{
    size_t ends = n < 4096 ? n : 4096;
    for (size_t i = 0; i < ends; i++)
        if (p[i] != 0 || p[n - 1 - i] != 0)
            return 0;
    for (size_t i = 0; i < n; i += n / 16 + 1)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void release(oom_thread *t, oom_block *b)
{
    if (b->p == NULL)
        return;
    t->damaged += !mt_marked(b->p, b->size, b->seed);
    free(b->p);
    b->p = NULL;
}

/* One call of kind `k`; into an empty slot, or growing a held block for the realloc kinds.
   Returns 1 on success, 0 on failure; a failure or a success that breaks the rules is
   counted as bad. */
static int one_call(oom_thread *t, int k, oom_block *b)
{
    size_t n = random_size(&t->state);
    size_t alignment = (size_t)16 << (next_random(&t->state) % 13); /* 16 B .. 64 KiB */
    void *p = NULL, *out = &out;
    int result = 0, good_errno;
    errno = MT_SENTINEL;
    switch (k) {
    case K_MALLOC: p = malloc(n); break;
    case K_CALLOC: p = calloc(1, n); break;
    case K_REALLOC:
    case K_REALLOCARRAY:
        n += b->size; /* growth */
        if (k == K_REALLOC) {
            p = realloc(mt_launder(b->p), n);
        } else {
            p = reallocarray(mt_launder(b->p), n / 8 + 1, 8);
            n = (n / 8 + 1) * 8;
        }
        break;
    case K_POSIX_MEMALIGN:
        result = posix_memalign(&out, alignment / 2, n);
        p = result == 0 ? out : NULL;
        break;
    case K_ALIGNED_ALLOC: p = aligned_alloc(alignment, n); break;
    case K_MEMALIGN: alignment -= alignment / 4; p = memalign(alignment, n); break;
    case K_VALLOC: p = valloc(n); break;
    default: p = pvalloc(n); break;
    }
    if (p == NULL) {
        if (k == K_POSIX_MEMALIGN)
            good_errno = result == ENOMEM && errno == MT_SENTINEL && out == &out;
        else
            good_errno = errno == ENOMEM;
        int intact = b->p == NULL ||
                     (mt_talloc_state(b->p) == 1 && mt_marked(b->p, b->size, b->seed));
        t->failed[k]++;
        t->bad[k] += !good_errno || !intact;
        return 0;
    }
    size_t want = k == K_VALLOC || k == K_PVALLOC ? mt_page()
                  : k == K_ALIGNED_ALLOC ? alignment
                  : k == K_POSIX_MEMALIGN ? (alignment / 2 < 16 ? 16 : alignment / 2)
                  : 16;
    if (k == K_MEMALIGN)
        while (want < alignment)
            want <<= 1;
    int good = errno == MT_SENTINEL && mt_is_aligned(p, want) && malloc_usable_size(p) >= n;
    if (k == K_CALLOC)
        good &= looks_zeroed(p, n);
    if (b->p) /* grown: the old contents moved along */
        good &= mt_marked(p, b->size, b->seed);
    t->ok[k]++;
    t->bad[k] += !good;
    b->p = p;
    b->size = n;
    b->seed = (unsigned)next_random(&t->state);
    mt_mark(b->p, b->size, b->seed);
    return 1;
}

static int at_goal(const oom_thread *t)
{
    for (int k = 0; k < K_COUNT; k++)
        if (t->failed[k] < OOM_GOAL)
            return 0;
    return 1;
}

static void *thread_main(void *arg)
{
    oom_thread *t = arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < OOM_MAX_ITERATIONS && !at_goal(t); i++) {
        int k = (int)(next_random(&t->state) % K_COUNT);
        oom_block *b = &t->slots[next_random(&t->state) % OOM_SLOTS];
        int grows = k == K_REALLOC || k == K_REALLOCARRAY;
        if (grows != (b->p != NULL)) {
            /* an empty slot for the fresh calls, a held block for the growing ones */
            if (!grows)
                release(t, b);
            else
                continue;
        }
        if (!one_call(t, k, b)) {
            /* make some room, so that later calls can succeed again */
            release(t, &t->slots[next_random(&t->state) % OOM_SLOTS]);
            release(t, &t->slots[next_random(&t->state) % OOM_SLOTS]);
        }
    }
    t->at_goal = at_goal(t);
    return NULL;
}

/* Bytes of address space the process uses now (/proc/self/statm, first field). */
static size_t address_space_used(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * mt_page();
}

static oom_thread threads[OOM_THREADS];

static void child(int fd)
{
    oom_report report;
    memset(&report, 0, sizeof report);
    alarm(300); /* a hang ends as SIGALRM, which the parent reports */
    pthread_barrier_init(&start_line, NULL, OOM_THREADS + 1);
    for (unsigned i = 0; i < OOM_THREADS; i++) {
        threads[i].index = i;
        threads[i].state = 0x2545F4914F6CDD1Du * (i + 1);
        if (pthread_create(&threads[i].thread, NULL, thread_main, &threads[i]) != 0)
            _exit(2);
    }
    /* the limit is set once the threads have their stacks */
    size_t used = address_space_used();
    struct rlimit limit = {used + OOM_HEADROOM, used + OOM_HEADROOM};
    report.limit_set = used > 0 && setrlimit(RLIMIT_AS, &limit) == 0;
    pthread_barrier_wait(&start_line);
    for (unsigned i = 0; i < OOM_THREADS; i++) {
        pthread_join(threads[i].thread, NULL);
        report.threads_at_goal += threads[i].at_goal;
        report.damaged += threads[i].damaged;
        for (int k = 0; k < K_COUNT; k++) {
            report.ok[k] += threads[i].ok[k];
            report.failed[k] += threads[i].failed[k];
            report.bad[k] += threads[i].bad[k];
        }
    }
    report.violations = TAlloc_check(NULL, NULL);
    for (unsigned i = 0; i < OOM_THREADS; i++) {
        for (int s = 0; s < OOM_SLOTS; s++) {
            oom_block *b = &threads[i].slots[s];
            if (b->p) {
                report.damaged += !mt_marked(b->p, b->size, b->seed);
                free(b->p);
            }
        }
    }
    void *big = malloc(64 * MT_MIB);
    if (big) {
        memset(big, 1, 64 * MT_MIB);
        report.recovered = TAlloc_check(NULL, NULL) == 0;
        free(big);
    }
    int ok = report.limit_set && report.recovered && report.violations == 0 &&
             report.damaged == 0;
    for (int k = 0; k < K_COUNT; k++)
        ok &= report.bad[k] == 0;
    if (write(fd, &report, sizeof report) != (ssize_t)sizeof report)
        _exit(3);
    _exit(ok ? 0 : 1);
}

int main(void)
{
    void *probe = malloc(100);
    EXPECT(mt_talloc_state(probe) == 1, "malloc is TAlloc's");
    free(probe);

    int fds[2];
    if (!EXPECT(pipe(fds) == 0, "pipe"))
        return test_summary("test_malloc_oom");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(fds[1]);
    }
    close(fds[1]);
    oom_report r;
    memset(&r, 0, sizeof r);
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status = -1;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/waitpid");
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s %d",
           WIFSIGNALED(status) ? "signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (!EXPECT(got == (ssize_t)sizeof r, "child's report: %zd bytes", got))
        return test_summary("test_malloc_oom");
    EXPECT(r.limit_set, "RLIMIT_AS set");
    for (int k = 0; k < K_COUNT; k++) {
        printf("  %-15s %8llu ok %6llu failed\n", kind_names[k], (unsigned long long)r.ok[k],
               (unsigned long long)r.failed[k]);
        EXPECT(r.failed[k] >= OOM_THREADS * OOM_GOAL && r.ok[k] > 0,
               "%s: %llu failures, %llu successes", kind_names[k],
               (unsigned long long)r.failed[k], (unsigned long long)r.ok[k]);
        EXPECT(r.bad[k] == 0, "%s: %llu calls broke the rules (failure not NULL + ENOMEM, old "
               "block damaged, bad alignment or contents)", kind_names[k],
               (unsigned long long)r.bad[k]);
    }
    EXPECT(r.threads_at_goal == OOM_THREADS, "%d of %d threads saw every call fail %d times",
           r.threads_at_goal, OOM_THREADS, OOM_GOAL);
    EXPECT(r.violations == 0, "heap check after the threads: %zu violations", r.violations);
    EXPECT(r.damaged == 0, "%d blocks damaged when freed", r.damaged);
    EXPECT(r.recovered, "a 64 MB malloc succeeds once everything is freed");
    return test_summary("test_malloc_oom");
}
