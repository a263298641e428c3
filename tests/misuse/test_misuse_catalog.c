/*
 * test_misuse_catalog.c - every case of the misuse catalog (misuse_cases.c), run on TAlloc
 * through libtallocator-malloc.so, ends the way the catalog says:
 *   - `abort`: killed by SIGABRT, and stderr holds exactly one "talloc: " line, the one the
 *     case printed on stdout after "expect: " (computed from the real addresses);
 *   - `sigsegv`: killed by SIGSEGV, with the expected line if the case printed one, else none;
 *   - `undetectable`: exits 0 without any "talloc: " line.
 * Each case runs in its own process with the TALLOC_OPTIONS the catalog gives it; a case whose
 * outcome is decided by a race or a timer (`repeat`) runs REPEAT_RUNS times and must end the
 * same way every time.
 *
 * Usage: test_misuse_catalog MISUSE_CASES LIBTALLOCATOR_MALLOC_SO
 */
#include <poll.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <time.h>

#include "testutil.h"

enum {
    MAX_CASES = 128,
    REPEAT_RUNS = 20,
    RUN_TIMEOUT_SECONDS = 60, /* far above any case's own watchdog */
    LAYOUT_FAILED = 3,        /* misuse_cases: the heap layout a case needs was not reached */
};

typedef struct catalog_case {
    char name[64];
    char kind[16];
    char options[256];
    bool is_repeat;
} catalog_case;

typedef struct run_result {
    int status;      /* wait status */
    bool timed_out;
    char out[4096];  /* stdout, NUL-terminated, cut to fit */
    char err[8192];  /* stderr */
} run_result;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends what fd has to buf; false at end of file. */
static bool drain(int fd, char *buf, size_t capacity, size_t *used)
{
    char scratch[1024];
    ssize_t got = read(fd, scratch, sizeof scratch);
    if (got <= 0)
        return false;
    size_t take = (size_t)got;
    if (take > capacity - 1 - *used)
        take = capacity - 1 - *used;
    memcpy(buf + *used, scratch, take);
    *used += take;
    buf[*used] = 0;
    return true;
}

/* Runs argv with LD_PRELOAD=preload (when not NULL) and TALLOC_OPTIONS=options, collecting
   stdout and stderr; kills it after RUN_TIMEOUT_SECONDS. False when it could not be run. */
