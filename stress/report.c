/*
 * report.c - everything talloc-stress writes: RSS sampling, the 2-second progress line and
 * CSV timeline, the summary and JSON report, and reproducers.
 *
 * Reproducers are written by one async-signal-safe routine (open/write only, a tiny decimal
 * formatter, th_encode into a buffer allocated at thread start), used both by the in-process
 * failure path and by the SIGSEGV/SIGABRT/SIGBUS handler, which then re-raises the signal.
 * In AddressSanitizer builds the SIGSEGV and SIGBUS handlers are left to ASan, whose report
 * says far more; a death callback writes the reproducer after ASan's report instead.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

char stress_rerun[1024];
static _Thread_local stress_thread *current;
static FILE *timeline;

/* ---- RSS ---------------------------------------------------------------------------------- */

/* Reads a small /proc file into buf (NUL-terminated); false when it cannot. */
static bool read_proc(const char *path, char *buf, size_t capacity)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, capacity - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n > 0;
}

size_t stress_rss(void)
{
    char buf[128];
    const char *p = read_proc("/proc/self/statm", buf, sizeof buf) ? strchr(buf, ' ') : NULL;
    return p ? (size_t)strtoull(p + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The kernel's high-water mark of the resident set (VmHWM), 0 when unknown. */
size_t stress_rss_hwm(void)
{
    char buf[4096];
    const char *p = read_proc("/proc/self/status", buf, sizeof buf) ? strstr(buf, "VmHWM:") : NULL;
    return p ? (size_t)strtoull(p + 6, NULL, 10) * 1024 : 0;
}

void stress_note_rss(void)
{
    size_t rss = stress_rss(), peak = atomic_load(&g.peak_rss);
    while (rss > peak && !atomic_compare_exchange_weak(&g.peak_rss, &peak, rss)) {
    }
}

/* ---- async-signal-safe text ---------------------------------------------------------------- */

typedef struct out_buf {
    int fd;
    size_t n;
    char b[512];
} out_buf;

static void out_flush(out_buf *o)
{
    size_t at = 0;
    while (at < o->n) {
        ssize_t w = write(o->fd, o->b + at, o->n - at);
        if (w <= 0)
            break;
        at += (size_t)w;
    }
    o->n = 0;
}

static void out_str(out_buf *o, const char *s)
{
    for (; *s; s++) {
        if (o->n == sizeof o->b)
            out_flush(o);
        o->b[o->n++] = *s;
    }
}

static void out_u64(out_buf *o, uint64_t v)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char s[24];
    for (int i = 0; i < n; i++)
        s[i] = d[n - 1 - i];
    s[n] = 0;
    out_str(o, s);
}

static const char *const op_names[TH_OP_KIND_COUNT] = {
    "malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "free", "usable_size",
    "write", "verify", "fail_maps", "damage"};

/* One ring entry as a harness text line (plus comment lines for what the harness lacks). */
static void out_entry(out_buf *o, const ring_entry *e)
{
    const th_op *op = &e->op;
    if (e->notes & NOTE_FOREIGN) {
        out_str(o, "# (free of a block another thread allocated: not a harness op)\n");
        return;
    }
    if (e->notes & NOTE_SIZE_CLIPPED)
        out_str(o, "# size "), out_u64(o, e->size), out_str(o, " clipped to 16777215\n");
    if (e->notes & NOTE_INDEX_WRAPPED)
        out_str(o, "# block #"), out_u64(o, e->index), out_str(o, " recorded modulo 256\n");
    if (e->notes & NOTE_HANDOFF)
        out_str(o, "# next block went to the cross-thread queue (the replay keeps it live)\n");
    out_str(o, op_names[op->kind]);
    out_str(o, " ");
    switch (op->kind) {
    case TH_OP_CALLOC: out_u64(o, op->count), out_str(o, " "); break;
    case TH_OP_REALLOC: out_str(o, "#"), out_u64(o, op->block), out_str(o, " "); break;
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: out_u64(o, (uint64_t)1 << op->align), out_str(o, " "); break;
    case TH_OP_MALLOC: break;
    default: out_str(o, "#"), out_u64(o, op->block), out_str(o, "\n"); return;
    }
    out_u64(o, op->size.value);
    out_str(o, "\n");
}

/* Writes <repro-dir>/stress-<seed>-t<thread>.txt and its bytes twin (no stdio, no malloc). */
static bool write_repro(stress_thread *t)
{
    uint64_t n = t->ring_count < STRESS_RING ? t->ring_count : STRESS_RING;
    uint64_t first = t->ring_count - n;
    out_buf o = {open(t->repro_txt, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), 0, {0}};
    if (o.fd < 0)
        return false;
    out_str(&o, "# target: stress\n"); /* talloc-replay: replay on the stress driver's heap */
    out_str(&o, "# talloc-stress reproducer: seed "), out_u64(&o, g.opt.seed);
    out_str(&o, ", thread "), out_u64(&o, (uint64_t)t->index);
    out_str(&o, ", profile "), out_str(&o, stress_profile_name(t->profile));
    out_str(&o, ", allocator "), out_str(&o, stress_allocator_name(g.opt.allocator));
    out_str(&o, ", ops "), out_u64(&o, first), out_str(&o, ".."), out_u64(&o, t->ring_count - 1);
    out_str(&o, " of the thread\n# rerun: "), out_str(&o, stress_rerun);
    out_str(&o, " --ops "), out_u64(&o, t->op_index);
    out_str(&o, "\n# A window that starts mid-run starts from a different heap state and may not"
                " reproduce alone;\n# with --threads 1 and fewer ops than the window it is the"
                " whole program.\n");
    size_t kept = 0;
    for (uint64_t i = first; i < t->ring_count; i++) {
        const ring_entry *e = &t->ring[i % STRESS_RING];
        out_entry(&o, e);
        if (!(e->notes & NOTE_FOREIGN))
            t->scratch_ops[kept++] = e->op;
    }
    out_flush(&o);
    close(o.fd);
    th_program program = {t->scratch_ops, kept, kept};
    size_t bytes = th_encode(&program, t->scratch_bytes, (size_t)STRESS_RING * 8);
    int fd = open(t->repro_bin, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return false;
    out_buf b = {fd, 0, {0}};
    for (size_t i = 0; i < bytes; i++) {
        if (b.n == sizeof b.b)
            out_flush(&b);
        b.b[b.n++] = (char)t->scratch_bytes[i];
    }
    out_flush(&b);
    close(fd);
    return true;
}

/* Prints where the failure happened and how to rerun it (async-signal-safe). */
static void write_failure_head(stress_thread *t, const char *what)
{
    out_buf o = {2, 0, {0}};
    out_str(&o, "\ntalloc-stress: FAILURE: "), out_str(&o, what);
    out_str(&o, "\n  seed "), out_u64(&o, g.opt.seed);
    if (t != NULL) {
        out_str(&o, ", thread "), out_u64(&o, (uint64_t)t->index);
        out_str(&o, ", op index "), out_u64(&o, t->op_index == 0 ? 0 : t->op_index - 1);
        out_str(&o, ", profile "), out_str(&o, stress_profile_name(t->profile));
        out_str(&o, "\n  rerun: "), out_str(&o, stress_rerun);
        out_str(&o, " --ops "), out_u64(&o, t->op_index);
    }
    out_str(&o, "\n");
    out_flush(&o);
}

static void write_repro_lines(stress_thread *t)
{
    out_buf o = {2, 0, {0}};
    if (write_repro(t)) {
        out_str(&o, "  reproducer: "), out_str(&o, t->repro_txt);
        out_str(&o, " (bytes: "), out_str(&o, t->repro_bin);
        out_str(&o, ")\n  replay: talloc-replay "), out_str(&o, t->repro_txt);
    } else {
        out_str(&o, "  cannot write the reproducer "), out_str(&o, t->repro_txt);
    }
    out_str(&o, "\n");
    out_flush(&o);
}

/* ---- failures --------------------------------------------------------------------------- */

void stress_fail(stress_thread *t, const char *what, const char *fmt, ...)
{
    if (atomic_exchange(&g.has_failed, true))
        return; /* only the first failure is reported */
    atomic_store(&g.stop, true);
    fflush(stdout);
    write_failure_head(t, what);
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  what: %s\n", detail);
    fflush(stderr);
    if (t != NULL)
        write_repro_lines(t);
}

/* The crash path: once per process (ASan's death callback may be followed by an abort). */
static void report_crash(const char *what)
{
    static atomic_flag is_reported = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&is_reported))
        return;
    stress_thread *t = current;
    write_failure_head(t, what);
    if (t != NULL)
        write_repro_lines(t);
}

