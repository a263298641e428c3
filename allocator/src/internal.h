/*
 * internal.h - TAlloc's types and the contracts between its files. Not installed.
 *
 * Memory layout
 * -------------
 * An arena is one mapping from the OS layer. It starts with an arena header and ends with a
 * fence (a permanent, zero-sized "allocated" chunk header); between them, chunks tile the
 * arena exactly:
 *
 *   arena base                                                           base + map_size
 *   | ta_arena (48) | chunk | chunk | ... | chunk | fence (16) |
 *
 * A chunk is a 16-byte header followed by its payload. Every chunk size (header + payload) is
 * a multiple of 16 and at least TA_MIN_CHUNK_SIZE, and the first header sits at base + 48, so
 * every payload is 16-byte aligned.
 *
 *   allocated chunk                     free chunk
 *   +------------------------+          +------------------------+
 *   | size_word  (8)         |          | size_word  (8) FREE    |
 *   | check      (8)         |          | check      (8)         |
 *   +------------------------+ <- ptr   +------------------------+
 *   | payload ...            |          | index word 0 (8)       |
 *   |                        |          | index word 1 (8)       |
 *   |                        |          | index word 2 (8)       |
 *   |                        |          | ...                    |
 *   |                        |          | footer = size (8)      |
 *   +------------------------+          +------------------------+
 *
 * size_word = chunk size | TA_FREE (this chunk is free) | TA_PREV_FREE (the chunk before it
 * is free) | TA_FIRST (it starts its arena, so "first and followed by the fence" means "the
 * arena is empty" without reading anything but headers). check = ta_chunk_check_value(heap secret, header address, size_word): a keyed
 * value bound to the header's address, so neither a constant magic nor a header copied
 * elsewhere passes. The footer (a boundary tag) lets free find a free predecessor's header in
 * O(1): prev = (char *)c - footer_of_prev. The three index words belong to the free index
 * policy (its links, encoded with ta_link_*); words 0 and 1 are links in every policy.
 *
 * Subtleties
 * - TA_PREV_FREE of the first chunk of an arena is always clear; the fence carries
 *   TA_PREV_FREE for the last chunk, so merging right into the fence never happens (it is
 *   "allocated") and merging left from it is never attempted.
 * - A split leaves the remainder only when it can hold TA_MIN_CHUNK_SIZE; otherwise the whole
 *   chunk is handed out and usable size exceeds the request by less than that.
 * - Changing any bit of size_word means resealing the header (ta_chunk_seal).
 * - Memory fresh from the OS layer is zero, which calloc relies on for chunks it knows come
 *   from an arena mapped during the same call.
 * - Under AddressSanitizer and Valgrind only the requested bytes of allocated blocks are
 *   accessible to code outside the allocator; the calls that say so are in track.h.
 *
 * Invariants kept by the code below and verified by check.c:
 *   I1 tiling        chunks tile every arena: sum of chunk sizes = map_size - TA_ARENA_RESERVED
 *   I2 headers       check value valid, size aligned and >= minimum, inside the arena
 *   I3 boundary tags a free chunk's footer equals its size; TA_PREV_FREE matches the predecessor
 *   I4 coalesced     no two adjacent chunks are both free
 *   I5 free index    the free index holds exactly the free chunks of the walk, in policy order,
 *                    with consistent links
 *   I6 accounting    the heap's counters equal the totals of a walk; allocations minus frees
 *                    equal the allocated chunks (live and quarantined blocks)
 * (I7 model and I8 drained are checked by the harness, which knows the live blocks.)
 */
#ifndef TALLOC_INTERNAL_H
#define TALLOC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "talloc.h"

#define TA_HIDDEN __attribute__((visibility("hidden")))
/* For the hot paths' helpers, which must inline into one body (paths.c, quick.h). */
#define TA_INLINE static inline __attribute__((always_inline))
/* The checker's code carries no fuzzer coverage (like check.c): its comparisons would only
   add noise to libFuzzer's feedback and dominate its time. */
#if defined(__clang__)
#define TA_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#elif defined(__GNUC__) && __GNUC__ >= 12
#define TA_NO_COVERAGE __attribute__((no_sanitize_coverage))
#else
#define TA_NO_COVERAGE
#endif

enum {
    TA_HEADER_SIZE = 16,         /* chunk header bytes */
    TA_MIN_CHUNK_SIZE = 48,      /* header + links + mark + footer */
    TA_ARENA_HEADER_SIZE = 48,   /* sizeof(ta_arena), rounded to 16 */
    TA_FENCE_SIZE = 16,          /* end-of-arena header */
    TA_ARENA_RESERVED = TA_ARENA_HEADER_SIZE + TA_FENCE_SIZE,
};

#define TA_FREE ((uint64_t)1)
#define TA_PREV_FREE ((uint64_t)2)
#define TA_FIRST ((uint64_t)4)      /* the first chunk of its arena */
#define TA_KEPT (TA_PREV_FREE | TA_FIRST) /* flags a chunk keeps when resized */
#define TA_QUARANTINED ((uint64_t)8) /* freed by the program, held back from reuse */
#define TA_QUICK ((uint64_t)1 << 63) /* freed by the program, in a quick list (chunk sizes stay
                                        below 2^63: a request is at most PTRDIFF_MAX) */
#define TA_FLAG_MASK ((uint64_t)15 | TA_QUICK) /* bits of size_word that are not size */
#define TA_KNOWN_FLAGS TA_FLAG_MASK /* of those, the ones in use */
#define TA_HELD (TA_QUARANTINED | TA_QUICK) /* freed by the program, not free chunks */

typedef struct ta_chunk {
    uint64_t size_word;          /* chunk bytes | TA_FREE | TA_PREV_FREE */
    uint64_t check;              /* ta_chunk_check_value(...) */
    uintptr_t word[3];           /* valid while free: the free index's, encoded (ta_link_*) */
} ta_chunk;

