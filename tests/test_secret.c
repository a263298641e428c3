/*
 * test_secret.c - what a program that can read heap memory learns about the heap's secret.
 *
 * A header's check value, an index word and a canary are keyed by the heap's secret, so that
 * a header cannot be forged without it. If one of them, read by a buggy or hostile program,
 * gave the secret back, every header and link of the heap could be forged from then on. The
 * attacks below are the ones an earlier keying allowed (a check value made of two odd
 * multiplications and an xorshift, which are all invertible, and index-word keys of the form
 * secret ^ address * constant); each one must now fail, and the forged header must be
 * reported when the block is freed again:
 *   - the QUICK bit flipped together with a constant change of the check value (the top bit
 *     of the size word went through the mix linearly);
 *   - the secret solved from one allocated block's header;
 *   - the secret solved from the NULL link of a freed block that is alone in its quick list,
 *     used to forge that block's header, and to forge its link words so that the next
 *     malloc would hand out a live block (tcache poisoning).
 * It also checks, through the heap's checker, that a one-bit change of a header's size word,
 * or a header's words copied to another header, fail I2 at that header.
 */
#include <stdbool.h>

#include "testutil.h"

static const char *const test_name = "test_secret";

enum { ARENA = 1 << 20 };
#define QUICK_BIT ((uint64_t)1 << 63)
#define K1 0x9E3779B97F4A7C15u
#define K2 0xD6E8FEB86659FD93u

typedef struct header {
    uint64_t size_word;
    uint64_t check;
} header;

static header *header_of(void *p)
{
    test_unpoison((unsigned char *)p - 16, 16);
    return (header *)(void *)((unsigned char *)p - 16);
}

/* The inverse of an odd number modulo 2^64 (Newton's iteration). */
static uint64_t inverse(uint64_t k)
{
    uint64_t x = k;
    for (int i = 0; i < 6; i++)
        x *= 2 - k * x;
    return x;
}

/* The earlier check value, and the secret it gives back from one header. */
static uint64_t linear_check(uint64_t secret, uint64_t address, uint64_t size_word)
{
    uint64_t h = ((address ^ secret) * K1) ^ size_word;
    h *= K2;
    return h ^ (h >> 32);
}

static uint64_t secret_from_header(uint64_t address, const header *h)
{
    uint64_t y = h->check ^ (h->check >> 32); /* the xorshift by 32 is its own inverse */
    return ((y * inverse(K2)) ^ h->size_word) * inverse(K1) ^ address;
}

/* The earlier key of the index word at `field` was secret ^ field * K1: a NULL link is it. */
static uint64_t secret_from_null_link(uint64_t field, uint64_t encoded)
{
    return encoded ^ field * K1;
}

/* Frees `p` (a freed quick chunk) again after its header was forged into "allocated" - as
   `forged`, or when `guess` is not 0 as the earlier keying would seal it under `guess` -
   expects the free refused with a corrupted-header report (at the pointer, as free reports
   it), and puts the header back. */
static void expect_forgery_refused(TAlloc_heap *heap, test_error_log *log, void *p,
                                   const header *forged, uint64_t guess, const char *what)
{
    header *h = header_of(p);
    header saved = *h;
    uint64_t word = saved.size_word & ~QUICK_BIT;
    *h = guess ? (header){word, linear_check(guess, (uint64_t)(uintptr_t)h, word)} : *forged;
    int before = log->count;
    TAlloc_heap_free(heap, p);
    EXPECT(log->count == before + 1, "%s: the second free was not reported", what);
    EXPECT(log->error == TALLOC_ERROR_CORRUPTED_HEADER && log->address == p,
           "%s: reported %s at %p, want corrupted header at %p", what,
           TAlloc_error_string(log->error), log->address, p);
    *(header_of(p)) = saved;
    EXPECT_HEAP_OK(heap, what);
}

static void case_quick_bit_delta(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = test_heap(ARENA, test_record_error, &log, test_name);
    void *keep = TAlloc_heap_malloc(heap, 40);
    void *p = TAlloc_heap_malloc(heap, 40);
    TAlloc_heap_free(heap, p); /* on its quick list: the QUICK bit is set */
    header *h = header_of(p);
    EXPECT((h->size_word & QUICK_BIT) != 0, "a freed 40-byte block is a quick chunk");
    header forged = {h->size_word & ~QUICK_BIT, h->check ^ 0x8000000080000000u};
    expect_forgery_refused(heap, &log, p, &forged, 0, "QUICK bit and a constant delta");
    TAlloc_heap_free(heap, keep);
    TAlloc_heap_destroy(heap);
}

static void case_secret_from_header(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = test_heap(ARENA, test_record_error, &log, test_name);
    void *seen = TAlloc_heap_malloc(heap, 100);
    void *p = TAlloc_heap_malloc(heap, 56);
    header *hs = header_of(seen);
    uint64_t guess = secret_from_header((uint64_t)(uintptr_t)hs, hs);
    TAlloc_heap_free(heap, p);
    expect_forgery_refused(heap, &log, p, &(header){0}, guess, "secret solved from a header");
    TAlloc_heap_free(heap, seen);
    TAlloc_heap_destroy(heap);
}

