/*
 * test_sanitizer_visibility.c - AddressSanitizer and Valgrind see inside TAlloc's arenas
 * (allocator/src/track.h): headers and free chunks are inaccessible, a block is accessible for
 * exactly the bytes requested (all usable bytes once usable_size was asked), and misuse of a
 * block is reported by the sanitizer at the faulting instruction.
 *
 * Without arguments, in every build: each annotated path (malloc, calloc, aligned_alloc,
 * realloc shrinking, growing and moving, usable_size, free, walk, check, debug print, heap
 * destroy with live blocks) keeps the data a correct program sees. In AddressSanitizer builds
 * also: the shadow matches the contract byte for byte, and three forked children - writing to
 * a freed block, writing one byte past malloc(13), reading a header byte - die of SIGABRT with
 * an AddressSanitizer "use-after-poison" report naming the access.
 *
 * With one argument, a scenario name, it runs just that scenario (no forks):
 * tests/valgrind_visibility.sh runs them under valgrind and reads memcheck's reports.
 */
#include <stdint.h>

#include "testutil.h"

enum { ARENA_SIZE = 65536, REPORT_BYTES = 65536, CHILD_TIMEOUT_SECONDS = 60 };

static volatile unsigned char sink; /* reads the compiler must keep */
static void *volatile kept;          /* a block left allocated but reachable */

static TAlloc_heap *make_heap(void)
{
    return test_heap(ARENA_SIZE, NULL, NULL, "test_sanitizer_visibility");
}

static void fill(void *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed + i * 7);
}

/* Whether p holds fill(p, n, seed); branches on every byte, so memcheck also checks that the
   bytes are defined. */
static int has_fill(const void *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

static int all_zero(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != 0)
            return 0;
    return 1;
}

/* ---- the scenarios ---------------------------------------------------------------------- */

/* Every annotated path, used correctly: no report under any sanitizer, all data intact. */
static void scenario_clean(void)
{
    TAlloc_heap *heap = make_heap();

    unsigned char *a = TAlloc_heap_malloc(heap, 13);
    unsigned char *guard = TAlloc_heap_malloc(heap, 40);
    EXPECT(a != NULL && guard != NULL, "malloc failed");
    fill(a, 13, 1);
    fill(guard, 40, 2);

    /* usable_size: every usable byte may be used */
    size_t usable = TAlloc_heap_usable_size(heap, a);
    EXPECT(usable >= 13, "usable_size(malloc(13)) = %zu", usable);
    fill(a, usable, 3);
    EXPECT(has_fill(a, usable, 3), "usable bytes keep what was written");

    /* calloc: zero, also over a freed dirty block, and defined for memcheck */
    unsigned char *dirty = TAlloc_heap_malloc(heap, 100);
    unsigned char *guard2 = TAlloc_heap_malloc(heap, 16);
    fill(dirty, 100, 4);
    TAlloc_heap_free(heap, dirty);
    unsigned char *z = TAlloc_heap_calloc(heap, 10, 10);
    EXPECT(z != NULL && all_zero(z, 100), "calloc(10, 10) is zero");
    unsigned char *fresh = TAlloc_heap_calloc(heap, 1, 3 * ARENA_SIZE); /* a dedicated arena */
    EXPECT(fresh != NULL && all_zero(fresh, 3 * ARENA_SIZE), "calloc of a fresh arena is zero");

    /* aligned */
    unsigned char *al = TAlloc_heap_aligned_alloc(heap, 256, 100);
    EXPECT(al != NULL && ((uintptr_t)al & 255) == 0, "aligned_alloc(256, 100) = %p", (void *)al);
    fill(al, 100, 5);

    /* realloc: shrink in place, grow in place, move */
    unsigned char *r = TAlloc_heap_malloc(heap, 200);
    fill(r, 200, 6);
    unsigned char *r2 = TAlloc_heap_realloc(heap, r, 50);
    EXPECT(r2 == r && has_fill(r2, 50, 6), "realloc(200 -> 50) shrinks in place, keeps data");
    r2 = TAlloc_heap_realloc(heap, r2, 120);
    EXPECT(r2 == r && has_fill(r2, 50, 6), "realloc(50 -> 120) grows in place, keeps data");
    fill(r2, 120, 7);
    unsigned char *blocker = TAlloc_heap_malloc(heap, 8000); /* r2's successor: no room */
    unsigned char *r3 = TAlloc_heap_realloc(heap, r2, 4000);
    EXPECT(r3 != NULL && r3 != r2 && has_fill(r3, 120, 7), "realloc(120 -> 4000) moves, keeps data");
    fill(r3, 4000, 8);
    /* a block whose usable size was asked for: its old usable bytes move along */
    size_t u = TAlloc_heap_usable_size(heap, a);
    fill(a, u, 9);
    unsigned char *a2 = TAlloc_heap_realloc(heap, a, 20000);
    EXPECT(a2 != NULL && has_fill(a2, u, 9), "realloc after usable_size keeps all usable bytes");

    /* introspection walks every header and free chunk */
    EXPECT_HEAP_OK(heap, "clean scenario");
    char text[4096];
    FILE *f = fmemopen(text, sizeof text, "w");
    if (f) {
        TAlloc_heap_debug_print(heap, f);
        fclose(f);
    }
    EXPECT(has_fill(guard, 40, 2) && has_fill(al, 100, 5) && has_fill(r3, 4000, 8),
           "neighbours untouched");

    TAlloc_heap_free(heap, guard);
    TAlloc_heap_free(heap, guard2);
    TAlloc_heap_free(heap, z);
    TAlloc_heap_free(heap, fresh);
    TAlloc_heap_free(heap, al);
    TAlloc_heap_free(heap, r3);
    TAlloc_heap_free(heap, a2);
    /* `blocker` is still allocated: destroy takes it along */
    EXPECT(blocker != NULL, "malloc(8000) failed");
    TAlloc_heap_destroy(heap);

    /* the default heap */
    void *d = TAlloc_malloc(100);
    EXPECT(d != NULL, "TAlloc_malloc(100) failed");
    fill(d, 100, 10);
    d = TAlloc_realloc(d, 1000);
    EXPECT(d != NULL && has_fill(d, 100, 10), "default heap realloc keeps data");
    TAlloc_free(d);
}

