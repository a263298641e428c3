/*
 * talloc-stress - the long-running multi-threaded stress driver of TAlloc.
 *
 * Runs N threads, each executing a deterministic op stream (per-thread RNG seeded from the
 * seed, the thread index and the profile) on the default heap (or, with --allocator, on the C
 * library's malloc, jemalloc, mimalloc or tcmalloc: adapters.c), with pattern checks on every block, a stop-the-world full heap check
 * every --check-every ops per thread, a final drain that must leave the heap empty, and a
 * reproducer on any failure. Exit status: 0 ok, 1 a failure was found, 2 usage error.
 * See usage() for the options.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

stress_state g;
static atomic_int finished_threads;
static atomic_bool interrupted;

static void usage(FILE *out)
{
    fprintf(out,
        "usage: talloc-stress [options]\n"
        "  --duration D       run time: 30s, 10m, 4h (default 30s unless --ops is given)\n"
        "  --ops N            stop each thread after N ops\n"
        "  --threads N        worker threads (default 2)\n"
        "  --seed S           64-bit seed (default: random, printed at start)\n"
        "  --profile P[,P..]  small mixed large realloc aligned calloc phases cross-thread\n"
        "                     fragment, or all (default: all, rotating every 50000 ops)\n"
        "  --max-live BYTES   ceiling of live requested bytes, K/M/G suffixes (default 64M)\n"
        "  --check-every N    full heap check every N ops per thread (default 100000; 0 off)\n"
        "  --rotate-every N   ops per thread per profile turn (default 50000; large: 1/200)\n"
        "  --allocator A      talloc (default), system (glibc), jemalloc, mimalloc or tcmalloc\n"
        "                     (all but talloc: model checks only; the last three loaded at\n"
        "                     run time, exit 2 when not installed)\n"
        "  --report FILE      write the summary as JSON\n"
        "  --timeline FILE    write one CSV row per 2 s interval\n"
        "  --repro-dir DIR    where reproducers go (default .)\n"
        "  --quiet            print only the summary\n"
        "  --help             this text\n"
        "With --threads 1 and --ops N the run is deterministic: the same seed prints the same\n"
        "final 'digest:' line. Exit status: 0 ok, 1 failure found, 2 usage error.\n");
}

/* ---- option parsing -------------------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-')
        return false;
    *out = v;
    return true;
}

/* "123", "64K", "64M", "1G" (binary multiples). */
static bool parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return false;
    }
    if ((*end == 'B' || *end == 'b') && shift)
        end++;
    if (*end || v > (SIZE_MAX >> shift) || v == 0)
        return false;
    *out = (size_t)v << shift;
    return true;
}

/* "30s", "10m", "4h", "500ms"; a bare number is seconds. */
static bool parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return false;
    uint64_t unit = 1000;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (*end && strcmp(end, "s") != 0)
        return false;
    *ms = v * unit;
    return v > 0;
}

static bool parse_profiles(const char *arg, stress_options *o)
{
    snprintf(o->profile_arg, sizeof o->profile_arg, "%s", arg);
    o->profile_count = 0;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", arg);
    char *save = NULL;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (strcmp(name, "all") == 0) {
            for (int p = 0; p < P_COUNT && o->profile_count < P_COUNT; p++)
                o->profiles[o->profile_count++] = p;
            continue;
        }
        int p = stress_profile_find(name);
        if (p < 0 || o->profile_count == P_COUNT)
            return false;
        o->profiles[o->profile_count++] = p;
    }
    return o->profile_count > 0;
}

enum { OPT_DURATION = 256, OPT_OPS, OPT_THREADS, OPT_SEED, OPT_PROFILE, OPT_MAX_LIVE,
       OPT_CHECK_EVERY, OPT_ROTATE, OPT_ALLOCATOR, OPT_REPORT, OPT_TIMELINE, OPT_REPRO_DIR, OPT_QUIET,
       OPT_HELP, OPT_TEST_FAULT };

