/*
 * hardening.c - the optional checks of a heap's config (TALLOC_OPTIONS: canary, junk, guard,
 * quarantine), gathered in one hook table chosen when the heap is created (the allocation
 * paths test nothing else, and a heap with no option runs paths without any hook: paths.c),
 * and the re-key of a heap in a fork child (fork_rekey):
 *
 *   canary  Each block gets at least one byte past the requested size. The bytes from the
 *           requested size to the chunk's last word are filled with a pattern keyed by the
 *           heap's secret and the chunk's address (every byte has its top bit set, so a NUL
 *           or ASCII byte written one past the end never matches), and the last word holds
 *           the requested size, encoded with the same key and mixed so that any change to
 *           it decodes to an implausible size. free and realloc verify both:
 *           "canary corrupted <first damaged byte>". The usable size is the requested size.
 *
 *   junk    Freed payloads are filled with TA_JUNK_BYTE; when a free chunk is handed out
 *           again, the bytes it hands out (and the header it writes for a split-off tail) are
 *           verified to be still junk (a fresh arena is junk-filled when mapped): "write
 *           after free <first damaged byte>". The links, checker mark and footer of free
 *           chunks are excluded; interior metadata swallowed by a merge is junk-filled.
 */
#include <string.h>

#include "internal.h"
#include "quick.h"
#include "track.h"

static const uint64_t junk_word = 0x0101010101010101u * TA_JUNK_BYTE;

/* ---- canary -------------------------------------------------------------------------- */

static uint64_t canary_key_of(uint64_t secret, const ta_chunk *chunk)
{
    return ta_chunk_check_value(secret ^ 0x5bd1e9955bd1e995u, chunk, 0xCA4A);
}

static uint64_t canary_key(const ta_heap *heap, const ta_chunk *chunk)
{
    return canary_key_of(heap->secret, chunk);
}

/* Byte i of a block's canary pattern: byte i % 8 of the pattern word, top bit set. */
static unsigned char canary_byte(uint64_t key, size_t i)
{
    return (unsigned char)((key >> (8 * (i & 7))) | 0x80);
}

/* The pattern word as memory holds it, for whole-word stores and compares: the payload is
   16-byte aligned, so the word lies whole at every 8-byte aligned offset. */
static uint64_t canary_stored_word(uint64_t key)
{
    uint64_t word = key | 0x8080808080808080u;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    return word;
}

typedef uint64_t __attribute__((may_alias)) canary_unit; /* an aligned word of the payload */

/*
 * The stored request is the key XORed in, then put through a bijection whose every output bit
 * depends on every input bit: an overflow that changes any byte of the word decodes to a
 * random 64-bit size, which is implausible for all but a vanishing share of values, so the
 * word itself is reported rather than a size that looks right and moves the check.
 */
enum { MIX_SHIFT = 32 }; /* x ^= x >> 32 is its own inverse */
#define MIX_MUL1 ((uint64_t)0xff51afd7ed558ccdu)
#define MIX_MUL2 ((uint64_t)0xc4ceb9fe1a85ec53u)
/* The inverse of an odd multiplier modulo 2^64 by Newton's iteration, as a constant: the
   start is right in the low 3 bits, each step doubles that (3, 6, 12, 24, 48, 96). */
#define MIX_NEWTON(odd, inv) ((uint64_t)(inv) * (2 - (uint64_t)(odd) * (uint64_t)(inv)))
#define MIX_INVERSE(odd)                                                                   \
    MIX_NEWTON(odd, MIX_NEWTON(odd, MIX_NEWTON(odd, MIX_NEWTON(odd, MIX_NEWTON(odd, odd)))))
_Static_assert(MIX_MUL1 * MIX_INVERSE(MIX_MUL1) == 1, "inverse of the first multiplier");
_Static_assert(MIX_MUL2 * MIX_INVERSE(MIX_MUL2) == 1, "inverse of the second multiplier");

static uint64_t size_encode(uint64_t request, uint64_t key)
{
    uint64_t x = request ^ key;
    x ^= x >> MIX_SHIFT;
    x *= MIX_MUL1;
    x ^= x >> MIX_SHIFT;
    x *= MIX_MUL2;
    x ^= x >> MIX_SHIFT;
    return x;
}

