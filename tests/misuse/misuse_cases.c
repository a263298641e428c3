/*
 * misuse_cases.c - the misuse catalog: every way a program can misuse the C library's
 * allocation calls that TAlloc is meant to catch (or that no allocator can), one entry each.
 *
 *   misuse_cases CASE      run one case
 *   misuse_cases --list    one line per case: NAME KIND TALLOC_OPTIONS=... RUNS
 *
 * The cases call only the C library's names (malloc, free, realloc, malloc_usable_size), and
 * the program is compiled with -fno-builtin, so the very same binary runs on the C library's
 * allocator and on TAlloc (LD_PRELOAD=libtallocator-malloc.so): tests/misuse/
 * test_misuse_catalog.c asserts TAlloc's outcome of each case, tools/misuse-table.sh tabulates
 * it next to glibc's (docs/hardening.md).
 *
 * Before the misuse, a case writes to stdout, with write(2), the line TAlloc is expected to
 * print, computed from the real addresses:
 *
 *   expect: talloc: double free 0x55d0c2a4f6b0
 *   expect: (none)                                  (no report expected)
 *
 * KIND is the outcome TAlloc must produce with the case's TALLOC_OPTIONS: `abort` (that line
 * on stderr, then SIGABRT), `sigsegv` (killed by SIGSEGV, no line), `undetectable` (the program
 * runs on and exits 0: no allocator can tell the misuse from correct use). RUNS says how often
 * a test runs the case: `once`, or `repeat` for a case decided by a race or a timer, whose
 * outcome must still be the same every time. A case that cannot set up the heap layout it
 * needs says so on stderr and exits 3; one that survives its misuse exits 0.
 *
 * Adding a case: write its function (set up, expect_report() or expect_none(), misuse) and add
 * one entry to `cases` below.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum {
    SMALL = 100,                 /* the size of most blocks here */
    MERGE_SIZE = 2000,           /* above glibc's tcache limit, so glibc merges too */
    WATCHDOG_SECONDS = 10,       /* a case that has hung by then is killed by SIGALRM */
    STORM_SECONDS = 3,           /* how long the signal storm runs before giving up */
    LAYOUT_FAILED = 3,           /* exit status: the heap layout a case needs was not reached */
};
#define LARGE_SIZE ((size_t)64 << 20) /* a block that gets an arena of its own */

typedef enum outcome_kind { KIND_ABORT, KIND_SIGSEGV, KIND_UNDETECTABLE } outcome_kind;

/* ---- what every case uses ------------------------------------------------------------- */

static void write_out(int fd, const char *text)
{
    size_t n = strlen(text);
    while (n > 0) {
        ssize_t done = write(fd, text, n);
        if (done <= 0)
            return;
        text += done;
        n -= (size_t)done;
    }
}

/* The line TAlloc is expected to print: "talloc: <what> <address>", as %p prints it. */
static void expect_report(const char *what, const void *address)
{
    char line[160];
    snprintf(line, sizeof line, "expect: talloc: %s %p\n", what, address);
    write_out(1, line);
}

static void expect_none(void)
{
    write_out(1, "expect: (none)\n");
}

/* The pointer, unknown to the optimiser: nothing about a misuse is folded or warned away. */
static void *hide(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void *must_malloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        write_out(2, "misuse_cases: malloc failed\n");
        exit(LAYOUT_FAILED);
    }
    return p;
}

/* Stops the case when the heap did not give the layout it needs. */
static void require_layout(bool ok, const char *what)
{
    if (ok)
        return;
    write_out(2, "misuse_cases: layout not reached: ");
    write_out(2, what);
    write_out(2, "\n");
    exit(LAYOUT_FAILED);
}

/* `b` starts right after `a`'s usable bytes, past at most one chunk header (16 bytes in
   TAlloc, 8 in glibc): the two blocks are neighbours in the heap. */
static bool is_neighbour(void *a, void *b)
{
    uintptr_t end = (uintptr_t)a + malloc_usable_size(a);
    return (uintptr_t)b > end && (uintptr_t)b - end <= 16;
}