static const struct option long_options[] = {
    {"duration", required_argument, NULL, OPT_DURATION},
    {"ops", required_argument, NULL, OPT_OPS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"max-live", required_argument, NULL, OPT_MAX_LIVE},
    {"check-every", required_argument, NULL, OPT_CHECK_EVERY},
    {"rotate-every", required_argument, NULL, OPT_ROTATE},
    {"allocator", required_argument, NULL, OPT_ALLOCATOR},
    {"report", required_argument, NULL, OPT_REPORT},
    {"timeline", required_argument, NULL, OPT_TIMELINE},
    {"repro-dir", required_argument, NULL, OPT_REPRO_DIR},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"test-fault", required_argument, NULL, OPT_TEST_FAULT}, /* a test aid: faults.c */
    {NULL, 0, NULL, 0},
};

/* Applies one option; false on a bad value. */
static bool apply_option(stress_options *o, int c, const char *arg, bool *has_duration)
{
    uint64_t v = 0;
    switch (c) {
    case OPT_DURATION: *has_duration = true; return parse_duration(arg, &o->duration_ms);
    case OPT_OPS: return parse_u64(arg, &o->ops) && o->ops > 0;
    case OPT_THREADS:
        if (!parse_u64(arg, &v) || v < 1 || v > STRESS_MAX_THREADS)
            return false;
        o->threads = (int)v;
        return true;
    case OPT_SEED: o->is_seed_given = true; return parse_u64(arg, &o->seed);
    case OPT_PROFILE: return parse_profiles(arg, o);
    case OPT_MAX_LIVE: return parse_bytes(arg, &o->max_live);
    case OPT_CHECK_EVERY: return parse_u64(arg, &o->check_every);
    case OPT_ROTATE: return parse_u64(arg, &o->rotate_every) && o->rotate_every > 0;
    case OPT_ALLOCATOR: o->allocator = stress_allocator_find(arg); return o->allocator >= 0;
    case OPT_REPORT: o->report_path = arg; return true;
    case OPT_TIMELINE: o->timeline_path = arg; return true;
    case OPT_REPRO_DIR: o->repro_dir = arg; return true;
    case OPT_QUIET: o->is_quiet = true; return true;
    case OPT_TEST_FAULT: return stress_fault_parse(arg, o);
    default: return false;
    }
}

/* Returns -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, stress_options *o)
{
    *o = (stress_options){.threads = 2, .max_live = (size_t)64 << 20, .check_every = 100000,
                          .repro_dir = ".", .rotate_every = 50000};
    parse_profiles("all", o);
    bool has_duration = false;
    int c;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (!apply_option(o, c, optarg, &has_duration)) {
            if (c != '?')
                fprintf(stderr, "talloc-stress: bad value for --%s: %s\n",
                        long_options[c - OPT_DURATION].name, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "talloc-stress: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!has_duration && o->ops == 0)
        o->duration_ms = 30000;
    return -1;
}

/* ---- the run ---------------------------------------------------------------------------- */

static void on_stop_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, true);
    atomic_store(&g.stop, true);
}

static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *thread_main(void *arg)
{
    stress_worker(arg);
    atomic_fetch_add(&finished_threads, 1);
    return NULL;
}

static void format_rerun(const char *argv0)
{
    const stress_options *o = &g.opt;
    snprintf(stress_rerun, sizeof stress_rerun,
             "%s --seed %llu --threads %d --profile %s --max-live %zu --check-every %llu "
             "--rotate-every %llu --allocator %s", argv0, (unsigned long long)o->seed, o->threads,
             o->profile_arg, o->max_live, (unsigned long long)o->check_every,
             (unsigned long long)o->rotate_every, stress_allocator_name(o->allocator));
    if (o->fault != FAULT_NONE) {
        size_t n = strlen(stress_rerun);
        snprintf(stress_rerun + n, sizeof stress_rerun - n, " --test-fault %s@%llu",
                 stress_fault_name(o->fault), (unsigned long long)o->fault_at);
    }
}

/* Starts the workers, prints progress every 2 s until they finish, joins them. */
static uint64_t run_workers(void)
{
    pause_init(g.opt.threads);
    for (int i = 0; i < g.opt.threads; i++) {
        g.threads[i].index = i;
        stress_thread_prepare(&g.threads[i]);
    }
    for (int i = 0; i < g.opt.threads; i++)
        if (pthread_create(&g.threads[i].tid, NULL, thread_main, &g.threads[i]) != 0)
            abort();
    uint64_t start = now_ms(), next_tick = 2000;
    while (atomic_load(&finished_threads) < g.opt.threads) {
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL);
        uint64_t elapsed = now_ms() - start;
        if (g.opt.duration_ms && elapsed >= g.opt.duration_ms)
            atomic_store(&g.stop, true);
        if (elapsed >= next_tick) {
            stress_progress_tick(elapsed, false);
            next_tick += 2000;
        }
    }
    for (int i = 0; i < g.opt.threads; i++)
        pthread_join(g.threads[i].tid, NULL);
    uint64_t elapsed = now_ms() - start;
    stress_progress_tick(elapsed, true); /* the last (partial) interval */
    return elapsed;
}

