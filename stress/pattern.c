/*
 * pattern.c - the bytes every stress block holds: 64-bit words drawn from a key made of the
 * run's seed and the block's id, so that any block can be verified from its id alone, by the
 * thread that owns it, by another that frees it, or by the pause check.
 */
#include <string.h>

#include "stress.h"

uint64_t stress_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

static uint64_t block_key(uint64_t id)
{
    return stress_mix(g.opt.seed ^ stress_mix(id));
}

static uint64_t pattern_word(uint64_t key, size_t k)
{
    uint64_t w = key + (uint64_t)k * 0xD6E8FEB86659FD93u;
    return w ^ (w >> 29);
}

void stress_fill_pattern(uint64_t id, unsigned char *p, size_t from, size_t to)
{
    uint64_t key = block_key(id);
    for (size_t off = from & ~(size_t)7; off < to; off += 8) {
        uint64_t w = pattern_word(key, off / 8);
        size_t n = to - off < 8 ? to - off : 8;
        memcpy(p + off, &w, n);
    }
}

/* True when bytes [0, size) hold the pattern of block `id`; else the first bad offset. */
bool stress_verify_block(uint64_t id, const unsigned char *p, size_t size, size_t *bad_at)
{
    uint64_t key = block_key(id);
    for (size_t off = 0; off < size; off += 8) {
        uint64_t w = pattern_word(key, off / 8);
        size_t n = size - off < 8 ? size - off : 8;
        if (memcmp(p + off, &w, n) != 0) {
            for (size_t i = 0; i < n; i++)
                if (p[off + i] != ((const unsigned char *)&w)[i]) {
                    *bad_at = off + i;
                    break;
                }
            return false;
        }
    }
    return true;
}