/* The three misuses. Under ASan the process dies at the bad access; under valgrind it goes
   on and must end without a leak, so that the misuse is the only error. */
static void scenario_write_after_free(void)
{
    unsigned char *p = TAlloc_malloc(13);
    kept = TAlloc_malloc(13); /* p's neighbour: keeps p's chunk from merging away */
    TAlloc_free(p);
    ((volatile unsigned char *)p)[0] = 'x'; /* p's free-list link: nothing uses it again */
}

static void scenario_write_past_end(void)
{
    unsigned char *p = TAlloc_malloc(13);
    ((volatile unsigned char *)p)[13] = 'x';
    TAlloc_free(p);
}

static void scenario_read_header(void)
{
    unsigned char *p = TAlloc_malloc(13);
    sink = ((volatile unsigned char *)p)[-16];
    TAlloc_free(p);
}

/* Valgrind only: a lost block is a leak, and bytes never written are undefined. */
static __attribute__((noinline)) void allocate_and_lose(void)
{
    unsigned char *p = TAlloc_malloc(40);
    memset(p, 1, 40);
}

static void scenario_leak(void)
{
    allocate_and_lose();
}

static void scenario_uninitialised(void)
{
    unsigned char *p = TAlloc_malloc(16);
    if (((volatile unsigned char *)p)[3] == 42)
        sink = 1;
    TAlloc_free(p);
}

typedef struct scenario {
    const char *name;
    void (*run)(void);
} scenario;

static const scenario scenarios[] = {
    {"clean", scenario_clean},
    {"write-after-free", scenario_write_after_free},
    {"write-past-end", scenario_write_past_end},
    {"read-header", scenario_read_header},
    {"leak", scenario_leak},
    {"uninitialised", scenario_uninitialised},
};

/* ---- AddressSanitizer: the shadow, and the reports -------------------------------------- */
#if defined(TEST_HAVE_ASAN)

static int accessible(const void *p, size_t n)
{
    return __asan_region_is_poisoned((void *)(uintptr_t)p, n) == NULL;
}

static int inaccessible(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!__asan_address_is_poisoned((const char *)p + i))
            return 0;
    return 1;
}

typedef struct first_arena {
    const void *address;
    size_t size;
} first_arena;

static int find_first_arena(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    first_arena *fa = ctx;
    if (chunk == NULL && fa->address == NULL) {
        fa->address = arena->address;
        fa->size = arena->size;
    }
    return 0;
}

