/*
 * test_death.c - misuse is always detected, before any header is trusted, and reported as one
 * line "talloc: <what> <address>" on stderr followed by abort(); or, when the heap's config has
 * an error handler, handed to the handler while the call returns safely.
 *
 * The death tests prepare their blocks in this (parent) process, so every address in an
 * expected line is known before the fork; the child does the damage and the misuse. Each case
 * runs on the default heap (TAlloc_free ...) and on an explicit heap (TAlloc_heap_free ...).
 * The handler form runs in-process on explicit heaps whose config records each error.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "testutil.h"

enum { EXPLICIT_ARENA_SIZE = 65536, CHILD_TIMEOUT_SECONDS = 30, TEST_TIMEOUT_SECONDS = 300 };

/* Large blocks: each gets a dedicated arena (larger than a standard arena of its heap). */
#define DEFAULT_LARGE_SIZE ((size_t)40 << 20)
#define EXPLICIT_LARGE_SIZE ((size_t)1 << 20)

static int global_probe; /* a global: never inside any arena */

typedef enum op_kind { OP_FREE, OP_REALLOC, OP_USABLE_SIZE } op_kind;

static const char *op_name(op_kind op)
{
    switch (op) {
    case OP_FREE:
        return "free";
    case OP_REALLOC:
        return "realloc";
    case OP_USABLE_SIZE:
        return "usable_size";
    }
    return "?";
}

/* ---- one call for both heaps: `heap` NULL means the default heap ------------------------ */

static TAlloc_heap *heap_or_default(TAlloc_heap *heap)
{
    return heap ? heap : TAlloc_default_heap();
}

static void *h_malloc(TAlloc_heap *heap, size_t size)
{
    return heap ? TAlloc_heap_malloc(heap, size) : TAlloc_malloc(size);
}

static void h_free(TAlloc_heap *heap, void *ptr)
{
    if (heap)
        TAlloc_heap_free(heap, ptr);
    else
        TAlloc_free(ptr);
}

static void *h_realloc(TAlloc_heap *heap, void *ptr, size_t size)
{
    return heap ? TAlloc_heap_realloc(heap, ptr, size) : TAlloc_realloc(ptr, size);
}

static size_t h_usable_size(TAlloc_heap *heap, const void *ptr)
{
    return heap ? TAlloc_heap_usable_size(heap, ptr) : TAlloc_usable_size(ptr);
}

static void h_op(TAlloc_heap *heap, op_kind op, void *ptr)
{
    switch (op) {
    case OP_FREE:
        h_free(heap, ptr);
        break;
    case OP_REALLOC:
        (void)h_realloc(heap, ptr, 10);
        break;
    case OP_USABLE_SIZE:
        (void)h_usable_size(heap, ptr);
        break;
    }
}

static TAlloc_heap *create_heap(TAlloc_error_fn handler, void *ctx)
{
    return test_heap(EXPLICIT_ARENA_SIZE, handler, ctx, "test_death");
}

static void *map_foreign_page(void)
{
    void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(page != MAP_FAILED, "mmap of a foreign page failed: %s", strerror(errno));
    if (page == MAP_FAILED)
        exit(test_summary("test_death"));
    return page;
}

static void expected_line(char *buf, size_t size, TAlloc_error error, const void *address)
{
    snprintf(buf, size, "talloc: %s %p\n", TAlloc_error_string(error), address);
}

/* ---- death tests: the child side -------------------------------------------------------- */

typedef struct death_arg {
    TAlloc_heap *heap;     /* NULL: the default heap */
    op_kind op;            /* the misuse call */
    void *ptr;             /* the pointer handed to the misuse call */
    void *blocks[4];       /* blocks the scenario works on */
    ptrdiff_t damage_at;   /* child_damage: byte offset from ptr to flip */
    unsigned char damage_mask;
} death_arg;

/* A hung child would hang the parent's read; die of SIGALRM instead (a test failure). */
static void child_begin(void)
{
    alarm(CHILD_TIMEOUT_SECONDS);
}

static void child_op(void *varg)
{
    death_arg *arg = varg;
    child_begin();
    h_op(arg->heap, arg->op, arg->ptr);
}

static void child_double_free(void *varg)
{
    death_arg *arg = varg;
    child_begin();
    h_free(arg->heap, arg->ptr);
    h_free(arg->heap, arg->ptr);
}

/* blocks: a, g1, b, g2 (all allocated, 64 bytes each). Frees a, then allocates and frees
   around it (nothing reuses a's 80-byte chunk or merges it away), then frees a again. */
