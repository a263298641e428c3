/*
 * harness.h - the TAlloc test harness: one library shared by the fuzz targets, the replay
 * tool, the stress driver and the tests.
 *
 *   bytes  <->  program (th_program: a list of th_op)  <->  text (one op per line)
 *
 * Any byte string decodes to a valid program (docs/op-format.md); th_run executes a program
 * on a fresh heap with small arenas, keeps a model of the live blocks, and checks the heap
 * invariants I1-I8 after every operation. The first violation is reported with its
 * invariant id and op index. Counters say which ops ran and which allocator events fired.
 *
 * Harness memory (programs, the model) comes from the C library's malloc, never from the
 * heap under test.
 */
#ifndef TALLOC_HARNESS_H
#define TALLOC_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "talloc.h"

/* ---- ops ------------------------------------------------------------------------------- */

typedef enum th_op_kind {
    TH_OP_MALLOC,         /* size */
    TH_OP_CALLOC,         /* count, size */
    TH_OP_REALLOC,        /* block, size (grow, shrink, or 0 = free) */
    TH_OP_ALIGNED_ALLOC,  /* align, size */
    TH_OP_POSIX_MEMALIGN, /* align, size */
    TH_OP_FREE,           /* block */
    TH_OP_USABLE_SIZE,    /* block */
    TH_OP_WRITE,          /* block: refill with a new pattern */
    TH_OP_VERIFY,         /* block: verify every byte of its pattern */
    TH_OP_FAIL_MAPS,      /* count: the next count % 8 maps fail (0: stop failing) */
    TH_OP_DAMAGE,         /* count = damage kind, block, param (fuzz_misuse only) */
    TH_OP_KIND_COUNT
} th_op_kind;

/* How a size operand is stored: 1, 2 or 3 little-endian bytes, or an index into the table
   of edge sizes (th_edge_size), which are relative to the heap's arena size. */
typedef enum th_size_form { TH_SIZE_U8, TH_SIZE_U16, TH_SIZE_U24, TH_SIZE_EDGE, TH_SIZE_FORM_COUNT } th_size_form;

typedef struct th_size {
    uint8_t form;   /* th_size_form */
    uint32_t value; /* the stored value; for TH_SIZE_EDGE an index (mod the table size) */
} th_size;

typedef struct th_op {
    uint8_t kind;   /* th_op_kind */
    uint8_t block;  /* live block index, taken modulo the live count when run */
    uint8_t count;  /* calloc element count, fail_maps count, damage kind */
    uint8_t align;  /* alignment selector, see th_alignment */
    uint8_t param;  /* damage parameter */
    th_size size;
} th_op;

typedef struct th_program {
    th_op *ops;
    size_t count;
    size_t capacity;
} th_program;

const char *th_op_name(th_op_kind kind);
void th_program_init(th_program *program);
void th_program_free(th_program *program);
void th_program_append(th_program *program, const th_op *op);

/* Decodes any bytes into a program (missing operand bytes at the end read as 0). */
void th_decode(const uint8_t *data, size_t size, th_program *out);
/* Encodes `program`; returns the byte count (writes at most `capacity` bytes). */
size_t th_encode(const th_program *program, uint8_t *out, size_t capacity);
/* Bytes `op` takes when encoded (opcode and operands). */
size_t th_encoded_op_size(const th_op *op);

/* Text: one op per line, e.g. "malloc 100", "realloc #2 @arena_max+1", "aligned_alloc 4096 5".
   th_format_op returns the length written (like snprintf). th_parse_text returns 0, or the
   1-based number of the first line it cannot read (and writes a message to `error`). */
int th_format_op(const th_op *op, char *buf, size_t capacity);
void th_print_program(const th_program *program, FILE *out);
int th_parse_text(const char *text, th_program *out, char *error, size_t error_capacity);

/* Files: the whole file (NUL-terminated; NULL with errno on failure, and th_read_input also
   with a message: a directory, more than TH_MAX_INPUT_BYTES, a read error), and a program
   from a file - text when the name ends in .txt (a NUL byte in it is an error), bytes
   otherwise. */
