/*
 * mutator.c - structure-aware mutations for every libFuzzer target (linked only in the
 * TALLOC_BUILD_FUZZERS build). Inputs are programs in the op language (harness.h), so most
 * mutations decode the input, change whole ops, and encode it again:
 *
 *   insert a random op       delete an op            duplicate an op       swap two ops
 *   retarget a block index   move a size to a boundary (th_edge_* table, header/min-chunk/
 *   page/arena +-1, alignment-1, near SIZE_MAX)      change an alignment or a count
 *
 * One call in four falls back to libFuzzer's byte-level LLVMFuzzerMutate (which also applies
 * the target's dictionary). LLVMFuzzerCustomCrossOver splices the op lists of two inputs.
 * Everything is deterministic given `seed`: a private xorshift generator, no global RNG, no
 * clock. Inserted ops use the kinds the linked target executes (its fuzz_target descriptor,
 * found through weak references; all kinds when none is linked).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"

size_t LLVMFuzzerMutate(uint8_t *Data, size_t Size, size_t MaxSize);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size,
                                 unsigned int seed);

/* The descriptors of the targets that have one; exactly one is linked into a fuzz target. */
extern const fuzz_target fuzz_ops_target __attribute__((weak));
extern const fuzz_target fuzz_oom_target __attribute__((weak));
extern const fuzz_target fuzz_debug_print_target __attribute__((weak));
extern const fuzz_target fuzz_placement_target __attribute__((weak));
extern const fuzz_target fuzz_misuse_target __attribute__((weak));
extern const fuzz_target fuzz_misuse_hardened_target __attribute__((weak));
extern const fuzz_target fuzz_misuse_canary_target __attribute__((weak));
extern const fuzz_target fuzz_misuse_junk_target __attribute__((weak));
extern const fuzz_target fuzz_ops_hardened_target __attribute__((weak));

enum {
    FALLBACK_ONE_IN = 4,  /* one call in four is LLVMFuzzerMutate's */
    ARENA_SIZE = 16384,   /* th_config_init's arena_size, for resolving @edge sizes */
};

/* ---- random numbers ------------------------------------------------------------------------ */

typedef struct rng {
    uint64_t state;
} rng;

static rng rng_from_seed(unsigned int seed)
{
    uint64_t z = (uint64_t)seed + 0x9E3779B97F4A7C15u; /* splitmix64: never a zero state */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    return (rng){z ? z : 1};
}

static uint64_t next_random(rng *r)
{
    uint64_t x = r->state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->state = x;
    return x;
}

/* A number in [0, n); 0 when n is 0. */
static size_t below(rng *r, size_t n)
{
    return n ? (size_t)(next_random(r) % n) : 0;
}

/* ---- the linked target's op kinds ------------------------------------------------------------ */

static uint32_t all_but_special(void)
{
    return ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_FAIL_MAPS) & ~(1u << TH_OP_DAMAGE);
}

/* The op kinds the linked target executes (th_config.allowed_ops, 0 resolved). */
static uint32_t target_kinds(void)
{
    static uint32_t kinds;
    if (kinds)
        return kinds;
    const fuzz_target *const candidates[] = {&fuzz_ops_target, &fuzz_oom_target,
                                             &fuzz_debug_print_target, &fuzz_placement_target,
                                             &fuzz_misuse_target, &fuzz_misuse_hardened_target,
                                             &fuzz_misuse_canary_target, &fuzz_misuse_junk_target,
                                             &fuzz_ops_hardened_target};
    kinds = (1u << TH_OP_KIND_COUNT) - 1;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (candidates[i] != NULL && candidates[i]->configure != NULL) {
            th_config config;
            candidates[i]->configure(&config);
            kinds = config.allowed_ops ? config.allowed_ops : all_but_special();
            break;
        }
    return kinds;
}

static uint8_t random_kind(rng *r)
{
    static const uint8_t weighted[] = {TH_OP_MALLOC, TH_OP_MALLOC, TH_OP_FREE, TH_OP_FREE, TH_OP_REALLOC};
    uint32_t kinds = target_kinds();
    for (int tries = 0; tries < 32; tries++) {
        uint8_t k = below(r, 3) == 0 ? weighted[below(r, sizeof weighted)]
                                     : (uint8_t)below(r, TH_OP_KIND_COUNT);
        if ((kinds >> k) & 1)
            return k;
    }
    return TH_OP_MALLOC;
}

/* ---- operands ---------------------------------------------------------------------------------- */

static bool has_size(uint8_t kind) /* malloc .. posix_memalign, in th_op_kind order */
{
    return kind <= TH_OP_POSIX_MEMALIGN;
}

static bool has_block(uint8_t kind)
{
    return kind == TH_OP_REALLOC || (kind >= TH_OP_FREE && kind <= TH_OP_VERIFY) || kind == TH_OP_DAMAGE;
}

