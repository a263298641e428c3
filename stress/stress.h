/*
 * stress.h - shared state of talloc-stress, the long-running multi-threaded stress driver.
 *
 *   main.c     options, thread start/stop, progress loop, final drain, summary
 *   workers.c  per-thread RNG, profiles (op generators), op execution
 *   pattern.c  the pattern every block holds, keyed by (seed, block id), and its check
 *   pause.c    the "stop the world" safe point and the full check run inside it
 *   report.c   RSS, progress line, JSON report, CSV timeline, reproducers, crash handler
 *   adapters.c the allocators (--allocator): TAlloc, the C library, and jemalloc, mimalloc
 *              and tcmalloc loaded at run time
 *
 * Every thread keeps its live blocks in allocation order (like the harness model), so its op
 * stream maps onto harness ops (malloc N, free #i, ...). The last STRESS_RING ops of each
 * thread are kept as th_op in a ring buffer and become the reproducer on a failure.
 */
#ifndef TALLOC_STRESS_H
#define TALLOC_STRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "harness.h"

/* STRESS_ASAN: built with AddressSanitizer (gcc defines __SANITIZE_ADDRESS__, clang has the
   feature test). Crashes are then ASan's to report (report.c). */
#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif

enum { STRESS_RING = 4096, STRESS_MAX_THREADS = 256, STRESS_QUEUE_CAP = 256 };

typedef enum stress_profile {
    P_SMALL, P_MIXED, P_LARGE, P_REALLOC, P_ALIGNED, P_CALLOC, P_PHASES, P_CROSS, P_FRAGMENT,
    P_COUNT
} stress_profile;

/* --allocator values. Only A_TALLOC gets the TAlloc heap checks; the others run the model
   checks (block patterns, the driver's own accounting) alone. */
enum { A_TALLOC, A_SYSTEM, A_JEMALLOC, A_MIMALLOC, A_TCMALLOC, A_COUNT };

/* The op kinds the driver records (the harness ops it executes): the `stress` target of
   talloc-replay runs exactly these. */
#define STRESS_OP_KINDS                                                                        \
    ((1u << TH_OP_MALLOC) | (1u << TH_OP_CALLOC) | (1u << TH_OP_REALLOC) |                     \
     (1u << TH_OP_ALIGNED_ALLOC) | (1u << TH_OP_POSIX_MEMALIGN) | (1u << TH_OP_FREE) |         \
     (1u << TH_OP_USABLE_SIZE) | (1u << TH_OP_VERIFY))

/* --test-fault kinds (faults.c): a test aid that breaks one thing on purpose. */
enum { FAULT_NONE, FAULT_PATTERN, FAULT_WILD, FAULT_OVERFLOW };

/* Ring-buffer notes: the op is approximate in the harness language. */
enum {
    NOTE_SIZE_CLIPPED = 1, /* the size does not fit 24 bits: recorded as 16777215 */
    NOTE_INDEX_WRAPPED = 2,/* the block index is >= 256: recorded modulo 256 */
    NOTE_HANDOFF = 4,      /* malloc whose block went to the cross-thread queue */
    NOTE_FOREIGN = 8,      /* free of a block another thread allocated (not a harness op) */
};

typedef struct stress_options {
    uint64_t duration_ms;    /* 0: until --ops */
    uint64_t ops;            /* per thread; 0: until the duration */
    int threads;
    uint64_t seed;
    bool is_seed_given;
    int profiles[P_COUNT];
    int profile_count;
    char profile_arg[256];   /* as given, for the rerun command */
    size_t max_live;
    uint64_t check_every;
    int allocator;           /* A_TALLOC, A_SYSTEM, ... */
    const char *report_path;
    const char *timeline_path;
    const char *repro_dir;
    bool is_quiet;
    uint64_t rotate_every;   /* ops per profile before a thread switches */
    int fault;               /* --test-fault: FAULT_NONE or the kind */
    uint64_t fault_at;       /* ... at this op of thread 0 */
} stress_options;

typedef struct stress_block {
    unsigned char *ptr;
    size_t size;      /* requested bytes */
    uint64_t id;      /* pattern key */
    bool is_short;    /* fragment profile: short-lived */
} stress_block;

typedef struct ring_entry {
    th_op op;
    uint8_t notes;
    uint64_t size;    /* the real size */
    uint64_t index;   /* the real block index */
} ring_entry;