/* ---- double free ------------------------------------------------------------------------ */

static void case_double_free(void)
{
    void *p = must_malloc(SMALL);
    void *guard = must_malloc(SMALL);
    (void)guard;
    expect_report("double free", p);
    free(p);
    free(hide(p));
}

/* The freed block is swallowed by its neighbours' merges, so its header is gone; the second
   free still lands inside a free chunk and is a double free. Layout: b | a | c | guard. */
static void case_double_free_after_other_frees(void)
{
    void *b = must_malloc(SMALL);
    void *a = must_malloc(SMALL);
    void *c = must_malloc(SMALL);
    void *guard = must_malloc(SMALL);
    (void)guard;
    require_layout(is_neighbour(b, a) && is_neighbour(a, c), "b, a, c adjacent");
    expect_report("double free", a);
    free(a);
    free(b); /* merges right: a's header is swallowed */
    free(c); /* merges left into b + a */
    free(hide(a));
}

/* The block's arena is unmapped by the first free; the heap remembers the last such blocks,
   so the second free is still known as a double free. */
static void case_double_free_large(void)
{
    void *p = must_malloc(LARGE_SIZE);
    expect_report("double free", p);
    free(p);
    free(hide(p));
}

static pthread_barrier_t free_barrier;
static void *shared_block;

static void *free_at_barrier(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&free_barrier);
    free(shared_block);
    return NULL;
}

/* Two threads free the same block at once: one free succeeds, the other is the double free. */
static void case_concurrent_double_free(void)
{
    shared_block = must_malloc(SMALL);
    void *guard = must_malloc(SMALL);
    (void)guard;
    pthread_t threads[2];
    require_layout(pthread_barrier_init(&free_barrier, NULL, 2) == 0, "barrier");
    expect_report("double free", shared_block);
    for (int i = 0; i < 2; i++)
        require_layout(pthread_create(&threads[i], NULL, free_at_barrier, NULL) == 0,
                       "threads");
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
}

/* ---- pointers that were never a block -------------------------------------------------- */

static _Alignas(16) unsigned char global_buffer[256];

static void case_free_stack(void)
{
    _Alignas(16) unsigned char local[256];
    memset(local, 0, sizeof local);
    void *p = hide(local);
    expect_report("foreign pointer", p);
    free(p);
}

static void case_free_global(void)
{
    void *p = hide(global_buffer + 64);
    expect_report("foreign pointer", p);
    free(p);
}

/* A page of an anonymous mapping (the second of two, so the bytes before it are mapped: the
   outcome does not depend on what the kernel placed below the mapping). */
static void case_free_foreign_mmap(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *pages = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    require_layout(pages != MAP_FAILED, "mmap");
    void *p = hide(pages + page);
    expect_report("foreign pointer", p);
    free(p);
}

static void case_free_one(void)
{
    void *p = hide((void *)1);
    expect_report("foreign pointer", p);
    free(p);
}

/* ---- pointers into a block ------------------------------------------------------------- */

static void case_free_interior(void)
{
    char *p = must_malloc(SMALL);
    void *q = hide(p + 16);
    expect_report("interior pointer", q);
    free(q);
}

static void case_free_plus_one(void)
{
    char *p = must_malloc(SMALL);
    void *q = hide(p + 1);
    expect_report("misaligned pointer", q);
    free(q);
}

/* ---- calls on a freed block or a foreign pointer ---------------------------------------- */

/* realloc (to twice SMALL) or malloc_usable_size of `p`, which the heap must refuse. */
static void refused_call(bool is_realloc, void *p)
{
    if (is_realloc) {
        void *q = realloc(hide(p), 2 * SMALL);
        (void)q;
    } else {
        (void)malloc_usable_size(hide(p));
    }
}

static void call_on_freed(bool is_realloc)
{
    void *p = must_malloc(SMALL);
    void *guard = must_malloc(SMALL);
    (void)guard;
    free(p);
    expect_report("use after free", p);
    refused_call(is_realloc, p);
}