static bool is_aligned_kind(uint8_t kind)
{
    return kind == TH_OP_ALIGNED_ALLOC || kind == TH_OP_POSIX_MEMALIGN;
}

/* A plain size in the smallest form that holds it (values above 2^24 - 1 saturate). */
static th_size plain_size(uint64_t value)
{
    if (value > 0xFFFFFF)
        value = 0xFFFFFF;
    uint8_t form = value <= 0xFF ? TH_SIZE_U8 : value <= 0xFFFF ? TH_SIZE_U16 : TH_SIZE_U24;
    return (th_size){form, (uint32_t)value};
}

static th_size edge_size(rng *r)
{
    return (th_size){TH_SIZE_EDGE, (uint32_t)below(r, th_edge_count())};
}

/* Sizes at the layout's boundaries that the edge table does not name. */
static th_size boundary_size(rng *r)
{
    static const uint32_t values[] = {2,    8,    14,    18,    46,    50,    63,    64,
                                      65,   80,   96,    127,   128,   129,   255,   256,
                                      257,  1023, 1024,  1025,  4080,  4095,  4097,  8191,
                                      8192, 8193, 16272, 16288, 16303, 16305, 32767, 65535,
                                      65536, 65537, 1048575, 1048576, 1048577};
    return plain_size(values[below(r, sizeof values / sizeof values[0])]);
}

/* A size near the op's current one: +-1, +-16, +-48, doubled or halved. */
static th_size nudged_size(rng *r, const th_op *op)
{
    uint64_t v = op->size.form == TH_SIZE_EDGE ? th_edge_size(op->size.value, ARENA_SIZE) : op->size.value;
    if (v > 0xFFFFFF)
        return edge_size(r);
    static const int64_t deltas[] = {-48, -16, -1, 1, 16, 48};
    switch (below(r, 3)) {
    case 0: return plain_size(v * 2);
    case 1: return plain_size(v / 2);
    default: {
        int64_t d = deltas[below(r, sizeof deltas / sizeof deltas[0])];
        return plain_size((int64_t)v + d < 0 ? 0 : (uint64_t)((int64_t)v + d));
    }
    }
}

static th_size random_size(rng *r, const th_op *op)
{
    switch (below(r, 5)) {
    case 0:
    case 1: return edge_size(r);
    case 2: return boundary_size(r);
    case 3:
        if (is_aligned_kind(op->kind)) { /* alignment - 1 */
            size_t a = th_alignment(op->align);
            return plain_size(a ? a - 1 : 0);
        }
        return nudged_size(r, op);
    default: return plain_size(below(r, 3) ? below(r, 256) : below(r, 70000));
    }
}

/* `b` plus or minus one (wrapping) half the time, else any byte. */
static uint8_t nudge_byte(rng *r, uint8_t b)
{
    if (below(r, 2))
        return (uint8_t)below(r, 256);
    return below(r, 2) ? (uint8_t)(b + 1u) : (uint8_t)(b - 1u);
}

static uint8_t random_block(rng *r)
{
    return (uint8_t)(below(r, 8) ? below(r, 8) : below(r, 256));
}

static uint8_t random_alignment(rng *r)
{
    return (uint8_t)below(r, 24); /* 1 .. 1 MiB, then 0, 24, 48 (EINVAL) */
}

static th_op random_op(rng *r)
{
    th_op op = {.kind = random_kind(r)};
    op.block = random_block(r);
    op.align = random_alignment(r);
    op.count = (uint8_t)(op.kind == TH_OP_FAIL_MAPS ? below(r, 8) : below(r, 4) ? below(r, 8) : below(r, 256));
    op.param = (uint8_t)below(r, 256);
    op.size = random_size(r, &op);
    return op;
}

/* ---- program edits ------------------------------------------------------------------------------- */

static void insert_at(th_program *p, size_t at, const th_op *op)
{
    th_program_append(p, op); /* grows the array; then shift into place */
    memmove(&p->ops[at + 1], &p->ops[at], (p->count - 1 - at) * sizeof *p->ops);
    p->ops[at] = *op;
}

static void remove_at(th_program *p, size_t at)
{
    memmove(&p->ops[at], &p->ops[at + 1], (p->count - at - 1) * sizeof *p->ops);
    p->count--;
}

/* The index of a random op satisfying `wanted`, or SIZE_MAX. */
static size_t pick_op(rng *r, const th_program *p, bool (*wanted)(uint8_t kind))
{
    size_t start = below(r, p->count);
    for (size_t i = 0; i < p->count; i++) {
        size_t at = (start + i) % p->count;
        if (wanted(p->ops[at].kind))
            return at;
    }
    return SIZE_MAX;
}

static bool edit_size(rng *r, th_program *p)
{
    size_t at = pick_op(r, p, has_size);
    if (at == SIZE_MAX)
        return false;
    p->ops[at].size = random_size(r, &p->ops[at]);
    return true;
}