typedef struct stress_thread {
    int index;
    pthread_t tid;
    uint64_t rng;
    uint64_t digest;
    uint64_t op_index;            /* ops executed so far (also the current op's index) */
    atomic_uint_fast64_t ops_done;/* for the progress line (relaxed) */
    uint64_t op_kind[TH_OP_KIND_COUNT];
    uint64_t next_id;
    int profile;                  /* current profile */
    bool is_filling;              /* phases profile: fill or drain */
    stress_block *blocks;
    size_t live, capacity;
    size_t live_bytes;            /* this thread's share */
    ring_entry ring[STRESS_RING];
    uint64_t ring_count;          /* total entries ever recorded */
    /* crash path: pre-formatted paths and pre-allocated scratch (no malloc in the handler) */
    char repro_txt[512];
    char repro_bin[512];
    th_op *scratch_ops;
    uint8_t *scratch_bytes;
} stress_thread;

typedef struct stress_queue_item {
    unsigned char *ptr;
    size_t size;
    uint64_t id;
    int producer;
} stress_queue_item;

typedef struct stress_allocator {
    void *(*malloc_fn)(size_t);
    void (*free_fn)(void *);
    void *(*calloc_fn)(size_t, size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*aligned_fn)(size_t, size_t);
    int (*memalign_fn)(void **, size_t, size_t);
    size_t (*usable_fn)(const void *);
} stress_allocator;

typedef struct stress_state {
    stress_options opt;
    stress_allocator alloc;
    stress_thread *threads;
    atomic_bool stop;               /* duration over, signal, or failure */
    atomic_bool has_failed;
    atomic_size_t live_bytes;       /* all live requested bytes (threads + queue) */
    atomic_size_t live_blocks;
    atomic_size_t peak_live;
    atomic_uint_fast64_t checks;
    atomic_size_t peak_rss;
    pthread_mutex_t queue_lock;
    stress_queue_item queue[STRESS_QUEUE_CAP];
    size_t queue_count;
    size_t rss_start;
    size_t retained_arenas;
} stress_state;

extern stress_state g;

/* pattern.c */
uint64_t stress_mix(uint64_t x);
/* Writes block `id`'s pattern into bytes [from, to) of p. */
void stress_fill_pattern(uint64_t id, unsigned char *p, size_t from, size_t to);
bool stress_verify_block(uint64_t id, const unsigned char *p, size_t size, size_t *bad_at);

/* workers.c */
void *stress_worker(void *arg);
void stress_free_all(stress_thread *t);
void stress_drain_queue(void);
const char *stress_profile_name(int profile);
int stress_profile_find(const char *name);

/* adapters.c */
const char *stress_allocator_name(int allocator);
int stress_allocator_find(const char *name);
/* Fills `out` with the allocator's calls; false (with a message on stderr naming what to
   install) when a run-time library cannot be loaded. May execute argv again (jemalloc). */
bool stress_allocator_load(int allocator, stress_allocator *out, char **argv);
/* The alignment every malloc, calloc and realloc result must have for `size` bytes. */
size_t stress_min_alignment(size_t size);

/* faults.c */
bool stress_fault_parse(const char *arg, stress_options *o);
const char *stress_fault_name(int fault);
bool stress_fault_maybe(stress_thread *t);

/* pause.c */
void pause_init(int threads);
void pause_safe_point(void);
void pause_thread_exit(void);
/* Stops the world, runs the full check; returns false on a violation (already reported). */
bool pause_full_check(stress_thread *self, const char *why);
bool stress_heap_check(const char *why, stress_thread *self, bool is_drained_expected);

/* The end-of-run numbers (main.c fills it, report.c prints and writes it). */
typedef struct stress_summary {
    uint64_t op_kind[TH_OP_KIND_COUNT];
    uint64_t ops, checks, map_count, unmap_count, digest;
    double seconds;
    size_t peak_live, rss_start, rss_drained, arenas_after;
    size_t peak_rss;          /* the kernel's high-water mark (or the highest sample) */
    size_t rss_peak_sampled;  /* the highest RSS sampled every 2 s and at each check */
    size_t allocated_after;
    bool is_drained, is_rss_back, has_failed, is_interrupted;
} stress_summary;

extern char stress_rerun[1024]; /* the rerun command without --ops */

/* report.c */
void stress_print_summary(const stress_summary *s, FILE *out);
bool stress_write_report(const stress_summary *s, const char *path);
bool stress_timeline_open(const char *path);
void stress_timeline_close(void);
size_t stress_rss(void);
size_t stress_rss_hwm(void);
void stress_note_rss(void);
void stress_fail(stress_thread *t, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void stress_install_crash_handler(void);
void stress_thread_prepare(stress_thread *t);
void stress_set_current(stress_thread *t);
void stress_progress_tick(uint64_t elapsed_ms, bool is_final);

#endif /* TALLOC_STRESS_H */
