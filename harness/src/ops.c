/*
 * ops.c - the op language: decoding any bytes into a program, encoding it back, and the text
 * form people read and write. The format is documented in docs/op-format.md; the decoder
 * never rejects input, so every mutation libFuzzer makes is a meaningful program.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *const op_names[TH_OP_KIND_COUNT] = {
    "malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "free",
    "usable_size", "write", "verify", "fail_maps", "damage",
};

const char *th_op_name(th_op_kind kind)
{
    return (unsigned)kind < TH_OP_KIND_COUNT ? op_names[kind] : "unknown";
}

void th_program_init(th_program *program)
{
    *program = (th_program){NULL, 0, 0};
}

void th_program_free(th_program *program)
{
    free(program->ops);
    th_program_init(program);
}

void th_program_append(th_program *program, const th_op *op)
{
    if (program->count == program->capacity) {
        program->capacity = program->capacity ? 2 * program->capacity : 64;
        program->ops = realloc(program->ops, program->capacity * sizeof *program->ops);
        if (program->ops == NULL)
            abort();
    }
    program->ops[program->count++] = *op;
}

/* ---- operand tables ----------------------------------------------------------------- */

enum { ARENA_OVERHEAD = 64 + 16 }; /* arena header + fence + one chunk header */

static const char *const edge_names[] = {
    "0", "1", "15", "16", "17", "31", "32", "33", "47", "48", "49", "page-1", "page",
    "page+1", "arena_max-1", "arena_max", "arena_max+1", "arena", "2arena+1", "ptrdiff_max",
    "ptrdiff_max+1", "size_max-15", "size_max",
};
enum { EDGE_COUNT = sizeof edge_names / sizeof edge_names[0] };

size_t th_edge_count(void)
{
    return EDGE_COUNT;
}

const char *th_edge_name(size_t index)
{
    return edge_names[index % EDGE_COUNT];
}

size_t th_edge_size(size_t index, size_t arena_size)
{
    static const size_t small[] = {0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 4095, 4096, 4097};
    size_t i = index % EDGE_COUNT;
    size_t arena_max = arena_size - ARENA_OVERHEAD; /* largest request a standard arena holds */
    if (i < sizeof small / sizeof small[0])
        return small[i];
    switch (i) {
    case 14: return arena_max - 1;
    case 15: return arena_max;
    case 16: return arena_max + 1;
    case 17: return arena_size;
    case 18: return 2 * arena_size + 1;
    case 19: return (size_t)PTRDIFF_MAX;
    case 20: return (size_t)PTRDIFF_MAX + 1;
    case 21: return SIZE_MAX - 15;
    default: return SIZE_MAX;
    }
}

size_t th_size_value(th_size size, size_t arena_size)
{
    if (size.form == TH_SIZE_EDGE)
        return th_edge_size(size.value, arena_size);
    return size.value;
}

size_t th_alignment(uint8_t align)
{
    unsigned k = align % 24u;
    if (k <= 20)
        return (size_t)1 << k;
    return k == 21 ? 0 : k == 22 ? 24 : 48;
}

/* ---- bytes ------------------------------------------------------------------------------ */

typedef struct reader {
    const uint8_t *data;
    size_t size;
    size_t at;
} reader;

static uint8_t next_byte(reader *r)
{
    return r->at < r->size ? r->data[r->at++] : 0;
}

static th_size read_size(reader *r)
{
    th_size s = {(uint8_t)(next_byte(r) % TH_SIZE_FORM_COUNT), 0};
    size_t bytes = s.form == TH_SIZE_U16 ? 2 : s.form == TH_SIZE_U24 ? 3 : 1;
    for (size_t i = 0; i < bytes; i++)
        s.value |= (uint32_t)next_byte(r) << (8 * i);
    return s;
}

static th_op read_op(reader *r)
{
    th_op op = {.kind = (uint8_t)(next_byte(r) % TH_OP_KIND_COUNT)};
    switch (op.kind) {
    case TH_OP_MALLOC: op.size = read_size(r); break;
    case TH_OP_CALLOC: op.count = next_byte(r); op.size = read_size(r); break;
    case TH_OP_REALLOC: op.block = next_byte(r); op.size = read_size(r); break;
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: op.align = next_byte(r); op.size = read_size(r); break;
    case TH_OP_FAIL_MAPS: op.count = next_byte(r); break;
    case TH_OP_DAMAGE: op.count = next_byte(r); op.block = next_byte(r); op.param = next_byte(r); break;
    default: op.block = next_byte(r); break;
    }
    return op;
}

void th_decode(const uint8_t *data, size_t size, th_program *out)
{
    reader r = {data, size, 0};
    th_program_init(out);
    while (r.at < r.size) {
        th_op op = read_op(&r);
        th_program_append(out, &op);
    }
}

static size_t size_bytes(th_size s)
{
    return 1 + (s.form == TH_SIZE_U16 ? 2 : s.form == TH_SIZE_U24 ? 3 : 1);
}

size_t th_encoded_op_size(const th_op *op)
{
    switch (op->kind) {
    case TH_OP_MALLOC: return 1 + size_bytes(op->size);
    case TH_OP_CALLOC:
    case TH_OP_REALLOC:
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: return 2 + size_bytes(op->size);
    case TH_OP_DAMAGE: return 4;
    default: return 2;
    }
}

typedef struct writer {
    uint8_t *out;
    size_t capacity;
    size_t at;
} writer;

static void put(writer *w, uint8_t b)
{
    if (w->at < w->capacity)
        w->out[w->at] = b;
    w->at++;
}

static void write_size(writer *w, th_size s)
{
    put(w, s.form);
    size_t bytes = size_bytes(s) - 1;
    for (size_t i = 0; i < bytes; i++)
        put(w, (uint8_t)(s.value >> (8 * i)));
}

static void write_op(writer *w, const th_op *op)
{
    put(w, op->kind);
    switch (op->kind) {
    case TH_OP_MALLOC: write_size(w, op->size); break;
    case TH_OP_CALLOC: put(w, op->count); write_size(w, op->size); break;
    case TH_OP_REALLOC: put(w, op->block); write_size(w, op->size); break;
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: put(w, op->align); write_size(w, op->size); break;
    case TH_OP_FAIL_MAPS: put(w, op->count); break;
    case TH_OP_DAMAGE: put(w, op->count); put(w, op->block); put(w, op->param); break;
    default: put(w, op->block); break;
    }
}

size_t th_encode(const th_program *program, uint8_t *out, size_t capacity)
{
    writer w = {out, capacity, 0};
    for (size_t i = 0; i < program->count; i++)
        write_op(&w, &program->ops[i]);
    return w.at;
}
