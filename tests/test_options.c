/*
 * test_options.c - TALLOC_OPTIONS and what it controls: the default heap's configuration
 * (arena size, retained arenas, policy), the options line of verbose=1, the statistics of
 * stats=1 at exit, warnings for unknown keys and bad values; TAlloc_trim and
 * TAlloc_write_stats.
 *
 * The options are read once, when the default heap is created, so every case runs in a fresh
 * process: this program re-executes itself as `test_options --child CASE` with the variable
 * set, and checks the child's exit status, stdout and stderr.
 */
#include <fcntl.h>
#include <stdbool.h>

#include "testutil.h"

/* ---- child side: one case each, results on stdout ------------------------------------- */

static TAlloc_stats stats_now(void)
{
    TAlloc_stats s;
    TAlloc_get_stats(&s);
    return s;
}

/* Prints the options and the size of the first arena. */
static int child_config(void)
{
    void *p = TAlloc_malloc(100);
    TAlloc_stats s = stats_now();
    TAlloc_options o;
    TAlloc_get_options(&o);
    printf("stats=%d verbose=%d mapped=%zu arenas=%zu\n", o.stats, o.verbose, s.mapped_bytes,
           s.arena_count);
    TAlloc_free(p);
    return 0;
}

/* Fills `n` standard arenas (1 MiB each in this case), frees everything, reports how many
   arenas stay mapped, then trims. */
static int child_retain(void)
{
    enum { N = 4 };
    void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = TAlloc_malloc(700 * 1024); /* one per 1 MiB arena */
    size_t full = stats_now().arena_count;
    for (int i = 0; i < N; i++)
        TAlloc_free(blocks[i]);
    size_t kept = stats_now().arena_count;
    size_t trimmed = TAlloc_trim();
    size_t after = stats_now().arena_count;
    size_t again = TAlloc_trim();
    printf("full=%zu kept=%zu trimmed=%zu after=%zu again=%zu check=%d\n", full, kept, trimmed,
           after, again, (int)TAlloc_check(NULL, NULL));
    return 0;
}

/* Best fit takes the smaller of two holes that fit; first fit the lower one. */
/* Three holes: a large one first, then two of one small size, the higher freed last. First
   fit takes the first, best fit the lower small one, segregated fit the one freed last. */
static int child_policy(void)
{
    void *a = TAlloc_malloc(4000), *s1 = TAlloc_malloc(16);
    void *b = TAlloc_malloc(200), *s2 = TAlloc_malloc(16);
    void *b2 = TAlloc_malloc(200), *s3 = TAlloc_malloc(16);
    TAlloc_free(a);
    TAlloc_free(b);
    TAlloc_free(b2);
    void *c = TAlloc_malloc(150);
    printf("%s\n", c == b ? "small-hole" : c == a ? "first-hole" : c == b2 ? "last-freed" : "elsewhere");
    TAlloc_free(c);
    TAlloc_free(s1);
    TAlloc_free(s2);
    TAlloc_free(s3);
    return 0;
}

/* The statistics lines through TAlloc_write_stats, on stdout. */
static int child_write_stats(void)
{
    void *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = TAlloc_malloc(64);
    TAlloc_free(p[1]);
    fflush(stdout);
    TAlloc_write_stats(1);
    TAlloc_free(p[0]);
    TAlloc_free(p[2]);
    return 0;
}

/* Closes stderr before exiting, as programs that check it for write errors do. */
static int child_close_stderr(void)
{
    TAlloc_free(TAlloc_malloc(10));
    close(2);
    return 0;
}

static int run_child_case(const char *name)
{
    if (strcmp(name, "close_stderr") == 0)
        return child_close_stderr();
    if (strcmp(name, "config") == 0)
        return child_config();
    if (strcmp(name, "retain") == 0)
        return child_retain();
    if (strcmp(name, "policy") == 0)
        return child_policy();
    if (strcmp(name, "write_stats") == 0)
        return child_write_stats();
    fprintf(stderr, "unknown case %s\n", name);
    return 2;
}

/* ---- parent side ----------------------------------------------------------------------- */

typedef struct outcome {
    int status;
    char out[4096];
    char err[4096];
} outcome;

static void read_all(int fd, char *buf, size_t capacity)
{
    size_t used = 0;
    ssize_t got;
    while (used < capacity - 1 && (got = read(fd, buf + used, capacity - 1 - used)) > 0)
        used += (size_t)got;
    buf[used] = 0;
}

