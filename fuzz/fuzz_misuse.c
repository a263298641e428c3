/*
 * fuzz_misuse - damage ops interleaved with the whole API, on a heap whose error handler is
 * installed (the harness forwards every report to this target's on_error hook).
 *
 * Property: TAlloc reports each damage no later than the next operation that meets the
 * damaged chunk, with the right error, and then leaves the chunk untouched; damage it does
 * not report must not break an invariant. A report that no damage explains is a failure
 * (TH_API). Damage not reported in time, the wrong report, or unreported damage after which
 * the heap breaks an invariant is a failure (TH_DETECTION). Ops until detection are counted.
 *
 * Op: "damage K #B P" (TH_OP_DAMAGE: count K, block B, param P). #B picks the live block
 * (B % live count; the op is skipped when none is live). K % 7 is the kind, numbered as
 * below (stable: corpus files rely on it); K / 7 % 3 selects the call that meets an
 * immediate damage: 0 free, 1 realloc, 2 usable_size (K < 7: free). The numbering table:
 *
 *   K  name              damage                                        expected report
 *   0  double_free       free B through TAlloc (no report allowed),    double free (free); use
 *                        drop it from the model, then call the same    after free (realloc,
 *                        pointer again                                 usable_size); foreign
 *                                                                      pointer when that free
 *                                                                      unmapped B's arena,
 *                                                                      unless B was too large
 *                                                                      for a standard arena
 *                                                                      (TAlloc remembers it)
 *   1  interior_free     call with B + 16 * (1 + P % 4), or B + 16     interior pointer
 *                        when that is not below B's usable size
 *   2  misaligned_free   call with B + 1 + P % 15                      misaligned pointer
 *   3  foreign_free      call with, for P % 3 = 0, a stack address;    foreign pointer
 *                        1, a static object; 2, a page fresh from mmap
 *   4  flip_header       flip bit (P / 16) % 8 of byte P % 16 of B's   corrupted header
 *                        16-byte header (B - 16 .. B - 1)
 *   5  overflow_next     XOR the 1 + P % 16 bytes just past B's        corrupted header
 *                        usable size (the next chunk's header, or the
 *                        arena fence) with mask[(P / 16) % 8],
 *                        mask = ff 01 10 80 41 5a a5 3c
 *   6  write_after_free  malloc a scratch block of B's size, free it,  none: undetected; must
 *                        fill its payload with the byte P from offset  stay harmless (full
 *                        24 (past the free links and checker mark) to  check right after)
 *                        8 bytes before its end (the footer); skipped
 *                        when there is no such room or the free
 *                        unmapped the arena
 *
 * Kinds 0-3 (bad pointers): the damage op makes the call - free(p), realloc(p, 1 + P) (must
 * return NULL, errno EINVAL), usable_size(p) (must return 0) - and exactly one report, naming
 * p, must come during it.
 *
 * Kinds 4 and 5 (header damage), P < 128: immediate. The damage op then makes the selected
 * call on the damaged block - free(B), realloc(B, usable size of B) (resizes nothing), or
 * usable_size: of B for kind 4; for kind 5 of the next chunk when it is a live block, else
 * realloc(B) - and one "corrupted header" report, naming the damaged header (or its payload
 * when the call was on the damaged chunk itself), must come during it. The handler restores
 * the saved header before TAlloc returns, so the block stays live and the heap whole.
 *
 * Kinds 4 and 5, P >= 128: deferred. The damage stays while the program goes on, heap checks
 * suspended (th_run_set_checking), for a window of 8 << (K / 7 % 3) ops (8, 16, 32). The
 * harness accepts a failed call during which TAlloc reported something, but its model
 * would then drop a block that TAlloc kept (a free that TAlloc refused), and hooks cannot
 * see the next op. So this target takes over from the model (th_run_forget_block) every block whose calls validate
 * the damaged header - B, plus for kind 4 B's left neighbour when it is allocated (realloc
 * validates the header after its block), for kind 5 the next chunk when it is allocated -
 * and frees them itself when the damage is resolved. Kind 5 with a free next chunk (which
 * any allocation may meet) is made immediate instead, with the call K / 7 selects. (With a
 * before-op hook or the op count in the harness API this target could look ahead instead,
 * and let the program's own calls meet the damage.) The program's ops then cannot call on
 * the damaged chunk; what remains to check is TAlloc itself:
 *   - after every op, the damaged header is compared with what was written: if TAlloc
 *     rewrote it without a report (say, resealing it while clearing its prev-free flag when
 *     the free chunk before it is allocated), checks resume at once: if the heap breaks an
 *     invariant, that is the finding "never reported"; otherwise the damage was absorbed;
 *   - any report while pending counts as its detection (it must be "corrupted header" about
 *     the damaged chunk); a free during which it came is completed after the op;
 *   - when the window ends, or at the next damage op, a forced probe (usable_size(B) for kind
 *     4, realloc(B, usable) for kind 5) must get the report;
 *   - a program that ends with the damage pending leaves it unmet (counted; the header is
 *     compared once more when the heap is destroyed; the drain runs unchecked).
 *
 * Ops until detection = index of the op during (or right after) which the report came - index
 * of the damage op + 1: 1 for immediate damage, up to the window + 1 for deferred damage.
 *
 * Known gaps, not exercised: a write into a freed block over its free-list links, mark or
 * footer (the first 24 and last 8 payload bytes) corrupts the free list and is not reliably
 * detected before it is used (no free-list hardening yet); TAlloc does not junk-fill freed
 * blocks, so kind 6 is expected never to be reported.
 *
 * TAlloc's memory is poisoned for AddressSanitizer except the bytes of live blocks
 * (allocator/src/track.h); this target unpoisons exactly the bytes it damages or restores
 * and poisons them again. The stack and static "foreign" pointers are only passed, never
 * written through.
 *
 * TALLOC_MISUSE_STATS=1 prints per-kind totals at exit (deferred kinds 4 and 5 in rows of
 * their own): injected, skipped (no live block, no room), reported in time, of those by a
 * forced probe, harmless (never reported, heap whole), unmet, and median / max / mean ops
 * until detection. For example
 *   TALLOC_MISUSE_STATS=1 ./fuzz_misuse -runs=100000 corpus_dir
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"

#if defined(__SANITIZE_ADDRESS__)
#define MISUSE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MISUSE_ASAN 1
#endif
#endif
#ifdef MISUSE_ASAN
#include <sanitizer/asan_interface.h>
#endif

typedef enum damage_kind {
    DAMAGE_DOUBLE_FREE = 0,
    DAMAGE_INTERIOR_FREE = 1,
    DAMAGE_MISALIGNED_FREE = 2,
    DAMAGE_FOREIGN_FREE = 3,
    DAMAGE_FLIP_HEADER = 4,
    DAMAGE_OVERFLOW_NEXT = 5,
    DAMAGE_WRITE_AFTER_FREE = 6,
    DAMAGE_KIND_COUNT
} damage_kind;

static const char *const damage_names[DAMAGE_KIND_COUNT] = {
    "double_free", "interior_free", "misaligned_free", "foreign_free",
    "flip_header", "overflow_next", "write_after_free",
};

typedef enum misuse_call { CALL_FREE, CALL_REALLOC, CALL_USABLE_SIZE, CALL_COUNT } misuse_call;

static const char *const call_names[CALL_COUNT] = {"free", "realloc", "usable_size"};

enum {
    HEADER_SIZE = 16,       /* chunk header bytes (allocator/src/internal.h) */
    FLAG_MASK = 15,         /* low size_word bits that are flags */
    FLAG_FREE = 1,
    PARAM_DEFERRED = 0x80,  /* kinds 4 and 5: leave the damage pending */
    WINDOW_BASE = 8,        /* deferred damage stays WINDOW_BASE << (K / 7 % 3) ops */
    MAX_HELD = 2,           /* blocks taken over from the model while damage is pending */
    ARENA_RESERVED = 64,    /* arena header + end fence */
    LINKS_AND_MARK = 24,    /* free chunk payload: next, prev, checker mark */
    FOOTER = 8,             /* free chunk payload: its last 8 bytes */
    HISTOGRAM_SIZE = 64,    /* ops until detection; the last bucket: that many or more */
};