static void call_on_foreign(bool is_realloc)
{
    void *p = global_buffer + 64;
    expect_report("foreign pointer", p);
    refused_call(is_realloc, p);
}

static void case_realloc_freed(void) { call_on_freed(true); }
static void case_usable_size_freed(void) { call_on_freed(false); }
static void case_realloc_foreign(void) { call_on_foreign(true); }
static void case_usable_size_foreign(void) { call_on_foreign(false); }

/* ---- overflow into the next chunk's header ---------------------------------------------- */

/*
 * Writes `count` bytes starting `offset` bytes past the block's usable size - into the
 * 16-byte header of the next chunk (size word, then check value) - by xor with `mask`, then
 * frees the block. Freeing verifies the successor's header before merging with it.
 */
static void overflow_next(size_t offset, size_t count, unsigned char mask)
{
    unsigned char *p = must_malloc(SMALL);
    void *next_block = must_malloc(SMALL);
    (void)next_block;
    size_t usable = malloc_usable_size(p);
    expect_report("corrupted header", p + usable);
    volatile unsigned char *past = (volatile unsigned char *)hide(p) + usable + offset;
    for (size_t i = 0; i < count; i++)
        past[i] ^= mask;
    free(p);
}

/* bytes 0-7: the size is changed (bit 5 of the low byte: 32 bytes more or less) */
static void case_overflow_next_size(void) { overflow_next(0, 1, 0x20); }
/* bytes 8-15: the check value */
static void case_overflow_next_check(void) { overflow_next(8, 8, 0x5a); }
/* the low bit of byte 0: the FREE flag (glibc: the PREV_INUSE bit of the size) */
static void case_overflow_next_state(void) { overflow_next(0, 1, 0x01); }

/*
 * A corrupted boundary tag met during a merge. A is freed (its neighbours stay allocated, so
 * A stays a chunk of its own and B records that A is free); A's footer - its last 8 bytes,
 * just before B's header - is overwritten through the dangling pointer to say A is 16 bytes
 * larger; then B is freed and merges left. TAlloc finds no valid free header where the tag
 * points and reports the tag itself (the 8 bytes at B - 24). Layout: guard | A | B | guard.
 */
static void case_boundary_tag(void)
{
    void *guard = must_malloc(MERGE_SIZE);
    unsigned char *a = must_malloc(MERGE_SIZE);
    unsigned char *b = must_malloc(MERGE_SIZE);
    void *guard_after = must_malloc(MERGE_SIZE);
    (void)guard_after;
    require_layout(is_neighbour(guard, a) && is_neighbour(a, b), "guard, A, B adjacent");
    size_t usable = malloc_usable_size(a);
    free(a);
    volatile uint64_t *tag = (volatile uint64_t *)(void *)((unsigned char *)hide(a) + usable - 8);
    expect_report("corrupted header", (const void *)tag);
    *tag += 16;
    free(b);
}

/* ---- re-entry from a signal handler ----------------------------------------------------- */