static uint64_t size_decode(uint64_t x, uint64_t key)
{
    x ^= x >> MIX_SHIFT;
    x *= MIX_INVERSE(MIX_MUL2);
    x ^= x >> MIX_SHIFT;
    x *= MIX_INVERSE(MIX_MUL1);
    x ^= x >> MIX_SHIFT;
    return x ^ key;
}

/* The word past the canary bytes: the last 8 bytes of the chunk. */
static uint64_t *size_slot(const ta_chunk *chunk)
{
    return (uint64_t *)((char *)chunk + ta_chunk_size(chunk) - 8);
}

/* Payload offset of the size word: the canary bytes run from the request to there. */
static size_t canary_end(const ta_chunk *chunk)
{
    return ta_chunk_size(chunk) - TA_HEADER_SIZE - 8;
}

void ta_canary_write(const ta_heap *heap, ta_chunk *chunk, size_t request)
{
    uint64_t key = canary_key(heap, chunk), word = canary_stored_word(key);
    unsigned char *p = ta_chunk_payload(chunk);
    size_t i = request, end = canary_end(chunk);
    for (; i < end && (i & 7) != 0; i++)
        p[i] = canary_byte(key, i);
    for (; i < end; i += 8)
        *(canary_unit *)(p + i) = word;
    *size_slot(chunk) = size_encode(request, key);
}

const void *ta_canary_damage(const ta_heap *heap, const ta_chunk *chunk, size_t *request)
{
    uint64_t key = canary_key(heap, chunk), word = canary_stored_word(key);
    const unsigned char *p = ta_chunk_payload(chunk);
    size_t n = (size_t)size_decode(*size_slot(chunk), key), end = canary_end(chunk);
    if (n > end - 1)
        return size_slot(chunk); /* the size word itself was overwritten */
    size_t i = n;
    for (; i < end && (i & 7) != 0; i++)
        if (p[i] != canary_byte(key, i))
            return p + i;
    for (; i < end; i += 8)
        if (*(const canary_unit *)(p + i) != word)
            for (size_t j = i;; j++)
                if (p[j] != canary_byte(key, j))
                    return p + j;
    *request = n;
    return NULL;
}

void ta_canary_rekey(ta_chunk *chunk, uint64_t old_secret, uint64_t new_secret)
{
    uint64_t old_key = canary_key_of(old_secret, chunk), new_key = canary_key_of(new_secret, chunk);
    unsigned char *p = ta_chunk_payload(chunk);
    unsigned char *end = (unsigned char *)size_slot(chunk);
    size_t n = (size_t)size_decode(*size_slot(chunk), old_key);
    if (n > (size_t)(end - p) - 1)
        return; /* the size word was overwritten: it stays so */
    for (size_t i = n; p + i < end; i++)
        if (p[i] == canary_byte(old_key, i)) /* a damaged byte stays damaged */
            p[i] = canary_byte(new_key, i);
    *size_slot(chunk) = size_encode(n, new_key);
}

/* ---- junk ---------------------------------------------------------------------------- */

/* Free memory stays inaccessible to the sanitizers; only the fill itself may touch it (a
   sanitizer runtime checks memset even when called from uninstrumented code). */
void ta_junk_fill(void *from, void *to)
{
    if ((char *)to <= (char *)from)
        return;
    size_t n = (size_t)((char *)to - (char *)from);
    TA_ASAN_UNPOISON(from, n);
    memset(from, TA_JUNK_BYTE, n);
    TA_ASAN_POISON(from, n);
}

/* The first byte of the word at `w`, not all junk, that is not junk. */
static const void *junk_byte_damage(const uint64_t *w)
{
    const unsigned char *b = (const unsigned char *)w;
    int i = 0;
    while (b[i] == TA_JUNK_BYTE)
        i++;
    return b + i;
}

/* The first byte in [from, to) (8-byte aligned bounds) that is not junk, or NULL. Whole runs
   of JUNK_RUN words are compared at once, with no branch inside (the compiler vectorizes the
   loop); a run that differs is then searched word by word. */
