/*
 * talloc-replay - reproduce, read, convert and minimize harness programs without libFuzzer.
 *
 *   talloc-replay [-v] [--target NAME] FILE...   run each program with every check after
 *                                                every op; on failure print the first bad
 *                                                op, the invariant, and the heap before and
 *                                                after it
 *   talloc-replay --print FILE                   print the program as text
 *   talloc-replay --encode IN.txt OUT            text -> bytes
 *   talloc-replay --decode IN OUT.txt            bytes -> text
 *   talloc-replay --minimize IN OUT              smallest program that still fails the same way
 *
 * A FILE ending in .txt is read as text, anything else as bytes. The target (which fuzz
 * target's configuration and property checks apply) is --target, else the one a text file
 * names in a `# target: NAME` line, else the last path component that starts with a target's
 * name followed by '/' or '-' (corpus/fuzz_oom/x -> fuzz_oom, stress-7-t0.bin -> stress),
 * else fuzz_ops. Besides the fuzz targets there is `stress`, the heap talloc-stress runs on
 * (stress/replay_target.c): its reproducers carry the line and the name. Each run happens in
 * a child process, so a crash is reported with the op that caused it.
 * --test-fault N is a test aid: the child crashes (SIGSEGV) once op N has run, so that the
 * reports, the minimizer and the exit status can be tested on a correct allocator.
 * Exit status: 0 all passed, 1 an invariant broke or a program crashed, 2 usage or I/O error.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_common.h"

#define X(name) extern const fuzz_target name##_target;
#include "fuzz_targets.inc"
#undef X
#define X(name) &name##_target,
static const fuzz_target *const targets[] = {
#include "fuzz_targets.inc"
};
#undef X
enum { TARGET_COUNT = sizeof targets / sizeof targets[0] };

static void usage(FILE *out)
{
    fprintf(out, "usage: talloc-replay [-v] [--target NAME] FILE...\n"
                 "       talloc-replay --print FILE\n"
                 "       talloc-replay --encode IN.txt OUT | --decode IN OUT.txt\n"
                 "       talloc-replay --minimize IN OUT [--target NAME]\n"
                 "       (outputs: .txt names are text, others bytes; --test-fault N: a test aid)\n"
                 "targets:");
    for (int i = 0; i < TARGET_COUNT; i++)
        fprintf(out, " %s", targets[i]->name);
    fprintf(out, "\n");
}

/* ---- reading and writing programs --------------------------------------------------------- */

static bool load_program(const char *path, th_program *program)
{
    char error[256];
    if (th_load_program(path, program, error, sizeof error))
        return true;
    fprintf(stderr, "talloc-replay: %s\n", error);
    return false;
}

static bool write_failed(const char *path)
{
    fprintf(stderr, "talloc-replay: cannot write %s: %s\n", path, strerror(errno));
    return false;
}

static bool write_bytes(const char *path, const th_program *program)
{
    size_t size = th_encode(program, NULL, 0);
    uint8_t *bytes = malloc(size + 1);
    if (bytes == NULL)
        return write_failed(path);
    th_encode(program, bytes, size);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        free(bytes);
        return write_failed(path);
    }
    bool ok = fwrite(bytes, 1, size, f) == size;
    ok = fclose(f) == 0 && ok;
    free(bytes);
    return ok || write_failed(path);
}

static bool write_text(const char *path, const th_program *program)
{
    bool is_stdout = strcmp(path, "-") == 0;
    FILE *f = is_stdout ? stdout : fopen(path, "w");
    if (f == NULL)
        return write_failed(path);
    th_print_program(program, f);
    bool ok = ferror(f) == 0;
    ok = (is_stdout ? fflush(f) == 0 : fclose(f) == 0) && ok;
    return ok || write_failed(is_stdout ? "standard output" : path);
}

/* Text when the name ends in .txt (or is -, standard output), bytes otherwise. */
static bool write_program(const char *path, const th_program *program)
{
    return th_is_text_path(path) || strcmp(path, "-") == 0 ? write_text(path, program)
                                                           : write_bytes(path, program);
}

static void print_numbered(const th_program *program, size_t limit, FILE *out)
{
    char line[128];
    for (size_t i = 0; i < program->count && i < limit; i++) {
        th_format_op(&program->ops[i], line, sizeof line);
        fprintf(out, "%5zu  %s\n", i, line);
    }
}