static void case_secret_from_null_link(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = test_heap(ARENA, test_record_error, &log, test_name);
    void *keep = TAlloc_heap_malloc(heap, 300);
    void *p = TAlloc_heap_malloc(heap, 300);
    TAlloc_heap_free(heap, p); /* alone in the quick list of its size: its link is NULL */
    test_unpoison(p, 8);
    uint64_t encoded = *(const uint64_t *)p;
    uint64_t guess = secret_from_null_link((uint64_t)(uintptr_t)p, encoded);
    expect_forgery_refused(heap, &log, p, &(header){0}, guess, "secret solved from a NULL link");
    TAlloc_heap_free(heap, keep);
    TAlloc_heap_destroy(heap);
}

/* Counts I2 violations reported at one header. */
typedef struct i2_log {
    const void *header;
    int count;
} i2_log;

static void count_i2(void *ctx, int invariant, const void *address, const char *detail)
{
    (void)detail;
    i2_log *log = ctx;
    if (invariant == TALLOC_I2_HEADERS && address == log->header)
        log->count++;
}

static bool is_i2_at(TAlloc_heap *heap, const void *h)
{
    i2_log log = {h, 0};
    TAlloc_heap_check(heap, count_i2, &log);
    return log.count > 0;
}

/* The earlier key of the index word at `field` under a secret: secret ^ field * K1. */
static uint64_t linear_link_key(uint64_t secret, uint64_t field)
{
    return secret ^ field * K1;
}

/* Tcache poisoning: the secret solved from a NULL link, the link words of a freed block
   rewritten to name another block, as the earlier keying would encode them. The malloc that
   follows the link must refuse it (corrupted free list, at the block's link words), not hand
   the named block out. */
static void case_link_forged_from_null_link(void)
{
    test_error_log log = {0};
    TAlloc_heap *heap = test_heap(ARENA, test_record_error, &log, test_name);
    void *target = TAlloc_heap_malloc(heap, 72);
    void *p = TAlloc_heap_malloc(heap, 72);
    TAlloc_heap_free(heap, p); /* alone in its quick list */
    test_unpoison(p, 16);
    uint64_t *word = p, saved[2] = {word[0], word[1]};
    uint64_t guess = secret_from_null_link((uint64_t)(uintptr_t)&word[0], word[0]);
    uint64_t named = (uint64_t)(uintptr_t)target - 16; /* the header of the live block */
    for (int i = 0; i < 2; i++)
        word[i] = named ^ linear_link_key(guess, (uint64_t)(uintptr_t)&word[i]);
    void *q = TAlloc_heap_malloc(heap, 72);
    EXPECT(q == NULL && log.count == 1 && log.error == TALLOC_ERROR_CORRUPTED_FREE_LIST &&
               (log.address == &word[0] || log.address == &word[1]),
           "forged link: malloc returned %p, %d reports, last %s at %p", q, log.count,
           TAlloc_error_string(log.error), log.address);
    word[0] = saved[0];
    word[1] = saved[1];
    EXPECT_HEAP_OK(heap, "forged link undone");
    TAlloc_heap_free(heap, target);
    TAlloc_heap_destroy(heap);
}

/* Every one-bit change of an allocated header's size word, and a header's words copied to
   the next header of the same size, fail I2 at that header: the check value notices. */
static void case_one_bit_changes(void)
{
    TAlloc_heap *heap = test_heap(ARENA, NULL, NULL, test_name);
    enum { COUNT = 8 };
    void *blocks[COUNT];
    for (int i = 0; i < COUNT; i++)
        blocks[i] = TAlloc_heap_malloc(heap, 64);
    int accepted = 0, tried = 0;
    for (int i = 1; i < COUNT - 1; i++) {
        header *h = header_of(blocks[i]);
        header saved = *h;
        for (int bit = 0; bit < 64; bit++) {
            h->size_word = saved.size_word ^ (uint64_t)1 << bit;
            if (!is_i2_at(heap, h)) {
                accepted++;
                fprintf(stderr, "block %d: size word bit %d passed I2\n", i, bit);
            }
            tried++;
            *h = saved;
        }
        header *next = header_of(blocks[i + 1]);
        header next_saved = *next;
        EXPECT(next_saved.size_word == saved.size_word, "blocks %d and %d alike", i, i + 1);
        *next = saved;
        accepted += !is_i2_at(heap, next);
        tried++;
        *next = next_saved;
    }
    EXPECT(accepted == 0, "%d of %d changed or moved headers passed I2", accepted, tried);
    EXPECT_HEAP_OK(heap, "one-bit changes undone");
    for (int i = 0; i < COUNT; i++)
        TAlloc_heap_free(heap, blocks[i]);
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    case_quick_bit_delta();
    case_secret_from_header();
    case_secret_from_null_link();
    case_link_forged_from_null_link();
    case_one_bit_changes();
    return test_summary(test_name);
}