static const unsigned char overflow_masks[8] = {0xff, 0x01, 0x10, 0x80, 0x41, 0x5a, 0xa5, 0x3c};

/* Header damage (kinds 4 and 5) between injection and detection. */
typedef struct pending_damage {
    bool is_active;
    bool is_reported;        /* a report arrived (during the current op); header restored */
    bool is_unmapped;        /* the damaged header's arena was unmapped */
    damage_kind kind;
    int row;                 /* its statistics row */
    size_t op_index;         /* the damage op */
    size_t window;           /* ops it may stay (deferred) */
    unsigned char *block;    /* B */
    size_t block_usable;
    unsigned char *header;   /* the damaged header: B's own (4) or the one after B (5) */
    size_t chunk_size;       /* the damaged chunk's size before the damage (0: the fence) */
    bool is_chunk_free;
    unsigned char saved[HEADER_SIZE];
    unsigned char damaged[HEADER_SIZE];
    void *held[MAX_HELD];    /* taken over from the model, freed when resolved */
    size_t held_count;
    TAlloc_error error;      /* the report */
    const void *address;
} pending_damage;

/* The hooks' state, reset by configure() for every input. */
typedef struct misuse {
    th_run *run;             /* the current run (for on_unmap, which does not get it) */
    bool is_probing;         /* inside a call of ours that may report */
    size_t report_count;     /* reports during the last probing call */
    TAlloc_error error;
    const void *address;
    const void *watched;     /* noted when an unmap covers it */
    bool is_watched_unmapped;
    bool is_watched_dedicated;   /* ... and it was a dedicated arena (remembered by TAlloc) */
    size_t arena_size;           /* the heap's standard arena size */
    pending_damage damage;
} misuse;

