/*
 * fuzz_misuse.h - damage ops interleaved with the whole API, on a heap whose error handler is
 * installed (the harness forwards every report to the on_error hook). Four targets run it:
 *
 *   fuzz_misuse           a heap with the default options but the large-block cache (off:
 *                         damage is followed until its arena is unmapped, and the cache would
 *                         take a dedicated arena away without an unmap)
 *   fuzz_misuse_hardened  the same programs on a heap with canary, junk and a quarantine of
 *                         QUARANTINE blocks (the harness releases the quarantine after every
 *                         op, so it holds what one op freed); requests above 256 KiB are
 *                         skipped (junk fills every freed byte)
 *   fuzz_misuse_canary    the same programs on a heap with canary alone: the fast entries
 *                         (allocator/src/quick.h) still run, and write and verify canaries
 *   fuzz_misuse_junk      the same programs on a heap with junk alone: the fast entries
 *                         junk-fill what they free and verify the junk of what they take
 *                         (requests above 256 KiB skipped, as with fuzz_misuse_hardened)
 *
 * Property: TAlloc reports each damage no later than the first operation that meets it, with
 * the right error and address, and then leaves the damaged memory untouched; damage it does
 * not report must not break an invariant. A report that no damage explains is a failure
 * (TH_API). Damage not reported in time, the wrong report, a call that breaks its contract
 * after a report, or unreported damage after which the heap breaks an invariant is a failure
 * (TH_DETECTION). Ops until detection are counted.
 *
 * Op: "damage K #B P" (TH_OP_DAMAGE: count K, block B, param P). #B picks the live block
 * (B % live count; the op is skipped when none is live). K % 10 is the kind, numbered as
 * below; K / 10 % 3 selects the call that meets an immediate damage: 0 free, 1 realloc,
 * 2 usable_size (K < 10: free), and the window of deferred damage; for kind 7, K / 30 odd
 * selects link_retarget. The numbering table:
 *
 *   K  name              damage                                       expected report
 *   0  double_free       free B through TAlloc (no report allowed),   double free (free); use
 *                        drop it from the model, then call the same   after free (realloc,
 *                        pointer again                                usable_size); foreign
 *                                                                     pointer when a free
 *                                                                     unmapped B's arena,
 *                                                                     unless B was the first
 *                                                                     block of a dedicated one
 *   1  interior_free     call with B + 16 * (1 + P % 4), or B + 16    interior pointer
 *                        when that is not below B's usable size
 *   2  misaligned_free   call with B + 1 + P % 15                     misaligned pointer
 *   3  foreign_free      call with, for P % 4 = 0, a stack address;   foreign pointer
 *                        1, a static object; 2, a page fresh from mmap;
 *                        3, 16, 32 or 48 bytes into the header of the
 *                        first standard arena (else the stack)
 *   4  flip_header       flip bit (P / 16) % 8 of byte P % 16 of B's  corrupted header
 *                        16-byte header (B - 16 .. B - 1)
 *   5  overflow_next     XOR the 1 + P % 16 bytes just past B's chunk corrupted header
 *                        (the next chunk's header, or the arena
 *                        fence) with mask[(P / 16) % 8],
 *                        mask = ff 01 10 80 41 5a a5 3c
 *   6  write_after_free  malloc a scratch block of B's size, free it   without junk: none, and
 *                        (and release the quarantine), fill its       must stay harmless (full
 *                        payload with the byte P from offset 24       check right after); with
 *                        (past the links and checker mark) to 8       junk: write after free
 *                        bytes before its chunk's end (the footer);   <first written byte> by
 *                        with P & 0x80 only the one byte at offset    the op that hands that
 *                        24 + (P & 0x7f) * 13 % (that range's         memory out
 *                        length); skipped when there is no such
 *                        room, the free unmapped the arena, or P is
 *                        the junk byte itself
 *   7  link_overwrite    free B when the chunk before it is           corrupted free list <the
 *                        allocated (so B starts a free chunk: its     damaged link: B or B + 8>
 *                        own, or merged with a free successor), then
 *                        XOR 1 + P % 8 bytes of its next link (P / 8
 *                        % 2 = 0: payload bytes 0-7) or prev link
 *                        (1: bytes 8-15) with mask[(P / 16) % 8];
 *                        skipped otherwise
 *   7  link_retarget     (K / 30 odd) free B into a quick list      corrupted free list <B>
 *                        (skipped when it merges instead), then XOR
 *                        bytes P % 8 .. 7 (P / 8 % 2 = 0) or byte
 *                        P % 8 alone (1) of both of its link words
 *                        with mask[(P / 16) % 8]: both copies still
 *                        agree, on an address moved by that delta;
 *                        skipped unless every link the list can hold
 *                        (NULL, or one of its chunks) moves outside
 *                        every arena. Immediate: a malloc of B's size
 *                        (without hardening the fast entry's pop) must
 *                        report it and return NULL; with hardening the
 *                        flush meets it
 *   8  canary_overflow   (canary heap only, else skipped) XOR the     canary corrupted <B +
 *                        1 + P % 16 bytes from B's requested size     requested size>, or <the
 *                        (not past its chunk) with                    stored size word> when
 *                        mask[(P / 16) % 8]                           the damage reaches it
 *   9  double_free_after free B, then P % QUARANTINE other live       as 0
 *      _frees            blocks, then call B
 *
 * Kinds 0-3 and 9 (bad pointers): the damage op makes the call - free(p), realloc(p, 1 + P)
 * (must return NULL, errno EINVAL), usable_size(p) (must return 0) - and exactly one report,
 * naming p, must come during it. With a quarantine, kind 9 must be double free / use after
 * free: B is still held back.
 *
 * Kinds 4 and 5 (header damage), P < 128, and kind 8: immediate. The damage op makes the
 * selected call on the damaged block - free(B), realloc(B, usable size of B) (resizes
 * nothing), or usable_size: of B for kinds 4 and 8; for kind 5 of the next chunk when it is
 * a live block, else realloc(B) - and one report must come during it. The handler restores
 * the saved bytes before TAlloc returns, so the block stays live and the heap whole. With a
 * quarantine a free is complete when the quarantine lets the block go (the probe releases
 * it), and kind 5's free becomes realloc(B): the quarantine takes B without looking at the
 * next header, and a release that meets it keeps B allocated, its canary junk-filled, for
 * good.
 *
 * Deferred damage stays while the program goes on, for a window of 8 << (K / 10 % 3) ops (8,
 * 16, 32), and must be reported by the first op that meets it; when the window ends, or at
 * the next damage op, a forced probe must get the report:
 *   - kinds 4 and 5, P >= 128: heap checks are suspended (th_run_set_checking). The harness
 *     accepts a failed call during which TAlloc reported something, but a usable_size that
 *     reported returns 0, below the block's size. So the target takes over from the model
 *     (th_run_forget_block) every block whose calls validate the damaged header - B, for kind
 *     4 B's left neighbour when it is allocated (realloc validates the header after its
 *     block), for kind 5 the next chunk when it is allocated - and frees them itself when the
 *     damage is resolved. Kind 5 with a free next chunk (which any allocation may meet) is
 *     made immediate instead. After every op the damaged header is compared with what was
 *     written: TAlloc may rewrite it without a report (resealing it while clearing its
 *     prev-free flag) only if the heap then passes the full check ("harmless"). Forced probe:
 *     usable_size(B) for kind 4, realloc(B, usable) for kind 5.
 *   - kind 7, P >= 128: heap checks are suspended (the checker sees the damaged link), every
 *     call may meet it: a free or realloc of a neighbour, an allocation that walks the list.
 *     After every op without a report the link is restored for a full check and damaged
 *     again: a heap that fails it means TAlloc acted on the damaged link without a report.
 *     Overwritten by TAlloc without a report (a neighbour's insertion sets the prev link)
 *     is harmless only if B is still the same free chunk and the heap passes the full check.
 *     Kind 7 with P < 128 is probed at once. Forced probe: realloc of B's left neighbour to
 *     its usable size, which verifies the links of its free successor first. With a
 *     quarantine the target holds that neighbour (a release that met the link would keep
 *     it allocated for good, as above), and skips the model check of the restored heap.
 *   - kind 6 with junk: always deferred; checks stay on (the checker does not read free
 *     payloads). The memory must not be handed out or overwritten without a report; an unmap
 *     of it ends the damage, unmet. After a report, the damaged bytes still in free memory
 *     (the op handed out, and checked, only part of them) get the junk back. Forced probe:
 *     the live block before the free chunk that holds the damage grows in place over it and
 *     shrinks back; when there is none, allocations of a size the policy serves from that
 *     chunk's size (th_placement_take_size) until it is handed out, at most 4096, freed
 *     afterwards.
 * After a report during a program op, the call must have kept its contract: an allocation
 * that met a damaged header or link returns NULL; a free did nothing (the target completes
 * it once the damage is restored); the heap must pass the full check. A program that ends
 * with the damage pending leaves it unmet (counted; a report during the final drain counts
 * as unmet too, but must still be the right one).
 *
 * Ops until detection = index of the op during (or right after) which the report came - index
 * of the damage op + 1: 1 for immediate damage, up to the window + 1 for deferred damage.
 *
 * TAlloc's memory is poisoned for AddressSanitizer except the bytes of live blocks
 * (allocator/src/track.h); the target unpoisons exactly the bytes it reads, damages or
 * restores and poisons them again. The stack and static "foreign" pointers are only passed,
 * never written through.
 *
 * TALLOC_MISUSE_STATS=1 prints per-kind totals at exit (deferred kinds in rows of their own):
 * injected, skipped (no live block, no room), reported in time, of those by a forced probe,
 * harmless (never reported, heap whole), unmet, detection rate (reported / injected), and
 * median / max / mean ops until detection. For example
 *   TALLOC_MISUSE_STATS=1 ./fuzz_misuse -runs=100000 corpus_dir
 * For measurements only, TALLOC_MISUSE_COUNT_MISSES=1 counts a detection failure as "missed"
 * in its row (the first ones' text is printed with the totals) instead of failing the input;
 * the rest of that input then leaves the heap alone (its ops are skipped, nothing is freed).
 * A heap a miss left broken can still crash TAlloc when the final drain frees what the
 * program had freed into it; with TALLOC_MISUSE_STATS_FILE=PATH the totals are kept in PATH
 * (saved at every input, damage op and miss; loaded at start), so restarted processes add
 * up. Damage pending when a process dies stays counted as injected only.
 *
 * This header and fuzz_misuse_kinds.h, fuzz_misuse_hooks.h are the parts of one translation
 * unit per target: every build (CMake, talloc-replay, .clusterfuzzlite/build.sh) compiles
 * fuzz/<target>.c alone.
 */
