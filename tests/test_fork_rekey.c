/*
 * test_fork_rekey.c - a fork child draws a new secret (config.fork_rekey, the default):
 *   - nothing of the heap is written until the child first calls into it (copy-on-write
 *     keeps sharing it with a child that only execs); a first call that takes no lock (a
 *     malloc in a one-thread child) re-keys too;
 *   - then every header's check value changes, and every block, free chunk, link, canary and
 *     quarantined block of the parent goes on working in the child, with no report;
 *   - a header the parent damaged is not laundered: it is still reported in the child;
 *   - misuse is still caught under the new key;
 *   - with fork_rekey = 0 the child keeps the parent's keys.
 */
#include <sys/wait.h>

#include "testutil.h"

enum { ARENA = 65536, BLOCKS = 40 };

static const char *const test_name = "test_fork_rekey";

typedef struct setup {
    TAlloc_heap *heap;
    test_error_log log;
    unsigned char *block[BLOCKS];
    size_t size[BLOCKS];
    unsigned char *large;
} setup;

static void make(setup *s, int fork_rekey)
{
    TAlloc_config config = test_config(ARENA, test_record_error, &s->log);
    config.canary = 1;
    config.quarantine = 4;
    config.fork_rekey = fork_rekey;
    s->heap = test_heap_from(&config, test_name);
    for (int i = 0; i < BLOCKS; i++) {
        s->size[i] = 24 + (size_t)i * 37;
        s->block[i] = TAlloc_heap_malloc(s->heap, s->size[i]);
        memset(s->block[i], i, s->size[i]);
    }
    s->large = TAlloc_heap_malloc(s->heap, 200000);
    memset(s->large, 0x5a, 200000);
    /* free chunks with links, and quarantined blocks */
    for (int i = 0; i < BLOCKS; i += 3) {
        TAlloc_heap_free(s->heap, s->block[i]);
        s->block[i] = NULL;
    }
}

static void header_of(const void *p, unsigned char out[16])
{
    test_unpoison((const unsigned char *)p - 16, 16);
    memcpy(out, (const unsigned char *)p - 16, 16);
}

/* Runs fn in a child; the child's failures make it exit 1. */
static void in_child(const char *what, void (*fn)(setup *), setup *s)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int failed_before = test_fail_count;
        fn(s);
        _exit(test_fail_count != failed_before);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait: %s", strerror(errno));
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %#x", what, status);
}

static void child_rekeyed(setup *s)
{
    unsigned char before[16], untouched[16], after[16];
    const unsigned char *p = s->block[1];
    header_of(p, before);
    header_of(p, untouched);
    EXPECT(memcmp(before, untouched, 16) == 0, "nothing written before the first call");
    EXPECT_HEAP_OK(s->heap, "child, re-keyed");
    header_of(p, after);
    EXPECT(memcmp(before, after, 8) == 0, "the size word is kept");
    EXPECT(memcmp(before + 8, after + 8, 8) != 0, "the check value changed");
    for (int i = 0; i < BLOCKS; i++) {
        if (s->block[i] == NULL)
            continue;
        EXPECT(TAlloc_heap_usable_size(s->heap, s->block[i]) == s->size[i], "block %d", i);
        s->block[i] = TAlloc_heap_realloc(s->heap, s->block[i], s->size[i] + 500);
        EXPECT(s->block[i] && s->block[i][0] == (unsigned char)i, "block %d resized", i);
        TAlloc_heap_free(s->heap, s->block[i]);
    }
    TAlloc_heap_free(s->heap, s->large);
    TAlloc_heap_release_quarantine(s->heap);
    EXPECT(s->log.count == 0, "no report in the child: %d, last %s at %p", s->log.count,
           TAlloc_error_string(s->log.error), s->log.address);
    EXPECT_HEAP_OK(s->heap, "child, everything freed");
    void *q = TAlloc_heap_malloc(s->heap, 100);
    TAlloc_heap_free(s->heap, q);
    TAlloc_heap_release_quarantine(s->heap);
    TAlloc_heap_free(s->heap, q);
    EXPECT(s->log.count == 1 && s->log.error == TALLOC_ERROR_DOUBLE_FREE && s->log.address == q,
           "a double free in the child: %d reports", s->log.count);
}

/* The first call is a malloc, which in a one-thread child takes no lock (the inline entry of
   enter.h): it re-keys the heap all the same. */
static void child_rekeyed_by_malloc(setup *s)
{
    unsigned char before[16], after[16];
    header_of(s->block[1], before);
    void *q = TAlloc_heap_malloc(s->heap, 32);
    header_of(s->block[1], after);
    EXPECT(memcmp(before + 8, after + 8, 8) != 0, "the first malloc re-keyed the heap");
    TAlloc_heap_free(s->heap, q);
    TAlloc_heap_release_quarantine(s->heap);
    EXPECT(s->log.count == 0, "no report: %d, last %s", s->log.count,
           TAlloc_error_string(s->log.error));
    EXPECT_HEAP_OK(s->heap, "child, re-keyed by a malloc");
}

static void child_damaged(setup *s)
{
    /* block 1's header was damaged by the parent: still reported under the new key */
    TAlloc_heap_free(s->heap, s->block[1]);
    EXPECT(s->log.count == 1 && s->log.error == TALLOC_ERROR_CORRUPTED_HEADER &&
               s->log.address == s->block[1],
           "the damaged header is reported in the child: %d reports, %s at %p", s->log.count,
           TAlloc_error_string(s->log.error), s->log.address);
    EXPECT(TAlloc_heap_check(s->heap, NULL, NULL) > 0, "the check sees it too");
    unsigned char *p = s->block[1];
    p[-16] ^= 0x10; /* restored: the parent's key no longer fits it */
    s->log = (test_error_log){0};
    TAlloc_heap_free(s->heap, p);
    EXPECT(s->log.count == 1 && s->log.error == TALLOC_ERROR_CORRUPTED_HEADER,
           "the header the child skipped stays invalid under the new key");
}

static void child_kept(setup *s)
{
    unsigned char before[16], after[16];
    header_of(s->block[1], before);
    EXPECT_HEAP_OK(s->heap, "child, fork_rekey = 0");
    header_of(s->block[1], after);
    EXPECT(memcmp(before, after, 16) == 0, "fork_rekey = 0: the keys are kept");
    TAlloc_heap_free(s->heap, s->block[1]);
    EXPECT(s->log.count == 0, "no report");
}

int main(void)
{
    setup s = {0};
    make(&s, 1);
    unsigned char parent_before[16], parent_after[16];
    header_of(s.block[1], parent_before);
    in_child("re-keyed", child_rekeyed, &s);
    in_child("re-keyed by a malloc", child_rekeyed_by_malloc, &s);
    header_of(s.block[1], parent_after);
    EXPECT(memcmp(parent_before, parent_after, 16) == 0, "the parent's heap is untouched");
    EXPECT_HEAP_OK(s.heap, "parent after the child");

    /* a damaged header in the parent (its size word's low size bit) */
    test_unpoison(s.block[1] - 16, 16);
    s.block[1][-16] ^= 0x10;
    in_child("damaged header", child_damaged, &s);
    s.block[1][-16] ^= 0x10;
    EXPECT_HEAP_OK(s.heap, "parent, header restored");
    TAlloc_heap_destroy(s.heap);

    setup k = {0};
    make(&k, 0);
    in_child("fork_rekey = 0", child_kept, &k);
    TAlloc_heap_destroy(k.heap);
    return test_summary(test_name);
}