enum { JUNK_RUN = 8 };
const void *ta_junk_damage(const void *from, const void *to)
{
    const uint64_t *w = from, *end = to;
    for (; end - w >= JUNK_RUN; w += JUNK_RUN) {
        uint64_t diff = 0;
        for (int i = 0; i < JUNK_RUN; i++)
            diff |= w[i] ^ junk_word;
        if (diff != 0)
            break;
    }
    for (; w < end; w++)
        if (*w != junk_word)
            return junk_byte_damage(w);
    return NULL;
}

/* Where a free chunk's junk starts: after its links and the checker's mark. */
static char *junk_start(const ta_chunk *c)
{
    return (char *)ta_chunk_payload(c) + 24;
}

static char *junk_end(const ta_chunk *c)
{
    return (char *)c + ta_chunk_size(c) - 8;
}

void ta_junk_freed(ta_chunk *merged, const void *freed, const void *freed_end)
{
    const char *lo = freed, *hi = freed_end;
    if ((const char *)merged < lo)
        lo -= 8; /* the left neighbour's old footer */
    if (junk_end(merged) + 8 > hi)
        hi += TA_HEADER_SIZE + 24; /* the right neighbour's header, links and mark */
    if (lo < junk_start(merged))
        lo = junk_start(merged);
    if (hi > junk_end(merged))
        hi = junk_end(merged);
    ta_junk_fill((void *)(uintptr_t)lo, (void *)(uintptr_t)hi);
}

void ta_junk_fresh(ta_chunk *chunk)
{
    ta_junk_fill(junk_start(chunk), junk_end(chunk));
}

const void *ta_junk_check_take(const ta_chunk *free_chunk, size_t taken)
{
    const char *hi = (const char *)free_chunk + taken + TA_HEADER_SIZE + 24;
    if (hi > junk_end(free_chunk))
        hi = junk_end(free_chunk);
    return ta_junk_damage(junk_start(free_chunk), hi);
}

/* ---- quarantine ---------------------------------------------------------------------------- */

/* The ring's two ends: the oldest held chunk (`usable` payload bytes) leaves it; `chunk`
   (`usable` bytes) joins it, junk-filled (with junk) and flagged held. */
TA_INLINE void ring_pop_oldest(ta_heap *heap, size_t usable)
{
    size_t head = heap->quarantine_head + 1;
    heap->quarantine_head = head == heap->quarantine_capacity ? 0 : head;
    heap->quarantine_count--;
    heap->quarantine_bytes -= usable;
}

TA_INLINE void ring_push(ta_heap *heap, ta_chunk *chunk, size_t usable)
{
    size_t capacity = heap->quarantine_capacity;
    size_t tail = heap->quarantine_head + heap->quarantine_count;
    ta_track_free(ta_chunk_payload(chunk), usable);
    if (heap->config.junk)
        ta_junk_fill(ta_chunk_payload(chunk), ta_chunk_next(chunk));
    ta_chunk_write(heap, chunk, ta_chunk_size(chunk),
                   (chunk->size_word & TA_KEPT) | TA_QUARANTINED);
    heap->quarantine[tail >= capacity ? tail - capacity : tail] = chunk;
    heap->quarantine_count++;
    heap->quarantine_bytes += usable;
}

/*
 * Releases the oldest quarantined chunk; its junk must be intact. False when the free met
 * damage (reported through `fault`): the chunk then stays quarantined, untouched, and the
 * next release tries again.
 */