/* ---- choosing the target ------------------------------------------------------------------ */

static const fuzz_target *find_target(const char *name)
{
    for (int i = 0; i < TARGET_COUNT; i++)
        if (strcmp(targets[i]->name, name) == 0)
            return targets[i];
    return NULL;
}

/* The target a path names in one of its components (the last such component wins), or
   fuzz_ops. */
static const fuzz_target *target_for_path(const char *path)
{
    const fuzz_target *found = &fuzz_ops_target;
    const char *found_at = NULL;
    for (int i = 0; i < TARGET_COUNT; i++) {
        size_t n = strlen(targets[i]->name);
        for (const char *hit = strstr(path, targets[i]->name); hit != NULL;
             hit = strstr(hit + 1, targets[i]->name)) {
            bool is_component = (hit == path || hit[-1] == '/') && (hit[n] == '/' || hit[n] == '-');
            if (is_component && (found_at == NULL || hit > found_at)) {
                found = targets[i];
                found_at = hit;
            }
        }
    }
    return found;
}

/* The target a text file names in a `# target: NAME` line: 1 found, 0 none, -1 an unknown
   name (reported). */
static int target_in_file(const char *path, const fuzz_target **out)
{
    if (!th_is_text_path(path))
        return 0;
    size_t size = 0;
    char *text = th_read_file(path, &size);
    if (text == NULL)
        return 0; /* load_program reports it */
    int found = 0;
    for (char *line = text; line != NULL && found == 0; line = strchr(line, '\n')) {
        line += *line == '\n';
        char name[64];
        if (sscanf(line, "# target: %63[A-Za-z0-9_]", name) != 1)
            continue;
        *out = find_target(name);
        found = *out ? 1 : -1;
        if (found < 0)
            fprintf(stderr, "talloc-replay: %s names an unknown target %s\n", path, name);
    }
    free(text);
    return found;
}

/* --target, else the file's own line, else its path. NULL after an unknown name. */
static const fuzz_target *choose_target(const char *path, const fuzz_target *given)
{
    const fuzz_target *named = NULL;
    if (given != NULL)
        return given;
    int in_file = target_in_file(path, &named);
    if (in_file < 0)
        return NULL;
    return in_file ? named : target_for_path(path);
}

/* ---- running in a child ------------------------------------------------------------------- */

/* What a child reports back through shared memory. */
typedef struct outcome {
    volatile size_t progress; /* op being executed */
    int invariant;            /* failed invariant, 0 when it passed */
    int signal;               /* signal that killed the child, 0 if none */
} outcome;

static void print_report(const th_program *program, const th_result *result, FILE *out)
{
    const th_failure *f = &result->failure;
    char line[128] = "(final drain and I8 check)";
    if (f->op_index < program->count)
        th_format_op(&program->ops[f->op_index], line, sizeof line);
    fprintf(out, "first bad op: %zu: %s\n", f->op_index, line);
    fprintf(out, "invariant: %s (id %d)\n", th_invariant_name(f->invariant), f->invariant);
    fprintf(out, "detail: %s (address %p)\n", f->detail, f->address);
    if (result->heap_before)
        fprintf(out, "heap before op %zu:\n%s", f->op_index, result->heap_before);
    if (result->heap_after)
        fprintf(out, "heap after op %zu:\n%s", f->op_index, result->heap_after);
}

/* --test-fault: the op after which the child crashes (SIZE_MAX: none), and the target's own
   after_op hook, which runs first. */
static size_t fault_at = SIZE_MAX;
static th_hooks target_hooks;

static void fault_after_op(void *ctx, th_run *run, size_t op_index, const th_op *op,
                           const th_op_result *result)
{
    if (target_hooks.after_op)
        target_hooks.after_op(ctx, run, op_index, op, result);
    if (op_index == fault_at) {
        signal(SIGSEGV, SIG_DFL); /* a plain death by the signal, under a sanitizer too */
        raise(SIGSEGV);
    }
}