static bool edit_block(rng *r, th_program *p)
{
    size_t at = pick_op(r, p, has_block);
    if (at == SIZE_MAX)
        return false;
    th_op *op = &p->ops[at];
    op->block = below(r, 2) ? nudge_byte(r, op->block) : random_block(r);
    return true;
}

static bool edit_alignment(rng *r, th_program *p)
{
    size_t at = pick_op(r, p, is_aligned_kind);
    if (at == SIZE_MAX)
        return false;
    p->ops[at].align = random_alignment(r);
    return true;
}

static bool has_count(uint8_t kind)
{
    return kind == TH_OP_CALLOC || kind == TH_OP_FAIL_MAPS || kind == TH_OP_DAMAGE;
}

static bool edit_count(rng *r, th_program *p)
{
    size_t at = pick_op(r, p, has_count);
    if (at == SIZE_MAX)
        return false;
    th_op *op = &p->ops[at];
    op->count = nudge_byte(r, op->count);
    if (op->kind == TH_OP_DAMAGE && below(r, 2))
        op->param = (uint8_t)below(r, 256);
    return true;
}

static bool edit_insert(rng *r, th_program *p)
{
    th_op op = random_op(r);
    insert_at(p, below(r, p->count + 1), &op);
    return true;
}

static bool edit_delete(rng *r, th_program *p)
{
    if (p->count == 0)
        return false;
    remove_at(p, below(r, p->count));
    return true;
}

static bool edit_duplicate(rng *r, th_program *p)
{
    if (p->count == 0)
        return false;
    th_op op = p->ops[below(r, p->count)];
    insert_at(p, below(r, p->count + 1), &op);
    return true;
}

static bool edit_swap(rng *r, th_program *p)
{
    if (p->count < 2)
        return false;
    size_t a = below(r, p->count), b = below(r, p->count);
    th_op t = p->ops[a];
    p->ops[a] = p->ops[b];
    p->ops[b] = t;
    return a != b;
}

typedef bool (*edit_fn)(rng *r, th_program *p);

/* Applies one randomly chosen edit that changes something; false when none could. */
static bool apply_edit(rng *r, th_program *p)
{
    /* as many deletions as insertions and duplications, so programs do not only grow */
    static const edit_fn edits[] = {edit_insert, edit_duplicate, edit_delete, edit_delete,
                                    edit_block, edit_size, edit_size, edit_alignment,
                                    edit_count, edit_swap};
    enum { EDIT_COUNT = sizeof edits / sizeof edits[0] };
    size_t start = below(r, EDIT_COUNT);
    for (size_t i = 0; i < EDIT_COUNT; i++)
        if (edits[(start + i) % EDIT_COUNT](r, p))
            return true;
    return false;
}

/* Encodes `p` into `out`, dropping ops from the end until it fits `capacity`. */
static size_t encode_within(th_program *p, uint8_t *out, size_t capacity)
{
    size_t total = 0, fit = 0;
    while (fit < p->count && total + th_encoded_op_size(&p->ops[fit]) <= capacity)
        total += th_encoded_op_size(&p->ops[fit++]);
    p->count = fit;
    return th_encode(p, out, capacity);
}

/* ---- libFuzzer entry points ------------------------------------------------------------------------- */

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    rng r = rng_from_seed(seed);
    if (below(&r, FALLBACK_ONE_IN) == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    th_program program;
    th_decode(data, size, &program);
    size_t edits = 1 + (below(&r, 4) == 0 ? below(&r, 3) : 0); /* sometimes stack 2-3 */
    bool changed = false;
    for (size_t i = 0; i < edits; i++)
        changed |= apply_edit(&r, &program);
    size_t out = changed ? encode_within(&program, data, max_size) : 0;
    th_program_free(&program);
    if (!changed || out == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    return out;
}

/* Appends ops [from, to) of `src` to `dst`. */
static void append_range(th_program *dst, const th_program *src, size_t from, size_t to)
{
    for (size_t i = from; i < to && i < src->count; i++)
        th_program_append(dst, &src->ops[i]);
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size,
                                 unsigned int seed)
{
    rng r = rng_from_seed(seed);
    th_program a, b, spliced;
    th_decode(data1, size1, &a);
    th_decode(data2, size2, &b);
    th_program_init(&spliced);
    size_t cut_a = below(&r, a.count + 1);
    size_t from_b = below(&r, b.count + 1);
    size_t to_b = below(&r, 2) ? b.count : from_b + below(&r, b.count - from_b + 1);
    append_range(&spliced, &a, 0, cut_a);      /* a's prefix,            */
    append_range(&spliced, &b, from_b, to_b);  /* a slice of b,          */
    if (below(&r, 2))                          /* and sometimes a's rest */
        append_range(&spliced, &a, cut_a, a.count);
    size_t written = encode_within(&spliced, out, max_out_size);
    th_program_free(&a);
    th_program_free(&b);
    th_program_free(&spliced);
    return written;
}
