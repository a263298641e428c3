/* Helpers shared by the benchmark workloads: a deterministic PRNG, the work-scale argument,
 * a wall clock, touching and reading back blocks, and the one result line every workload
 * prints:
 *
 *   workload=NAME ops=N seconds=S checksum=C rss_kb=K
 *
 * The workloads call the C library's malloc family only; the allocator under test is chosen
 * at run time with LD_PRELOAD. A checksum is built from sizes and from bytes written into and
 * read back from the blocks, never from addresses, so it is the same under every allocator. */
#ifndef BENCH_H
#define BENCH_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* xorshift64: fast, deterministic, good enough to pick sizes and slots. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* A value in [lo, hi] (hi - lo well below 2^32, so the modulo bias does not matter). */
static inline size_t rng_range(uint64_t *state, size_t lo, size_t hi)
{
    return lo + (size_t)((rng_next(state) >> 16) % (hi - lo + 1));
}

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_usage(const char *usage)
{
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
}

/* argv[index] as a positive number, or `fallback` when absent. */
static inline double bench_arg(int argc, char **argv, int index, double fallback,
                               const char *usage)
{
    if (argc <= index)
        return fallback;
    char *end;
    double v = strtod(argv[index], &end);
    if (end == argv[index] || *end != '\0' || !(v > 0) || v > 1e12)
        bench_usage(usage);
    return v;
}

/* `base` units of work times the scale, at least one. */
static inline size_t bench_scaled(double base, double scale)
{
    double n = base * scale;
    return n < 1 ? 1 : (size_t)n;
}

static inline void *bench_malloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "bench: malloc(%zu) failed\n", size);
        exit(1);
    }
    return p;
}

/* Writes a byte derived from `tag` at the first and the last byte of the block. */
static inline void bench_touch(void *block, size_t size, unsigned tag)
{
    unsigned char *p = block;
    p[0] = (unsigned char)tag;
    p[size - 1] = (unsigned char)(tag >> 8 ^ 0x5a);
}

/* Reads back what bench_touch wrote, as a number for the checksum. */
static inline uint64_t bench_read(const void *block, size_t size)
{
    const unsigned char *p = block;
    return (uint64_t)p[0] * 257u + p[size - 1];
}

static inline void bench_report(const char *name, uint64_t ops, double seconds,
                                uint64_t checksum)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("workload=%s ops=%llu seconds=%.6f checksum=%llu rss_kb=%ld\n", name,
           (unsigned long long)ops, seconds, (unsigned long long)checksum, usage.ru_maxrss);
}

#endif
