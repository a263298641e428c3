/*
 * index_segregated.c - the default free index: two-level segregated fit.
 *
 * Every free chunk is filed in the list of its size class. Sizes below 1024 bytes have a class
 * each (chunk sizes are multiples of 16); from 1024 up, each power of two is cut into 16
 * classes of equal width, so a class spans at most 1/16 of its sizes. A bitmap says which
 * lists are not empty and a summary word which bitmap words are not zero, so two
 * find-first-set instructions name the first non-empty class at or above any class.
 *
 * find(n) takes, in O(1):
 *   1. the most recently filed chunk of n's own class, when it holds n bytes: a block freed
 *      and asked for again is reused whatever its size, and the waste stays under the class
 *      width;
 *   2. else the most recently filed chunk of the first non-empty class whose every chunk
 *      holds n (the class of n rounded up to the next class boundary), never more than 1/16
 *      bigger than the smallest size that class allows;
 *   3. else the first of FALLBACK_STEPS chunks of n's own class that holds n, so that the one
 *      free chunk that fits - a drained arena, for one - is not passed over for a new arena.
 * Filing puts a chunk at the head of its list (last in, first out). A chunk that replaces
 * another (split off it, merged with it, resized) takes its place in the list when it stays
 * in the same class, and is filed anew otherwise.
 *
 * Lists are doubly linked through index words 0 (next) and 1 (prev), encoded (ta_link_*);
 * word 2 is the checker's mark. The heads and bitmaps live in the heap's control block.
 * verify checks that a chunk's neighbours link back to it (or that the head names it) and
 * verify_insert that the head of the list a size goes to has no predecessor: the links an op
 * is about to write through. Keeps I5: every free chunk is in the list of its class exactly
 * once, the lists' links agree, and a class's bit is set exactly when its list is not empty.
 */
#include "internal.h"

enum {
    SMALL_LIMIT = 1024,   /* chunk sizes below: one class per 16 bytes */
    SMALL_CLASSES = SMALL_LIMIT / 16,
    SUB_BITS = 4,         /* 16 classes per power of two above */
    FIRST_LARGE_LOG = 10, /* log2(SMALL_LIMIT) */
    CLASS_COUNT = SMALL_CLASSES + (64 - FIRST_LARGE_LOG) * (1 << SUB_BITS),
    BITMAP_WORDS = (CLASS_COUNT + 63) / 64,
    FALLBACK_STEPS = 16,  /* chunks of n's own class tried when no class above has one */
    NEXT = 0, PREV = 1, MARK = 2, /* index words */
};

typedef struct seg_state {
    uint64_t summary;               /* bit w: bitmap[w] is not zero */
    uint64_t bitmap[BITMAP_WORDS];  /* bit c: list c is not empty */
    ta_chunk *head[CLASS_COUNT];    /* most recently filed first */
} seg_state;

_Static_assert(sizeof(seg_state) <= TA_INDEX_STATE_SIZE, "segregated state fits");
_Static_assert(BITMAP_WORDS <= 64, "one summary word");

static seg_state *state_of(ta_heap *heap)
{
    return (seg_state *)(void *)heap->index_state;
}

static unsigned class_of(size_t size)
{
    if (size < SMALL_LIMIT)
        return (unsigned)(size >> 4);
    unsigned log = 63u - (unsigned)__builtin_clzll(size);
    unsigned sub = (unsigned)(size >> (log - SUB_BITS)) & ((1u << SUB_BITS) - 1);
    return SMALL_CLASSES + (log - FIRST_LARGE_LOG) * (1u << SUB_BITS) + sub;
}

/* The first class every chunk of which holds `size` bytes. */
static unsigned class_fitting(size_t size)
{
    if (size < SMALL_LIMIT)
        return class_of(size);
    unsigned log = 63u - (unsigned)__builtin_clzll(size);
    size_t width = (size_t)1 << (log - SUB_BITS);
    return class_of((size + width - 1) & ~(width - 1));
}

static void set_bit(seg_state *st, unsigned c)
{
    st->bitmap[c / 64] |= (uint64_t)1 << (c % 64);
    st->summary |= (uint64_t)1 << (c / 64);
}

static void clear_bit(seg_state *st, unsigned c)
{
    st->bitmap[c / 64] &= ~((uint64_t)1 << (c % 64));
    if (st->bitmap[c / 64] == 0)
        st->summary &= ~((uint64_t)1 << (c / 64));
}

/* The first non-empty class at or above `c`, or CLASS_COUNT. */
static unsigned first_class_from(const seg_state *st, unsigned c)
{
    if (c >= CLASS_COUNT)
        return CLASS_COUNT;
    unsigned w = c / 64;
    uint64_t bits = st->bitmap[w] & (~(uint64_t)0 << (c % 64));
    if (bits == 0) {
        uint64_t words = w + 1 < 64 ? st->summary & (~(uint64_t)0 << (w + 1)) : 0;
        if (words == 0)
            return CLASS_COUNT;
        w = (unsigned)__builtin_ctzll(words);
        bits = st->bitmap[w];
    }
    return w * 64 + (unsigned)__builtin_ctzll(bits);
}

