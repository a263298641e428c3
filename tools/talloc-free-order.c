/*
 * talloc-free-order: how long freeing N blocks of 64 bytes takes on a fresh heap, for three
 * orders of the frees: every other block from the lowest address up and then the rest
 * ("ascending"), the same from the top down ("descending"), and a random order ("random").
 * A free links its chunk into the address-ordered free list; the order decides how far it
 * must look for its place.
 *
 * Usage: talloc-free-order [N]   (default 200000)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "talloc.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int measure(const char *name, size_t n, const size_t *order)
{
    TAlloc_heap *heap = TAlloc_heap_create(NULL);
    void **blocks = malloc(n * sizeof *blocks);
    if (heap == NULL || blocks == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        if ((blocks[i] = TAlloc_heap_malloc(heap, 64)) == NULL)
            return 1;
    double start = now();
    for (size_t i = 0; i < n; i++)
        TAlloc_heap_free(heap, blocks[order[i]]);
    double took = now() - start;
    size_t violations = TAlloc_heap_check(heap, NULL, NULL);
    printf("%-10s %zu frees: %.3f s (%.0f ns each), check %zu\n", name, n, took,
           took * 1e9 / (double)n, violations);
    TAlloc_heap_destroy(heap);
    free(blocks);
    return violations != 0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 0) : 200000;
    size_t *order = malloc(n * sizeof *order);
    if (n < 2 || order == NULL)
        return 2;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 2)
        order[k++] = i;
    for (size_t i = 1; i < n; i += 2)
        order[k++] = i;
    int failed = measure("ascending", n, order);
    for (size_t i = 0; i < n; i++)
        order[i] = n - 1 - order[i];
    failed |= measure("descending", n, order);
    srand(1);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    failed |= measure("random", n, order);
    free(order);
    return failed;
}