enum { TH_MAX_INPUT_BYTES = 16u << 20 };
char *th_read_input(const char *path, size_t *size, char *error, size_t error_capacity);
char *th_read_file(const char *path, size_t *size);
bool th_is_text_path(const char *path);
bool th_load_program(const char *path, th_program *out, char *error, size_t error_capacity);
/* The program files of directory `path` (no dot files, no text twins *.txt, no *.md) in name
   order: an array of *count paths "path/name" (free each and the array); NULL with a message
   when it cannot be read (an empty directory gives a non-NULL array and 0). */
char **th_list_programs(const char *path, size_t *count, char *error, size_t error_capacity);

/* Operand values, resolved for a heap whose standard arena is `arena_size` bytes. */
size_t th_edge_count(void);
size_t th_edge_size(size_t index, size_t arena_size);
const char *th_edge_name(size_t index);
size_t th_size_value(th_size size, size_t arena_size);
size_t th_alignment(uint8_t align); /* 1 << (align % 21) for most values; 0, 24, 48 for EINVAL */

/* ---- running --------------------------------------------------------------------------- */

/* Invariant ids: TAlloc's I1..I6 (TAlloc_invariant), extended by the harness's own. */
enum {
    TH_I7_MODEL = TALLOC_INVARIANT_COUNT,
    TH_I8_DRAINED,
    TH_API = 9,        /* a call broke its C contract (return value, errno, old block kept) */
    TH_POLICY = 10,    /* placement differs from the reference model (fuzz_placement) */
    TH_DETECTION = 11, /* misuse or damage not reported in time (fuzz_misuse) */
    TH_CRASH = 12,     /* the program died (replay tool) */
};
const char *th_invariant_name(int invariant);

typedef struct th_run th_run; /* the state of one run, passed to hooks */

/* What one op did, for hooks: the resolved arguments and the outcome. */
typedef struct th_op_result {
    bool is_executed;     /* false: the op was skipped (not allowed, or no live block) */
    size_t request_size;  /* resolved size (calloc: count * size, saturated) */
    size_t alignment;     /* resolved alignment (aligned ops) */
    void *block;          /* the live block the op targeted, before the op */
    size_t block_size;    /* its requested size */
    void *result;         /* returned pointer (allocations, realloc) */
    int error;            /* errno after a failed call, posix_memalign's return value */
    size_t maps_failed;   /* maps refused during this op */
} th_op_result;

typedef struct th_hooks {
    /* an arena mapped, unmapped, or resized (moved when new_base differs); the heap's own
       metadata pages are not reported */
    void (*on_map)(void *ctx, void *base, size_t size);
    void (*on_unmap)(void *ctx, void *base, size_t size);
    void (*on_remap)(void *ctx, void *old_base, size_t old_size, void *new_base, size_t new_size);
    void (*after_op)(void *ctx, th_run *run, size_t op_index, const th_op *op,
                     const th_op_result *result);
    /* executes TH_OP_DAMAGE (fuzz_misuse); NULL: damage ops are not executed */
    void (*damage)(void *ctx, th_run *run, size_t op_index, const th_op *op, th_op_result *result);
    /* an error report from TAlloc; NULL: any report is a failure */
    void (*on_error)(void *ctx, th_run *run, TAlloc_error error, const void *address);
    void *ctx;
} th_hooks;