static misuse state;

/* ---- TAlloc-owned bytes under AddressSanitizer ------------------------------------------ */

static void open_bytes(const void *p, size_t n)
{
#ifdef MISUSE_ASAN
    __asan_unpoison_memory_region(p, n);
#else
    (void)p, (void)n;
#endif
}

static void close_bytes(const void *p, size_t n)
{
#ifdef MISUSE_ASAN
    __asan_poison_memory_region(p, n);
#else
    (void)p, (void)n;
#endif
}

static void read_owned(void *to, const unsigned char *from, size_t n)
{
    open_bytes(from, n);
    memcpy(to, from, n);
    close_bytes(from, n);
}

static void write_owned(unsigned char *to, const void *from, size_t n)
{
    open_bytes(to, n);
    memcpy(to, from, n);
    close_bytes(to, n);
}

/* ---- statistics (every input of the process) -------------------------------------------- */

/* One row per kind, plus rows for deferred kinds 4 and 5. */
enum { ROW_FLIP_DEFERRED = DAMAGE_KIND_COUNT, ROW_OVERFLOW_DEFERRED, ROW_COUNT };

static const char *const row_names[ROW_COUNT] = {
    "double_free", "interior_free", "misaligned_free", "foreign_free", "flip_header",
    "overflow_next", "write_after_free", "flip_header deferred", "overflow_next deferred",
};

typedef struct kind_stats {
    uint64_t injected;
    uint64_t skipped;        /* nothing to damage: no live block, no room */
    uint64_t reported;       /* in time */
    uint64_t forced;         /* of those, by a forced probe (window end, next damage op) */
    uint64_t harmless;       /* never reported, no invariant broken (6; 4/5 absorbed) */
    uint64_t unmet;          /* deferred, still pending when the program ended */
    uint64_t ops_sum;
    uint64_t ops_max;
    uint64_t histogram[HISTOGRAM_SIZE];
    uint64_t errors[TALLOC_ERROR_COUNT];
} kind_stats;

static kind_stats stats[ROW_COUNT];

static void count_detection(int row, size_t ops, TAlloc_error error)
{
    kind_stats *k = &stats[row];
    k->reported++;
    k->ops_sum += ops;
    if (ops > k->ops_max)
        k->ops_max = ops;
    k->histogram[ops < HISTOGRAM_SIZE ? ops : HISTOGRAM_SIZE - 1]++;
    if ((unsigned)error < TALLOC_ERROR_COUNT)
        k->errors[error]++;
}

static uint64_t median_ops(const kind_stats *k)
{
    uint64_t seen = 0;
    for (size_t i = 0; i < HISTOGRAM_SIZE; i++) {
        seen += k->histogram[i];
        if (k->reported > 0 && 2 * seen >= k->reported)
            return i;
    }
    return 0;
}

static void print_stats(void)
{
    fprintf(stderr, "fuzz_misuse: damage per kind; ops until detection (1: by the damage op)\n");
    fprintf(stderr, "%-2s %-22s %9s %8s %9s %8s %8s %7s %6s %6s %6s\n", "K", "kind", "injected",
            "skipped", "reported", "forced", "harmless", "unmet", "median", "max", "mean");
    for (int i = 0; i < ROW_COUNT; i++) {
        const kind_stats *k = &stats[i];
        double mean = k->reported ? (double)k->ops_sum / (double)k->reported : 0.0;
        int kind = i < DAMAGE_KIND_COUNT ? i : i == ROW_FLIP_DEFERRED ? DAMAGE_FLIP_HEADER
                                                                        : DAMAGE_OVERFLOW_NEXT;
        fprintf(stderr, "%-2d %-22s %9llu %8llu %9llu %8llu %8llu %7llu %6llu %6llu %6.2f\n",
                kind, row_names[i], (unsigned long long)k->injected,
                (unsigned long long)k->skipped, (unsigned long long)k->reported,
                (unsigned long long)k->forced,
                (unsigned long long)k->harmless, (unsigned long long)k->unmet,
                (unsigned long long)median_ops(k), (unsigned long long)k->ops_max, mean);
    }
    fprintf(stderr, "reports by error:");
    for (int e = 1; e < TALLOC_ERROR_COUNT; e++) {
        uint64_t n = 0;
        for (int i = 0; i < ROW_COUNT; i++)
            n += stats[i].errors[e];
        fprintf(stderr, " %s=%llu", TAlloc_error_string((TAlloc_error)e), (unsigned long long)n);
    }
    fprintf(stderr, "\n");
}