static void child_double_free_later(void *varg)
{
    death_arg *arg = varg;
    child_begin();
    TAlloc_heap *heap = arg->heap;
    h_free(heap, arg->blocks[0]);
    void *c = h_malloc(heap, 128);
    h_free(heap, arg->blocks[2]);
    void *d = h_malloc(heap, 100);
    h_free(heap, c);
    void *e = h_realloc(heap, d, 300);
    (void)e;
    h_free(heap, arg->blocks[0]);
}

static void child_damage(void *varg)
{
    death_arg *arg = varg;
    child_begin();
    test_unpoison((unsigned char *)arg->ptr + arg->damage_at, 1);
    ((unsigned char *)arg->ptr)[arg->damage_at] ^= arg->damage_mask;
    h_op(arg->heap, arg->op, arg->ptr);
}

/* blocks[0] = a = malloc(24) (usable 32), ptr = b = malloc(24) right after it: 48 bytes
   written from a reach through b's header. */
static void child_overflow(void *varg)
{
    death_arg *arg = varg;
    child_begin();
    test_unpoison(arg->blocks[0], 48);
    memset(arg->blocks[0], 'A', 48);
    h_op(arg->heap, arg->op, arg->ptr);
}

/* ---- death tests: the parent side ------------------------------------------------------- */

static void run_death(const char *label, const char *what, void (*fn)(void *), death_arg *arg,
                      TAlloc_error error, const void *address)
{
    char name[160];
    char line[128];
    snprintf(name, sizeof name, "%s: %s", label, what);
    expected_line(line, sizeof line, error, address);
    expect_death(name, fn, arg, SIGABRT, line);
}

static void death_op(const char *label, const char *what, TAlloc_heap *heap, op_kind op,
                     void *ptr, TAlloc_error error)
{
    char full[128];
    snprintf(full, sizeof full, "%s of %s", op_name(op), what);
    death_arg arg = {.heap = heap, .op = op, .ptr = ptr};
    run_death(label, full, child_op, &arg, error, ptr);
}

