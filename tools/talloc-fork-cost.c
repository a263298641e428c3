/*
 * talloc-fork-cost: what a fork child's first call costs with and without config.fork_rekey.
 * Builds a heap of N live blocks of S bytes (every other one freed, so free chunks and links
 * are re-keyed too), forks, and in the child times the first TAlloc_heap_malloc and reads
 * how many of the child's pages became private (copied) by it, from /proc/self/smaps_rollup.
 *
 * Usage: talloc-fork-cost [N [S]]   (default 1000000 blocks of 64 bytes)
 * Prints one line per setting: fork_rekey, first call in ms, KiB copied by the first call.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "talloc.h"

static long private_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long total = 0, kib;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Private_Dirty: %ld kB", &kib) == 1)
            total += kib;
    fclose(f);
    return total;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int measure(int fork_rekey, size_t count, size_t size)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.fork_rekey = fork_rekey;
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    void **blocks = calloc(count, sizeof *blocks);
    if (heap == NULL || blocks == NULL)
        return 1;
    for (size_t i = 0; i < count; i++)
        if ((blocks[i] = TAlloc_heap_malloc(heap, size)) == NULL)
            return 1;
    for (size_t i = count; i >= 2; i -= 2) /* from the top: each free's successor is near */
        TAlloc_heap_free(heap, blocks[i - 2]);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        long before = private_kib();
        double start = now_ms();
        void *p = TAlloc_heap_malloc(heap, 32);
        double took = now_ms() - start;
        long after = private_kib();
        printf("fork_rekey=%d blocks=%zu size=%zu first_call_ms=%.2f copied_kib=%ld\n",
               fork_rekey, count, size, took, after - before);
        TAlloc_heap_free(heap, p);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    TAlloc_heap_destroy(heap);
    free(blocks);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000000;
    size_t size = argc > 2 ? strtoul(argv[2], NULL, 0) : 64;
    return measure(0, count, size) | measure(1, count, size);
}
