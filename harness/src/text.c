/*
 * text.c - the readable form of a program: one op per line, for hand-written regression
 * cases and for printing what a fuzz input does.
 *
 *   malloc 100             calloc 3 40              realloc #2 @arena_max+1
 *   aligned_alloc 4096 5   posix_memalign 64 0      free #0
 *   usable_size #1         write #1                 verify #1
 *   fail_maps 2            damage 3 #0 17
 *
 * Sizes are decimal (below 2^24) or @edge names (th_edge_name); #N is a live-block index,
 * taken modulo the live count when run. A line starting with '#' is a comment.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int format_size(th_size s, char *buf, size_t capacity)
{
    if (s.form == TH_SIZE_EDGE)
        return snprintf(buf, capacity, "@%s", th_edge_name(s.value));
    return snprintf(buf, capacity, "%u", (unsigned)s.value);
}

int th_format_op(const th_op *op, char *buf, size_t capacity)
{
    char size[32];
    format_size(op->size, size, sizeof size);
    const char *name = th_op_name((th_op_kind)op->kind);
    switch (op->kind) {
    case TH_OP_MALLOC: return snprintf(buf, capacity, "%s %s", name, size);
    case TH_OP_CALLOC: return snprintf(buf, capacity, "%s %u %s", name, op->count, size);
    case TH_OP_REALLOC: return snprintf(buf, capacity, "%s #%u %s", name, op->block, size);
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN:
        return snprintf(buf, capacity, "%s %zu %s", name, th_alignment(op->align), size);
    case TH_OP_FAIL_MAPS: return snprintf(buf, capacity, "%s %u", name, op->count);
    case TH_OP_DAMAGE:
        return snprintf(buf, capacity, "%s %u #%u %u", name, op->count, op->block, op->param);
    default: return snprintf(buf, capacity, "%s #%u", name, op->block);
    }
}

void th_print_program(const th_program *program, FILE *out)
{
    char line[128];
    for (size_t i = 0; i < program->count; i++) {
        th_format_op(&program->ops[i], line, sizeof line);
        fprintf(out, "%s\n", line);
    }
}

/* ---- parsing ------------------------------------------------------------------------ */

typedef struct cursor {
    const char *p;
    const char *error;
} cursor;

static void skip_blanks(cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
}

static bool read_word(cursor *c, char *word, size_t capacity)
{
    skip_blanks(c);
    size_t n = 0;
    while (*c->p && !isspace((unsigned char)*c->p) && n + 1 < capacity)
        word[n++] = *c->p++;
    word[n] = 0;
    return n > 0;
}

static bool read_number(cursor *c, unsigned long max, unsigned long *out, const char *what)
{
    char word[32];
    char *end;
    if (!read_word(c, word, sizeof word) || !isdigit((unsigned char)word[0])) {
        c->error = what;
        return false;
    }
    errno = 0;
    *out = strtoul(word, &end, 10);
    if (*end || errno || *out > max) {
        c->error = what;
        return false;
    }
    return true;
}

static bool read_byte(cursor *c, uint8_t *out, const char *what)
{
    unsigned long v;
    if (!read_number(c, 255, &v, what))
        return false;
    *out = (uint8_t)v;
    return true;
}

static bool read_block(cursor *c, uint8_t *out)
{
    skip_blanks(c);
    if (*c->p != '#') {
        c->error = "expected a block index #N (0-255)";
        return false;
    }
    c->p++;
    return read_byte(c, out, "expected a block index #N (0-255)");
}

static bool read_size(cursor *c, th_size *out)
{
    skip_blanks(c);
    if (*c->p == '@') {
        char word[32];
        c->p++;
        read_word(c, word, sizeof word);
        for (size_t i = 0; i < th_edge_count(); i++)
            if (strcmp(word, th_edge_name(i)) == 0) {
                *out = (th_size){TH_SIZE_EDGE, (uint32_t)i};
                return true;
            }
        c->error = "unknown @edge size";
        return false;
    }
    unsigned long v;
    if (!read_number(c, 0xFFFFFF, &v, "expected a size below 16777216 or an @edge name"))
        return false;
    out->value = (uint32_t)v;
    out->form = v <= 0xFF ? TH_SIZE_U8 : v <= 0xFFFF ? TH_SIZE_U16 : TH_SIZE_U24;
    return true;
}

static bool read_alignment(cursor *c, uint8_t *out)
{
    unsigned long v;
    if (!read_number(c, (unsigned long)1 << 20, &v, "expected an alignment: a power of two up to 1048576, or 0, 24, 48"))
        return false;
    for (unsigned k = 0; k < 24; k++)
        if (th_alignment((uint8_t)k) == v) {
            *out = (uint8_t)k;
            return true;
        }
    c->error = "expected an alignment: a power of two up to 1048576, or 0, 24, 48";
    return false;
}

static bool read_operands(cursor *c, th_op *op)
{
    switch (op->kind) {
    case TH_OP_MALLOC: return read_size(c, &op->size);
    case TH_OP_CALLOC: return read_byte(c, &op->count, "expected a count (0-255)") && read_size(c, &op->size);
    case TH_OP_REALLOC: return read_block(c, &op->block) && read_size(c, &op->size);
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: return read_alignment(c, &op->align) && read_size(c, &op->size);
    case TH_OP_FAIL_MAPS: return read_byte(c, &op->count, "expected a count (0-255)");
    case TH_OP_DAMAGE:
        return read_byte(c, &op->count, "expected a damage kind (0-255)") && read_block(c, &op->block) &&
               read_byte(c, &op->param, "expected a parameter (0-255)");
    default: return read_block(c, &op->block);
    }
}

static bool parse_line(cursor *c, th_op *op)
{
    char name[32];
    read_word(c, name, sizeof name);
    *op = (th_op){0};
    op->kind = TH_OP_KIND_COUNT;
    for (int k = 0; k < TH_OP_KIND_COUNT; k++)
        if (strcmp(name, th_op_name((th_op_kind)k)) == 0)
            op->kind = (uint8_t)k;
    if (op->kind == TH_OP_KIND_COUNT) {
        c->error = "unknown op";
        return false;
    }
    if (!read_operands(c, op))
        return false;
    skip_blanks(c);
    if (*c->p && *c->p != '\n' && *c->p != '\r') {
        c->error = "unexpected text after the operands";
        return false;
    }
    return true;
}

int th_parse_text(const char *text, th_program *out, char *error, size_t error_capacity)
{
    th_program_init(out);
    int line_number = 0;
    for (const char *line = text; *line; line_number++) {
        const char *end = strchr(line, '\n');
        cursor c = {line, NULL};
        skip_blanks(&c);
        if (*c.p != '#' && *c.p != '\n' && *c.p != '\r' && *c.p != 0) {
            th_op op;
            if (!parse_line(&c, &op)) {
                snprintf(error, error_capacity, "line %d: %s", line_number + 1, c.error);
                return line_number + 1;
            }
            th_program_append(out, &op);
        }
        line = end ? end + 1 : line + strlen(line);
    }
    return 0;
}