/* Runs this program as `--child name` with TALLOC_OPTIONS set to `options` (unset if NULL).
   stdout and stderr go to temporary files so neither pipe can fill while the other waits. */
static outcome run(const char *name, const char *options)
{
    outcome o = {.status = -1};
    char out_path[] = "/tmp/talloc-options-out-XXXXXX";
    char err_path[] = "/tmp/talloc-options-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    if (out_fd < 0 || err_fd < 0)
        return o;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        if (options)
            setenv("TALLOC_OPTIONS", options, 1);
        else
            unsetenv("TALLOC_OPTIONS");
        execl("/proc/self/exe", "test_options", "--child", name, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, &o.status, 0);
    lseek(out_fd, 0, SEEK_SET);
    lseek(err_fd, 0, SEEK_SET);
    read_all(out_fd, o.out, sizeof o.out);
    read_all(err_fd, o.err, sizeof o.err);
    close(out_fd);
    close(err_fd);
    unlink(out_path);
    unlink(err_path);
    return o;
}

static bool exited_ok(const outcome *o)
{
    return WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0;
}

/* Lines of `text` that start with "talloc: " (the allocator's own lines). */
static size_t talloc_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "talloc: ")) != NULL; p++)
        if (p == text || p[-1] == '\n')
            n++;
    return n;
}

static void test_defaults(void)
{
    outcome o = run("config", NULL);
    EXPECT(exited_ok(&o), "status %d, stderr %s", o.status, o.err);
    EXPECT(strcmp(o.out, "stats=0 verbose=0 mapped=16384000 arenas=1\n") == 0, "out: %s", o.out);
    EXPECT(talloc_lines(o.err) == 0, "nothing on stderr without options: %s", o.err);

    o = run("config", "");
    EXPECT(exited_ok(&o) && strstr(o.out, "mapped=16384000") != NULL, "empty: %s", o.out);
    EXPECT(o.err[0] == 0, "an empty value says nothing: %s", o.err);
}

static void test_verbose_and_sizes(void)
{
    outcome o = run("config", "verbose=1:arena_size=1m:retain=2:policy=best");
    EXPECT(exited_ok(&o), "status %d, stderr %s", o.status, o.err);
    EXPECT(strcmp(o.out, "stats=0 verbose=1 mapped=1048576 arenas=1\n") == 0, "out: %s", o.out);
    EXPECT(strcmp(o.err, "talloc: options stats=0 verbose=1 arena_size=1048576 retain=2 "
                         "policy=best-fit canary=0 junk=0 guard=0 quarantine=0 "
                         "quarantine_bytes=33554432 fork_rekey=1 large_cache=67108864 "
                         "quick=1048576 purge=4194304\n") == 0,
           "err: %s", o.err);
    o = run("config", "verbose=1:canary=1:junk=1:guard=1:quarantine=64:fork_rekey=0");
    EXPECT(strstr(o.err, " canary=1 junk=1 guard=1 quarantine=64 quarantine_bytes=33554432 "
                         "fork_rekey=0 large_cache=") != NULL,
           "hardening options: %s", o.err);
    o = run("config", "verbose=1:quarantine=64:quarantine_bytes=2m");
    EXPECT(strstr(o.err, " quarantine=64 quarantine_bytes=2097152 ") != NULL,
           "quarantine's byte bound: %s", o.err);

    /* ',' separates too; k and g suffixes; sizes are rounded up to whole pages */
    o = run("config", "arena_size=100k,verbose=1");
    EXPECT(strstr(o.out, "mapped=102400 ") != NULL, "100k arenas: %s", o.out);
    o = run("config", "arena_size=1g::verbose=1");
    EXPECT(strstr(o.out, "mapped=1073741824 ") != NULL, "1g arenas: %s", o.out);
    EXPECT(strstr(o.err, "arena_size=1073741824") != NULL, "1g line: %s", o.err);
    o = run("config", "quick=64k:verbose=1");
    EXPECT(strstr(o.err, " quick=65536 ") != NULL, "quick lists' bound: %s", o.err);
    o = run("config", "quick=0:verbose=1");
    EXPECT(strstr(o.err, " quick=0 ") != NULL, "no quick lists: %s", o.err);
    o = run("config", "purge=1m:verbose=1");
    EXPECT(strstr(o.err, " purge=1048576\n") != NULL, "purge bound: %s", o.err);
    o = run("config", "purge=0:verbose=1");
    EXPECT(strstr(o.err, " purge=0\n") != NULL, "no purging: %s", o.err);
    o = run("config", "arena_size=5000:verbose=1");
    EXPECT(strstr(o.err, "arena_size=8192 ") != NULL, "page-rounded: %s", o.err);
}