#ifndef TALLOC_FUZZ_MISUSE_H
#define TALLOC_FUZZ_MISUSE_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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
    DAMAGE_LINK_OVERWRITE = 7,
    DAMAGE_CANARY_OVERFLOW = 8,
    DAMAGE_FREE_AFTER_FREES = 9,
    DAMAGE_KIND_COUNT
} damage_kind;

typedef enum misuse_call { CALL_FREE, CALL_REALLOC, CALL_USABLE_SIZE, CALL_COUNT } misuse_call;

static const char *const call_names[CALL_COUNT] = {"free", "realloc", "usable_size"};

enum {
    HEADER_SIZE = 16,       /* chunk header bytes (allocator/src/internal.h) */
    FLAG_MASK = 15,         /* low size_word bits that are flags (and bit 63: quick) */
    FLAG_FREE = 1,
    PARAM_DEFERRED = 0x80,  /* kinds 4, 5 and 7: leave the damage pending */
    WINDOW_BASE = 8,        /* deferred damage stays WINDOW_BASE << (K / 10 % 3) ops */
    MAX_HELD = 2,           /* blocks taken over from the model while damage is pending */
    ARENA_RESERVED = 64,    /* arena header + end fence */
    FIRST_PAYLOAD_OFFSET = 64, /* arena header + first chunk header */
    LINKS_AND_MARK = 24,    /* free chunk payload: next, prev, checker mark */
    LINK_SIZE = 8,
    FOOTER = 8,             /* free chunk payload: its last 8 bytes */
    CANARY_RESERVE = 9,     /* bytes a canary block needs past its request */
    JUNK_BYTE = 0xdf,       /* what junk fills freed payloads with */
    QUARANTINE = 8,         /* fuzz_misuse_hardened's quarantine; kind 9 frees up to 7 more */
    HARDENED_MAX_REQUEST = 256 << 10, /* ... and its largest request (4 MiB by default) */
    SINGLE_BYTE_STRIDE = 13, /* kind 6 with P & 0x80: offset step of the one damaged byte */
    SAVED_MAX = 16,         /* damaged bytes a handler can restore */
    MAX_PROBE_ALLOCS = 4096, /* allocations of a forced junk probe */
    HISTOGRAM_SIZE = 64,    /* ops until detection; the last bucket: that many or more */
    MISSES_SHOWN = 3,       /* misses per kind whose text the statistics show */
};

