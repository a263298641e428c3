/*
 * test_malloc_static.c - a program linked with libtallocator-malloc.a gets TAlloc as its
 * malloc: built twice, once with the whole archive (-Wl,--whole-archive) and once linking
 * the archive plainly (the program's own reference to malloc pulls the one object file that
 * holds every forwarder).
 *
 * Its malloc'd blocks are TAlloc's (the walk finds them, the statistics count them); memory
 * the C library allocates for itself (strdup, asprintf, open_memstream, a FILE, stdout's
 * buffer) is TAlloc's too and our free takes it back without complaint; and the program break
 * never moves - no other allocator served anything - checked again in an exit handler.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "malloc_test.h"

/* The last word: at exit, after stdio's buffers were flushed and freed. */
static void brk_at_exit(void)
{
    if (mt_brk_unmoved() != 1) {
        static const char line[] = "test_malloc_static: the program break moved by exit\n";
        (void)!write(2, line, sizeof line - 1);
        _exit(1);
    }
}

static void test_own_blocks(void)
{
    TAlloc_stats before, after;
    TAlloc_get_stats(&before);
    errno = MT_SENTINEL;
    char *p = malloc(100);
    mt_ok("malloc", p, 100, 16);
    errno = MT_SENTINEL;
    void *q = calloc(10, 1000);
    mt_ok("calloc", q, 10000, 16);
    errno = MT_SENTINEL;
    void *r = aligned_alloc(4096, 5000);
    mt_ok("aligned_alloc", r, 5000, 4096);
    TAlloc_get_stats(&after);
    EXPECT(after.allocated_count == before.allocated_count + 3 &&
               after.alloc_total == before.alloc_total + 3,
           "three blocks counted: live %zu -> %zu", before.allocated_count, after.allocated_count);
    EXPECT(TAlloc_usable_size(p) >= 100 && TAlloc_usable_size(p) == malloc_usable_size(p),
           "TAlloc_usable_size of malloc's block: %zu", TAlloc_usable_size(p));
    free(p);
    free(q);
    free(r);
    TAlloc_get_stats(&after);
    EXPECT(after.allocated_count == before.allocated_count, "the three were freed");
}

/* Blocks the C library allocates inside itself come from TAlloc and go back through our free. */
static void test_libc_blocks(void)
{
    TAlloc_stats before, after;
    TAlloc_get_stats(&before);
    char *copy = strdup("allocated inside the C library");
    EXPECT(copy && mt_talloc_state(copy) == 1, "strdup's block %p is TAlloc's", (void *)copy);
    char *text = NULL;
    int n = asprintf(&text, "%s and %d more", "formatted", 42);
    EXPECT(n > 0 && mt_talloc_state(text) == 1, "asprintf's block is TAlloc's");
    size_t length = 0;
    char *stream = NULL;
    FILE *f = open_memstream(&stream, &length);
    EXPECT(f != NULL && mt_talloc_state(f) == 1, "the FILE of open_memstream is TAlloc's");
    for (int i = 0; i < 2000; i++)
        fprintf(f, "line %d\n", i);
    fclose(f);
    EXPECT(stream && length > 10000 && mt_talloc_state(stream) == 1,
           "open_memstream's %zu-byte buffer is TAlloc's", length);
    TAlloc_get_stats(&after);
    EXPECT(after.alloc_total >= before.alloc_total + 4, "libc's allocations counted: %llu",
           (unsigned long long)(after.alloc_total - before.alloc_total));
    free(copy);
    free(text);
    free(stream);
    EXPECT(mt_talloc_state(copy) != 1 && mt_talloc_state(stream) != 1,
           "libc's blocks freed by our free");
    EXPECT_HEAP_OK(TAlloc_default_heap(), "after freeing libc's blocks");
}

/* TAlloc's statistics line agrees: the break has not moved since the heap was created. */
static void test_stats_say_unchanged(void)
{
    int fds[2];
    if (!EXPECT(pipe(fds) == 0, "pipe"))
        return;
    TAlloc_write_stats(fds[1]);
    close(fds[1]);
    char buf[2048];
    ssize_t got = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    buf[got > 0 ? got : 0] = 0;
    EXPECT(strstr(buf, "program break") && strstr(buf, "(unchanged)"), "statistics: %s", buf);
}

int main(void)
{
    atexit(brk_at_exit);
    printf("test_malloc_static: stdout's buffer comes from malloc too\n");
    test_own_blocks();
    test_libc_blocks();
    test_stats_say_unchanged();
    EXPECT(mt_brk_unmoved() == 1, "the program break is where the kernel put it");
    return test_summary("test_malloc_static");
}