static void death_suite(TAlloc_heap *heap, const char *label, size_t large_size)
{
    int stack_probe = 0; /* a stack address: never inside any arena */
    void *foreign_page = map_foreign_page();
    TAlloc_heap *h = heap_or_default(heap);

    /* The heap has an arena before any foreign pointer is tried: one malloc/free, and one
       block kept for the whole suite. */
    h_free(heap, h_malloc(heap, 1));
    void *keep = h_malloc(heap, 64);
    EXPECT(keep != NULL, "%s: malloc(64) failed", label);

    /* double free, immediate */
    {
        void *p = h_malloc(heap, 64);
        void *guard = h_malloc(heap, 64);
        death_arg arg = {.heap = heap, .ptr = p};
        run_death(label, "double free (immediate)", child_double_free, &arg,
                  TALLOC_ERROR_DOUBLE_FREE, p);
        h_free(heap, guard);
        h_free(heap, p);
    }

    /* double free, with frees and allocations in between */
    {
        death_arg arg = {.heap = heap};
        for (int i = 0; i < 4; i++)
            arg.blocks[i] = h_malloc(heap, 64);
        arg.ptr = arg.blocks[0];
        run_death(label, "double free (after other frees and allocations)",
                  child_double_free_later, &arg, TALLOC_ERROR_DOUBLE_FREE, arg.blocks[0]);
        for (int i = 0; i < 4; i++)
            h_free(heap, arg.blocks[i]);
    }

    /* double free of a large block. The block has its own dedicated arena, which the first
       free unmaps; the second free then sees a pointer inside no arena of the heap, so the
       contract's first test answers: "foreign pointer", not "double free". */
    {
        TAlloc_stats before, after;
        TAlloc_heap_get_stats(h, &before);
        void *p = h_malloc(heap, large_size);
        TAlloc_heap_get_stats(h, &after);
        EXPECT(p != NULL, "%s: malloc(%zu) failed", label, large_size);
        EXPECT(after.event_count[TALLOC_EVENT_DEDICATED_ARENA] ==
                   before.event_count[TALLOC_EVENT_DEDICATED_ARENA] + 1,
               "%s: a %zu-byte block should get a dedicated arena", label, large_size);
        death_arg arg = {.heap = heap, .ptr = p};
        run_death(label, "double free of a large block (its arena is gone, but remembered)",
                  child_double_free, &arg, TALLOC_ERROR_DOUBLE_FREE, p);
        h_free(heap, p);
    }

    /* foreign pointers */
    death_op(label, "a stack address", heap, OP_FREE, &stack_probe, TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "a global", heap, OP_FREE, &global_probe, TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "a foreign mmap page", heap, OP_FREE, foreign_page,
             TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "(void *)1", heap, OP_FREE, (void *)1, TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "a stack address", heap, OP_REALLOC, &stack_probe,
             TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "a foreign mmap page", heap, OP_REALLOC, foreign_page,
             TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "a global", heap, OP_USABLE_SIZE, &global_probe,
             TALLOC_ERROR_FOREIGN_POINTER);
    death_op(label, "a foreign mmap page", heap, OP_USABLE_SIZE, foreign_page,
             TALLOC_ERROR_FOREIGN_POINTER);

    /* interior and misaligned pointers */
    {
        char *p = h_malloc(heap, 64);
        void *guard = h_malloc(heap, 64);
        memset(p, 0, 64); /* no stale bytes in the payload can pass for a header */
        death_op(label, "p+16 (interior)", heap, OP_FREE, p + 16, TALLOC_ERROR_INTERIOR_POINTER);
        death_op(label, "p+48 (interior)", heap, OP_FREE, p + 48, TALLOC_ERROR_INTERIOR_POINTER);
        death_op(label, "p+1 (misaligned)", heap, OP_FREE, p + 1, TALLOC_ERROR_MISALIGNED_POINTER);
        death_op(label, "p+8 (misaligned)", heap, OP_FREE, p + 8, TALLOC_ERROR_MISALIGNED_POINTER);
        death_op(label, "p+16 (interior)", heap, OP_REALLOC, p + 16,
                 TALLOC_ERROR_INTERIOR_POINTER);
        death_op(label, "p+1 (misaligned)", heap, OP_USABLE_SIZE, p + 1,
                 TALLOC_ERROR_MISALIGNED_POINTER);
        h_free(heap, guard);
        h_free(heap, p);
    }

    /* corrupted headers: one bit of the check value, or of the size word */
    {
        static const struct {
            const char *what;
            ptrdiff_t at;
            unsigned char mask;
            op_kind op;
        } flips[] = {
            {"check value bit flipped (p-8, bit 0)", -8, 0x01, OP_FREE},
            {"check value bit flipped (p-1, bit 7)", -1, 0x80, OP_FREE},
            {"size word bit flipped (p-16, bit 4)", -16, 0x10, OP_FREE},
            {"size word free bit flipped (p-16, bit 0)", -16, 0x01, OP_FREE},
            {"size word high bit flipped (p-12, bit 2)", -12, 0x04, OP_FREE},
            {"check value bit flipped (p-8, bit 0)", -8, 0x01, OP_REALLOC},
            {"size word bit flipped (p-16, bit 5)", -16, 0x20, OP_USABLE_SIZE},
        };
        char *p = h_malloc(heap, 64);
        void *guard = h_malloc(heap, 64);
        for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
            char what[128];
            snprintf(what, sizeof what, "%s of a block with its %s", op_name(flips[i].op),
                     flips[i].what);
            death_arg arg = {.heap = heap, .op = flips[i].op, .ptr = p,
                             .damage_at = flips[i].at, .damage_mask = flips[i].mask};
            run_death(label, what, child_damage, &arg, TALLOC_ERROR_CORRUPTED_HEADER, p);
        }
        h_free(heap, guard);
        h_free(heap, p);
    }

    /* an overflow from the previous block rewrites the next block's header */
    {
        /* the first pair of 48-byte chunks the heap hands out next to each other (holes and
           quick chunks of that size come first); the others are freed afterwards */
        enum { TRIES = 16 };
        char *spare[2 * TRIES];
        size_t spares = 0;
        char *a = h_malloc(heap, 24);
        char *b = h_malloc(heap, 24);
        while (b != a + 48 && spares < 2 * TRIES) {
            spare[spares++] = a;
            a = b;
            b = h_malloc(heap, 24);
        }
        void *guard = h_malloc(heap, 64);
        if (EXPECT(b == a + 48, "%s: malloc(24) twice should give adjacent blocks 48 bytes apart:"
                                " %p %p", label, (void *)a, (void *)b)) {
            death_arg arg = {.heap = heap, .op = OP_FREE, .ptr = b, .blocks = {a}};
            run_death(label, "free of a block whose header a 48-byte memset overwrote",
                      child_overflow, &arg, TALLOC_ERROR_CORRUPTED_HEADER, b);
            arg.op = OP_REALLOC;
            run_death(label, "realloc of a block whose header a 48-byte memset overwrote",
                      child_overflow, &arg, TALLOC_ERROR_CORRUPTED_HEADER, b);
        }
        h_free(heap, guard);
        h_free(heap, b);
        h_free(heap, a);
        for (size_t i = 0; i < spares; i++)
            h_free(heap, spare[i]);
    }

    /* use after free: realloc and usable_size of a freed block (b keeps a's chunk apart) */
    {
        void *a = h_malloc(heap, 64);
        void *b = h_malloc(heap, 64);
        h_free(heap, a);
        death_op(label, "a freed block", heap, OP_REALLOC, a, TALLOC_ERROR_USE_AFTER_FREE);
        death_op(label, "a freed block", heap, OP_USABLE_SIZE, a, TALLOC_ERROR_USE_AFTER_FREE);
        h_free(heap, b);
    }

    h_free(heap, keep);
    EXPECT_HEAP_OK(h, label);
    munmap(foreign_page, (size_t)sysconf(_SC_PAGESIZE));
}