/* ---- reports and calls that may get one --------------------------------------------------- */

/* The line TAlloc writes when no handler is installed names the error and the address. */
static void check_report_line(th_run *run, TAlloc_error error, const void *address)
{
    char line[128], want[128];
    TAlloc_error_format(line, sizeof line, error, address);
    snprintf(want, sizeof want, "talloc: %s %p\n", TAlloc_error_string(error), address);
    if (strcmp(line, want) != 0)
        th_run_fail(run, TH_API, address, "report line \"%s\" differs from \"%s\"", line, want);
}

static void on_error(void *ctx, th_run *run, TAlloc_error error, const void *address)
{
    misuse *m = ctx;
    pending_damage *d = &m->damage;
    check_report_line(run, error, address);
    m->report_count++;
    m->error = error;
    m->address = address;
    if (d->is_active && !d->is_reported) {
        /* TAlloc returns without touching the chunk: make it whole before it does */
        if (!d->is_unmapped)
            write_owned(d->header, d->saved, HEADER_SIZE);
        d->is_reported = true;
        d->error = error;
        d->address = address;
        return;
    }
    if (!m->is_probing)
        th_run_fail(run, TH_API, address, "TAlloc reported \"%s\" with no damage pending",
                    TAlloc_error_string(error));
}

/* Makes `call` on `ptr` (realloc to `size` bytes) where a report is expected, and checks what
   TAlloc promises after one. Returns the number of reports. */
static size_t probe_call(misuse *m, th_run *run, misuse_call call, void *ptr, size_t size)
{
    TAlloc_heap *heap = th_run_heap(run);
    m->is_probing = true;
    m->report_count = 0;
    m->error = TALLOC_ERROR_NONE;
    m->address = NULL;
    switch (call) {
    case CALL_FREE: TAlloc_heap_free(heap, ptr); break;
    case CALL_REALLOC: {
        errno = 0;
        void *p = TAlloc_heap_realloc(heap, ptr, size);
        int error = errno;
        if (m->report_count > 0 && (p != NULL || error != EINVAL))
            th_run_fail(run, TH_API, ptr, "realloc(%p, %zu) returned %p, errno %d after a report",
                        ptr, size, p, error);
        break;
    }
    default: {
        size_t usable = TAlloc_heap_usable_size(heap, ptr);
        if (m->report_count > 0 && usable != 0)
            th_run_fail(run, TH_API, ptr, "usable_size(%p) returned %zu after a report", ptr, usable);
        break;
    }
    }
    m->is_probing = false;
    return m->report_count;
}

/* usable_size of a block that must be valid (a report fails the run). */
static size_t quiet_usable(th_run *run, const void *ptr)
{
    return TAlloc_heap_usable_size(th_run_heap(run), ptr);
}

/* The model index of the live block `ptr`, or SIZE_MAX. */
static size_t live_index(const th_run *run, const void *ptr)
{
    for (size_t i = 0; i < th_run_live_count(run); i++)
        if (th_run_live_block(run, i, NULL) == ptr)
            return i;
    return SIZE_MAX;
}

/* ---- kinds 0-3: bad pointers, reported by the damage op itself ---------------------------- */

static void expect_immediate(misuse *m, th_run *run, size_t op_index, damage_kind kind,
                             misuse_call call, void *ptr, size_t realloc_size, TAlloc_error want)
{
    stats[kind].injected++;
    size_t reports = probe_call(m, run, call, ptr, realloc_size);
    if (th_run_has_failed(run))
        return;
    if (reports == 0) {
        th_run_fail(run, TH_DETECTION, ptr, "%s not reported by op %zu (%s(%p))", damage_names[kind],
                    op_index, call_names[call], ptr);
        return;
    }
    if (reports != 1 || m->error != want || m->address != ptr) {
        th_run_fail(run, TH_DETECTION, m->address,
                    "%s by %s(%p): %zu report(s), last \"%s\" at %p; expected \"%s\" at %p",
                    damage_names[kind], call_names[call], ptr, reports,
                    TAlloc_error_string(m->error), m->address, TAlloc_error_string(want), ptr);
        return;
    }
    count_detection(kind, 1, m->error);
}