static bool evict_oldest(ta_heap *heap, ta_fault *fault)
{
    ta_chunk *chunk = heap->quarantine[heap->quarantine_head];
    if (heap->config.junk && fault->error == TALLOC_ERROR_NONE) {
        const void *damage = ta_junk_damage(ta_chunk_payload(chunk), ta_chunk_next(chunk));
        if (damage)
            *fault = (ta_fault){TALLOC_ERROR_WRITE_AFTER_FREE, damage};
    }
    uint64_t flags = chunk->size_word & TA_FLAG_MASK;
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE; /* a merge may swallow the header */
    ta_chunk_write(heap, chunk, ta_chunk_size(chunk), flags & TA_KEPT);
    ta_fault met = {TALLOC_ERROR_NONE, NULL};
    if (!heap->hardening->release(heap, chunk, &met)) {
        ta_chunk_write(heap, chunk, ta_chunk_size(chunk), flags);
        if (fault->error == TALLOC_ERROR_NONE)
            *fault = met;
        return false;
    }
    if (fault->error == TALLOC_ERROR_NONE) /* damage a flush after the merge met */
        *fault = met;
    ring_pop_oldest(heap, usable);
    return true;
}

/* The payload bytes the quarantine holds at most (config.quarantine_bytes; 0: no bound). */
static size_t quarantine_bound(const ta_heap *heap)
{
    return heap->config.quarantine_bytes != 0 ? heap->config.quarantine_bytes : SIZE_MAX;
}

/* Whether the quarantine must let a block go before it holds `usable` more bytes. */
static bool is_quarantine_full(const ta_heap *heap, size_t usable)
{
    return heap->quarantine_count == heap->quarantine_capacity ||
           heap->quarantine_bytes + usable > quarantine_bound(heap);
}

/* Whether the held block `old` goes to its quick list whole, as evict_oldest would send it
   there with nothing to report: its header sound and quarantined, in a slotted (standard)
   arena, room in the lists, its junk intact, its successor's header sound. */
static bool is_quick_release(const ta_heap *heap, const ta_chunk *old)
{
    if (!ta_chunk_is_valid(heap, old) || (old->size_word & (TA_FREE | TA_HELD)) != TA_QUARANTINED ||
        ta_arena_slotted(heap, ta_chunk_payload(old)) == NULL ||
        !ta_quick_has_room(heap, ta_chunk_size(old)))
        return false;
    ta_chunk *after = ta_chunk_next(old);
    if (heap->config.junk && ta_junk_damage(ta_chunk_payload(old), after) != NULL)
        return false;
    return ta_chunk_is_sealed(heap, after);
}

bool ta_quarantine_hold_fast(ta_heap *heap, ta_chunk *chunk)
{
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    if (heap->quarantine == NULL || usable > quarantine_bound(heap))
        return false; /* the full path maps the ring, or frees a block too large to hold */
    if (is_quarantine_full(heap, usable)) {
        ta_chunk *old = heap->quarantine[heap->quarantine_head];
        size_t old_usable = ta_chunk_size(old) - TA_HEADER_SIZE;
        if (!is_quick_release(heap, old) ||
            heap->quarantine_bytes - old_usable + usable > quarantine_bound(heap))
            return false; /* one release is not enough: the full path releases more */
        /* evict_oldest and quick_free: allocated again, then filed (its junk, just verified,
           is all still there past the links the filing writes) */
        ta_chunk_write(heap, old, ta_chunk_size(old), old->size_word & TA_KEPT);
        ta_quick_file(heap, old);
        heap->stats.free_total++;
        ring_pop_oldest(heap, old_usable);
    }
    ring_push(heap, chunk, usable);
    return true;
}

void ta_quarantine_release(ta_heap *heap, ta_fault *fault)
{
    while (heap->quarantine_count > 0 && evict_oldest(heap, fault)) {
    }
}

/* Holds `chunk` back from reuse; false when there is no room for a quarantine, or the block
   alone is more than it holds (config.quarantine_bytes). */
static bool hold(ta_heap *heap, ta_chunk *chunk, ta_fault *fault)
{
    size_t usable = ta_chunk_size(chunk) - TA_HEADER_SIZE;
    if (usable > quarantine_bound(heap))
        return false;
    if (heap->quarantine == NULL) {
        size_t bytes = ta_align_up(heap->config.quarantine * sizeof(ta_chunk *), heap->page_size);
        heap->quarantine = ta_os_map_metadata(&heap->config.os, bytes);
        if (heap->quarantine == NULL)
            return false;
        heap->quarantine_capacity = bytes / sizeof(ta_chunk *);
        if (heap->quarantine_capacity > heap->config.quarantine)
            heap->quarantine_capacity = heap->config.quarantine;
    }
    while (is_quarantine_full(heap, usable))
        if (!evict_oldest(heap, fault))
            return true; /* the ring is stuck on damage (reported): `chunk` stays allocated */
    ring_push(heap, chunk, usable);
    return true;
}