/* A block of one heap is foreign to every other heap. */
static void death_cross_heap(void)
{
    TAlloc_heap *heap = create_heap(NULL, NULL);
    TAlloc_heap *other = create_heap(NULL, NULL);
    void *in_default = TAlloc_malloc(64);
    void *in_heap = TAlloc_heap_malloc(heap, 64);
    void *in_other = TAlloc_heap_malloc(other, 64);
    death_op("explicit", "a default-heap block", heap, OP_FREE, in_default,
             TALLOC_ERROR_FOREIGN_POINTER);
    death_op("explicit", "another explicit heap's block", heap, OP_FREE, in_other,
             TALLOC_ERROR_FOREIGN_POINTER);
    death_op("default", "an explicit heap's block", NULL, OP_FREE, in_heap,
             TALLOC_ERROR_FOREIGN_POINTER);
    TAlloc_free(in_default);
    TAlloc_heap_free(heap, in_heap);
    TAlloc_heap_free(other, in_other);
    EXPECT_HEAP_OK(heap, "cross-heap: explicit heap");
    EXPECT_HEAP_OK(other, "cross-heap: other heap");
    TAlloc_heap_destroy(heap);
    TAlloc_heap_destroy(other);
}

/* ---- no death: normal use exits 0 and writes nothing ---------------------------------- */

static void normal_use(void)
{
    for (int round = 0; round < 2; round++) {
        TAlloc_heap *heap = round == 0 ? NULL : TAlloc_heap_create(NULL);
        if (round == 1 && heap == NULL)
            _exit(2);
        void *blocks[16];
        for (int i = 0; i < 16; i++) {
            blocks[i] = h_malloc(heap, (size_t)(i * 40 + 1));
            if (blocks[i] == NULL)
                _exit(3);
            memset(blocks[i], i, (size_t)(i * 40 + 1));
        }
        for (int i = 0; i < 16; i += 2)
            h_free(heap, blocks[i]);
        for (int i = 1; i < 16; i += 2) {
            void *grown = h_realloc(heap, blocks[i], 1000);
            if (grown == NULL || h_usable_size(heap, grown) < 1000)
                _exit(4);
            blocks[i] = grown;
        }
        h_free(heap, NULL);
        for (int i = 1; i < 16; i += 2)
            h_free(heap, blocks[i]);
        void *large = h_malloc(heap, round == 0 ? DEFAULT_LARGE_SIZE : EXPLICIT_LARGE_SIZE);
        if (large == NULL)
            _exit(5);
        h_free(heap, large);
        if (TAlloc_heap_check(heap_or_default(heap), NULL, NULL) != 0)
            _exit(6);
        if (heap)
            TAlloc_heap_destroy(heap);
    }
}

static void normal_use_in_child(void *arg)
{
    (void)arg;
    child_begin();
    normal_use();
}

static void test_no_death(void)
{
    char buf[1024];
    int status = test_run_child(normal_use_in_child, NULL, buf, sizeof buf);
    size_t used = strlen(buf);
    EXPECT(status != -1, "pipe, fork or waitpid failed");
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "normal use in a child should exit 0; got %s %d",
           WIFSIGNALED(status) ? "signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    EXPECT(used == 0, "normal use should write nothing to stderr; wrote \"%s\"", buf);
}

/* ---- the handler form ------------------------------------------------------------------- */

typedef struct error_record {
    TAlloc_heap *heap;       /* the handler calls into it: it runs without the lock held */
    int count;
    TAlloc_error error;
    const void *address;
} error_record;

static void record_error(void *ctx, TAlloc_error error, const void *address)
{
    error_record *rec = ctx;
    rec->count++;
    rec->error = error;
    rec->address = address;
    if (rec->heap) {
        TAlloc_stats stats;
        TAlloc_heap_get_stats(rec->heap, &stats);
    }
}

/* Redirects stderr into a pipe for the duration of one call, to prove nothing is written. */
typedef struct stderr_capture {
    int saved;
    int read_fd;
} stderr_capture;

static int capture_begin(stderr_capture *cap)
{
    int fds[2];
    fflush(stderr);
    if (pipe(fds) != 0)
        return 0;
    cap->saved = dup(2);
    cap->read_fd = fds[0];
    dup2(fds[1], 2);
    close(fds[1]);
    return 1;
}