static void damage_double_free(misuse *m, th_run *run, size_t op_index, size_t index,
                               unsigned char *block, misuse_call call, uint8_t param)
{
    m->watched = block;
    m->is_watched_unmapped = false;
    /* TAlloc remembers a block too large for a standard arena after unmapping its arena */
    bool is_large = quiet_usable(run, block) + HEADER_SIZE > m->arena_size - ARENA_RESERVED;
    TAlloc_heap_free(th_run_heap(run), block); /* legitimate: a report fails the run */
    m->watched = NULL;
    th_run_forget_block(run, index);
    if (th_run_has_failed(run))
        return;
    TAlloc_error want = m->is_watched_unmapped && !(m->is_watched_dedicated && is_large)
                            ? TALLOC_ERROR_FOREIGN_POINTER
                        : call == CALL_FREE ? TALLOC_ERROR_DOUBLE_FREE
                                            : TALLOC_ERROR_USE_AFTER_FREE;
    expect_immediate(m, run, op_index, DAMAGE_DOUBLE_FREE, call, block, 1u + param, want);
}

static void damage_interior_free(misuse *m, th_run *run, size_t op_index, unsigned char *block,
                                 misuse_call call, uint8_t param)
{
    size_t usable = quiet_usable(run, block);
    size_t offset = 16u * (1u + param % 4u);
    if (offset >= usable)
        offset = 16;
    expect_immediate(m, run, op_index, DAMAGE_INTERIOR_FREE, call, block + offset, 1u + param,
                     TALLOC_ERROR_INTERIOR_POINTER);
}

static _Alignas(16) unsigned char foreign_static[64];

static void damage_foreign_free(misuse *m, th_run *run, size_t op_index, misuse_call call,
                                uint8_t param)
{
    _Alignas(16) unsigned char on_stack[64] = {0};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *mapped = NULL;
    void *ptr;
    switch (param % 3) {
    case 0: ptr = on_stack + 16; break;
    case 1: ptr = foreign_static + 16; break;
    default:
        mapped = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) {
            stats[DAMAGE_FOREIGN_FREE].skipped++;
            return;
        }
        ptr = (unsigned char *)mapped + 16;
        break;
    }
    expect_immediate(m, run, op_index, DAMAGE_FOREIGN_FREE, call, ptr, 1u + param,
                     TALLOC_ERROR_FOREIGN_POINTER);
    if (mapped)
        munmap(mapped, page);
}

/* ---- kinds 4 and 5: header damage ------------------------------------------------------ */

/* Pointer to the damaged chunk's payload (where its own validation reports). */
static unsigned char *damaged_payload(const pending_damage *d)
{
    return d->header + HEADER_SIZE;
}

/* Whether a report at `address` concerns the damaged chunk: its header, its payload, or
   (through its right neighbour's merge) its footer. */
static bool is_about_damage(const pending_damage *d, const void *address)
{
    uintptr_t a = (uintptr_t)address, h = (uintptr_t)d->header;
    size_t extent = d->chunk_size > HEADER_SIZE ? d->chunk_size : HEADER_SIZE;
    return a >= h && a <= h + extent;
}

static bool is_rewritten(const pending_damage *d)
{
    unsigned char now[HEADER_SIZE];
    read_owned(now, d->header, HEADER_SIZE);
    return memcmp(now, d->damaged, HEADER_SIZE) != 0;
}

/* Saves the header at `header` and marks it pending (the caller damages it). */
static void begin_damage(misuse *m, size_t op_index, damage_kind kind, unsigned char *block,
                         size_t usable, unsigned char *header)
{
    pending_damage *d = &m->damage;
    *d = (pending_damage){.is_active = true, .kind = kind, .op_index = op_index, .block = block,
                          .block_usable = usable, .header = header};
    read_owned(d->saved, header, HEADER_SIZE);
    uint64_t word;
    memcpy(&word, d->saved, sizeof word);
    d->chunk_size = (size_t)(word & ~(uint64_t)FLAG_MASK);
    d->is_chunk_free = (word & FLAG_FREE) != 0;
    d->row = kind;
}

/* Resumes checks and frees the blocks taken over from the model (their headers are whole:
   a report here fails the run). */
static void end_damage(misuse *m, th_run *run)
{
    pending_damage *d = &m->damage;
    d->is_active = false;
    th_run_set_checking(run, true);
    for (size_t i = 0; i < d->held_count && !th_run_has_failed(run); i++)
        TAlloc_heap_free(th_run_heap(run), d->held[i]);
    d->held_count = 0;
}