static bool run_program(char *const argv[], const char *preload, const char *options,
                        run_result *r)
{
    int out_pipe[2], err_pipe[2];
    *r = (run_result){0};
    if (pipe(out_pipe) != 0)
        return false;
    if (pipe(err_pipe) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close(out_pipe[0]);
        close(err_pipe[0]);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        setenv("TALLOC_OPTIONS", options, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    char *bufs[2] = {r->out, r->err};
    size_t caps[2] = {sizeof r->out, sizeof r->err};
    size_t used[2] = {0, 0};
    double deadline = now_seconds() + RUN_TIMEOUT_SECONDS;
    while (pid > 0 && (fds[0].fd >= 0 || fds[1].fd >= 0)) {
        double left = deadline - now_seconds();
        if (left <= 0 && !r->timed_out) {
            kill(pid, SIGKILL);
            r->timed_out = true;
        }
        if (poll(fds, 2, left > 0 ? (int)(left * 1000) + 1 : 1000) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd >= 0 && fds[i].revents != 0 &&
                !drain(fds[i].fd, bufs[i], caps[i], &used[i])) {
                close(fds[i].fd);
                fds[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    return pid > 0 && waitpid(pid, &r->status, 0) == pid;
}

/* Reads `misuse_cases --list`: NAME KIND TALLOC_OPTIONS=... RUNS per line. */
static size_t list_cases(char *cases_path, catalog_case *out, size_t capacity)
{
    char list_flag[] = "--list";
    char *argv[] = {cases_path, list_flag, NULL};
    static run_result r;
    if (!run_program(argv, NULL, "", &r) || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
        EXPECT(0, "%s --list failed: %s", cases_path, r.err);
        return 0;
    }
    size_t count = 0;
    for (char *line = strtok(r.out, "\n"); line && count < capacity; line = strtok(NULL, "\n")) {
        char options[300], runs[16];
        catalog_case *c = &out[count];
        if (!EXPECT(sscanf(line, "%63s %15s %299s %15s", c->name, c->kind, options, runs) == 4 &&
                        strncmp(options, "TALLOC_OPTIONS=", 15) == 0 &&
                        (strcmp(runs, "once") == 0 || strcmp(runs, "repeat") == 0),
                    "malformed catalog line \"%s\"", line))
            continue;
        snprintf(c->options, sizeof c->options, "%.*s", (int)sizeof c->options - 1, options + 15);
        c->is_repeat = strcmp(runs, "repeat") == 0;
        count++;
    }
    return count;
}

/* The text after "expect: " in the case's stdout (its only such line), or NULL. */
static const char *expected_line(const run_result *r, char *buf, size_t capacity)
{
    const char *found = NULL;
    int count = 0;
    for (const char *s = r->out; (s = strstr(s, "expect: ")) != NULL; s++) {
        if (s == r->out || s[-1] == '\n') {
            found = s + strlen("expect: ");
            count++;
        }
    }
    if (count != 1)
        return NULL;
    size_t n = strcspn(found, "\n");
    snprintf(buf, capacity, "%.*s", (int)(n < capacity ? n : capacity - 1), found);
    return buf;
}

/* How many lines of stderr start with "talloc: "; the first one is copied to `first`. */
static int talloc_lines(const char *err, char *first, size_t capacity)
{
    int count = 0;
    first[0] = 0;
    for (const char *s = err; *s; s += strcspn(s, "\n"), s += *s == '\n') {
        if (strncmp(s, "talloc: ", 8) != 0)
            continue;
        if (count++ == 0)
            snprintf(first, capacity, "%.*s", (int)strcspn(s, "\n"), s);
    }
    return count;
}

/* The outcome of one run in words, for failure messages. */
static void describe(const run_result *r, char *buf, size_t capacity)
{
    if (r->timed_out)
        snprintf(buf, capacity, "killed after %d s", RUN_TIMEOUT_SECONDS);
    else if (WIFSIGNALED(r->status))
        snprintf(buf, capacity, "signal %d (%s)", WTERMSIG(r->status),
                 strsignal(WTERMSIG(r->status)));
    else
        snprintf(buf, capacity, "exit status %d", WEXITSTATUS(r->status));
}

/* Checks one run of case `c`; returns 1 when it ended as the catalog says, -1 on a failure
   (recorded). */
static int check_run(const catalog_case *c, const run_result *r)
{
    char expected[256], got[256], how[128];
    const char *want = expected_line(r, expected, sizeof expected);
    int reports = talloc_lines(r->err, got, sizeof got);
    describe(r, how, sizeof how);
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == LAYOUT_FAILED) {
        EXPECT(0, "%s: the case could not set up its heap layout: %s", c->name, r->err);
        return -1;
    }
    if (!EXPECT(want != NULL, "%s: want one \"expect: \" line on stdout, got \"%s\" (%s)",
                c->name, r->out, how))
        return -1;
    bool is_none = strcmp(want, "(none)") == 0;
    bool ok;
    if (strcmp(c->kind, "abort") == 0)
        ok = EXPECT(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT && !is_none &&
                        reports == 1 && strcmp(got, want) == 0,
                    "%s: want SIGABRT and the one line \"%s\"; got %s and %d talloc lines in "
                    "stderr \"%s\"",
                    c->name, want, how, reports, r->err);
    else if (strcmp(c->kind, "sigsegv") == 0)
        ok = EXPECT(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGSEGV &&
                        (is_none ? reports == 0 : reports == 1 && strcmp(got, want) == 0),
                    "%s: want SIGSEGV and %s; got %s and stderr \"%s\"", c->name,
                    is_none ? "no talloc line" : want, how, r->err);
    else if (strcmp(c->kind, "undetectable") == 0)
        ok = EXPECT(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0 && is_none &&
                        reports == 0,
                    "%s: want exit status 0 without a report (expect \"%s\"); got %s and "
                    "stderr \"%s\"",
                    c->name, want, how, r->err);
    else
        ok = EXPECT(0, "%s: unknown outcome kind \"%s\"", c->name, c->kind);
    return ok ? 1 : -1;
}

static void run_case(char *cases_path, const char *preload, const catalog_case *c)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)sizeof name - 1, c->name);
    char *argv[] = {cases_path, name, NULL};
    int runs = c->is_repeat ? REPEAT_RUNS : 1;
    int as_catalog = 0;
    static run_result r;
    for (int i = 0; i < runs; i++) {
        if (!EXPECT(run_program(argv, preload, c->options, &r), "%s: could not run", c->name))
            return;
        if (check_run(c, &r) < 0)
            return;
        as_catalog++;
    }
    printf("%-32s %-12s %d run%s ok\n", c->name, c->kind, as_catalog, as_catalog == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_misuse_catalog MISUSE_CASES LIBTALLOCATOR_MALLOC_SO\n");
        return 2;
    }
    static catalog_case cases[MAX_CASES];
    size_t count = list_cases(argv[1], cases, MAX_CASES);
    EXPECT(count > 0, "the catalog lists no case");
    for (size_t i = 0; i < count; i++)
        run_case(argv[1], argv[2], &cases[i]);

    /* a name the catalog does not know is a usage error, not a silent pass */
    char unknown[] = "no_such_case";
    char *argv_unknown[] = {argv[1], unknown, NULL};
    static run_result r;
    EXPECT(run_program(argv_unknown, argv[2], "", &r) && WIFEXITED(r.status) &&
               WEXITSTATUS(r.status) == 2,
           "an unknown case must exit 2");
    return test_summary("test_misuse_catalog");
}
