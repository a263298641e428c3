/*
 * testutil.h - the few helpers every TAlloc test program shares.
 *
 * EXPECT(cond, ...) records a failure with a printf-style message and goes on; a test program
 * ends with `return test_summary("name");`, which prints "N passed, N failed" and returns the
 * exit status for ctest. expect_death() runs a function in a forked child and asserts the
 * signal it dies of and the exact text it wrote to stderr. test_unpoison() lets a test damage
 * TAlloc's metadata on purpose in sanitizer builds. Asserts here never depend on NDEBUG.
 */
#ifndef TALLOC_TESTUTIL_H
#define TALLOC_TESTUTIL_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "talloc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TEST_HAVE_ASAN)
#define TEST_HAVE_ASAN 1
#endif
#if defined(TEST_HAVE_ASAN)
#include <sanitizer/asan_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define TEST_HAVE_MEMCHECK_H 1
#endif
#endif

static int test_pass_count;
static int test_fail_count;

#define EXPECT(cond, ...) test_expect((cond) != 0, __FILE__, __LINE__, #cond, __VA_ARGS__)

__attribute__((format(printf, 5, 6))) static inline int test_expect(int ok, const char *file,
                                                                    int line, const char *text,
                                                                    const char *fmt, ...)
{
    if (ok) {
        test_pass_count++;
        return 1;
    }
    test_fail_count++;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, text);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}

static inline int test_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, test_pass_count, test_fail_count);
    return test_fail_count == 0 ? 0 : 1;
}

/* An error handler that records the last report and counts them (ctx: test_error_log). */
typedef struct test_error_log {
    int count;
    TAlloc_error error;
    const void *address;
} test_error_log;

static inline void test_record_error(void *ctx, TAlloc_error error, const void *address)
{
    test_error_log *log = ctx;
    log->count++;
    log->error = error;
    log->address = address;
}

/* Collects check violations as text so a failing test shows them. */
typedef struct test_violations {
    size_t count;
    char text[1024];
} test_violations;

static inline void test_violation_cb(void *ctx, int invariant, const void *address,
                                     const char *detail)
{
    test_violations *v = ctx;
    size_t used = strlen(v->text);
    if (used < sizeof v->text - 1)
        snprintf(v->text + used, sizeof v->text - used, " [I%d %p %s]", invariant, address,
                 detail);
    v->count++;
}

/* EXPECTs that the heap passes TAlloc_heap_check, printing the violations otherwise. */
#define EXPECT_HEAP_OK(heap, what)                                                           \
    do {                                                                                     \
        test_violations tv_ = {0, {0}};                                                      \
        size_t n_ = TAlloc_heap_check((heap), test_violation_cb, &tv_);                      \
        EXPECT(n_ == 0 && tv_.count == 0, "%s: %zu violations:%s", (what), n_, tv_.text);    \
    } while (0)

/*
 * Lets the test itself touch n bytes TAlloc keeps inaccessible to AddressSanitizer and
 * Valgrind (headers, free-chunk fields, bytes past a block: allocator/src/track.h), so that
 * damage done on purpose reaches the allocator instead of being reported as the test's bug.
 * The range is widened to 16-byte boundaries, the unit of TAlloc's layout: memcheck gives a
 * word that is only partly accessible undefined bytes when the allocator loads it. Compiles
 * to nothing in builds without either sanitizer.
 */
static inline void test_unpoison(const volatile void *addr, size_t n)
{
    uintptr_t from = (uintptr_t)addr & ~(uintptr_t)15;
    uintptr_t to = ((uintptr_t)addr + n + 15) & ~(uintptr_t)15;
#if defined(TEST_HAVE_ASAN)
    __asan_unpoison_memory_region((const void *)from, to - from);
#endif
#if defined(TEST_HAVE_MEMCHECK_H)
    (void)VALGRIND_MAKE_MEM_DEFINED(from, to - from);
#endif
    (void)from;
    (void)to;
}

/* The placement policy tests run under: TALLOC_TEST_POLICY (a policy name), else the
   default. ctest runs the policy-neutral tests once per policy this way. */
static inline TAlloc_policy test_policy(void)
{
    const char *name = getenv("TALLOC_TEST_POLICY");
    TAlloc_config config;
    TAlloc_config_init(&config);
    if (name)
        TAlloc_policy_parse(name, strlen(name), &config.policy);
    return config.policy;
}

/* A default config with `arena_size`-byte arenas and, when `handler` is not NULL, that
   error handler; the policy is test_policy(). */
static inline TAlloc_config test_config(size_t arena_size, TAlloc_error_fn handler, void *ctx)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.policy = test_policy();
    config.arena_size = arena_size;
    config.error_handler = handler;
    config.error_ctx = ctx;
    return config;
}

/* A heap made from `config`; a test that cannot get one stops at once with its summary
   (`test_name`). */
static inline TAlloc_heap *test_heap_from(const TAlloc_config *config, const char *test_name)
{
    TAlloc_heap *heap = TAlloc_heap_create(config);
    EXPECT(heap != NULL, "TAlloc_heap_create failed: %s", strerror(errno));
    if (heap == NULL)
        exit(test_summary(test_name));
    return heap;
}

static inline TAlloc_heap *test_heap(size_t arena_size, TAlloc_error_fn handler, void *ctx,
                                     const char *test_name)
{
    TAlloc_config config = test_config(arena_size, handler, ctx);
    return test_heap_from(&config, test_name);
}

/*
 * Runs fn(arg) in a child process (which exits 0 if fn returns) with its file descriptor `fd`
 * (2: stderr, 1: stdout) captured in `buf` (NUL-terminated, cut to fit). Returns the child's
 * wait status, or -1 when no child could be started.
 */
static inline int test_run_child_fd(void (*fn)(void *), void *arg, int fd, char *buf,
                                    size_t capacity)
{
    int fds[2];
    buf[0] = 0;
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], fd);
        close(fds[1]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t got;
    while (used < capacity - 1 && (got = read(fds[0], buf + used, capacity - 1 - used)) > 0)
        used += (size_t)got;
    buf[used] = 0;
    close(fds[0]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

static inline int test_run_child(void (*fn)(void *), void *arg, char *buf, size_t capacity)
{
    return test_run_child_fd(fn, arg, 2, buf, capacity);
}

/*
 * Runs fn(arg) in a child process with stderr captured. Returns 1 when the child was killed
 * by `signo` and its stderr equals `expected_stderr` exactly; prints what differed otherwise.
 */
static inline int expect_death(const char *name, void (*fn)(void *), void *arg, int signo,
                               const char *expected_stderr)
{
    char buf[4096];
    int status = test_run_child(fn, arg, buf, sizeof buf);
    if (status == -1)
        return test_expect(0, __FILE__, __LINE__, name, "pipe, fork or waitpid failed");
    int died = WIFSIGNALED(status) && WTERMSIG(status) == signo;
    int same = strcmp(buf, expected_stderr) == 0;
    return test_expect(died && same, __FILE__, __LINE__, name,
                       "want signal %d and stderr \"%s\"; got %s %d and stderr \"%s\"", signo,
                       expected_stderr, WIFSIGNALED(status) ? "signal" : "exit status",
                       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), buf);
}

#endif /* TALLOC_TESTUTIL_H */