static void count_damage_detection(const pending_damage *d, size_t op_index, bool is_forced)
{
    count_detection(d->row, op_index - d->op_index + 1, d->error);
    if (is_forced)
        stats[d->row].forced++;
}

/* Makes `call` on `target` (a realloc to `usable` bytes resizes nothing) and requires the
   pending damage to be reported during it; counts the detection at op `op_index`. */
static void probe_damage(misuse *m, th_run *run, misuse_call call, unsigned char *target,
                         size_t usable, size_t op_index, bool is_forced)
{
    pending_damage *d = &m->damage;
    size_t reports = probe_call(m, run, call, target, usable);
    if (th_run_has_failed(run))
        return;
    if (!d->is_reported) {
        th_run_fail(run, TH_DETECTION, d->header,
                    "%s of block %p (op %zu) not reported by op %zu (%s(%p))", damage_names[d->kind],
                    (void *)d->block, d->op_index, op_index, call_names[call], (void *)target);
        return;
    }
    const void *want = target == damaged_payload(d) ? (const void *)target : (const void *)d->header;
    if (reports != 1 || d->error != TALLOC_ERROR_CORRUPTED_HEADER || d->address != want) {
        th_run_fail(run, TH_DETECTION, d->address,
                    "%s of block %p (op %zu) by %s(%p): %zu report(s), first \"%s\" at %p; "
                    "expected \"corrupted header\" at %p",
                    damage_names[d->kind], (void *)d->block, d->op_index, call_names[call],
                    (void *)target, reports, TAlloc_error_string(d->error), d->address, want);
        return;
    }
    count_damage_detection(d, op_index, is_forced);
    end_damage(m, run);
}

/* The forced probe that resolves deferred damage nobody met. */
static void probe_forced(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    misuse_call call = d->kind == DAMAGE_FLIP_HEADER ? CALL_USABLE_SIZE : CALL_REALLOC;
    probe_damage(m, run, call, d->block, d->block_usable, op_index, true);
}

/* Takes the live block `ptr` over from the model until the damage is resolved. */
static void hold(misuse *m, th_run *run, void *ptr)
{
    pending_damage *d = &m->damage;
    size_t index = live_index(run, ptr);
    if (index == SIZE_MAX || d->held_count == MAX_HELD)
        return;
    th_run_forget_block(run, index);
    d->held[d->held_count++] = ptr;
}

typedef struct left_search {
    const void *header;              /* the chunk whose left neighbour is wanted */
    TAlloc_chunk_info previous;      /* the chunk before the one being visited, if any */
    bool has_previous;
    bool is_found;
} left_search;

static int find_left(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    left_search *s = ctx;
    if (chunk == NULL) {
        s->has_previous = false;
        return 0;
    }
    if (chunk->address == s->header) {
        s->is_found = s->has_previous;
        return 1;
    }
    s->previous = *chunk;
    s->has_previous = true;
    return 0;
}

/* Deferred damage: takes over every live block whose free, realloc or usable_size would
   validate the damaged header, so the harness's model never disagrees with TAlloc. */
static void hold_neighbours(misuse *m, th_run *run)
{
    pending_damage *d = &m->damage;
    hold(m, run, d->block);
    if (d->kind == DAMAGE_FLIP_HEADER) {
        left_search s = {.header = d->header};
        TAlloc_heap_walk(th_run_heap(run), find_left, &s);
        if (s.is_found && !s.previous.is_free)
            hold(m, run, s.previous.payload);
    } else if (d->chunk_size > 0 && !d->is_chunk_free) {
        hold(m, run, damaged_payload(d));
    }
}