static size_t capture_end(stderr_capture *cap, char *buf, size_t size)
{
    fflush(stderr);
    dup2(cap->saved, 2);
    close(cap->saved);
    size_t used = 0;
    ssize_t got;
    while (used < size - 1 && (got = read(cap->read_fd, buf + used, size - 1 - used)) > 0)
        used += (size_t)got;
    buf[used] = 0;
    close(cap->read_fd);
    return used;
}

static int same_counts(const TAlloc_stats *a, const TAlloc_stats *b)
{
    return a->allocated_count == b->allocated_count && a->allocated_bytes == b->allocated_bytes &&
           a->free_count == b->free_count && a->free_bytes == b->free_bytes &&
           a->arena_count == b->arena_count && a->mapped_bytes == b->mapped_bytes;
}

/*
 * Runs one misuse call on a heap with the recording handler and asserts: the handler ran once
 * with `error` (or `alt_error`, when not TALLOC_ERROR_NONE) and `ptr`; nothing was written to
 * stderr; the call returned safely and changed no counter.
 */
static void expect_handled_any(TAlloc_heap *heap, error_record *rec, op_kind op, void *ptr,
                               TAlloc_error error, TAlloc_error alt_error, const char *what)
{
    TAlloc_stats before, after;
    stderr_capture cap;
    char written[256];
    TAlloc_heap_get_stats(heap, &before);
    rec->count = 0;
    rec->error = TALLOC_ERROR_NONE;
    rec->address = NULL;
    int captured = capture_begin(&cap);
    void *result = NULL;
    size_t usable = 0;
    errno = 0;
    switch (op) {
    case OP_FREE:
        TAlloc_heap_free(heap, ptr);
        break;
    case OP_REALLOC:
        result = TAlloc_heap_realloc(heap, ptr, 10);
        break;
    case OP_USABLE_SIZE:
        usable = TAlloc_heap_usable_size(heap, ptr);
        break;
    }
    int saved_errno = errno;
    size_t written_len = captured ? capture_end(&cap, written, sizeof written) : 0;
    TAlloc_heap_get_stats(heap, &after);

    const char *opn = op_name(op);
    EXPECT(captured, "%s of %s: could not capture stderr", opn, what);
    EXPECT(written_len == 0, "%s of %s: with a handler nothing is written; got \"%s\"", opn, what,
           written);
    int error_ok = rec->error == error || (alt_error != TALLOC_ERROR_NONE && rec->error == alt_error);
    EXPECT(rec->count == 1 && error_ok && rec->address == ptr,
           "%s of %s: want one call (%s, %p); got %d calls, last (%s, %p)", opn, what,
           TAlloc_error_string(error), ptr, rec->count, TAlloc_error_string(rec->error),
           rec->address);
    if (op == OP_REALLOC)
        EXPECT(result == NULL && saved_errno == EINVAL,
               "realloc of %s: want NULL with errno EINVAL; got %p with errno %d", what, result,
               saved_errno);
    if (op == OP_USABLE_SIZE)
        EXPECT(usable == 0, "usable_size of %s: want 0; got %zu", what, usable);
    EXPECT(same_counts(&before, &after), "%s of %s: the failed call changed the heap's counters",
           opn, what);
    rec->count = 0; /* consumed: the next expect_no_handler_call starts from here */
}

static void expect_handled(TAlloc_heap *heap, error_record *rec, op_kind op, void *ptr,
                           TAlloc_error error, const char *what)
{
    expect_handled_any(heap, rec, op, ptr, error, TALLOC_ERROR_NONE, what);
}

/* free, realloc and usable_size of ptr: all report `error` (free reports `free_error`). */
static void expect_handled_all(TAlloc_heap *heap, error_record *rec, void *ptr,
                               TAlloc_error free_error, TAlloc_error error, const char *what)
{
    expect_handled(heap, rec, OP_FREE, ptr, free_error, what);
    expect_handled(heap, rec, OP_REALLOC, ptr, error, what);
    expect_handled(heap, rec, OP_USABLE_SIZE, ptr, error, what);
}

static void expect_no_handler_call(error_record *rec, const char *what)
{
    EXPECT(rec->count == 0, "%s: the handler should not run; it ran %d times (last %s %p)", what,
           rec->count, TAlloc_error_string(rec->error), rec->address);
    rec->count = 0;
}

static void expect_check_finds(TAlloc_heap *heap, const char *what)
{
    size_t n = TAlloc_heap_check(heap, NULL, NULL);
    EXPECT(n >= 1, "%s: the check should find the damage", what);
}