static ta_chunk *next_of(const ta_heap *heap, ta_chunk *c) { return ta_link_get(heap, &c->word[NEXT]); }
static ta_chunk *prev_of(const ta_heap *heap, ta_chunk *c) { return ta_link_get(heap, &c->word[PREV]); }

/* ---- find ------------------------------------------------------------------------------ */

/* A chunk named by a head (the control block is trusted): its header must hold. */
static ta_chunk *checked_head(ta_heap *heap, ta_chunk *c, size_t size)
{
    if (!ta_chunk_is_valid(heap, c) || !ta_chunk_is_free(c) || ta_chunk_size(c) < size) {
        ta_index_note(heap, TALLOC_ERROR_CORRUPTED_HEADER, c);
        return NULL;
    }
    return c;
}

/* The first of FALLBACK_STEPS chunks of `size`'s own class that holds it, or NULL. */
static ta_chunk *find_in_own_class(ta_heap *heap, seg_state *st, size_t size)
{
    unsigned c = class_of(size);
    ta_chunk *chunk = st->head[c];
    if (chunk == NULL || checked_head(heap, chunk, 0) == NULL)
        return NULL;
    for (int step = 0; step < FALLBACK_STEPS; step++) {
        if (ta_chunk_size(chunk) >= size)
            return chunk;
        ta_chunk *next = next_of(heap, chunk);
        if (next == NULL)
            return NULL;
        if (!ta_index_is_free_chunk(heap, next) || class_of(ta_chunk_size(next)) != c) {
            ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, &chunk->word[NEXT]);
            return NULL;
        }
        chunk = next;
    }
    return NULL;
}

static ta_chunk *seg_find(ta_heap *heap, size_t size)
{
    seg_state *st = state_of(heap);
    unsigned own = class_of(size), fitting = class_fitting(size);
    ta_chunk *head = st->head[own];
    if (own != fitting && head) {
        if (checked_head(heap, head, 0) == NULL)
            return NULL;
        if (ta_chunk_size(head) >= size)
            return head;
    }
    unsigned c = first_class_from(st, fitting);
    if (c < CLASS_COUNT)
        return checked_head(heap, st->head[c], size);
    return own != fitting ? find_in_own_class(heap, st, size) : NULL;
}

/* ---- verify ---------------------------------------------------------------------------- */

/* `c` names `target` through `field` but `target`'s link back (`back`) does not name `c`:
   the damaged one is the link of the pair whose target is no free chunk. */
static bool blame(ta_heap *heap, uintptr_t *field, ta_chunk *target, uintptr_t *back)
{
    bool is_theirs = !ta_index_is_free_chunk(heap, ta_link_get(heap, back)) &&
                     ta_index_is_free_chunk(heap, target);
    return ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, is_theirs ? back : field);
}

static bool seg_verify(ta_heap *heap, ta_chunk *chunk)
{
    seg_state *st = state_of(heap);
    ta_chunk *prev = prev_of(heap, chunk), *next = next_of(heap, chunk);
    if (prev == NULL) {
        if (st->head[class_of(ta_chunk_size(chunk))] != chunk)
            return ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, &chunk->word[PREV]);
    } else if (!ta_index_is_plausible(heap, prev)) {
        return ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, &chunk->word[PREV]);
    } else if (next_of(heap, prev) != chunk) {
        return blame(heap, &chunk->word[PREV], prev, &prev->word[NEXT]);
    }
    if (next == NULL)
        return true;
    if (!ta_index_is_plausible(heap, next))
        return ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, &chunk->word[NEXT]);
    if (prev_of(heap, next) != chunk)
        return blame(heap, &chunk->word[NEXT], next, &next->word[PREV]);
    return true;
}

static bool seg_verify_insert(ta_heap *heap, size_t size)
{
    ta_chunk *head = state_of(heap)->head[class_of(size)];
    if (head == NULL || prev_of(heap, head) == NULL)
        return true;
    return ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, &head->word[PREV]);
}

/* ---- filing and unfiling (after verify) ------------------------------------------------- */

static bool seg_insert(ta_heap *heap, ta_chunk *chunk, size_t size)
{
    seg_state *st = state_of(heap);
    unsigned c = class_of(size);
    ta_chunk *head = st->head[c];
    ta_link_set(heap, &chunk->word[PREV], NULL);
    ta_link_set(heap, &chunk->word[NEXT], head);
    if (head)
        ta_link_set(heap, &head->word[PREV], chunk);
    else
        set_bit(st, c);
    st->head[c] = chunk;
    return true;
}

