/*
 * test_malloc_debug_print.c - TAlloc_debug_print and TAlloc_heap_debug_print when TAlloc is
 * also stdio's malloc. The first output on a fresh stream makes stdio allocate its buffer;
 * if the text were written while the heap's lock is held, that malloc would wait for the lock
 * forever. Each case runs in a child with a watchdog, so a deadlock is a failure; its output
 * must be the walk of the heap, line for line.
 */
#include <sys/wait.h>

#include "malloc_test.h"

enum { WATCHDOG_SECONDS = 10 };

static int count_lines(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    (void)arena;
    (void)chunk;
    ++*(size_t *)ctx;
    return 0;
}

/* In the child: stdout is a pipe whose stream has not been used yet. */
static void print_default_heap(void *unused)
{
    (void)unused;
    alarm(WATCHDOG_SECONDS);
    void *blocks[20];
    for (int i = 0; i < 20; i++)
        blocks[i] = malloc(mt_hide((size_t)(i * 100 + 10)));
    for (int i = 0; i < 20; i += 2)
        free(blocks[i]);
    size_t lines = 0;
    TAlloc_walk(count_lines, &lines);
    TAlloc_debug_print();
    fprintf(stdout, "lines %zu\n", lines);
    fflush(stdout);
    for (int i = 1; i < 20; i += 2)
        free(blocks[i]);
    _exit(0);
}

/* The same through a stream opened by the program (its buffer allocated on first write). */
static void print_to_new_stream(void *unused)
{
    (void)unused;
    alarm(WATCHDOG_SECONDS);
    void *keep = malloc(mt_hide(777));
    FILE *out = fdopen(dup(1), "w");
    if (out == NULL)
        _exit(2);
    size_t lines = 0;
    TAlloc_walk(count_lines, &lines);
    TAlloc_heap_debug_print(TAlloc_default_heap(), out);
    fprintf(out, "lines %zu\n", lines);
    fclose(out);
    free(keep);
    _exit(0);
}

/* The output is `lines` heap lines (Arena / Allocated / Free / Quick) and then "lines N". */
static void expect_walk_printed(const char *name, int status, const char *out)
{
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: %s %d (a deadlock ends in SIGALRM)",
           name, WIFSIGNALED(status) ? "signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    size_t printed = 0, arenas = 0;
    for (const char *p = out; *p; p = strchr(p, '\n') + 1) {
        if (strncmp(p, "Arena at 0x", 11) == 0)
            printed++, arenas++;
        else if (strncmp(p, "  Allocated chunk at 0x", 23) == 0 ||
                 strncmp(p, "  Free chunk at 0x", 18) == 0 ||
                 strncmp(p, "  Quick chunk at 0x", 19) == 0)
            printed++;
        if (strchr(p, '\n') == NULL)
            break;
    }
    const char *tail = strstr(out, "lines ");
    size_t walked = tail ? strtoul(tail + 6, NULL, 10) : 0;
    EXPECT(arenas >= 1 && printed == walked && walked > 0, "%s: printed %zu lines, walk %zu:\n%s",
           name, printed, walked, out);
}

int main(void)
{
    static char out[1 << 16];
    int status = test_run_child_fd(print_default_heap, NULL, 1, out, sizeof out);
    expect_walk_printed("TAlloc_debug_print on stdout", status, out);
    EXPECT(strstr(out, "  Free chunk at ") != NULL && strstr(out, "  Allocated chunk at ") != NULL,
           "both chunk states printed:\n%s", out);
    status = test_run_child_fd(print_to_new_stream, NULL, 1, out, sizeof out);
    expect_walk_printed("TAlloc_heap_debug_print on a new stream", status, out);
    return test_summary("test_malloc_debug_print");
}