static void crash_handler(int sig)
{
    report_crash(sig == SIGABRT ? "SIGABRT (a TAlloc report above, or abort)"
                 : sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    signal(sig, SIG_DFL);
    raise(sig);
}

#ifdef STRESS_ASAN
#include <sanitizer/common_interface_defs.h>

/* Runs after ASan has printed its report, on the thread that failed, before it exits. */
static void asan_death(void)
{
    report_crash("AddressSanitizer (its report above)");
}
#endif

void stress_install_crash_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL); /* TAlloc's own reports end in abort() */
#ifdef STRESS_ASAN
    __sanitizer_set_death_callback(asan_death);
#else
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
#endif
}

void stress_set_current(stress_thread *t)
{
    current = t;
}

/* Everything the crash path needs is prepared here, before the thread runs. */
void stress_thread_prepare(stress_thread *t)
{
    snprintf(t->repro_txt, sizeof t->repro_txt, "%s/stress-%llu-t%d.txt", g.opt.repro_dir,
             (unsigned long long)g.opt.seed, t->index);
    snprintf(t->repro_bin, sizeof t->repro_bin, "%s/stress-%llu-t%d.bin", g.opt.repro_dir,
             (unsigned long long)g.opt.seed, t->index);
    t->scratch_ops = calloc(STRESS_RING, sizeof *t->scratch_ops);
    t->scratch_bytes = malloc((size_t)STRESS_RING * 8);
    if (t->scratch_ops == NULL || t->scratch_bytes == NULL)
        abort();
}