static const uint64_t SIZE_MASK = ~(uint64_t)FLAG_MASK & ~((uint64_t)1 << 63);

static const unsigned char overflow_masks[8] = {0xff, 0x01, 0x10, 0x80, 0x41, 0x5a, 0xa5, 0x3c};

/* Damage between injection and detection (one at a time). */
typedef struct pending_damage {
    bool is_active;
    bool is_reported;        /* a report arrived; restorable bytes restored */
    bool is_unmapped;        /* the damaged memory's arena was unmapped */
    damage_kind kind;
    int row;                 /* its statistics row */
    size_t op_index;         /* the damage op */
    size_t window;           /* ops it may stay (deferred) */
    unsigned char *block;    /* B (kind 6: the scratch block) */
    size_t block_usable;     /* usable_size(B): a realloc to it resizes nothing */
    unsigned char *at;       /* the first damaged byte */
    size_t length;           /* bytes damaged from `at` */
    unsigned char fill;      /* kind 6: the byte written */
    unsigned char *header;   /* kinds 4, 5: the damaged header (= at); 7: B's header */
    size_t chunk_size;       /* the damaged chunk's size before the damage (0: the fence) */
    bool is_chunk_free;
    unsigned char saved[SAVED_MAX];
    unsigned char damaged[SAVED_MAX];
    TAlloc_error want_error; /* kinds 6-8: the report and its addresses */
    const void *want[2];
    size_t want_count;
    void *held[MAX_HELD];    /* taken over from the model, freed when resolved */
    size_t held_count;
    TAlloc_error error;      /* the report */
    const void *address;
} pending_damage;