typedef struct th_config {
    size_t arena_size;         /* standard arena bytes (default 16384) */
    size_t retained_arena_count; /* default 1 */
    TAlloc_policy policy;
    uint32_t allowed_ops;      /* bit per th_op_kind executed; 0 means all but FAIL_MAPS, DAMAGE */
    size_t check_every;        /* full check after every N ops (default 1); 0: only at the end */
    size_t max_live_blocks;    /* allocations beyond this are skipped (default 256) */
    size_t max_request;        /* larger non-failing requests are skipped (default 4 MiB) */
    bool capture_heap;         /* keep the heap text before and after the failing op */
    bool stop_at_failure;      /* default true: stop at the first failure */
    volatile size_t *progress; /* if set: the index of each op is stored here before it runs,
                                  so a supervising process can name the op that crashed */
    /* The heap's hardening options (TAlloc_config canary, junk, quarantine; default off).
       With a quarantine the harness releases it after every op (before after_op) and before
       the final checks, so I7 and I8 see the live blocks only; with keep_quarantine it
       releases it before the final checks alone, and I7 counts the quarantined chunks apart
       (no live block, at most `quarantine` of them). */
    int canary;
    int junk;
    size_t quarantine;
    size_t quarantine_bytes;   /* TAlloc_config quarantine_bytes (default: TAlloc's) */
    bool keep_quarantine;
    size_t large_cache;        /* TAlloc_config large_cache (default: TAlloc's) */
    size_t quick;              /* TAlloc_config quick (default 4096: small enough that the
                                  bound is met and frees past it merge at once) */
    size_t purge;              /* TAlloc_config purge (default 4096: a free chunk of a page or
                                  two gives its pages back, and they read as zero after) */
    th_hooks hooks;
} th_config;

typedef struct th_failure {
    bool has_failed;
    size_t op_index;           /* the op after which the violation was found */
    int invariant;
    const void *address;
    char detail[256];
} th_failure;

typedef struct th_counters {
    uint64_t decoded[TH_OP_KIND_COUNT];
    uint64_t executed[TH_OP_KIND_COUNT];
    uint64_t events[TALLOC_EVENT_COUNT];  /* the heap's event counters at the end */
    uint64_t maps_failed;                 /* injected map failures that hit a map */
    uint64_t errors_reported[TALLOC_ERROR_COUNT];
    uint64_t checks;                      /* full checks run */
} th_counters;

typedef struct th_result {
    th_failure failure;
    th_counters counters;
    char *heap_before;  /* with capture_heap: TAlloc_debug_print text before the failing op */
    char *heap_after;   /* ... and after it (both malloc'd; th_result_free releases them) */
} th_result;

void th_config_init(th_config *config);
/* The policy th_config_init chooses: TALLOC_TEST_POLICY (a TAlloc_policy_name), else TAlloc's
   default. */
TAlloc_policy th_default_policy(void);
/* Runs `program` on a fresh heap, checking after every op and after a final drain.
   Returns true when no invariant was broken. */
bool th_run_program(const th_program *program, const th_config *config, th_result *result);
void th_result_free(th_result *result);
/* Adds `from`'s counters to `into`. */
void th_counters_add(th_counters *into, const th_counters *from);

/* For hooks: the heap under test, the live blocks, and reporting a failure. */
TAlloc_heap *th_run_heap(th_run *run);
size_t th_run_live_count(const th_run *run);
void *th_run_live_block(const th_run *run, size_t index, size_t *size);
void th_run_forget_block(th_run *run, size_t index); /* drop from the model without freeing */
void th_run_fail(th_run *run, int invariant, const void *address, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool th_run_has_failed(const th_run *run);
/* Suspends (false) or resumes (true) the per-op heap checks, e.g. while damage is pending. */
void th_run_set_checking(th_run *run, bool is_checking);

/* Full check of I1-I7 now; returns false (and records the failure) on a violation. */
bool th_run_check(th_run *run, size_t op_index);

/* The placement oracle (placement.c): installs into `config` (its policy and arena shape
   filled in) the hooks of an exact model of where TAlloc places blocks under that policy, and
   resets it; a difference is a TH_POLICY failure. One model per process. */
void th_placement_install(th_config *config);
/* The chunk size to request so that `policy` takes, one request at a time, the free chunks it
   would choose for `chunk_size` bytes until the one of that size: with first and best fit the
   whole chunk it chooses now (from a walk of `heap`), with segregated fit the smallest size of
   the class (each take leaves the class). */
size_t th_placement_take_size(TAlloc_heap *heap, TAlloc_policy policy, size_t chunk_size);

/* Prints a result's failure, or "ok", in one line. */
void th_print_failure(const th_failure *failure, FILE *out);

#endif /* TALLOC_HARNESS_H */