static void test_bad_options(void)
{
    static const struct {
        const char *options;
        const char *expected_err;
    } cases[] = {
        {"frobnicate=1", "talloc: TALLOC_OPTIONS: unknown option 'frobnicate=1' ignored\n"},
        {"stats", "talloc: TALLOC_OPTIONS: unknown option 'stats' ignored\n"},
        {"stats=2", "talloc: TALLOC_OPTIONS: bad value in 'stats=2' ignored\n"},
        {"verbose=yes", "talloc: TALLOC_OPTIONS: bad value in 'verbose=yes' ignored\n"},
        {"arena_size=12q", "talloc: TALLOC_OPTIONS: bad value in 'arena_size=12q' ignored\n"},
        {"arena_size=100", "talloc: TALLOC_OPTIONS: bad value in 'arena_size=100' ignored\n"},
        {"arena_size=99999999999999999999",
         "talloc: TALLOC_OPTIONS: bad value in 'arena_size=99999999999999999999' ignored\n"},
        {"arena_size=17179869184g",
         "talloc: TALLOC_OPTIONS: bad value in 'arena_size=17179869184g' ignored\n"},
        {"retain=-1", "talloc: TALLOC_OPTIONS: bad value in 'retain=-1' ignored\n"},
        {"policy=worst", "talloc: TALLOC_OPTIONS: bad value in 'policy=worst' ignored\n"},
        {"canary=on", "talloc: TALLOC_OPTIONS: bad value in 'canary=on' ignored\n"},
        {"junk=2", "talloc: TALLOC_OPTIONS: bad value in 'junk=2' ignored\n"},
        {"guard=x", "talloc: TALLOC_OPTIONS: bad value in 'guard=x' ignored\n"},
        {"quarantine=99999999", "talloc: TALLOC_OPTIONS: bad value in 'quarantine=99999999' ignored\n"},
        {"quarantine_bytes=2x", "talloc: TALLOC_OPTIONS: bad value in 'quarantine_bytes=2x' ignored\n"},
        {"fork_rekey=yes", "talloc: TALLOC_OPTIONS: bad value in 'fork_rekey=yes' ignored\n"},
        {"quick=lots", "talloc: TALLOC_OPTIONS: bad value in 'quick=lots' ignored\n"},
        {"purge=-1", "talloc: TALLOC_OPTIONS: bad value in 'purge=-1' ignored\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome o = run("config", cases[i].options);
        EXPECT(exited_ok(&o), "%s: status %d", cases[i].options, o.status);
        EXPECT(strcmp(o.err, cases[i].expected_err) == 0, "%s: err %s", cases[i].options, o.err);
        EXPECT(strcmp(o.out, "stats=0 verbose=0 mapped=16384000 arenas=1\n") == 0,
               "%s: defaults kept: %s", cases[i].options, o.out);
    }
    /* a bad item does not stop the ones after it */
    outcome o = run("config", "nope=1:verbose=1");
    EXPECT(strstr(o.err, "unknown option 'nope=1'") && strstr(o.err, "talloc: options "),
           "goes on: %s", o.err);
}

static void test_retain_and_trim(void)
{
    outcome o = run("retain", "arena_size=1m:retain=2");
    EXPECT(exited_ok(&o), "status %d, stderr %s", o.status, o.err);
    EXPECT(strcmp(o.out, "full=4 kept=2 trimmed=2 after=0 again=0 check=0\n") == 0, "%s", o.out);
    o = run("retain", "arena_size=1m:retain=0");
    EXPECT(strcmp(o.out, "full=4 kept=0 trimmed=0 after=0 again=0 check=0\n") == 0, "%s", o.out);
    o = run("retain", "arena_size=1m");
    EXPECT(strcmp(o.out, "full=4 kept=1 trimmed=1 after=0 again=0 check=0\n") == 0, "%s", o.out);
}

static void test_policy_option(void)
{
    static const struct {
        const char *options, *want;
    } cases[] = {
        /* quick=0: the freed blocks are holes at once, not kept in the quick lists */
        {"quick=0:policy=best-fit", "small-hole\n"}, {"quick=0:policy=best", "small-hole\n"},
        {"quick=0:policy=first-fit", "first-hole\n"}, {"quick=0:policy=first", "first-hole\n"},
        {"quick=0:policy=segregated", "last-freed\n"}, {"quick=0", "last-freed\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome o = run("policy", cases[i].options);
        EXPECT(exited_ok(&o) && strcmp(o.out, cases[i].want) == 0, "%s: %s",
               cases[i].options, o.out);
    }
    outcome o = run("policy", "policy=worst");
    EXPECT(strstr(o.err, "talloc: TALLOC_OPTIONS: bad value in 'policy=worst' ignored") != NULL,
           "an unknown policy: %s", o.err);
}

/* Counts in a statistics text: "allocations A, frees F" and "live blocks L". */
static void test_stats(void)
{
    outcome o = run("write_stats", NULL);
    EXPECT(exited_ok(&o), "status %d", o.status);
    EXPECT(strstr(o.out, "talloc: statistics of heap 0x") == o.out, "first line: %s", o.out);
    EXPECT(strstr(o.out, "(default heap, pid ") != NULL, "default heap named: %s", o.out);
    EXPECT(strstr(o.out, "\ntalloc:   allocations 3, frees 1\n") != NULL, "counts: %s", o.out);
    EXPECT(strstr(o.out, "\ntalloc:   live blocks 2, live bytes 128\n") != NULL, "live: %s", o.out);
    EXPECT(strstr(o.out, "\ntalloc:   arenas 1, mapped bytes 16384000\n") != NULL, "arenas: %s",
           o.out);
    EXPECT(strstr(o.out, "\ntalloc:   program break at start 0x") != NULL, "brk: %s", o.out);
    EXPECT(o.err[0] == 0, "stats=0 writes nothing at exit: %s", o.err);

    /* stats=1: the same lines on stderr at exit, with every block freed */
    o = run("write_stats", "stats=1");
    EXPECT(exited_ok(&o), "status %d", o.status);
    EXPECT(strstr(o.err, "talloc: statistics of heap 0x") == o.err, "at exit: %s", o.err);
    EXPECT(strstr(o.err, "\ntalloc:   allocations 3, frees 3\n") != NULL, "exit counts: %s", o.err);
    EXPECT(strstr(o.err, "\ntalloc:   live blocks 0, live bytes 0\n") != NULL, "exit live: %s",
           o.err);
    EXPECT(strstr(o.err, "\ntalloc:   quick blocks ") != NULL, "exit quick blocks: %s", o.err);
    EXPECT(talloc_lines(o.err) == 9, "nine lines: %s", o.err);

    /* the exit statistics survive a program that closes stderr before it exits */
    o = run("close_stderr", "stats=1");
    EXPECT(exited_ok(&o), "status %d", o.status);
    EXPECT(strstr(o.err, "talloc:   allocations 1, frees 1\n") != NULL, "closed: %s", o.err);
}

/* In-process: the default heap here was created without stats; TAlloc_write_stats works
   on any descriptor, and an explicit heap's lines do not claim to be the default heap's. */
static void test_explicit_heap_stats(void)
{
    TAlloc_heap *heap = TAlloc_heap_create(NULL);
    void *p = TAlloc_heap_malloc(heap, 10);
    int fds[2];
    EXPECT(pipe(fds) == 0, "pipe");
    TAlloc_heap_write_stats(heap, fds[1]);
    close(fds[1]);
    char buf[2048];
    read_all(fds[0], buf, sizeof buf);
    close(fds[0]);
    EXPECT(strstr(buf, " (pid ") != NULL && strstr(buf, "default heap") == NULL, "%s", buf);
    EXPECT(strstr(buf, "talloc:   allocations 1, frees 0\n") != NULL, "%s", buf);
    EXPECT(strstr(buf, "program break") == NULL, "only the default heap's: %s", buf);
    EXPECT(strstr(buf, "talloc:   quick blocks 0, quick bytes 0\n") != NULL, "%s", buf);
    EXPECT(talloc_lines(buf) == 8, "eight lines: %s", buf);
    TAlloc_heap_free(heap, p);
    TAlloc_heap_destroy(heap);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return run_child_case(argv[2]);
    test_defaults();
    test_verbose_and_sizes();
    test_bad_options();
    test_retain_and_trim();
    test_policy_option();
    test_stats();
    test_explicit_heap_stats();
    return test_summary("test_options");
}
