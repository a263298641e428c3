/*
 * fuzz_debug_print - TAlloc_heap_debug_print tells the truth. After every op the heap is
 * printed to a memory stream, the text is parsed back line by line, and each line must
 * equal the corresponding arena or chunk of a walk: address, bytes, reserved, state
 * (allocated, free, or quick: kept in a quick list).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

typedef struct entry {
    int is_arena;
    int state; /* chunks: 0 allocated, 1 free, 2 quick */
    const void *address;
    size_t bytes;
    size_t reserved;
} entry;

typedef struct entries {
    entry items[1024];
    size_t count;
    int is_truncated;
} entries;

static int collect(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    entries *e = ctx;
    if (e->count == sizeof e->items / sizeof e->items[0]) {
        e->is_truncated = 1;
        return 1;
    }
    if (chunk == NULL)
        e->items[e->count++] = (entry){1, 0, arena->address, arena->size, arena->reserved};
    else
        e->items[e->count++] = (entry){0, chunk->is_free ? 1 : chunk->is_quick ? 2 : 0,
                                       chunk->address, chunk->size, chunk->reserved};
    return 0;
}

static int state_of(const char *name)
{
    static const char *const names[] = {"Allocated", "Free", "Quick"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* Parses one printed line; returns 0 when it is in neither of the two formats. */
static int parse_line(const char *line, entry *out)
{
    void *address;
    size_t bytes, reserved;
    char state[16];
    int used = 0;
    if (sscanf(line, "Arena at %p, %zu bytes, %zu reserved%n", &address, &bytes, &reserved, &used) == 3 &&
        line[used] == '\n') {
        *out = (entry){1, 0, address, bytes, reserved};
        return 1;
    }
    if (sscanf(line, "  %15s chunk at %p, %zu bytes, %zu reserved%n", state, &address, &bytes,
               &reserved, &used) == 4 && line[used] == '\n' && state_of(state) >= 0) {
        *out = (entry){0, state_of(state), address, bytes, reserved};
        return 1;
    }
    return 0;
}

static void compare(th_run *run, const char *text, const entries *walked)
{
    size_t n = 0;
    for (const char *line = text; *line && !th_run_has_failed(run); n++) {
        const char *end = strchr(line, '\n');
        entry e;
        if (!parse_line(line, &e))
            th_run_fail(run, TH_API, NULL, "debug print line %zu unreadable: %.60s", n, line);
        else if (n >= walked->count)
            th_run_fail(run, TH_API, e.address, "debug print has more lines than the walk");
        else if (memcmp(&e, &walked->items[n], sizeof e) != 0)
            th_run_fail(run, TH_API, e.address, "debug print line %zu differs from the walk: %.60s", n, line);
        line = end ? end + 1 : line + strlen(line);
    }
    if (!th_run_has_failed(run) && n != walked->count)
        th_run_fail(run, TH_API, NULL, "debug print has %zu lines, the walk %zu", n, walked->count);
}

static void after_op(void *ctx, th_run *run, size_t op_index, const th_op *op, const th_op_result *r)
{
    (void)ctx, (void)op_index, (void)op, (void)r;
    static entries walked;
    walked.count = 0;
    walked.is_truncated = 0;
    TAlloc_heap_walk(th_run_heap(run), collect, &walked);
    if (walked.is_truncated)
        return;
    char *text = NULL;
    size_t length = 0;
    FILE *f = open_memstream(&text, &length);
    TAlloc_heap_debug_print(th_run_heap(run), f);
    fclose(f);
    compare(run, text, &walked);
    free(text);
}

/* Printing does not depend on the placement policy: the default one (TALLOC_TEST_POLICY). */
static void configure(th_config *config)
{
    th_config_init(config);
    config->hooks.after_op = after_op;
}

FUZZ_TARGET(fuzz_debug_print, configure)