static void child_run(const th_program *program, const fuzz_target *target, outcome *shared,
                      bool is_quiet)
{
    th_config config;
    target->configure(&config);
    if (fault_at != SIZE_MAX) {
        target_hooks = config.hooks;
        config.hooks.after_op = fault_after_op;
    }
    config.capture_heap = !is_quiet;
    config.progress = &shared->progress;
    th_result result;
    th_run_program(program, &config, &result);
    shared->invariant = result.failure.has_failed ? result.failure.invariant : 0;
    if (result.failure.has_failed && !is_quiet)
        print_report(program, &result, stdout);
    else if (!is_quiet)
        printf("ok: %zu ops, %llu checks, every invariant held\n", program->count,
               (unsigned long long)result.counters.checks);
    fflush(stdout);
    _exit(result.failure.has_failed ? 1 : 0);
}

/* Runs `program` in a child; fills `out`. Returns true when it passed. */
static bool run_isolated(const th_program *program, const fuzz_target *target, bool is_quiet,
                         outcome *out)
{
    outcome *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        abort();
    *shared = (outcome){0, 0, 0};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (is_quiet) /* minimizing: keep the failing attempts' output away */
            freopen("/dev/null", "w", stderr);
        child_run(program, target, shared, is_quiet);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    *out = *shared;
    if (WIFSIGNALED(status)) {
        out->signal = WTERMSIG(status);
        out->invariant = TH_CRASH;
    } else if (WEXITSTATUS(status) != 0 && out->invariant == 0) {
        out->invariant = TH_CRASH;
    }
    munmap(shared, sizeof *shared);
    return out->invariant == 0;
}

static int replay_file(const char *path, const fuzz_target *target, bool is_verbose)
{
    th_program program;
    if (!load_program(path, &program))
        return 2;
    if ((target = choose_target(path, target)) == NULL) {
        th_program_free(&program);
        return 2;
    }
    th_config shape;
    target->configure(&shape);
    printf("%s: %zu ops, target %s (arenas of %zu bytes)\n", path, program.count, target->name,
           shape.arena_size);
    if (is_verbose)
        print_numbered(&program, SIZE_MAX, stdout);
    outcome o;
    bool ok = run_isolated(&program, target, false, &o);
    if (o.signal) {
        char line[128] = "(the final drain)";
        if (o.progress < program.count)
            th_format_op(&program.ops[o.progress], line, sizeof line);
        printf("crash: signal %d (%s) during op %zu: %s\n", o.signal, strsignal(o.signal),
               (size_t)o.progress, line);
        printf("the program up to that op:\n");
        print_numbered(&program, o.progress + 1, stdout);
    }
    th_program_free(&program);
    return ok ? 0 : 1;
}

/* ---- minimizing ---------------------------------------------------------------------------- */

/* Whether `candidate` fails the way the original did (same invariant, or any crash). */
static bool fails_alike(const th_program *candidate, const fuzz_target *target, int invariant)
{
    outcome o;
    return !run_isolated(candidate, target, true, &o) && o.invariant == invariant;
}

static void without_range(const th_program *from, size_t start, size_t length, th_program *out)
{
    th_program_init(out);
    for (size_t i = 0; i < from->count; i++)
        if (i < start || i >= start + length)
            th_program_append(out, &from->ops[i]);
}

/* Delta debugging over ops: drop chunks, halving the chunk size down to single ops. */
static void minimize(th_program *program, const fuzz_target *target, int invariant)
{
    for (size_t chunk = program->count / 2; chunk >= 1; chunk /= 2) {
        for (size_t start = 0; start < program->count;) {
            th_program candidate;
            without_range(program, start, chunk, &candidate);
            if (candidate.count < program->count && fails_alike(&candidate, target, invariant)) {
                th_program_free(program);
                *program = candidate;
            } else {
                th_program_free(&candidate);
                start += chunk;
            }
        }
    }
}