/* ---- progress and timeline ---------------------------------------------------------------- */

static uint64_t last_ops, last_ms;

bool stress_timeline_open(const char *path)
{
    timeline = fopen(path, "w");
    if (timeline != NULL)
        fprintf(timeline, "elapsed_s,ops,ops_per_s,live_bytes,rss_bytes,arenas\n");
    return timeline != NULL;
}

void stress_timeline_close(void)
{
    if (timeline != NULL)
        fclose(timeline);
    timeline = NULL;
}

static uint64_t total_ops(void)
{
    uint64_t ops = 0;
    for (int i = 0; i < g.opt.threads; i++)
        ops += atomic_load_explicit(&g.threads[i].ops_done, memory_order_relaxed);
    return ops;
}

void stress_progress_tick(uint64_t elapsed_ms, bool is_final)
{
    uint64_t ops = total_ops();
    double dt = (double)(elapsed_ms - last_ms) / 1000.0;
    double rate = dt > 0 ? (double)(ops - last_ops) / dt : 0;
    last_ops = ops;
    last_ms = elapsed_ms;
    size_t rss = stress_rss(), live = atomic_load(&g.live_bytes), arenas = 0;
    stress_note_rss();
    if (g.opt.allocator == A_TALLOC) {
        TAlloc_stats st;
        TAlloc_get_stats(&st);
        arenas = st.arena_count;
    }
    if (timeline != NULL) { /* flushed per row: a crash keeps the timeline up to it */
        fprintf(timeline, "%.1f,%llu,%.0f,%zu,%zu,%zu\n", (double)elapsed_ms / 1000.0,
                (unsigned long long)ops, rate, live, rss, arenas);
        fflush(timeline);
    }
    if (g.opt.is_quiet)
        return;
    bool is_tty = isatty(STDOUT_FILENO);
    char total[32] = "-";
    if (g.opt.duration_ms)
        snprintf(total, sizeof total, "%.0fs", (double)g.opt.duration_ms / 1000.0);
    printf("%s[%6.1fs/%s] ops %llu  %.0f ops/s  live %.1f MiB  rss %.1f MiB  arenas %zu  "
           "checks %llu%s", is_tty ? "\r" : "", (double)elapsed_ms / 1000.0, total,
           (unsigned long long)ops, rate, (double)live / 1048576.0, (double)rss / 1048576.0,
           arenas, (unsigned long long)atomic_load(&g.checks), is_tty && !is_final ? "" : "\n");
    fflush(stdout);
}