enum { TA_RECENT = 16 }; /* dedicated arenas remembered after they are unmapped */
/* Quick lists (paths.c): one per chunk size up to the chunk of a TALLOC_QUICK_MAX_REQUEST-byte
   request (with a canary's reserve, one class more: ta_heap.quick_max_chunk), indexed by
   size / 16. */
enum { TA_CANARY_RESERVE = 9 }; /* bytes a canary block needs past the request: the size word
                                   and at least one canary byte */
enum {
    TA_QUICK_MAX_CHUNK = TALLOC_QUICK_MAX_REQUEST + TA_HEADER_SIZE, /* with no canary */
    TA_QUICK_TOP_CHUNK = (TALLOC_QUICK_MAX_REQUEST + TA_CANARY_RESERVE + 15) / 16 * 16 +
                         TA_HEADER_SIZE, /* with canary */
    TA_QUICK_CLASSES = TA_QUICK_TOP_CHUNK / 16 + 1,
    TA_FLUSH_MERGED = 65536, /* a free that merges into this many bytes flushes the lists */
};

enum { TA_LARGE_CACHE_SLOTS = 8, TA_LARGE_CACHE_DECAY = 64 }; /* large.c */

typedef struct ta_large_entry {
    void *base;                  /* a released dedicated arena's mapping, kept */
    size_t size;                 /* its bytes */
    uint64_t stamp;              /* heap->large_clock when it was kept */
} ta_large_entry;
enum { TA_INLINE_SLOT_BITS = 5, TA_INLINE_SORTED = 16 }; /* registry room in the control block */

typedef struct ta_arena {
    uint64_t check;              /* ta_arena_check_value(secret, address, map_size) */
    struct ta_arena *next;       /* heap's arena list, in creation order */
    struct ta_arena *prev;
    size_t map_size;             /* bytes mapped, multiple of the page size */
    struct TAlloc_heap *heap;    /* owner */
    uint16_t is_dedicated;       /* 1: mapped for one large request, never retained */
    uint16_t is_slotted;         /* 1: a standard arena at an aligned address, found by mask */
    uint32_t guard_size;         /* bytes of the inaccessible guard after the mapping */
} ta_arena;

_Static_assert(sizeof(ta_arena) == TA_ARENA_HEADER_SIZE, "arena header size");
_Static_assert(sizeof(ta_chunk) + 8 <= TA_MIN_CHUNK_SIZE, "free chunk fields fit a min chunk");

static inline size_t ta_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* A detected error, reported after the heap's lock is released. */
typedef struct ta_fault {
    TAlloc_error error;
    const void *address;
} ta_fault;

struct ta_index_ops;
typedef struct TAlloc_heap ta_heap;

/*
 * The hardening options as hooks (hardening.c): a heap with any option has this table, the
 * hooks of its options set; a heap with none has none, and runs the paths instantiated
 * without hooks (paths.c).
 */
/* ta_heap.fast_malloc, fast_free: none (a heap not set up yet), with no hook, with canary's
   and junk's hooks, into the quarantine (fast_free) */
enum { TA_FAST_NONE, TA_FAST_PLAIN, TA_FAST_HOOKED, TA_FAST_HELD };

typedef struct ta_hardening {
    size_t reserve;              /* bytes past each request (canary) */
    bool is_guarded;             /* dedicated arenas end at an inaccessible page (guard) */
    /* junk: a new arena filled; what a free chunk hands out verified; what a free frees filled */
    void (*fill_fresh)(ta_chunk *chunk);
    const void *(*check_taken)(const ta_chunk *free_chunk, size_t taken);
    void (*fill_freed)(ta_chunk *merged, const void *freed, const void *freed_end);
    /* canary: written past the request, verified at free, realloc and usable size */
    void (*seal_block)(const ta_heap *heap, ta_chunk *block, size_t request);
    const void *(*check_block)(const ta_heap *heap, const ta_chunk *block, size_t *request);
    /* quarantine: holds a freed block back (true), releasing the oldest through `release` */
    bool (*hold)(ta_heap *heap, ta_chunk *chunk, ta_fault *fault);
    bool (*release)(ta_heap *heap, ta_chunk *chunk, ta_fault *fault);
} ta_hardening;

/* The keyed mix behind every check value and index word key: the 128-bit product of two
   words, its halves folded together. It has no inverse: a leaked output (a header's check
   value, the key of a link that encodes NULL, a canary pattern) does not give back the
   words it was made of, so it does not give away the secret that went into them. (It is
   not a MAC either; see docs/hardening.md, "The secret".) Neither factor may be zero, or
   every output is zero: callers keep a factor from being zero by setting a bit their input
   never carries (an address's bit 63), or draw it from the secret. */