/* The final drain: queue emptied, check run, heap must be empty. */
static void finish(stress_summary *s, uint64_t elapsed_ms)
{
    if (!atomic_load(&g.has_failed)) {
        stress_drain_queue();
        stress_heap_check("final drain", NULL, true);
    }
    *s = (stress_summary){.seconds = (double)elapsed_ms / 1000.0, .rss_start = g.rss_start};
    for (int i = 0; i < g.opt.threads; i++) {
        const stress_thread *t = &g.threads[i];
        for (int k = 0; k < TH_OP_KIND_COUNT; k++)
            s->op_kind[k] += t->op_kind[k];
        s->ops += t->op_index;
        s->digest = stress_mix(s->digest ^ t->digest);
    }
    s->checks = atomic_load(&g.checks);
    s->peak_live = atomic_load(&g.peak_live);
    s->rss_drained = stress_rss();
    stress_note_rss();
    s->rss_peak_sampled = atomic_load(&g.peak_rss);
    size_t hwm = stress_rss_hwm(); /* the true peak; the samples may miss it */
    s->peak_rss = hwm > s->rss_peak_sampled ? hwm : s->rss_peak_sampled;
    if (g.opt.allocator == A_TALLOC) {
        TAlloc_stats st;
        TAlloc_get_stats(&st);
        s->map_count = st.map_count;
        s->unmap_count = st.unmap_count;
        s->arenas_after = st.arena_count;
        s->allocated_after = st.allocated_count;
        s->is_drained = st.allocated_count == 0 && st.arena_count <= g.retained_arenas;
    } else {
        s->is_drained = atomic_load(&g.live_blocks) == 0;
    }
    size_t slack = ((size_t)8 << 20) + g.retained_arenas * TALLOC_DEFAULT_ARENA_SIZE;
    s->is_rss_back = s->rss_drained <= s->rss_start + slack;
    s->has_failed = atomic_load(&g.has_failed);
    s->is_interrupted = atomic_load(&interrupted);
}

int main(int argc, char **argv)
{
    int status = parse_options(argc, argv, &g.opt);
    if (status >= 0)
        return status;
    if (!g.opt.is_seed_given && getrandom(&g.opt.seed, sizeof g.opt.seed, 0) != sizeof g.opt.seed)
        g.opt.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    if (!stress_allocator_load(g.opt.allocator, &g.alloc, argv))
        return 2;
    TAlloc_config config;
    TAlloc_config_init(&config);
    g.retained_arenas = config.retained_arena_count;
    pthread_mutex_init(&g.queue_lock, NULL);
    g.threads = calloc((size_t)g.opt.threads, sizeof *g.threads);
    if (g.threads == NULL)
        return 2;
    format_rerun(argv[0]);
    if (g.opt.timeline_path && !stress_timeline_open(g.opt.timeline_path)) {
        fprintf(stderr, "talloc-stress: cannot write %s\n", g.opt.timeline_path);
        return 2;
    }
    if (!g.opt.is_quiet || !g.opt.is_seed_given)
        printf("talloc-stress: seed %llu, %d threads, profile %s, max-live %zu, allocator %s\n",
               (unsigned long long)g.opt.seed, g.opt.threads, g.opt.profile_arg, g.opt.max_live,
               stress_allocator_name(g.opt.allocator));
    fflush(stdout);
    install_stop_signals();
    stress_install_crash_handler();
    g.rss_start = stress_rss();
    uint64_t elapsed = run_workers();
    stress_summary s;
    finish(&s, elapsed);
    stress_timeline_close();
    stress_print_summary(&s, stdout);
    if (g.opt.report_path && !stress_write_report(&s, g.opt.report_path)) {
        fprintf(stderr, "talloc-stress: cannot write %s\n", g.opt.report_path);
        return 2;
    }
    return s.has_failed || !s.is_drained ? 1 : 0;
}