/* ---- summary and JSON ---------------------------------------------------------------------- */

void stress_print_summary(const stress_summary *s, FILE *out)
{
    fprintf(out, "summary: %s after %.1f s, seed %llu, %d threads, allocator %s\n",
            s->has_failed ? "FAILED" : s->is_interrupted ? "interrupted, ok" : "ok", s->seconds,
            (unsigned long long)g.opt.seed, g.opt.threads, stress_allocator_name(g.opt.allocator));
    fprintf(out, "  ops %llu (%.0f ops/s):", (unsigned long long)s->ops,
            s->seconds > 0 ? (double)s->ops / s->seconds : 0.0);
    for (int k = 0; k < TH_OP_KIND_COUNT; k++)
        if (s->op_kind[k])
            fprintf(out, " %s %llu", op_names[k], (unsigned long long)s->op_kind[k]);
    fprintf(out, "\n  checks passed %llu, peak live %zu bytes (ceiling %zu)\n",
            (unsigned long long)s->checks, s->peak_live, g.opt.max_live);
    fprintf(out, "  rss start %.1f MiB, peak %.1f MiB, after drain %.1f MiB: %s\n",
            (double)s->rss_start / 1048576.0, (double)s->peak_rss / 1048576.0,
            (double)s->rss_drained / 1048576.0,
            s->is_rss_back ? "returned close to the start" : "did NOT return close to the start");
    if (g.opt.allocator == A_TALLOC)
        fprintf(out, "  arenas mapped %llu, released %llu, left %zu; heap %s (allocated chunks %zu)\n",
                (unsigned long long)s->map_count, (unsigned long long)s->unmap_count,
                s->arenas_after, s->is_drained ? "drained" : "NOT drained", s->allocated_after);
    fprintf(out, "  failures %d\ndigest: %016llx\n", s->has_failed ? 1 : 0,
            (unsigned long long)s->digest);
}

bool stress_write_report(const stress_summary *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f, "{\n  \"seed\": %llu,\n  \"threads\": %d,\n  \"allocator\": \"%s\",\n",
            (unsigned long long)g.opt.seed, g.opt.threads, stress_allocator_name(g.opt.allocator));
    fprintf(f, "  \"profiles\": \"%s\",\n  \"seconds\": %.3f,\n  \"ops\": %llu,\n", g.opt.profile_arg,
            s->seconds, (unsigned long long)s->ops);
    fprintf(f, "  \"ops_per_s\": %.1f,\n  \"ops_by_kind\": {", s->seconds > 0 ? (double)s->ops / s->seconds : 0.0);
    for (int k = 0; k < TH_OP_KIND_COUNT; k++)
        fprintf(f, "%s\"%s\": %llu", k ? ", " : "", op_names[k], (unsigned long long)s->op_kind[k]);
    fprintf(f, "},\n  \"checks\": %llu,\n  \"peak_live_bytes\": %zu,\n  \"max_live_bytes\": %zu,\n",
            (unsigned long long)s->checks, s->peak_live, g.opt.max_live);
    fprintf(f, "  \"rss_start\": %zu,\n  \"rss_peak\": %zu,\n  \"rss_after_drain\": %zu,\n"
               "  \"rss_peak_sampled\": %zu,\n  \"rss_returned\": %s,\n", s->rss_start, s->peak_rss,
            s->rss_drained, s->rss_peak_sampled,
            s->is_rss_back ? "true" : "false");
    fprintf(f, "  \"arenas_mapped\": %llu,\n  \"arenas_released\": %llu,\n  \"arenas_after_drain\": %zu,\n",
            (unsigned long long)s->map_count, (unsigned long long)s->unmap_count, s->arenas_after);
    fprintf(f, "  \"drained\": %s,\n  \"interrupted\": %s,\n  \"failures\": %d,\n  \"digest\": \"%016llx\"\n}\n",
            s->is_drained ? "true" : "false", s->is_interrupted ? "true" : "false",
            s->has_failed ? 1 : 0, (unsigned long long)s->digest);
    return fclose(f) == 0;
}