static bool seg_remove(ta_heap *heap, ta_chunk *chunk)
{
    seg_state *st = state_of(heap);
    ta_chunk *prev = prev_of(heap, chunk), *next = next_of(heap, chunk);
    if (prev) {
        ta_link_set(heap, &prev->word[NEXT], next);
    } else {
        unsigned c = class_of(ta_chunk_size(chunk));
        st->head[c] = next;
        if (next == NULL)
            clear_bit(st, c);
    }
    if (next)
        ta_link_set(heap, &next->word[PREV], prev);
    return true;
}

/* Within its class the new chunk takes the old one's place in the list; else it is filed
   anew. The old chunk's links are read before the new one's are written: they may overlap. */
static bool seg_replace(ta_heap *heap, ta_chunk *old_chunk, ta_chunk *new_chunk, size_t size)
{
    unsigned c = class_of(size);
    if (class_of(ta_chunk_size(old_chunk)) != c) {
        seg_remove(heap, old_chunk);
        return seg_insert(heap, new_chunk, size);
    }
    if (new_chunk == old_chunk)
        return true;
    ta_chunk *prev = prev_of(heap, old_chunk), *next = next_of(heap, old_chunk);
    ta_link_set(heap, &new_chunk->word[PREV], prev);
    ta_link_set(heap, &new_chunk->word[NEXT], next);
    if (prev)
        ta_link_set(heap, &prev->word[NEXT], new_chunk);
    else
        state_of(heap)->head[c] = new_chunk;
    if (next)
        ta_link_set(heap, &next->word[PREV], new_chunk);
    return true;
}

/* ---- I5 ------------------------------------------------------------------------------- */

TA_NO_COVERAGE static void report(ta_index_check *ck, const void *address, const char *detail)
{
    ck->violation(ck->ctx, TALLOC_I5_FREE_INDEX, address, detail);
}

/* One class's list: every link names a free chunk of the class, back links agree, no chunk
   is met twice (marks), and the list ends. */
TA_NO_COVERAGE static void check_list(ta_heap *heap, ta_index_check *ck, unsigned c, size_t limit)
{
    ta_chunk *prev = NULL;
    for (ta_chunk *chunk = state_of(heap)->head[c]; chunk; chunk = next_of(heap, chunk)) {
        if (((uintptr_t)chunk & (TALLOC_ALIGNMENT - 1)) != 0 ||
            ck->find_arena(heap, ta_chunk_payload(chunk)) == NULL)
            return report(ck, chunk, "free list link points outside the arenas");
        if (!ta_chunk_is_valid(heap, chunk) || !ta_chunk_is_free(chunk))
            return report(ck, chunk, "free list holds a chunk that is not free");
        if (class_of(ta_chunk_size(chunk)) != c)
            return report(ck, chunk, "free chunk filed in the wrong size class");
        if (chunk->word[MARK] == ck->epoch)
            return report(ck, chunk, "free chunk filed twice (or the list has a cycle)");
        if (ck->reached++ > limit)
            return report(ck, chunk, "free list does not end (cycle)");
        if (prev_of(heap, chunk) != prev)
            report(ck, chunk, "free list back link disagrees");
        chunk->word[MARK] = ck->epoch;
        prev = chunk;
    }
}

TA_NO_COVERAGE static void seg_check(ta_heap *heap, ta_index_check *ck)
{
    seg_state *st = state_of(heap);
    size_t limit = heap->stats.mapped_bytes / TA_MIN_CHUNK_SIZE + 1;
    for (unsigned c = 0; c < CLASS_COUNT; c++) {
        bool is_set = (st->bitmap[c / 64] >> (c % 64)) & 1;
        if (is_set != (st->head[c] != NULL))
            report(ck, st->head[c], "size-class bitmap disagrees with its list");
        check_list(heap, ck, c, limit);
    }
    for (unsigned w = 0; w < BITMAP_WORDS; w++)
        if (((st->summary >> w) & 1) != (st->bitmap[w] != 0))
            report(ck, heap, "size-class summary disagrees with the bitmap");
}

TA_NO_COVERAGE static bool seg_is_reached(const ta_heap *heap, const ta_chunk *chunk, const ta_index_check *ck)
{
    (void)heap;
    return chunk->word[MARK] == ck->epoch;
}

static void seg_rekey(ta_heap *heap, ta_chunk *chunk, uint64_t old_secret)
{
    uint64_t secret = heap->secret;
    ta_heap_set_secret(heap, old_secret);
    ta_chunk *next = next_of(heap, chunk), *prev = prev_of(heap, chunk);
    ta_heap_set_secret(heap, secret);
    ta_link_set(heap, &chunk->word[NEXT], next);
    ta_link_set(heap, &chunk->word[PREV], prev);
}

const ta_index_ops ta_index_segregated = {
    .name = "segregated",
    .find = seg_find,
    .verify = seg_verify,
    .verify_insert = seg_verify_insert,
    .insert = seg_insert,
    .remove = seg_remove,
    .replace = seg_replace,
    .check = seg_check,
    .is_reached = seg_is_reached,
    .rekey = seg_rekey,
};