static void asan_shadow_contract(void)
{
    TAlloc_heap *heap = make_heap();
    unsigned char *p = TAlloc_heap_malloc(heap, 13); /* chunk 48: usable 32 */
    unsigned char *keep = TAlloc_heap_malloc(heap, 13);
    first_arena arena = {NULL, 0};
    TAlloc_heap_walk(heap, find_first_arena, &arena);
    EXPECT(arena.address != NULL && inaccessible(arena.address, 48) &&
               inaccessible((const char *)arena.address + arena.size - 16, 16),
           "arena header and fence are poisoned");
    EXPECT(accessible(p, 13), "malloc(13): 13 bytes accessible");
    EXPECT(inaccessible(p + 13, 32 - 13), "malloc(13): the rest of the payload is poisoned");
    EXPECT(inaccessible(p - 16, 16), "malloc(13): the header is poisoned");
    EXPECT(inaccessible(keep + 32, 64), "the free tail (header and payload) is poisoned");

    size_t usable = TAlloc_heap_usable_size(heap, p);
    EXPECT(usable == 32 && accessible(p, usable), "after usable_size all %zu bytes accessible",
           usable);
    EXPECT(inaccessible(p - 16, 16) && inaccessible(p + 32, 16), "headers stay poisoned");

    TAlloc_heap_free(heap, p);
    EXPECT(inaccessible(p - 16, 48), "free poisons the whole chunk");

    unsigned char *c = TAlloc_heap_calloc(heap, 3, 7);
    EXPECT(c != NULL && accessible(c, 21) && inaccessible(c + 21, 32 - 21) && all_zero(c, 21),
           "calloc(3, 7): exactly 21 zero bytes accessible");

    unsigned char *al = TAlloc_heap_aligned_alloc(heap, 256, 100);
    EXPECT(al != NULL && accessible(al, 100) && inaccessible(al + 100, 12) &&
               inaccessible(al - 16, 16),
           "aligned_alloc(256, 100): exactly 100 bytes accessible");

    unsigned char *r = TAlloc_heap_malloc(heap, 200);
    unsigned char *r2 = TAlloc_heap_realloc(heap, r, 50);
    EXPECT(r2 == r && accessible(r, 50) && inaccessible(r + 50, 14) && inaccessible(r + 64, 160),
           "realloc(200 -> 50) in place: 50 accessible, the cut tail poisoned");
    r2 = TAlloc_heap_realloc(heap, r, 100);
    EXPECT(r2 == r && accessible(r, 100) && inaccessible(r + 100, 12),
           "realloc(50 -> 100) in place: 100 accessible");
    unsigned char *blocker = TAlloc_heap_malloc(heap, 30000);
    unsigned char *r3 = TAlloc_heap_realloc(heap, r, 1000);
    EXPECT(r3 != r && inaccessible(r - 16, 128) && accessible(r3, 1000) &&
               inaccessible(r3 + 1000, 8),
           "realloc(100 -> 1000) moved: the old block poisoned, the new one 1000 accessible");

    unsigned char *header = keep - 16;
    test_unpoison(header, 16);
    EXPECT(accessible(header, 16), "test_unpoison opens metadata to the test");

    TAlloc_heap_free(heap, c);
    TAlloc_heap_free(heap, al);
    TAlloc_heap_free(heap, r3);
    (void)blocker;
    TAlloc_heap_destroy(heap); /* with live blocks */
    EXPECT(accessible(arena.address, arena.size), "a destroyed heap's arenas are unpoisoned");
}

static void die_now(void)
{
    abort(); /* a fixed signal whatever ASAN_OPTIONS says */
}

/* Runs a scenario in a child; it must die of SIGABRT with a report containing each phrase. */
static void expect_asan_report(const char *name, void (*fn)(void), const char *const *phrases)
{
    int fds[2];
    if (!EXPECT(pipe(fds) == 0, "%s: pipe failed", name))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        alarm(CHILD_TIMEOUT_SECONDS);
        __asan_set_death_callback(die_now);
        fn();
        _exit(0); /* not reported: the parent says so */
    }
    close(fds[1]);
    static char report[REPORT_BYTES];
    size_t used = 0;
    ssize_t got;
    char rest[4096]; /* a report longer than the buffer: its start is what counts */
    while ((got = used < sizeof report - 1 ? read(fds[0], report + used, sizeof report - 1 - used)
                                           : read(fds[0], rest, sizeof rest)) > 0)
        if (used < sizeof report - 1)
            used += (size_t)got;
    report[used] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int died = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    int said = 1;
    for (const char *const *p = phrases; *p; p++)
        said = said && strstr(report, *p) != NULL;
    EXPECT(died && said, "%s: want SIGABRT and a report with \"%s\", \"%s\"; got %s %d and:\n%s",
           name, phrases[0], phrases[1], WIFSIGNALED(status) ? "signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), report);
}

static void asan_reports(void)
{
    static const char *const write_phrases[] = {
        "ERROR: AddressSanitizer: use-after-poison", "WRITE of size 1", NULL};
    static const char *const read_phrases[] = {
        "ERROR: AddressSanitizer: use-after-poison", "READ of size 1", NULL};
    expect_asan_report("write to a freed block", scenario_write_after_free, write_phrases);
    expect_asan_report("write one byte past malloc(13)", scenario_write_past_end, write_phrases);
    expect_asan_report("read a header byte", scenario_read_header, read_phrases);
}
#endif /* TEST_HAVE_ASAN */

int main(int argc, char **argv)
{
    if (argc == 2) {
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            if (strcmp(argv[1], scenarios[i].name) == 0) {
                scenarios[i].run();
                return test_summary(argv[1]);
            }
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        return 2;
    }
    scenario_clean();
#if defined(TEST_HAVE_ASAN)
    asan_shadow_contract();
    asan_reports();
#else
    printf("no AddressSanitizer in this build: the reports are checked under valgrind "
           "(valgrind_visibility)\n");
#endif
    return test_summary("test_sanitizer_visibility");
}