static inline uint64_t ta_mix(uint64_t a, uint64_t b)
{
#if defined(__x86_64__) && defined(__GNUC__)
    /* one mulq; gcc 12 routes an __int128 product through the stack on the hot paths */
    uint64_t lo, hi;
    __asm__("mulq %3" : "=a"(lo), "=d"(hi) : "%0"(a), "rm"(b) : "cc");
    return lo ^ hi;
#elif defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 ta_u128;
    ta_u128 m = (ta_u128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
#else
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    uint64_t lo = (mid << 32) | (uint32_t)p00;
    uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

/* The words a secret keys headers and index words with (ta_keys_of), kept beside the secret
   in the heap so the hot paths compute none of them. */
typedef struct ta_keys {
    uint64_t check_a;            /* xored into a header's address; bit 63 set, which no user
                                    address has: the factor is never zero */
    uint64_t check_b;            /* xored into its size word (the factor is zero only for the
                                    one size word equal to it) */
    uint64_t link_a;             /* xored into an index word's address; bit 63 set */
    uint64_t link_b;             /* the other factor of an index word's key; bit 62 set */
} ta_keys;

static inline ta_keys ta_keys_of(uint64_t secret)
{
    uint64_t other = (secret << 29 | secret >> 35) * 0x9E3779B97F4A7C15u;
    return (ta_keys){secret | (uint64_t)1 << 63, other, other | (uint64_t)1 << 63,
                     secret | (uint64_t)1 << 62};
}

/* Bytes of the heap's control block each free index policy may keep its structure in. */
enum { TA_INDEX_STATE_SIZE = 69632 };

struct TAlloc_heap {
    pthread_mutex_t lock;
    TAlloc_config config;        /* as given, with defaults filled in */
    size_t arena_size;           /* standard arena bytes, page-rounded */
    size_t page_size;
    uint64_t secret;             /* key of every check value in this heap (ta_heap_set_secret) */
    ta_keys keys;                /* ta_keys_of(secret) */
    const struct ta_index_ops *index;
    const ta_hardening *hardening; /* &hardening_table, or NULL: no option */
    unsigned char fast_malloc;   /* which fast entries (quick.h) may run: TA_FAST_PLAIN with */
    unsigned char fast_free;     /* no hook on a quick list's block (no option but guard, which
                                    touches dedicated arenas only, or quarantine, which acts on
                                    the free alone), TA_FAST_HOOKED with canary or junk;
                                    TA_FAST_HELD: a free with a quarantine */
    ta_hardening hardening_table;
    ta_fault index_fault;        /* the first damage the free index met during this call
                                    (reported when the call ends), or none */
    ta_arena *arena_first;       /* creation order */
    ta_arena *arena_last;
    /* the arena registry (arena.c): who owns a pointer, without a search */
    unsigned arena_shift;        /* standard arenas are aligned to 1 << arena_shift bytes */
    ta_arena **arena_slots;      /* aligned standard arenas, open addressing by base */
    size_t arena_slot_bits;      /* capacity is 1 << bits (0: no table yet) */
    size_t arena_slot_count;
    ta_arena **arena_sorted;     /* every other arena, ascending: binary search */
    size_t arena_sorted_count;
    size_t arena_sorted_capacity;
    size_t unslotted_standard_count; /* standard arenas in the sorted table (the OS layer did
                                        not align them); 0: every standard arena is slotted */
    ta_arena *arena_slots_inline[1 << TA_INLINE_SLOT_BITS]; /* the first tables */
    ta_arena *arena_sorted_inline[TA_INLINE_SORTED];
    ta_chunk *quick_head[TA_QUICK_CLASSES]; /* quick lists, the block freed last first */
    size_t quick_max_chunk;      /* their largest chunk: a TALLOC_QUICK_MAX_REQUEST-byte
                                    request's, its canary included */
    size_t fresh_since_flush;    /* bytes of standard arenas taken fresh since the quick lists
                                    were last flushed (SIZE_MAX: never flushed) */
    ta_chunk **quarantine;       /* FIFO of freed chunks held back (config.quarantine) */
    size_t quarantine_head, quarantine_count, quarantine_capacity;
    size_t quarantine_bytes;     /* payload bytes of the chunks it holds */
    unsigned recent_next;
    ta_large_entry large_cache[TA_LARGE_CACHE_SLOTS]; /* stats.cached_count of them (large.c) */
    uint64_t large_clock;        /* large events: dedicated arenas asked for and released */
    const void *recent_large[TA_RECENT]; /* the blocks whose dedicated arenas were unmapped
                                            last: a second free of one is a double free */
    size_t empty_arena_count;    /* retained arenas that are one free chunk */
    size_t dirty_bytes;          /* freed into the index since the last purge (heap.c) */
    uint64_t check_epoch;        /* last mark value the checker used */
    TAlloc_stats stats;          /* counters kept current under the lock (I6) */
    size_t control_size;         /* bytes mapped for this struct */
    bool is_default;             /* the process-wide heap: lives in static storage */
    bool is_rekey_pending;       /* set in a fork child (config.fork_rekey): the next call
                                    re-keys the heap under a new secret first */
    struct TAlloc_heap *registry_next; /* every live heap, for the fork handlers (fork.c) */
    struct TAlloc_heap *registry_prev;
    /* the policy's structure (index_*.c only); zero when the heap is created */
    _Alignas(64) unsigned char index_state[TA_INDEX_STATE_SIZE];
};


/* ---- chunk.c: headers, boundary tags, split and merge --------------------------------- */
/* The keyed check value of a header at `address` holding `size_word`. Inline: the checker
   and the hot paths both call it for every header they touch. The keyed address is one
   factor, the keyed size word the other: a change to either changes the product, the folded
   value changes with it but for a chance of 2^-64, and without the secret a header can
   neither be made up nor moved. */
static inline uint64_t ta_check_value(const ta_keys *keys, const void *address, uint64_t size_word)
{
    return ta_mix((uint64_t)(uintptr_t)address ^ keys->check_a, size_word ^ keys->check_b);
}

/* The same under a secret given explicitly (a canary's key, a re-key's old secret). */
static inline uint64_t ta_chunk_check_value(uint64_t secret, const void *address, uint64_t size_word)
{
    ta_keys keys = ta_keys_of(secret);
    return ta_check_value(&keys, address, size_word);
}

/* Every change of a heap's secret goes through here, so its keys follow. */
static inline void ta_heap_set_secret(ta_heap *heap, uint64_t secret)
{
    heap->secret = secret;
    heap->keys = ta_keys_of(secret);
}

static inline bool ta_chunk_is_sealed(const ta_heap *heap, const ta_chunk *chunk)
{
    return chunk->check == ta_check_value(&heap->keys, chunk, chunk->size_word);
}

/* Sealed, no unknown flag bits, at least a minimum chunk: the header may be trusted. */
static inline bool ta_chunk_is_valid(const ta_heap *heap, const ta_chunk *chunk)
{
    return ta_chunk_is_sealed(heap, chunk) &&
           (chunk->size_word & TA_FLAG_MASK & ~TA_KNOWN_FLAGS) == 0 &&
           (chunk->size_word & ~TA_FLAG_MASK) >= TA_MIN_CHUNK_SIZE;
}

/* A trusted header of a block the program holds: neither free nor held back (quick list,
   quarantine). */
static inline bool ta_chunk_is_block(const ta_heap *heap, const ta_chunk *chunk)
{
    return ta_chunk_is_valid(heap, chunk) && (chunk->size_word & (TA_FREE | TA_HELD)) == 0;
}

static inline size_t ta_chunk_size(const ta_chunk *c) { return (size_t)(c->size_word & ~TA_FLAG_MASK); }
static inline bool ta_chunk_is_free(const ta_chunk *c) { return (c->size_word & TA_FREE) != 0; }
static inline bool ta_chunk_is_prev_free(const ta_chunk *c) { return (c->size_word & TA_PREV_FREE) != 0; }
static inline ta_chunk *ta_chunk_next(const ta_chunk *c) { return (ta_chunk *)((char *)c + ta_chunk_size(c)); }
static inline void *ta_chunk_payload(const ta_chunk *c) { return (char *)c + TA_HEADER_SIZE; }
static inline ta_chunk *ta_chunk_from_payload(const void *p) { return (ta_chunk *)((char *)p - TA_HEADER_SIZE); }
static inline uint64_t *ta_chunk_footer(const ta_chunk *c) { return (uint64_t *)((char *)c + ta_chunk_size(c) - 8); }

/* The header format, used by every layer that writes headers (the arena layer writes an
   arena's first chunk and fence). Changing any bit of size_word means resealing. */
static inline void ta_chunk_seal(const ta_heap *heap, ta_chunk *chunk)
{
    chunk->check = ta_check_value(&heap->keys, chunk, chunk->size_word);
}

/* Invalidates a header that a merge has swallowed, so a stale pointer to it is recognised
   as pointing into a free chunk instead of being trusted. */
static inline void ta_chunk_unseal(ta_chunk *chunk)
{
    chunk->size_word = 0;
    chunk->check = 0;
}

/* Writes a whole header (and, for a free chunk, its footer). */
static inline void ta_chunk_write(const ta_heap *heap, ta_chunk *chunk, size_t size, uint64_t flags)
{
    chunk->size_word = (uint64_t)size | flags;
    ta_chunk_seal(heap, chunk);
    if (flags & TA_FREE)
        *ta_chunk_footer(chunk) = (uint64_t)size;
}

static inline void ta_chunk_set_prev_free(const ta_heap *heap, ta_chunk *chunk, bool is_prev_free)
{
    chunk->size_word = is_prev_free ? (chunk->size_word | TA_PREV_FREE)
                                    : (chunk->size_word & ~TA_PREV_FREE);
    ta_chunk_seal(heap, chunk);
}

/* Chunk bytes for a request; the caller has rejected sizes above PTRDIFF_MAX. */
static inline size_t ta_chunk_size_for(size_t request_size)
{
    size_t size = ta_align_up(request_size, TALLOC_ALIGNMENT) + TA_HEADER_SIZE;
    return size < TA_MIN_CHUNK_SIZE ? TA_MIN_CHUNK_SIZE : size;
}

/*
 * Chunk surgery (chunk.c). Each is one step from a sound heap to a sound heap: it verifies
 * every header, boundary tag and index link it is about to write through before it writes
 * anything, and on damage returns NULL/false with `fault` set (or the index's fault noted),
 * having changed nothing.
 */
/* An allocated chunk of `need` bytes at the start of the free chunk `chunk` (validated; in
   the index unless `is_filed` is false, as for a fresh arena's chunk); the tail is freed when
   it can hold a chunk. With `alignment` > 16 the block starts at the first payload so aligned
   that the gap before it can be a free chunk, which stays free. The caller has begun the
   index step (in which it found the chunk); take ends it. */
TA_HIDDEN ta_chunk *ta_chunk_take(ta_heap *heap, ta_chunk *chunk, size_t need, size_t alignment,
                                  bool is_filed, ta_fault *fault);
#define TA_TAKE_ALL SIZE_MAX /* need: all of the chunk after the gap */
/* Frees the allocated chunk `chunk` of `arena`, merging it with its free neighbours. Returns
   the free chunk that holds it, or NULL. When that free chunk would be its whole arena and
   the arena is to be released (ta_arena_is_released), it is left out of the index and
   `*is_arena_empty` is set: the caller releases the arena. */
TA_HIDDEN ta_chunk *ta_chunk_release(ta_heap *heap, ta_chunk *chunk, ta_arena *arena,
                                     bool *is_arena_empty, ta_fault *fault);
/* Shrinks the allocated chunk to `need` bytes when the tail can be a chunk (freed, merging
   with a free successor). False (nothing changed) when the index is damaged. */
TA_HIDDEN bool ta_chunk_shrink(ta_heap *heap, ta_chunk *chunk, size_t need);
/* Grows the allocated chunk in place over its free successor to at least `need` bytes.
   False when the successor is not free or too small, or (with `fault` set) damaged. */
TA_HIDDEN bool ta_chunk_grow(ta_heap *heap, ta_chunk *chunk, size_t need, ta_fault *fault);
/* Zeroes what a chunk from a freshly mapped arena may hold besides zeros. */
TA_HIDDEN void ta_chunk_zero_fresh(ta_chunk *chunk);

/* The I6 counters: the only code that changes heap->stats' chunk and arena totals. */
static inline void ta_account_chunk(ta_heap *heap, bool is_free, size_t chunk_size, int sign)
{
    size_t payload = chunk_size - TA_HEADER_SIZE;
    if (is_free) {
        heap->stats.free_count += (size_t)(ptrdiff_t)sign;
        heap->stats.free_bytes += (size_t)(ptrdiff_t)sign * payload;
    } else {
        heap->stats.allocated_count += (size_t)(ptrdiff_t)sign;
        heap->stats.allocated_bytes += (size_t)(ptrdiff_t)sign * payload;
    }
}

static inline void ta_account_quick(ta_heap *heap, size_t chunk_size, int sign)
{
    heap->stats.quick_count += (size_t)(ptrdiff_t)sign;
    heap->stats.quick_bytes += (size_t)(ptrdiff_t)sign * (chunk_size - TA_HEADER_SIZE);
}

/* (map_count and unmap_count count the OS layer's calls: arena.c and large.c make them.) */
static inline void ta_account_arena(ta_heap *heap, size_t map_size, int sign)
{
    heap->stats.arena_count += (size_t)(ptrdiff_t)sign;
    heap->stats.mapped_bytes += (size_t)(ptrdiff_t)sign * map_size;
}

/* ---- arena.c: mapping, unmapping and finding arenas ----------------------------------- */
/* Maps an arena for a chunk of `chunk_size` bytes and returns its one free chunk, not yet in
   the index; NULL when the OS layer refuses. `*is_zeroed`: its memory is zero (a new
   mapping, not one the large-block cache kept). */
TA_HIDDEN ta_chunk *ta_arena_map(ta_heap *heap, size_t chunk_size, bool *is_dedicated,
                                 bool *is_zeroed);
/* Returns an arena whose chunk could not be filed (ta_arena_map's, untouched since). */
TA_HIDDEN void ta_arena_unmap_new(ta_heap *heap, ta_arena *arena);
/* Whether an arena that became one free chunk goes back to the OS (else it is retained). */
TA_HIDDEN bool ta_arena_is_released(const ta_heap *heap, const ta_arena *arena);
/* Resizes a dedicated arena holding one block (tail out of the index) with the OS layer's
   remap: the arena (it may have moved), or NULL, nothing changed. */
TA_HIDDEN ta_arena *ta_arena_remap(ta_heap *heap, ta_arena *arena, size_t map_size);
/* Unmaps an arena whose one free chunk has left the index (or never joined it). */
TA_HIDDEN void ta_arena_release(ta_heap *heap, ta_arena *arena);
/* An empty standard arena stops being empty (a chunk is taken from it) or becomes so. */
TA_HIDDEN void ta_arena_note_taken(ta_heap *heap, const ta_arena *arena);
TA_HIDDEN void ta_arena_note_retained(ta_heap *heap, const ta_arena *arena);
TA_HIDDEN ta_arena *ta_arena_find(const ta_heap *heap, const void *address);
/* ta_arena_find's common case inline: a standard arena at the first slot its base hashes to
   (arena.c's hash), or NULL (ta_arena_slotted); ta_arena_owner takes the call for anything
   else. A slotted arena is a standard one, of heap->arena_size bytes: its header is not read. */
TA_INLINE ta_arena *ta_arena_slotted(const ta_heap *heap, const void *address)
{
    uintptr_t p = (uintptr_t)address, base = p & ~(((uintptr_t)1 << heap->arena_shift) - 1);
    if (heap->arena_slot_bits != 0) {
        uintptr_t key = base >> heap->arena_shift;
        ta_arena *a = heap->arena_slots[(key * 0x9E3779B97F4A7C15u) >> (64 - heap->arena_slot_bits)];
        if (a != NULL && (uintptr_t)a == base &&
            p - base >= TA_ARENA_HEADER_SIZE + TA_HEADER_SIZE &&
            p - base < heap->arena_size - TA_FENCE_SIZE)
            return a;
    }
    return NULL;
}
static inline ta_arena *ta_arena_owner(const ta_heap *heap, const void *address)
{
    ta_arena *a = ta_arena_slotted(heap, address);
    return a != NULL ? a : ta_arena_find(heap, address);
}
TA_HIDDEN ta_arena *ta_arena_find_listed(const ta_heap *heap, const void *address);
TA_HIDDEN void ta_arena_seal(const ta_heap *heap, ta_arena *arena);
TA_HIDDEN bool ta_arena_is_sealed(const ta_heap *heap, const ta_arena *arena);
TA_HIDDEN bool ta_arena_is_whole(const ta_arena *arena, const ta_chunk *chunk);
/* The arena of which `chunk` (a sealed header) is the only chunk, or NULL. */
TA_HIDDEN ta_arena *ta_arena_if_whole(const ta_heap *heap, const ta_chunk *chunk);
TA_HIDDEN void ta_arena_registry_init(ta_heap *heap);
TA_HIDDEN void ta_arena_registry_free(ta_heap *heap);
/* Room in the registry for one more arena; false when a metadata map was refused. */
TA_HIDDEN bool ta_arena_reserve(ta_heap *heap, bool is_dedicated);
TA_HIDDEN void ta_arena_unmap_memory(ta_heap *heap, ta_arena *arena);
TA_HIDDEN bool ta_arena_was_recent_large(const ta_heap *heap, const void *payload);
/* Index in the sorted registry of the last arena that starts at or below `address`, or -1. */
TA_HIDDEN ptrdiff_t ta_arena_sorted_floor(const ta_heap *heap, uintptr_t address);

static inline ta_chunk *ta_arena_first_chunk(const ta_arena *a) { return (ta_chunk *)((char *)a + TA_ARENA_HEADER_SIZE); }
static inline ta_chunk *ta_arena_fence(const ta_arena *a) { return (ta_chunk *)((char *)a + a->map_size - TA_FENCE_SIZE); }

/* ---- large.c: the large-block cache and the remap of dedicated arenas ------------------- */
/* A cached mapping resized to `size` bytes for a new dedicated arena, or NULL. */
TA_HIDDEN void *ta_large_take(ta_heap *heap, size_t size, size_t *got);
/* Keeps a released dedicated arena's mapping (plain memory now); false: unmap it. */
TA_HIDDEN bool ta_large_keep(ta_heap *heap, void *base, size_t size);
/* Gives every cached mapping back; returns how many. */
TA_HIDDEN size_t ta_large_trim(ta_heap *heap);

/* ---- quick lists ---------------------------------------------------------------------------
 * A quick chunk (TA_QUICK) is a freed block kept whole for the next request of its size: to
 * its neighbours it is allocated (no footer, the next chunk's TA_PREV_FREE clear), to the
 * user it is free. Its index words: 0 links the next chunk of its list (encoded, ta_link_*),
 * 1 holds the same link again, encoded under its own address, so a write over either shows
 * as a disagreement; 2 is the checker's mark. The list's chunk size of a class: */
static inline size_t ta_quick_size(size_t quick_class) { return quick_class * 16; }
/* Whether the quick lists take a freed block of `chunk` (in `arena`) now. */
static inline bool ta_quick_has_room(const ta_heap *heap, size_t chunk_size)
{
    return chunk_size <= heap->quick_max_chunk &&
           heap->stats.quick_bytes + (chunk_size - TA_HEADER_SIZE) <= heap->config.quick;
}
static inline bool ta_quick_takes(const ta_heap *heap, const ta_chunk *chunk, const ta_arena *arena)
{
    return !arena->is_dedicated && ta_quick_has_room(heap, ta_chunk_size(chunk));
}

/* ---- index words -----------------------------------------------------------------------
 * An index word is stored XORed with a key drawn from the heap's secret and the word's own
 * address (safe-linking, keyed): a stray write, or a word copied from elsewhere, decodes to a
 * value that fails the checks made before any link is followed (16-byte aligned, inside an
 * arena, naming what the policy expects there). The key comes from ta_mix: a word whose
 * plain value is known (a NULL link) shows its key, and the key does not show the secret. */
static inline uintptr_t ta_link_key(const ta_heap *heap, const uintptr_t *field)
{
    return (uintptr_t)ta_mix((uint64_t)(uintptr_t)field ^ heap->keys.link_a, heap->keys.link_b);
}

static inline ta_chunk *ta_link_get(const ta_heap *heap, const uintptr_t *field)
{
    return (ta_chunk *)(*field ^ ta_link_key(heap, field));
}

static inline void ta_link_set(const ta_heap *heap, uintptr_t *field, const ta_chunk *target)
{
    *field = (uintptr_t)target ^ ta_link_key(heap, field);
}

static inline uintptr_t ta_word_get(const ta_heap *heap, const uintptr_t *field)
{
    return *field ^ ta_link_key(heap, field);
}

static inline void ta_word_set(const ta_heap *heap, uintptr_t *field, uintptr_t value)
{
    *field = value ^ ta_link_key(heap, field);
}

/* ---- the free index (index.c, index_segregated.c, index_tree.c) ------------------------
 * Where free chunks are filed and found. The chunk and heap layers call only the ta_index_*
 * functions below; each policy's structure is private to its file (in heap->index_state).
 * Chunks passed in are free chunks whose headers the caller has validated or is about to
 * write; sizes are chunk sizes, given explicitly (the header may not be written yet).
 *
 * An op that meets damage notes it (ta_index_note) and returns NULL/false. Ops between
 * ta_index_begin and ta_index_end form one step: with the tree policies nothing reaches
 * memory before ta_index_end(heap, true), so a failure anywhere undoes the whole step. The
 * segregated lists write at once; for them the caller verifies first every chunk a step
 * removes or replaces (ta_index_verify) and every size it files (ta_index_verify_insert),
 * after which the step's ops cannot fail.
 */
typedef struct ta_index_check {
    void (*violation)(void *ctx, int invariant, const void *address, const char *detail);
    void *ctx;
    ta_arena *(*find_arena)(const ta_heap *heap, const void *address);
    uint64_t epoch;              /* mark of this check (policies that mark chunks) */
    size_t reached;              /* free chunks the index holds, counted by the check */
} ta_index_check;

typedef struct ta_index_ops {
    const char *name;
    void (*init)(ta_heap *heap);
    /* the chosen free chunk for `chunk_size` bytes (validated, big enough), or NULL; within
       the step that takes it */
    ta_chunk *(*find)(ta_heap *heap, size_t chunk_size);
    bool (*verify)(ta_heap *heap, ta_chunk *chunk);
    bool (*verify_insert)(ta_heap *heap, size_t chunk_size);
    bool (*insert)(ta_heap *heap, ta_chunk *chunk, size_t chunk_size);
    bool (*remove)(ta_heap *heap, ta_chunk *chunk);
    /* `new_chunk` of `new_size` bytes takes the place of `old_chunk` (split, merged or
       resized; no other free chunk lies between them; they may overlap) */
    bool (*replace)(ta_heap *heap, ta_chunk *old_chunk, ta_chunk *new_chunk, size_t new_size);
    void (*begin)(ta_heap *heap);             /* NULL: ops write at once */
    void (*end)(ta_heap *heap, bool is_commit);
    /* I5: checks the structure (violations through ck), counts what it holds */
    void (*check)(ta_heap *heap, ta_index_check *ck);
    /* whether the last check reached `chunk` (a free chunk of the walk) */
    bool (*is_reached)(const ta_heap *heap, const ta_chunk *chunk, const ta_index_check *ck);
    /* re-encodes a free chunk's index words from one secret to the heap's current one */
    void (*rekey)(ta_heap *heap, ta_chunk *chunk, uint64_t old_secret);
} ta_index_ops;

TA_HIDDEN const ta_index_ops *ta_index_for_policy(TAlloc_policy policy);
/* Notes the first damage met in this call (reported when it ends); returns false. */
TA_HIDDEN bool ta_index_note(ta_heap *heap, TAlloc_error error, const void *address);
/* Whether `target` (decoded from a link) is a 16-byte aligned header whose payload lies in
   one of the heap's arenas: its words may be read. */
static inline bool ta_index_is_plausible(const ta_heap *heap, const ta_chunk *target)
{
    return target != NULL && ((uintptr_t)target & (TALLOC_ALIGNMENT - 1)) == 0 &&
           ta_arena_owner(heap, ta_chunk_payload(target)) != NULL;
}
/* Plausible and a valid free chunk header (not quarantined). */
TA_HIDDEN bool ta_index_is_free_chunk(const ta_heap *heap, const ta_chunk *target);

static inline ta_chunk *ta_index_find(ta_heap *heap, size_t size) { return heap->index->find(heap, size); }
static inline bool ta_index_verify(ta_heap *heap, ta_chunk *c) { return heap->index->verify(heap, c); }
static inline bool ta_index_verify_insert(ta_heap *heap, size_t size) { return heap->index->verify_insert(heap, size); }
static inline bool ta_index_insert(ta_heap *heap, ta_chunk *c, size_t size) { return heap->index->insert(heap, c, size); }
static inline bool ta_index_remove(ta_heap *heap, ta_chunk *c) { return heap->index->remove(heap, c); }
static inline bool ta_index_replace(ta_heap *heap, ta_chunk *old_chunk, ta_chunk *new_chunk, size_t size)
{
    return heap->index->replace(heap, old_chunk, new_chunk, size);
}
static inline void ta_index_begin(ta_heap *heap)
{
    if (heap->index->begin)
        heap->index->begin(heap);
}
static inline bool ta_index_end(ta_heap *heap, bool is_commit)
{
    if (heap->index->end)
        heap->index->end(heap, is_commit);
    return is_commit;
}
/* The fault the index noted (the note is cleared). */
static inline ta_fault ta_index_take_fault(ta_heap *heap)
{
    ta_fault fault = heap->index_fault;
    heap->index_fault = (ta_fault){TALLOC_ERROR_NONE, NULL};
    return fault;
}

/* ---- paths.c: the allocation paths, plain and hardened ---------------------------------- */
TA_HIDDEN void *ta_paths_alloc(ta_heap *heap, size_t size, size_t alignment, bool is_zeroed,
                               ta_fault *fault);
/* free of a validated chunk: its canary, the quarantine, the release */
TA_HIDDEN void ta_paths_free(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, ta_fault *fault);
/* realloc of a non-NULL pointer to a non-zero size */
TA_HIDDEN void *ta_paths_realloc(ta_heap *heap, void *ptr, size_t size, ta_fault *fault);
TA_HIDDEN size_t ta_paths_usable(ta_heap *heap, const void *ptr, ta_fault *fault);
/* every block of the quick lists to the free index; stops at damage (`fault`) */
TA_HIDDEN void ta_paths_flush(ta_heap *heap, ta_fault *fault);

/* Initialises a heap (zero-filled memory) from `config`: core, hardening, paths. */
TA_HIDDEN bool ta_heap_setup(ta_heap *heap, const TAlloc_config *config);
TA_HIDDEN void ta_paths_release_quarantine(ta_heap *heap, ta_fault *fault);

/* ---- heap.c: the heap's core under the lock --------------------------------------------- */
TA_HIDDEN bool ta_heap_init(ta_heap *heap, const TAlloc_config *config);
/* Why `ptr` (in `arena`, or in none) is no block: the fault, and NULL (heap.c). */
TA_HIDDEN ta_chunk *ta_heap_invalid(ta_heap *heap, const ta_arena *arena, const void *ptr,
                                    TAlloc_error if_free, ta_fault *fault);
/*
 * The one validator for pointers users hand back: ownership, alignment, header integrity,
 * state - in that order, and before anything in the header is trusted. Returns the chunk (and
 * its arena in `*owner` when not NULL), or NULL with `fault` set (`if_free` is the error for
 * a chunk that is already free).
 */
static inline ta_chunk *ta_heap_validate(ta_heap *heap, const void *ptr, TAlloc_error if_free,
                                         ta_arena **owner, ta_fault *fault)
{
    ta_arena *arena = ta_arena_owner(heap, ptr);
    if (arena == NULL || ((uintptr_t)ptr & (TALLOC_ALIGNMENT - 1)) != 0)
        return ta_heap_invalid(heap, arena, ptr, if_free, fault);
    ta_chunk *chunk = ta_chunk_from_payload(ptr); /* inside the arena: no wrap */
    if (!ta_chunk_is_block(heap, chunk))
        return ta_heap_invalid(heap, arena, ptr, if_free, fault);
    if (owner)
        *owner = arena;
    return chunk;
}
/* A block of `need` bytes at `alignment` taken from the free chunk `chunk` the index chose,
   or from a new arena mapped for `search` bytes (`h`: the hardening table, or NULL). */
TA_HIDDEN ta_chunk *ta_heap_take_filed(ta_heap *heap, ta_chunk *chunk, size_t need,
                                       size_t alignment, ta_fault *fault);
TA_HIDDEN ta_chunk *ta_heap_take_fresh(ta_heap *heap, size_t need, size_t search,
                                       size_t alignment, const ta_hardening *h, bool *is_zeroed,
                                       ta_fault *fault);
/* Grows a dedicated arena's one block to `need` bytes by remapping the arena; the block (it
   may have moved), or NULL: not such a block, no remap, or damage (`fault`). */
TA_HIDDEN ta_chunk *ta_heap_remap(ta_heap *heap, ta_chunk *chunk, ta_arena *arena, size_t need,
                                  ta_fault *fault);
/* Zeroes a block for calloc; `is_fresh`: it comes from a new, zero-filled arena. */
TA_HIDDEN void ta_heap_zero(ta_chunk *block, bool is_fresh);
/* After a free produced `merged`: an arena left empty is released or retained. */
/* After a free of `freed` chunk bytes into the index that left the free chunk `merged`: gives
   the pages inside `merged` back to the OS layer when it holds config.purge bytes and as
   many were freed since the last purge, unless it is all of `arena` (heap.c, "purging").
   The caller never asks with junk: those pages must keep their pattern. */
TA_HIDDEN void ta_heap_purge(ta_heap *heap, const ta_arena *arena, ta_chunk *merged, size_t freed);
TA_HIDDEN void ta_heap_settle_arena(ta_heap *heap, ta_arena *arena, ta_chunk *merged,
                                    bool is_arena_empty);
/* Unmaps every empty arena (retained, or kept by damage); returns how many. */
TA_HIDDEN size_t ta_heap_trim_arenas(ta_heap *heap);
/* Takes the heap's lock; false (after reporting TALLOC_ERROR_RECURSIVE_CALL, errno EDEADLK)
   when this thread already holds it - a signal handler or a callback re-entering the heap -
   instead of deadlocking. */
TA_HIDDEN bool ta_heap_lock(ta_heap *heap);
TA_HIDDEN void ta_heap_unlock(ta_heap *heap);
/* The same for calls that run no user code, ta_heap_enter and ta_heap_leave (enter.h): the
   mutex is skipped while the process has a single thread. ta_heap_enter returns the mode to
   leave with, TA_NOT_ENTERED on a recursive call (errno left alone: a free keeps it, the
   caller that fails sets EDEADLK). */
enum { TA_NOT_ENTERED, TA_LOCKED, TA_SINGLE_THREADED };

/* ---- check.c ---- */
TA_HIDDEN int ta_walk_locked(const ta_heap *heap, TAlloc_walk_fn visit, void *ctx);

/* ---- hardening.c: canary, junk, quarantine, the hook table, the fork re-key ------------- */
/* Fills the heap's hook table from its config; `release` frees what the quarantine lets go. */
TA_HIDDEN void ta_hardening_init(ta_heap *heap, bool (*release)(ta_heap *, ta_chunk *, ta_fault *));
TA_HIDDEN void ta_quarantine_release(ta_heap *heap, ta_fault *fault);
/* The quarantine's part of the fast free (quick.h): holds the block `chunk` (a trusted header,
   its canary verified), first filing the oldest held block in its quick list when the ring is
   full; false, nothing changed, when any of it needs the full path. */
TA_HIDDEN bool ta_quarantine_hold_fast(ta_heap *heap, ta_chunk *chunk);
#define TA_JUNK_BYTE 0xdf
TA_HIDDEN void ta_canary_write(const ta_heap *heap, ta_chunk *chunk, size_t request);
/* NULL when the canary and the stored size are intact (request set), else the first damaged
   byte. */
TA_HIDDEN const void *ta_canary_damage(const ta_heap *heap, const ta_chunk *chunk, size_t *request);
/* Re-keys a block's canary from one secret to another; damaged bytes stay damaged. */
TA_HIDDEN void ta_canary_rekey(ta_chunk *chunk, uint64_t old_secret, uint64_t new_secret);
TA_HIDDEN void ta_junk_fill(void *from, void *to);
/* Junk-fills the free chunk of a new arena (beyond its links, mark and footer). */
TA_HIDDEN void ta_junk_fresh(ta_chunk *chunk);
TA_HIDDEN const void *ta_junk_damage(const void *from, const void *to);
/* Junk-fills what a free produced inside `merged`: the freed chunk [freed, freed_end) and the
   neighbours' metadata a merge swallowed. */
TA_HIDDEN void ta_junk_freed(ta_chunk *merged, const void *freed, const void *freed_end);
/* Verifies the junk of the first `taken` bytes of a free chunk about to be handed out (and of
   the header a split writes after them); the first damaged byte or NULL. */
TA_HIDDEN const void *ta_junk_check_take(const ta_chunk *free_chunk, size_t taken);

/* ---- os.c / report.c / default_heap.c ------------------------------------------------- */
TA_HIDDEN size_t ta_os_page_size(void);
TA_HIDDEN uint64_t ta_os_random_secret(void);
/* fork.c: re-keys every check value, link and canary of the heap under a new secret. */
TA_HIDDEN void ta_heap_rekey(ta_heap *heap);
/* The heap's OS table, errno left alone: map (aligned when `alignment` is not 0 and the
   table can), unmap, remap (NULL without the entry), protect (false without it), and the
   metadata pages (map/unmap when the table has no metadata entries). */
TA_HIDDEN void *ta_os_map(const TAlloc_os *os, size_t size, size_t alignment);
TA_HIDDEN void ta_os_unmap(const TAlloc_os *os, void *address, size_t size);
TA_HIDDEN void *ta_os_remap(const TAlloc_os *os, void *address, size_t old_size, size_t new_size);
TA_HIDDEN bool ta_os_protect(const TAlloc_os *os, void *address, size_t size);
TA_HIDDEN bool ta_os_purge(const TAlloc_os *os, void *address, size_t size);
TA_HIDDEN void *ta_os_map_metadata(const TAlloc_os *os, size_t size);
TA_HIDDEN void ta_os_unmap_metadata(const TAlloc_os *os, void *address, size_t size);
TA_HIDDEN void ta_report(const ta_heap *heap, const ta_fault *fault); /* errno kept */
TA_HIDDEN ta_heap *ta_default_heap(void);

/* ---- fork.c: the registry of live heaps and the fork handlers -------------------------- */
TA_HIDDEN void ta_registry_add(ta_heap *heap);
TA_HIDDEN void ta_registry_remove(ta_heap *heap);

/* ---- options.c: TALLOC_OPTIONS and the statistics lines -------------------------------- */
/* Fills `config` from TALLOC_OPTIONS (defaults for what it does not set) and records the
   process options; called once, when the default heap is created. */
TA_HIDDEN void ta_options_load(TAlloc_config *config);
TA_HIDDEN void ta_options_announce(const ta_heap *heap);

/* ---- report.c: text without stdio ------------------------------------------------------ */
typedef struct ta_text {
    char *buf;
    size_t used, cap;              /* cap excludes the terminating NUL */
} ta_text;
TA_HIDDEN void ta_text_str(ta_text *t, const char *s);
TA_HIDDEN void ta_text_u64(ta_text *t, uint64_t v);
TA_HIDDEN void ta_text_ptr(ta_text *t, const void *p);
TA_HIDDEN void ta_write_all(int fd, const char *buf, size_t n);

static inline void ta_count(ta_heap *heap, TAlloc_event e) { heap->stats.event_count[e]++; }

#endif /* TALLOC_INTERNAL_H */