static int minimize_file(const char *in, const char *out, const fuzz_target *target)
{
    th_program program;
    if (!load_program(in, &program))
        return 2;
    if ((target = choose_target(in, target)) == NULL) {
        th_program_free(&program);
        return 2;
    }
    outcome o;
    if (run_isolated(&program, target, true, &o)) {
        fprintf(stderr, "talloc-replay: %s passes under %s; nothing to minimize\n", in, target->name);
        return 1;
    }
    size_t before = program.count;
    minimize(&program, target, o.invariant);
    if (!write_program(out, &program))
        return 2;
    printf("minimized %s from %zu to %zu ops (%s, target %s) into %s:\n", in, before,
           program.count, th_invariant_name(o.invariant), target->name, out);
    print_numbered(&program, SIZE_MAX, stdout);
    th_program_free(&program);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int convert(const char *mode, const char *in, const char *out)
{
    bool is_encode = strcmp(mode, "--encode") == 0;
    bool is_text_out = th_is_text_path(out) || strcmp(out, "-") == 0;
    if (is_encode == is_text_out) {
        fprintf(stderr, "talloc-replay: %s writes %s, and %s names %s file (.txt is text)\n", mode,
                is_encode ? "bytes" : "text", out, is_text_out ? "a text" : "a byte");
        return 2;
    }
    th_program program;
    if (!load_program(in, &program))
        return 2;
    bool ok = write_program(out, &program);
    th_program_free(&program);
    return ok ? 0 : 2;
}

typedef struct tally {
    size_t passed, failed, unread;
} tally;

static void count(tally *t, int status)
{
    if (status == 0)
        t->passed++;
    else if (status == 1)
        t->failed++;
    else
        t->unread++;
}

/* Replays `path`, or every program file in it when it is a directory. */
static void replay_path(const char *path, const fuzz_target *target, bool is_verbose, tally *t)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        count(t, replay_file(path, target, is_verbose));
        return;
    }
    char error[512];
    size_t n = 0;
    char **names = th_list_programs(path, &n, error, sizeof error);
    if (names == NULL) {
        fprintf(stderr, "talloc-replay: %s\n", error);
        t->unread++;
        return;
    }
    if (n == 0) {
        fprintf(stderr, "talloc-replay: %s: no program files in it\n", path);
        t->unread++;
    }
    for (size_t i = 0; i < n; i++) {
        replay_path(names[i], target, is_verbose, t);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const fuzz_target *target = NULL;
    bool is_verbose = false;
    int first_file = argc;
    for (int i = 1; i + 1 < argc; i++) { /* --test-fault anywhere: a test aid */
        if (strcmp(argv[i], "--test-fault") == 0) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(argv[i + 1], &end, 10);
            if (errno || end == argv[i + 1] || *end || argv[i + 1][0] == '-') {
                fprintf(stderr, "talloc-replay: --test-fault takes an op index, not %s\n", argv[i + 1]);
                return 2;
            }
            fault_at = (size_t)n;
            for (int j = i; j + 2 < argc; j++) /* take both words out */
                argv[j] = argv[j + 2];
            argc -= 2;
            break;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0) {
            is_verbose = true;
        } else if (strcmp(a, "--target") == 0 && i + 1 < argc) {
            if ((target = find_target(argv[++i])) == NULL) {
                fprintf(stderr, "talloc-replay: unknown target %s\n", argv[i]);
                usage(stderr);
                return 2;
            }
        } else if ((strcmp(a, "--encode") == 0 || strcmp(a, "--decode") == 0) && i + 2 < argc) {
            return convert(a, argv[i + 1], argv[i + 2]);
        } else if (strcmp(a, "--print") == 0 && i + 1 < argc) {
            return convert("--decode", argv[i + 1], "-");
        } else if (strcmp(a, "--minimize") == 0 && i + 2 < argc) {
            for (int j = i + 3; j + 1 < argc; j++)
                if (strcmp(argv[j], "--target") == 0)
                    target = find_target(argv[j + 1]);
            return minimize_file(argv[i + 1], argv[i + 2], target);
        } else if (a[0] == '-') {
            usage(stderr);
            return 2;
        } else {
            first_file = i;
            break;
        }
    }
    if (first_file == argc) {
        usage(stderr);
        return 2;
    }
    tally t = {0, 0, 0};
    for (int i = first_file; i < argc; i++)
        replay_path(argv[i], target, is_verbose, &t);
    if (t.passed + t.failed + t.unread > 1)
        printf("talloc-replay: %zu passed, %zu failed, %zu not read\n", t.passed, t.failed,
               t.unread);
    return t.failed ? 1 : t.unread ? 2 : 0;
}