static void handler_suite(void)
{
    error_record rec = {0};
    TAlloc_heap *heap = create_heap(record_error, &rec);
    rec.heap = heap;
    int stack_probe = 0;
    void *foreign_page = map_foreign_page();

    /* a heap without arenas: everything is foreign; free(NULL) is no misuse */
    expect_handled_all(heap, &rec, &global_probe, TALLOC_ERROR_FOREIGN_POINTER,
                       TALLOC_ERROR_FOREIGN_POINTER, "a global (heap without arenas)");
    TAlloc_heap_free(heap, NULL);
    expect_no_handler_call(&rec, "free(NULL)");

    void *keep = TAlloc_heap_malloc(heap, 64);
    EXPECT(keep != NULL, "malloc(64) failed");

    /* double free, immediate */
    {
        void *p = TAlloc_heap_malloc(heap, 64);
        void *guard = TAlloc_heap_malloc(heap, 64);
        TAlloc_heap_free(heap, p);
        expect_no_handler_call(&rec, "first free");
        expect_handled_all(heap, &rec, p, TALLOC_ERROR_DOUBLE_FREE, TALLOC_ERROR_USE_AFTER_FREE,
                           "a freed block");
        EXPECT_HEAP_OK(heap, "after double free");
        TAlloc_heap_free(heap, guard);
    }

    /* double free, with frees and allocations in between */
    {
        void *a = TAlloc_heap_malloc(heap, 64);
        void *g1 = TAlloc_heap_malloc(heap, 64);
        void *b = TAlloc_heap_malloc(heap, 64);
        void *g2 = TAlloc_heap_malloc(heap, 64);
        TAlloc_heap_free(heap, a);
        void *c = TAlloc_heap_malloc(heap, 128);
        TAlloc_heap_free(heap, b);
        void *d = TAlloc_heap_malloc(heap, 100);
        TAlloc_heap_free(heap, c);
        d = TAlloc_heap_realloc(heap, d, 300);
        expect_no_handler_call(&rec, "frees and allocations in between");
        expect_handled(heap, &rec, OP_FREE, a, TALLOC_ERROR_DOUBLE_FREE,
                       "a block freed before other frees and allocations");
        expect_handled(heap, &rec, OP_FREE, b, TALLOC_ERROR_DOUBLE_FREE,
                       "a block freed between other frees and allocations");
        EXPECT_HEAP_OK(heap, "after double free (later)");
        TAlloc_heap_free(heap, d);
        TAlloc_heap_free(heap, g1);
        TAlloc_heap_free(heap, g2);
        expect_no_handler_call(&rec, "cleanup");
    }

    /* double free of a large block: its dedicated arena is gone after the first free, but the
       heap remembers the last ones it unmapped: "double free" (or "use after free") */
    {
        void *p = TAlloc_heap_malloc(heap, EXPLICIT_LARGE_SIZE);
        EXPECT(p != NULL, "malloc(%zu) failed", EXPLICIT_LARGE_SIZE);
        TAlloc_heap_free(heap, p);
        expect_no_handler_call(&rec, "first free of a large block");
        expect_handled_all(heap, &rec, p, TALLOC_ERROR_DOUBLE_FREE,
                           TALLOC_ERROR_USE_AFTER_FREE, "a freed large block");
        EXPECT_HEAP_OK(heap, "after double free of a large block");
    }

    /* foreign pointers */
    {
        TAlloc_heap *other = create_heap(NULL, NULL);
        void *in_default = TAlloc_malloc(64);
        void *in_other = TAlloc_heap_malloc(other, 64);
        expect_handled_all(heap, &rec, &stack_probe, TALLOC_ERROR_FOREIGN_POINTER,
                           TALLOC_ERROR_FOREIGN_POINTER, "a stack address");
        expect_handled_all(heap, &rec, &global_probe, TALLOC_ERROR_FOREIGN_POINTER,
                           TALLOC_ERROR_FOREIGN_POINTER, "a global");
        expect_handled_all(heap, &rec, foreign_page, TALLOC_ERROR_FOREIGN_POINTER,
                           TALLOC_ERROR_FOREIGN_POINTER, "a foreign mmap page");
        expect_handled_all(heap, &rec, (void *)1, TALLOC_ERROR_FOREIGN_POINTER,
                           TALLOC_ERROR_FOREIGN_POINTER, "(void *)1");
        expect_handled_all(heap, &rec, in_default, TALLOC_ERROR_FOREIGN_POINTER,
                           TALLOC_ERROR_FOREIGN_POINTER, "a default-heap block");
        expect_handled_all(heap, &rec, in_other, TALLOC_ERROR_FOREIGN_POINTER,
                           TALLOC_ERROR_FOREIGN_POINTER, "another heap's block");
        EXPECT_HEAP_OK(heap, "after foreign pointers");
        EXPECT_HEAP_OK(other, "the other heap after foreign pointers");
        TAlloc_free(in_default);
        TAlloc_heap_free(other, in_other);
        TAlloc_heap_destroy(other);
    }

    /* interior and misaligned pointers */
    {
        char *p = TAlloc_heap_malloc(heap, 64);
        void *guard = TAlloc_heap_malloc(heap, 64);
        memset(p, 0, 64);
        expect_handled_all(heap, &rec, p + 16, TALLOC_ERROR_INTERIOR_POINTER,
                           TALLOC_ERROR_INTERIOR_POINTER, "p+16");
        expect_handled_all(heap, &rec, p + 48, TALLOC_ERROR_INTERIOR_POINTER,
                           TALLOC_ERROR_INTERIOR_POINTER, "p+48");
        expect_handled_all(heap, &rec, p + 1, TALLOC_ERROR_MISALIGNED_POINTER,
                           TALLOC_ERROR_MISALIGNED_POINTER, "p+1");
        expect_handled_all(heap, &rec, p + 8, TALLOC_ERROR_MISALIGNED_POINTER,
                           TALLOC_ERROR_MISALIGNED_POINTER, "p+8");
        expect_handled_all(heap, &rec, p + 17, TALLOC_ERROR_MISALIGNED_POINTER,
                           TALLOC_ERROR_MISALIGNED_POINTER, "p+17");
        EXPECT_HEAP_OK(heap, "after interior and misaligned pointers");
        EXPECT(TAlloc_heap_usable_size(heap, p) == 64, "p should still be a live 64-byte block");
        TAlloc_heap_free(heap, guard);
        TAlloc_heap_free(heap, p);
        expect_no_handler_call(&rec, "cleanup");
    }

    /* corrupted headers: every op reports "corrupted header" p and touches nothing, so
       undoing the flip gives back a sound heap */
    {
        static const struct {
            const char *what;
            ptrdiff_t at;
            unsigned char mask;
        } flips[] = {
            {"check value bit 0 flipped", -8, 0x01},
            {"check value bit 63 flipped", -1, 0x80},
            {"size word free bit flipped", -16, 0x01},
            {"size word prev-free bit flipped", -16, 0x02},
            {"size word bit 4 flipped", -16, 0x10},
            {"size word bit 7 flipped", -16, 0x80},
            {"size word bit 34 flipped", -12, 0x04},
        };
        unsigned char *p = TAlloc_heap_malloc(heap, 64);
        void *guard = TAlloc_heap_malloc(heap, 64);
        for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
            test_unpoison(p + flips[i].at, 1);
            p[flips[i].at] ^= flips[i].mask;
            expect_check_finds(heap, flips[i].what);
            expect_handled_all(heap, &rec, p, TALLOC_ERROR_CORRUPTED_HEADER,
                               TALLOC_ERROR_CORRUPTED_HEADER, flips[i].what);
            test_unpoison(p + flips[i].at, 1);
            p[flips[i].at] ^= flips[i].mask;
            EXPECT_HEAP_OK(heap, flips[i].what);
        }
        TAlloc_heap_free(heap, guard);
        TAlloc_heap_free(heap, p);
        expect_no_handler_call(&rec, "cleanup");
    }

    /* an overflow from the previous block */
    {
        char *a = TAlloc_heap_malloc(heap, 24);
        char *b = TAlloc_heap_malloc(heap, 24);
        void *guard = TAlloc_heap_malloc(heap, 64);
        if (EXPECT(b == a + 48, "malloc(24) twice should give adjacent blocks: %p %p", (void *)a,
                   (void *)b)) {
            unsigned char saved[16];
            test_unpoison(a, 48);
            memcpy(saved, a + 32, sizeof saved);
            memset(a, 'A', 48);
            expect_check_finds(heap, "overflow into the next header");
            expect_handled_all(heap, &rec, b, TALLOC_ERROR_CORRUPTED_HEADER,
                               TALLOC_ERROR_CORRUPTED_HEADER, "a block behind an overflow");
            memcpy(a + 32, saved, sizeof saved);
            EXPECT_HEAP_OK(heap, "after overflow, header restored");
        }
        TAlloc_heap_free(heap, guard);
        TAlloc_heap_free(heap, b);
        TAlloc_heap_free(heap, a);
        expect_no_handler_call(&rec, "cleanup");
    }

    /* use after free */
    {
        void *a = TAlloc_heap_malloc(heap, 64);
        void *b = TAlloc_heap_malloc(heap, 64);
        TAlloc_heap_free(heap, a);
        expect_handled(heap, &rec, OP_REALLOC, a, TALLOC_ERROR_USE_AFTER_FREE, "a freed block");
        expect_handled(heap, &rec, OP_USABLE_SIZE, a, TALLOC_ERROR_USE_AFTER_FREE,
                       "a freed block");
        EXPECT_HEAP_OK(heap, "after use after free");
        TAlloc_heap_free(heap, b);
        expect_no_handler_call(&rec, "cleanup");
    }

    TAlloc_heap_free(heap, keep);
    EXPECT_HEAP_OK(heap, "handler heap at the end");
    expect_no_handler_call(&rec, "the end");
    TAlloc_heap_destroy(heap);
    munmap(foreign_page, (size_t)sysconf(_SC_PAGESIZE));
}