/* ---- the hook table ----------------------------------------------------------------------- */

void ta_hardening_init(ta_heap *heap, bool (*release)(ta_heap *, ta_chunk *, ta_fault *))
{
    const TAlloc_config *c = &heap->config;
    ta_hardening *h = &heap->hardening_table;
    *h = (ta_hardening){.release = release};
    heap->quick_max_chunk = TA_QUICK_MAX_CHUNK;
    if (c->canary) {
        h->reserve = TA_CANARY_RESERVE;
        heap->quick_max_chunk = TA_QUICK_TOP_CHUNK;
        h->seal_block = ta_canary_write;
        h->check_block = ta_canary_damage;
    }
    if (c->junk) {
        h->fill_fresh = ta_junk_fresh;
        h->check_taken = ta_junk_check_take;
        h->fill_freed = ta_junk_freed;
    }
    h->is_guarded = c->guard && c->os.protect;
    if (c->quarantine)
        h->hold = hold;
    heap->hardening = c->canary || c->junk || h->is_guarded || c->quarantine ? h : NULL;
    heap->fast_malloc = c->canary || c->junk ? TA_FAST_HOOKED : TA_FAST_PLAIN;
    heap->fast_free = c->quarantine ? TA_FAST_HELD : heap->fast_malloc;
}

/* ---- the fork re-key ---------------------------------------------------------------------- */

/* Re-keys one chunk that was valid under `old` (the heap's secret is the new one): its check
   value, and its index words (free) or its canary (allocated; damaged bytes stay damaged). */
static void rekey_chunk(ta_heap *heap, ta_chunk *c, uint64_t old)
{
    uint64_t flags = c->size_word & TA_FLAG_MASK;
    bool is_block = ta_chunk_size(c) != 0 && !(flags & (TA_FREE | TA_HELD));
    if (is_block && heap->config.canary)
        ta_canary_rekey(c, old, heap->secret);
    ta_chunk_seal(heap, c); /* the header only: a damaged boundary tag stays damaged */
    if (flags & TA_FREE)
        heap->index->rekey(heap, c, old);
    if (flags & TA_QUICK) /* its two link words (a damaged one stays damaged) */
        for (int i = 0; i < 2; i++) {
            uint64_t fresh = heap->secret;
            ta_heap_set_secret(heap, old);
            ta_chunk *link = ta_link_get(heap, &c->word[i]);
            ta_heap_set_secret(heap, fresh);
            ta_link_set(heap, &c->word[i], link);
        }
}

/*
 * A header, arena check or link that fails under the old secret is left as it is: it fails
 * under the new one too and is reported when met, never laundered into a valid one. A
 * damaged header ends the arena's walk (what follows it cannot be found).
 */
void ta_heap_rekey(ta_heap *heap)
{
    uint64_t old = heap->secret, fresh = ta_os_random_secret();
    for (ta_arena *a = heap->arena_first; a; a = a->next) {
        if (!ta_arena_is_sealed(heap, a))
            continue;
        ta_chunk *fence = ta_arena_fence(a);
        for (ta_chunk *c = ta_arena_first_chunk(a); c <= fence;) {
            bool is_fence = c == fence;
            if (is_fence ? !ta_chunk_is_sealed(heap, c) : !ta_chunk_is_valid(heap, c))
                break;
            ta_chunk *after = ta_chunk_next(c);
            ta_heap_set_secret(heap, fresh);
            rekey_chunk(heap, c, old);
            ta_heap_set_secret(heap, old);
            if (is_fence)
                break;
            c = after;
        }
        ta_heap_set_secret(heap, fresh);
        ta_arena_seal(heap, a);
        ta_heap_set_secret(heap, old);
    }
    ta_heap_set_secret(heap, fresh);
}