static void damage_header(misuse *m, th_run *run, size_t op_index, damage_kind kind,
                          unsigned char *block, misuse_call call, uint8_t param)
{
    size_t usable = quiet_usable(run, block);
    if (th_run_has_failed(run))
        return;
    pending_damage *d = &m->damage;
    unsigned char bytes[HEADER_SIZE];
    if (kind == DAMAGE_FLIP_HEADER) {
        begin_damage(m, op_index, kind, block, usable, block - HEADER_SIZE);
        memcpy(bytes, d->saved, HEADER_SIZE);
        bytes[param % 16u] ^= (unsigned char)(1u << (param / 16u % 8u));
    } else {
        begin_damage(m, op_index, kind, block, usable, block + usable);
        memcpy(bytes, d->saved, HEADER_SIZE);
        for (size_t i = 0; i < 1u + param % 16u; i++)
            bytes[i] ^= overflow_masks[param / 16u % 8u];
    }
    bool is_deferred = (param & PARAM_DEFERRED) != 0 &&
                       !(kind == DAMAGE_OVERFLOW_NEXT && d->is_chunk_free);
    if (is_deferred) {
        d->row = kind == DAMAGE_FLIP_HEADER ? ROW_FLIP_DEFERRED : ROW_OVERFLOW_DEFERRED;
        d->window = (size_t)WINDOW_BASE << call;
        hold_neighbours(m, run); /* walks the heap: before the damage */
        th_run_set_checking(run, false);
    }
    stats[d->row].injected++;
    memcpy(d->damaged, bytes, HEADER_SIZE);
    write_owned(d->header, bytes, HEADER_SIZE);
    /* the checker, too, must see every damaged header */
    if (TAlloc_heap_check(th_run_heap(run), NULL, NULL) == 0)
        th_run_fail(run, TH_DETECTION, d->header, "%s of block %p: TAlloc_heap_check found nothing",
                    damage_names[kind], (void *)block);
    if (is_deferred)
        return; /* after_op takes it from here */
    unsigned char *target = block;
    size_t target_usable = usable;
    if (kind == DAMAGE_OVERFLOW_NEXT && call == CALL_USABLE_SIZE) {
        if (live_index(run, damaged_payload(d)) != SIZE_MAX) {
            target = damaged_payload(d);
            target_usable = d->chunk_size - HEADER_SIZE;
        } else {
            call = CALL_REALLOC;
        }
    }
    probe_damage(m, run, call, target, target_usable, op_index, false);
}

/* ---- kind 6: a write into a freed block ------------------------------------------------- */

static void damage_write_after_free(misuse *m, th_run *run, size_t op_index, size_t size,
                                    uint8_t param)
{
    TAlloc_heap *heap = th_run_heap(run);
    unsigned char *scratch = TAlloc_heap_malloc(heap, size);
    if (scratch == NULL) {
        stats[DAMAGE_WRITE_AFTER_FREE].skipped++;
        return;
    }
    size_t usable = quiet_usable(run, scratch);
    m->watched = scratch;
    m->is_watched_unmapped = false;
    TAlloc_heap_free(heap, scratch);
    m->watched = NULL;
    if (th_run_has_failed(run))
        return;
    if (m->is_watched_unmapped || usable <= LINKS_AND_MARK + FOOTER) {
        stats[DAMAGE_WRITE_AFTER_FREE].skipped++;
        return;
    }
    stats[DAMAGE_WRITE_AFTER_FREE].injected++;
    unsigned char *from = scratch + LINKS_AND_MARK;
    size_t n = usable - LINKS_AND_MARK - FOOTER;
    open_bytes(from, n);
    memset(from, param, n);
    close_bytes(from, n);
    if (th_run_check(run, op_index))
        stats[DAMAGE_WRITE_AFTER_FREE].harmless++;
}

/* ---- hooks ------------------------------------------------------------------------------ */

static void on_damage(void *ctx, th_run *run, size_t op_index, const th_op *op, th_op_result *result)
{
    misuse *m = ctx;
    m->run = run;
    damage_kind kind = (damage_kind)(op->count % DAMAGE_KIND_COUNT);
    misuse_call call = (misuse_call)(op->count / DAMAGE_KIND_COUNT % CALL_COUNT);
    if (m->damage.is_active) { /* one header damage at a time */
        probe_forced(m, run, op_index);
        if (th_run_has_failed(run))
            return;
    }
    size_t live = th_run_live_count(run);
    if (live == 0) {
        stats[kind].skipped++;
        return;
    }
    size_t index = op->block % live;
    size_t size;
    unsigned char *block = th_run_live_block(run, index, &size);
    result->is_executed = true;
    result->block = block;
    result->block_size = size;
    switch (kind) {
    case DAMAGE_DOUBLE_FREE: damage_double_free(m, run, op_index, index, block, call, op->param); break;
    case DAMAGE_INTERIOR_FREE: damage_interior_free(m, run, op_index, block, call, op->param); break;
    case DAMAGE_MISALIGNED_FREE:
        expect_immediate(m, run, op_index, kind, call, block + 1 + op->param % 15u, 1u + op->param,
                         TALLOC_ERROR_MISALIGNED_POINTER);
        break;
    case DAMAGE_FOREIGN_FREE: damage_foreign_free(m, run, op_index, call, op->param); break;
    case DAMAGE_FLIP_HEADER:
    case DAMAGE_OVERFLOW_NEXT: damage_header(m, run, op_index, kind, block, call, op->param); break;
    default: damage_write_after_free(m, run, op_index, size, op->param); break;
    }
}

/* A report arrived during a harness op: check it, resolve the damage, and finish a free the
   harness meant to make (TAlloc refused it while the header was damaged; the harness has
   dropped the block from its model, and the header is whole again). */