/*
 * Freeing a block again after it merged into a free neighbour, or after that memory was
 * handed out again. Its old header may still sit in memory; the free must neither trust it
 * nor blame anything but the user's pointer: "double free" or "interior pointer" at q.
 */
static void handler_stale_header_cases(void)
{
    error_record rec = {0};
    TAlloc_heap *heap = create_heap(record_error, &rec);
    rec.heap = heap;
    void *keep = TAlloc_heap_malloc(heap, 64);

    /* q merged into its free predecessor p */
    {
        char *p = TAlloc_heap_malloc(heap, 64);
        char *q = TAlloc_heap_malloc(heap, 64);
        void *guard = TAlloc_heap_malloc(heap, 64);
        TAlloc_heap_free(heap, p);
        TAlloc_heap_free(heap, q);
        expect_no_handler_call(&rec, "setup");
        expect_handled_any(heap, &rec, OP_FREE, q, TALLOC_ERROR_DOUBLE_FREE,
                           TALLOC_ERROR_INTERIOR_POINTER, "a block merged into its predecessor");
        expect_handled(heap, &rec, OP_FREE, p, TALLOC_ERROR_DOUBLE_FREE,
                       "the block a freed successor merged into");
        EXPECT_HEAP_OK(heap, "after double free of a merged block");
        TAlloc_heap_free(heap, guard);
    }

    /* q merged into p (freed after q), then the merged chunk was handed out again */
    {
        TAlloc_heap_flush(heap); /* no other quick chunk merges after p and q below */
        char *p = TAlloc_heap_malloc(heap, 64);
        char *q = TAlloc_heap_malloc(heap, 64);
        void *guard = TAlloc_heap_malloc(heap, 64);
        TAlloc_heap_free(heap, q);
        TAlloc_heap_free(heap, p);
        TAlloc_heap_flush(heap); /* out of the quick lists: q, then p merging with it */
        char *r = TAlloc_heap_malloc(heap, 144);
        expect_no_handler_call(&rec, "setup");
        if (EXPECT(r == p, "malloc(144) should take the 160-byte merged chunk at p")) {
            expect_handled_any(heap, &rec, OP_FREE, q, TALLOC_ERROR_INTERIOR_POINTER,
                               TALLOC_ERROR_DOUBLE_FREE,
                               "a freed block whose memory was handed out again");
            EXPECT_HEAP_OK(heap, "after free of a stale pointer");
            EXPECT(TAlloc_heap_usable_size(heap, r) == 144, "r should still be live");
        }
        TAlloc_heap_free(heap, r);
        TAlloc_heap_free(heap, guard);
    }

    TAlloc_heap_free(heap, keep);
    EXPECT_HEAP_OK(heap, "stale-header heap at the end");
    TAlloc_heap_destroy(heap);
}