static void allocate_in_handler(int signo)
{
    (void)signo;
    int saved = errno;
    free(malloc(32));
    errno = saved;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A profiling timer fires every 50 us of CPU time; its handler allocates while the program
 * allocates and frees in a loop, so sooner or later the handler interrupts an allocation.
 * TAlloc reports the re-entry of its default heap (found through the exported
 * TAlloc_default_heap; absent under another allocator, which is then expected to print
 * nothing). A deadlock is ended by the watchdog's SIGALRM; after STORM_SECONDS with nothing
 * detected the case exits 0.
 */
static void case_signal_during_malloc(void)
{
    void *symbol = dlsym(RTLD_DEFAULT, "TAlloc_default_heap");
    if (symbol) {
        void *(*default_heap)(void);
        memcpy(&default_heap, &symbol, sizeof default_heap);
        expect_report("recursive call", default_heap());
    } else {
        expect_none();
    }
    alarm(WATCHDOG_SECONDS);
    struct sigaction sa = {.sa_handler = allocate_in_handler};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval every = {{0, 50}, {0, 50}};
    setitimer(ITIMER_PROF, &every, NULL);
    static void *blocks[256];
    double end = seconds_now() + STORM_SECONDS;
    for (unsigned long i = 0; (i & 1023) != 0 || seconds_now() < end; i++) {
        unsigned slot = (unsigned)(i * 2654435761u) % 256;
        free(blocks[slot]);
        blocks[slot] = malloc(16 + (i * 7919) % 4000);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
}

/* ---- what no allocator can detect ------------------------------------------------------- */

/*
 * p is freed, the same size is allocated again and comes back at the same address (q == p),
 * then the stale p is freed: to the heap this is q's owner freeing q, a correct free. The
 * misuse shows only later, when q's owner frees q (a double free reported far from the bug)
 * or uses it after another block took its place.
 */
static void case_double_free_after_reuse(void)
{
    void *p = must_malloc(SMALL);
    free(p);
    void *q = must_malloc(SMALL);
    require_layout(q == p, "the freed block is handed out again");
    expect_none();
    free(hide(p));
}

/* ---- cases for the hardening options ----------------------------------------------------- */

/* canary=1: one byte written past the requested size (a classic off-by-one NUL). */
static void case_overflow_1_byte(void)
{
    char *p = must_malloc(SMALL);
    expect_report("canary corrupted", p + SMALL);
    ((volatile char *)hide(p))[SMALL] = 0;
    free(p);
}

/* canary=1: eight bytes past the requested size (96: the block's 8 canary bytes). */
static void case_overflow_8_bytes(void)
{
    char *p = must_malloc(96);
    expect_report("canary corrupted", p + 96);
    memset(hide(p + 96), 0, 8);
    free(p);
}

/* Layout `b a`: frees a and overwrites its first word through the stale pointer; returns b. */
static char *free_and_overwrite_link(char **a_out)
{
    char *b = must_malloc(SMALL);
    char *a = must_malloc(SMALL);
    void *after = must_malloc(SMALL);
    (void)after;
    require_layout(is_neighbour(b, a), "two blocks in a row");
    free(a);
    expect_report("corrupted free list", a);
    memset(hide(a), 0x41, 8);
    *a_out = a;
    return b;
}

/* A write after free over the first word of a freed block: its link in the quick list of
   its size. The next request of that size takes the block, and verifies the link first. */
static void case_write_after_free_link(void)
{
    char *a;
    (void)free_and_overwrite_link(&a);
    void *again = malloc(SMALL);
    (void)again;
}

/* The same write with quick=0: a is a free chunk at once, its first word its free-list link.
   Freeing its left neighbour merges with it, and the merge verifies the link first. */
static void case_write_after_free_merged_link(void)
{
    char *a;
    free(free_and_overwrite_link(&a));
}

/* junk=1: a byte written into a freed block, found when the block is handed out again. */
static void case_write_after_free_payload(void)
{
    enum { SIZE = 3000 };
    char *a = must_malloc(SIZE);
    void *after = must_malloc(SMALL);
    (void)after;
    free(a);
    expect_report("write after free", a + 1000);
    ((volatile char *)hide(a))[1000] = 'w';
    char *again = malloc(SIZE);
    require_layout(again == a, "the freed block is handed out again");
}

/* guard=1: a large block ends at an inaccessible page; writing past it faults at once. */
static void case_guard_page_overflow(void)
{
    char *p = must_malloc(LARGE_SIZE);
    size_t usable = malloc_usable_size(p);
    expect_none();
    ((volatile char *)hide(p))[usable + 16] = 1;
    free(p);
}

/* quarantine=64: the double free after reuse, but the block is still in quarantine, so it
   was never handed out again and the second free is known as one. */
static void case_double_free_quarantined(void)
{
    void *p = must_malloc(SMALL);
    free(p);
    void *q = must_malloc(SMALL);
    require_layout(q != p, "the freed block is held back");
    expect_report("double free", p);
    free(hide(p));
}

/* ---- the catalog ------------------------------------------------------------------------- */

typedef struct misuse_case {
    const char *name;
    const char *options;  /* TALLOC_OPTIONS the case needs; "" for the defaults */
    outcome_kind kind;    /* what TAlloc must do with those options */
    bool is_racy;         /* decided by a race or a timer: tests repeat it */
    void (*run)(void);
} misuse_case;

static const misuse_case cases[] = {
    {"double_free", "", KIND_ABORT, false, case_double_free},
    {"double_free_after_other_frees", "", KIND_ABORT, false, case_double_free_after_other_frees},
    {"double_free_large", "", KIND_ABORT, false, case_double_free_large},
    {"concurrent_double_free", "", KIND_ABORT, true, case_concurrent_double_free},
    {"free_stack", "", KIND_ABORT, false, case_free_stack},
    {"free_global", "", KIND_ABORT, false, case_free_global},
    {"free_foreign_mmap", "", KIND_ABORT, false, case_free_foreign_mmap},
    {"free_one", "", KIND_ABORT, false, case_free_one},
    {"free_interior", "", KIND_ABORT, false, case_free_interior},
    {"free_plus_one", "", KIND_ABORT, false, case_free_plus_one},
    {"realloc_freed", "", KIND_ABORT, false, case_realloc_freed},
    {"usable_size_freed", "", KIND_ABORT, false, case_usable_size_freed},
    {"realloc_foreign", "", KIND_ABORT, false, case_realloc_foreign},
    {"usable_size_foreign", "", KIND_ABORT, false, case_usable_size_foreign},
    {"overflow_next_size", "", KIND_ABORT, false, case_overflow_next_size},
    {"overflow_next_check", "", KIND_ABORT, false, case_overflow_next_check},
    {"overflow_next_state", "", KIND_ABORT, false, case_overflow_next_state},
    {"boundary_tag", "", KIND_ABORT, false, case_boundary_tag},
    {"signal_during_malloc", "", KIND_ABORT, true, case_signal_during_malloc},
    {"double_free_after_reuse", "", KIND_UNDETECTABLE, false, case_double_free_after_reuse},
    {"write_after_free_link", "", KIND_ABORT, false, case_write_after_free_link},
    {"write_after_free_merged_link", "quick=0", KIND_ABORT, false, case_write_after_free_merged_link},
    {"overflow_1_byte", "canary=1", KIND_ABORT, false, case_overflow_1_byte},
    {"overflow_8_bytes", "canary=1", KIND_ABORT, false, case_overflow_8_bytes},
    {"write_after_free_payload", "junk=1", KIND_ABORT, false, case_write_after_free_payload},
    {"guard_page_overflow", "guard=1", KIND_SIGSEGV, false, case_guard_page_overflow},
    {"double_free_quarantined", "quarantine=64", KIND_ABORT, false, case_double_free_quarantined},
};

static const char *kind_name(outcome_kind kind)
{
    switch (kind) {
    case KIND_ABORT:
        return "abort";
    case KIND_SIGSEGV:
        return "sigsegv";
    case KIND_UNDETECTABLE:
        return "undetectable";
    }
    return "?";
}

int main(int argc, char **argv)
{
    size_t count = sizeof cases / sizeof cases[0];
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < count; i++)
            printf("%s %s TALLOC_OPTIONS=%s %s\n", cases[i].name, kind_name(cases[i].kind),
                   cases[i].options, cases[i].is_racy ? "repeat" : "once");
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < count; i++) {
        if (strcmp(argv[1], cases[i].name) == 0) {
            struct rlimit no_core = {0, 0};
            setrlimit(RLIMIT_CORE, &no_core);
            cases[i].run();
            return 0;
        }
    }
    fprintf(stderr, "usage: misuse_cases --list | misuse_cases CASE\n");
    return 2;
}
