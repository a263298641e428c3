/* bench_large: repeated large blocks, the path where allocators map and unmap memory. Each
 * step allocates 5..25 MiB, writes every 4096th byte (one per page, so each page is
 * faulted in) and the last byte, reads them back and frees the block. The time is mostly
 * mmap/munmap churn and page faults, or their absence when an allocator keeps the memory.
 * ops = malloc/free pairs.
 *
 * usage: bench_large [SCALE] */
#include "bench.h"

#define USAGE "bench_large [SCALE]"
#define MIB ((size_t)1 << 20)
#define PAGE 4096

static uint64_t use_block(size_t size, unsigned tag)
{
    unsigned char *p = bench_malloc(size);
    for (size_t at = 0; at < size; at += PAGE)
        p[at] = (unsigned char)(tag + at / PAGE);
    p[size - 1] = (unsigned char)tag;
    uint64_t sum = 0;
    for (size_t at = 0; at < size; at += PAGE * 16)
        sum += p[at];
    sum += p[size - 1];
    free(p);
    return sum + size;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    size_t count = bench_scaled(2000, scale);
    uint64_t rng = 0xe7037ed1a0b428dbu, checksum = 0;

    double start = bench_now();
    for (size_t i = 0; i < count; i++)
        checksum += use_block(rng_range(&rng, 5 * MIB, 25 * MIB), (unsigned)i);
    double seconds = bench_now() - start;

    bench_report("large", count, seconds, checksum);
    return 0;
}