/* The hooks' state, reset for every input. */
typedef struct misuse {
    th_run *run;             /* the current run (for on_unmap, which does not get it) */
    th_config *config;       /* the run's configuration */
    bool has_canary;         /* the heap's hardening options */
    bool has_junk;
    bool has_quarantine;     /* of QUARANTINE blocks */
    bool is_probing;         /* inside a call of ours that may report */
    bool is_spoiled;         /* a miss was counted (TALLOC_MISUSE_COUNT_MISSES): hands off */
    size_t report_count;     /* reports during the last probing call */
    TAlloc_error error;
    const void *address;
    const void *watched;     /* noted when an unmap covers it */
    bool is_watched_unmapped;
    bool is_watched_first_large; /* ... it was the first block of a dedicated arena */
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

/* One row per kind, plus rows for deferred kinds 4, 5 and 7. */
enum {
    ROW_FLIP_DEFERRED = DAMAGE_KIND_COUNT,
    ROW_OVERFLOW_DEFERRED,
    ROW_LINK_DEFERRED,
    ROW_LINK_RETARGET,
    ROW_COUNT
};

static const char *const row_names[ROW_COUNT] = {
    "double_free", "interior_free", "misaligned_free", "foreign_free", "flip_header",
    "overflow_next", "write_after_free", "link_overwrite", "canary_overflow",
    "double_free_after_frees", "flip_header deferred", "overflow_next deferred",
    "link_overwrite deferred", "link_retarget",
};

static const damage_kind row_kinds[ROW_COUNT] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, DAMAGE_FLIP_HEADER, DAMAGE_OVERFLOW_NEXT, DAMAGE_LINK_OVERWRITE,
    DAMAGE_LINK_OVERWRITE,
};