static void settle_report(misuse *m, th_run *run, size_t op_index, const th_op *op,
                          const th_op_result *r)
{
    pending_damage *d = &m->damage;
    if (d->error != TALLOC_ERROR_CORRUPTED_HEADER || !is_about_damage(d, d->address)) {
        th_run_fail(run, TH_DETECTION, d->address,
                    "%s of block %p (op %zu) reported by op %zu as \"%s\" at %p; expected "
                    "\"corrupted header\" of the chunk at %p",
                    damage_names[d->kind], (void *)d->block, d->op_index, op_index,
                    TAlloc_error_string(d->error), d->address, (void *)d->header);
        return;
    }
    count_damage_detection(d, op_index, false);
    end_damage(m, run);
    bool is_dropped = r->is_executed && r->block &&
                      (op->kind == TH_OP_FREE ||
                       (op->kind == TH_OP_REALLOC && (r->request_size == 0 ||
                                                      (r->result && r->result != r->block))));
    if (is_dropped && !th_run_has_failed(run))
        TAlloc_heap_free(th_run_heap(run), r->block);
}

typedef struct first_violation {
    int invariant;
    const void *address;
    char detail[160];
} first_violation;

static void note_violation(void *ctx, int invariant, const void *address, const char *detail)
{
    first_violation *v = ctx;
    if (v->invariant != 0)
        return;
    v->invariant = invariant;
    v->address = address;
    snprintf(v->detail, sizeof v->detail, "%s", detail);
}

/* TAlloc rewrote the damaged header without a report: harmless only if the heap is whole. */
static void settle_rewrite(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    first_violation v = {0};
    if (TAlloc_heap_check(th_run_heap(run), note_violation, &v) != 0) {
        th_run_fail(run, TH_DETECTION, d->header,
                    "%s of block %p (op %zu) never reported: op %zu rewrote the damaged header "
                    "at %p, after which %s at %p: %s",
                    damage_names[d->kind], (void *)d->block, d->op_index, op_index,
                    (void *)d->header, th_invariant_name(v.invariant), v.address, v.detail);
        return;
    }
    stats[d->row].harmless++;
    end_damage(m, run);
}

static void after_op(void *ctx, th_run *run, size_t op_index, const th_op *op, const th_op_result *r)
{
    misuse *m = ctx;
    pending_damage *d = &m->damage;
    m->run = run;
    if (!d->is_active || th_run_has_failed(run))
        return;
    if (d->is_reported)
        settle_report(m, run, op_index, op, r);
    else if (d->is_unmapped)
        th_run_fail(run, TH_DETECTION, d->header,
                    "%s of block %p (op %zu) never reported: op %zu unmapped its arena",
                    damage_names[d->kind], (void *)d->block, d->op_index, op_index);
    else if (is_rewritten(d))
        settle_rewrite(m, run, op_index);
    else if (op_index - d->op_index >= d->window)
        probe_forced(m, run, op_index);
}

/* Unmaps come from frees during the run and from the heap's destruction after the program;
   TAlloc makes an arena plain memory again before it unmaps it. */
static void on_unmap(void *ctx, void *base, size_t size)
{
    misuse *m = ctx;
    uintptr_t from = (uintptr_t)base, to = from + size;
    if (m->watched && (uintptr_t)m->watched >= from && (uintptr_t)m->watched < to) {
        m->is_watched_unmapped = true;
        m->is_watched_dedicated = size != m->arena_size;
    }
    pending_damage *d = &m->damage;
    if (!d->is_active || d->is_unmapped || (uintptr_t)d->header < from || (uintptr_t)d->header >= to)
        return;
    d->is_unmapped = true;
    if (d->is_reported)
        return;
    stats[d->row].unmet++;
    if (memcmp(d->header, d->damaged, HEADER_SIZE) != 0 && m->run)
        th_run_fail(m->run, TH_DETECTION, d->header,
                    "%s of block %p (op %zu) never reported: its header was rewritten when "
                    "the arena was unmapped", damage_names[d->kind], (void *)d->block, d->op_index);
}

static void configure(th_config *config)
{
    static bool is_initialized;
    if (!is_initialized) {
        is_initialized = true;
        const char *flag = getenv("TALLOC_MISUSE_STATS");
        if (flag && strcmp(flag, "1") == 0)
            atexit(print_stats);
    }
    state = (misuse){0};
    th_config_init(config);
    state.arena_size = config->arena_size;
    config->allowed_ops = ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_FAIL_MAPS);
    config->hooks = (th_hooks){.on_unmap = on_unmap, .after_op = after_op, .damage = on_damage,
                               .on_error = on_error, .ctx = &state};
}

FUZZ_TARGET(fuzz_misuse, configure)