static void test_error_strings(void)
{
    static const struct {
        TAlloc_error error;
        const char *text;
    } strings[] = {
        {TALLOC_ERROR_DOUBLE_FREE, "double free"},
        {TALLOC_ERROR_USE_AFTER_FREE, "use after free"},
        {TALLOC_ERROR_FOREIGN_POINTER, "foreign pointer"},
        {TALLOC_ERROR_MISALIGNED_POINTER, "misaligned pointer"},
        {TALLOC_ERROR_INTERIOR_POINTER, "interior pointer"},
        {TALLOC_ERROR_CORRUPTED_HEADER, "corrupted header"},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *got = TAlloc_error_string(strings[i].error);
        EXPECT(got != NULL && strcmp(got, strings[i].text) == 0, "error %d: want \"%s\", got \"%s\"",
               (int)strings[i].error, strings[i].text, got ? got : "(null)");
    }
}

int main(void)
{
    alarm(TEST_TIMEOUT_SECONDS);
    test_error_strings();
    test_no_death();

    death_suite(NULL, "default", DEFAULT_LARGE_SIZE);
    {
        TAlloc_heap *heap = create_heap(NULL, NULL);
        death_suite(heap, "explicit", EXPLICIT_LARGE_SIZE);
        TAlloc_heap_destroy(heap);
    }
    death_cross_heap();

    handler_suite();
    handler_stale_header_cases();
    return test_summary("test_death");
}