typedef struct kind_stats {
    uint64_t injected;
    uint64_t skipped;        /* nothing to damage: no live block, no room, no option */
    uint64_t reported;       /* in time */
    uint64_t forced;         /* of those, by a forced probe (window end, next damage op) */
    uint64_t harmless;       /* never reported, no invariant broken (6 without junk; absorbed) */
    uint64_t unmet;          /* still pending when the program ended, or its memory unmapped */
    uint64_t missed;         /* detection failures counted (TALLOC_MISUSE_COUNT_MISSES) */
    uint64_t ops_sum;
    uint64_t ops_max;
    uint64_t histogram[HISTOGRAM_SIZE];
    uint64_t errors[TALLOC_ERROR_COUNT];
    char misses[MISSES_SHOWN][256]; /* the first ones' text */
} kind_stats;

static kind_stats stats[ROW_COUNT];
static bool is_counting_misses;
static const char *target_name = "fuzz_misuse";
static const char *stats_path;   /* TALLOC_MISUSE_STATS_FILE: totals kept across processes */

static int stats_fd = -1;

/* The totals so far, into the statistics file (at every input, damage op and miss, so a
   process that dies loses little), and back from it when a process starts. */
static void save_stats(void)
{
    if (stats_fd >= 0 && pwrite(stats_fd, stats, sizeof stats, 0) != (ssize_t)sizeof stats)
        perror(stats_path);
}

static void load_stats(void)
{
    if (stats_path == NULL)
        return;
    stats_fd = open(stats_path, O_RDWR | O_CREAT, 0644);
    if (stats_fd < 0)
        perror(stats_path);
    else if (pread(stats_fd, stats, sizeof stats, 0) != (ssize_t)sizeof stats)
        memset(stats, 0, sizeof stats);
}

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
    fprintf(stderr, "%s: damage per kind; ops until detection (1: by the damage op)\n", target_name);
    fprintf(stderr, "%-2s %-25s %9s %8s %9s %7s %8s %6s %6s %7s %6s %5s %6s\n", "K", "kind",
            "injected", "skipped", "reported", "forced", "harmless", "unmet", "missed", "rate",
            "median", "max", "mean");
    for (int i = 0; i < ROW_COUNT; i++) {
        const kind_stats *k = &stats[i];
        double mean = k->reported ? (double)k->ops_sum / (double)k->reported : 0.0;
        double rate = k->injected ? 100.0 * (double)k->reported / (double)k->injected : 0.0;
        fprintf(stderr, "%-2d %-25s %9llu %8llu %9llu %7llu %8llu %6llu %6llu %6.1f%% %6llu %5llu %6.2f\n",
                row_kinds[i], row_names[i], (unsigned long long)k->injected,
                (unsigned long long)k->skipped, (unsigned long long)k->reported,
                (unsigned long long)k->forced, (unsigned long long)k->harmless,
                (unsigned long long)k->unmet, (unsigned long long)k->missed, rate,
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
    for (int i = 0; i < ROW_COUNT; i++)
        for (uint64_t j = 0; j < stats[i].missed && j < MISSES_SHOWN; j++)
            fprintf(stderr, "miss of %s: %s\n", row_names[i], stats[i].misses[j]);
}

/* Whether the handler puts the damaged bytes back (junk damage lies in memory TAlloc hands
   out with the report, where the bytes belong to the new block). */
static bool is_restorable(const pending_damage *d)
{
    return d->kind != DAMAGE_WRITE_AFTER_FREE;
}

/* A detection failure of the damage counted in `row`: fails the run, or (counting misses)
   counts it, restores what the damage changed and leaves the rest of the input alone. */
__attribute__((format(printf, 5, 6)))
static void miss(misuse *m, th_run *run, int row, const void *address, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (!is_counting_misses) {
        th_run_fail(run, TH_DETECTION, address, "%s", detail);
        return;
    }
    kind_stats *k = &stats[row];
    if (k->missed < MISSES_SHOWN)
        snprintf(k->misses[k->missed], sizeof k->misses[0], "%s", detail);
    k->missed++;
    save_stats();
    pending_damage *d = &m->damage;
    if (d->is_active && !d->is_reported && !d->is_unmapped && is_restorable(d))
        write_owned(d->at, d->saved, d->length);
    d->is_active = false;
    m->is_spoiled = true;
    /* the heap may be broken now: the rest of the input leaves it alone (the op kinds the
       run executes are read for every op; after_op empties the model, so that the drain
       frees nothing) */
    th_run_set_checking(run, false);
    m->config->allowed_ops = 1u << TH_OP_DAMAGE;
}

/* ---- reports and calls that may get one --------------------------------------------------- */

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
    case CALL_FREE: /* with a quarantine, the free is complete when the block leaves it */
        TAlloc_heap_free(heap, ptr);
        if (m->has_quarantine)
            TAlloc_heap_release_quarantine(heap);
        break;
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

/* TAlloc_heap_flush, which verifies every quick chunk and the neighbours each one merges
   with; returns the reports during it. */
static size_t probe_flush(misuse *m, th_run *run)
{
    m->is_probing = true;
    m->report_count = 0;
    m->error = TALLOC_ERROR_NONE;
    m->address = NULL;
    TAlloc_heap_flush(th_run_heap(run));
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

/* Frees blocks the target owns; with a quarantine it is released too, so the next check sees
   live blocks only. */
static void release_quarantine(const misuse *m, th_run *run)
{
    if (m->has_quarantine)
        TAlloc_heap_release_quarantine(th_run_heap(run));
}

/* ---- where a chunk lies --------------------------------------------------------------------- */

/* The chunk that holds `target` (its header or payload), with its neighbours in the arena. */
typedef struct chunk_place {
    const void *target;
    bool is_found;
    TAlloc_chunk_info chunk;
    TAlloc_chunk_info left;      /* valid with has_left: the chunk before it */
    TAlloc_chunk_info right;     /* valid with has_right: the chunk after it (else the fence) */
    bool has_left, has_right;
    bool is_dedicated;
    TAlloc_chunk_info previous;  /* walk state */
    bool has_previous;
    bool is_dedicated_arena;
} chunk_place;

static int visit_place(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    chunk_place *s = ctx;
    if (chunk == NULL) {
        if (s->is_found)
            return 1; /* the found chunk was the last of its arena */
        s->has_previous = false;
        s->is_dedicated_arena = arena->is_dedicated != 0;
        return 0;
    }
    if (s->is_found) {
        s->right = *chunk;
        s->has_right = true;
        return 1;
    }
    const unsigned char *t = s->target, *from = chunk->address;
    if (t >= from && t < (const unsigned char *)chunk->payload + chunk->size) {
        s->is_found = true;
        s->chunk = *chunk;
        s->left = s->previous;
        s->has_left = s->has_previous;
        s->is_dedicated = s->is_dedicated_arena;
        return 0;
    }
    s->previous = *chunk;
    s->has_previous = true;
    return 0;
}

static chunk_place locate(th_run *run, const void *target)
{
    chunk_place s = {.target = target};
    TAlloc_heap_walk(th_run_heap(run), visit_place, &s);
    return s;
}

/* The payload bytes of the chunk of the live block `block` (its usable size without canary). */
static size_t chunk_payload(th_run *run, const void *block)
{
    chunk_place s = locate(run, block);
    return s.is_found ? s.chunk.size : 0;
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

/* TAlloc_heap_check with the first violation kept; returns the number of violations. */
static size_t check_heap(th_run *run, first_violation *v)
{
    *v = (first_violation){0};
    return TAlloc_heap_check(th_run_heap(run), note_violation, v);
}

#endif
