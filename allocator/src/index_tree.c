/*
 * index_tree.c - the first-fit and best-fit free indexes: an AVL tree of the free chunks,
 * stored in the chunks themselves, O(log n) worst case for every operation.
 *
 *   first-fit  keyed by address; every node also holds the largest chunk size of its
 *              subtree, so the lowest-addressed chunk that fits is found on one path down:
 *              the same chunk as a walk of an address-ordered list (the seed's policy).
 *   best-fit   keyed by (size, address): the smallest chunk that fits, the lowest-addressed
 *              of those on a tie.
 *
 * A node is a free chunk's three index words: its left and right children and a word holding
 * the subtree's largest chunk size with the AVL balance (-1, 0, +1, stored plus one) in its
 * low two bits, each encoded with ta_word_*. A child link also carries, in the 20 bits an
 * aligned user-space address leaves zero (the low 4, the top 16), a keyed check of the
 * address and of where it is stored: a link damaged into the address of another valid free
 * chunk - which no back link would catch, a tree having none - still fails. The root lives in
 * the heap's control block.
 *
 * Damage. Every node is reached through a link, so before a node's words are read it must be
 * a valid free chunk inside an arena whose key lies between the bounds its ancestors set, and
 * its balance and largest size must be possible. An op works on copies: each node it reads is
 * loaded once into a small table (the transaction) and written back only when the step ends
 * with ta_index_end(heap, true). A damaged link met anywhere - on the path, at a sibling whose
 * largest size a rotation needs - ends the step with nothing written, and the link that named
 * the damaged node is the one reported. Keeps I5: in-order the nodes are the free chunks in
 * key order, each once; balances and largest sizes are what the subtrees say.
 */
#include "internal.h"

enum {
    LEFT = 0, RIGHT = 1, META = 2, /* index words */
    MAX_DEPTH = 96,                /* AVL height <= 1.44 log2(n + 2): far above any heap */
    TX_BITS = 10,                  /* nodes one step may load: 6 paths of the deepest tree */
    TX_SLOTS = 1 << TX_BITS,
};

/* A node as the current step sees it. */
typedef struct tx_node {
    ta_chunk *chunk;
    ta_chunk *child[2];
    const uintptr_t *src[2]; /* the link in memory each child was read from (NULL: none),
                                moved with the child, so damage is blamed where it is */
    size_t size;     /* the chunk's size (its key with best fit) */
    size_t max;      /* largest chunk size in the subtree */
    uint32_t gen;    /* the step it belongs to */
    int8_t balance;  /* height(right) - height(left) */
    bool is_dirty;   /* written back when the step commits */
    bool is_gone;    /* left the tree (or was moved): never written back */
} tx_node;

typedef struct path {
    tx_node *node[MAX_DEPTH];
    int side[MAX_DEPTH];  /* which child of node[i] the path continues into */
    int depth;
} path;

typedef struct tree_state {
    ta_chunk *root;
    bool is_best_fit;
    bool is_failed;          /* the step met damage: every op fails until it ends */
    uint32_t gen;
    size_t load_count;       /* nodes of the step (loaded or fresh) */
    path path;               /* the last descent: to path_for, unless a change came since */
    const ta_chunk *path_for;
    tx_node *path_end;       /* the node it found (NULL: where it would go) */
    ta_chunk *tx_root;       /* the root as the step sees it */
    size_t dirty_count;
    uint16_t dirty[TX_SLOTS];
    tx_node nodes[TX_SLOTS];
} tree_state;

_Static_assert(sizeof(tree_state) <= TA_INDEX_STATE_SIZE, "tree state fits");

static tree_state *state_of(ta_heap *heap)
{
    return (tree_state *)(void *)heap->index_state;
}

/* ---- keys ------------------------------------------------------------------------------ */

/* Whether a (chunk, size) key orders before another. */
static bool is_before(const tree_state *t, const ta_chunk *a, size_t a_size, const ta_chunk *b,
                      size_t b_size)
{
    if (t->is_best_fit && a_size != b_size)
        return a_size < b_size;
    return a < b;
}

/* ---- links with a check --------------------------------------------------------------- */

#define ADDRESS_BITS ((uintptr_t)0x0000FFFFFFFFFFF0u) /* an aligned 48-bit address */

TA_NO_COVERAGE static uintptr_t link_check(const ta_heap *heap, const ta_chunk *target, const uintptr_t *field)
{
    uint64_t h = ((uint64_t)(uintptr_t)target ^ heap->secret) * 0xD6E8FEB86659FD93u;
    h ^= (uint64_t)(uintptr_t)field * 0x9E3779B97F4A7C15u;
    h *= 0xD6E8FEB86659FD93u;
    h >>= 44; /* 20 bits */
    return (uintptr_t)((h & 15) | (h >> 4) << 48);
}

static void link_put(const ta_heap *heap, uintptr_t *field, const ta_chunk *target)
{
    uintptr_t check = target ? link_check(heap, target, field) : 0;
    ta_word_set(heap, field, (uintptr_t)target | check);
}

/* The chunk the link names, or false when the link fails its check. */
TA_NO_COVERAGE static bool link_take(const ta_heap *heap, const uintptr_t *field, ta_chunk **target)
{
    uintptr_t v = ta_word_get(heap, field);
    *target = (ta_chunk *)(v & ADDRESS_BITS);
    if (v == 0)
        return true;
    return (v & ~ADDRESS_BITS) == link_check(heap, *target, field);
}

/* ---- nodes with a check ------------------------------------------------------------------ */

#define META_CHECK_BITS ((uintptr_t)0xFFFF00000000000Cu) /* the bits size and balance leave */

static uintptr_t node_check(const ta_heap *heap, const ta_chunk *node, uintptr_t left_word,
                            uintptr_t right_word, uintptr_t meta)
{
    uint64_t h = ((uint64_t)(uintptr_t)node ^ heap->secret) * 0x9E3779B97F4A7C15u;
    h = (h ^ left_word) * 0xD6E8FEB86659FD93u;
    h = (h ^ right_word) * 0x9E3779B97F4A7C15u;
    h = (h ^ meta) * 0xD6E8FEB86659FD93u;
    h >>= 46; /* 18 bits */
    return (uintptr_t)((h & 3) << 2 | (h >> 2) << 48);
}

/* A node's words decoded and checked: false, with the damaged word in *bad, when a link or
   the node fails its check. */
TA_NO_COVERAGE static bool node_take(const ta_heap *heap, const ta_chunk *chunk, ta_chunk **left,
                                     ta_chunk **right, uintptr_t *meta, const uintptr_t **bad)
{
    if (!link_take(heap, &chunk->word[LEFT], left)) {
        *bad = &chunk->word[LEFT];
        return false;
    }
    if (!link_take(heap, &chunk->word[RIGHT], right)) {
        *bad = &chunk->word[RIGHT];
        return false;
    }
    uintptr_t m = ta_word_get(heap, &chunk->word[META]);
    *meta = m & ~META_CHECK_BITS;
    uintptr_t check = node_check(heap, chunk, ta_word_get(heap, &chunk->word[LEFT]),
                                 ta_word_get(heap, &chunk->word[RIGHT]), *meta);
    if ((m & META_CHECK_BITS) != check) {
        *bad = &chunk->word[META];
        return false;
    }
    return true;
}

static void node_put(const ta_heap *heap, ta_chunk *chunk, const ta_chunk *left,
                     const ta_chunk *right, uintptr_t meta)
{
    link_put(heap, &chunk->word[LEFT], left);
    link_put(heap, &chunk->word[RIGHT], right);
    uintptr_t check = node_check(heap, chunk, ta_word_get(heap, &chunk->word[LEFT]),
                                 ta_word_get(heap, &chunk->word[RIGHT]), meta);
    ta_word_set(heap, &chunk->word[META], meta | check);
}

/* ---- the transaction ---------------------------------------------------------------------- */

static size_t slot_of(const ta_chunk *chunk)
{
    return (size_t)(((uintptr_t)chunk * 0x9E3779B97F4A7C15u) >> (64 - TX_BITS));
}

/* The step's copy of `chunk`, or a free slot for it (gen differs). */
static tx_node *slot_for(tree_state *t, const ta_chunk *chunk)
{
    for (size_t i = slot_of(chunk);; i = (i + 1) & (TX_SLOTS - 1)) {
        tx_node *n = &t->nodes[i];
        if (n->gen != t->gen || n->chunk == chunk)
            return n;
    }
}

/* A step never needs this many nodes unless damaged links make it wander. */
static bool is_tx_full(const tree_state *t)
{
    return t->load_count >= TX_SLOTS / 2;
}

static void mark_dirty(tree_state *t, tx_node *n)
{
    if (!n->is_dirty) {
        n->is_dirty = true;
        t->dirty[t->dirty_count++] = (uint16_t)(n - t->nodes);
    }
}

static bool fail(ta_heap *heap, tree_state *t, const void *address)
{
    t->is_failed = true;
    return ta_index_note(heap, TALLOC_ERROR_CORRUPTED_FREE_LIST, address);
}

/*
 * The node `chunk` named by the link `field` (NULL: the root), loaded and validated; NULL
 * (and the step failed) when it is damaged. `lo`/`hi` bound its key (NULL: unbounded).
 */
static tx_node *load(ta_heap *heap, tree_state *t, ta_chunk *chunk, const uintptr_t *field)
{
    tx_node *n = slot_for(t, chunk);
    if (n->gen == t->gen)
        return n;
    /* a link that passed its check names a chunk that was a node when the link was written,
       so it lies in an arena: only its header is checked */
    if (is_tx_full(t) || ((uintptr_t)chunk & (TALLOC_ALIGNMENT - 1)) != 0 ||
        !ta_chunk_is_valid(heap, chunk) || !ta_chunk_is_free(chunk)) {
        if (field == NULL) /* the root pointer is trusted: its chunk's header is damaged */
            ta_index_note(heap, TALLOC_ERROR_CORRUPTED_HEADER, chunk);
        fail(heap, t, field ? (const void *)field : (const void *)chunk);
        return NULL;
    }
    ta_chunk *left, *right;
    uintptr_t meta;
    const uintptr_t *bad;
    if (!node_take(heap, chunk, &left, &right, &meta, &bad)) {
        fail(heap, t, bad);
        return NULL;
    }
    size_t size = ta_chunk_size(chunk);
    size_t max = meta & ~(uintptr_t)15;
    int balance = (int)(meta & 3) - 1;
    if (balance > 1 || (!t->is_best_fit && max < size)) {
        fail(heap, t, &chunk->word[META]);
        return NULL;
    }
    *n = (tx_node){.chunk = chunk, .child = {left, right},
                   .src = {&chunk->word[LEFT], &chunk->word[RIGHT]}, .size = size, .max = max,
                   .gen = t->gen, .balance = (int8_t)balance};
    t->load_count++;
    return n;
}

/* A node for a chunk joining the tree: its words in memory are not read. */
static tx_node *fresh(tree_state *t, ta_chunk *chunk, size_t size)
{
    tx_node *n = slot_for(t, chunk);
    *n = (tx_node){.chunk = chunk, .size = size, .max = t->is_best_fit ? 0 : size, .gen = t->gen};
    t->load_count++;
    mark_dirty(t, n);
    return n;
}

/* The child of `n` on `side`, loaded (NULL when there is none or it is damaged). The child's
   key must order on the right side of `n`. */
static tx_node *child(ta_heap *heap, tree_state *t, tx_node *n, int side)
{
    ta_chunk *c = n->child[side];
    if (c == NULL || t->is_failed)
        return NULL;
    const uintptr_t *src = n->src[side];
    tx_node *k = load(heap, t, c, src);
    if (k == NULL)
        return NULL;
    bool is_ordered = side == LEFT ? is_before(t, k->chunk, k->size, n->chunk, n->size)
                                   : is_before(t, n->chunk, n->size, k->chunk, k->size);
    if (!is_ordered) {
        fail(heap, t, src ? (const void *)src : (const void *)c);
        return NULL;
    }
    return k;
}

static void tree_begin(ta_heap *heap)
{
    tree_state *t = state_of(heap);
    if (++t->gen == 0) { /* wrapped: no slot may look current */
        for (size_t i = 0; i < TX_SLOTS; i++)
            t->nodes[i].gen = 0;
        t->gen = 1;
    }
    t->is_failed = false;
    t->dirty_count = 0;
    t->load_count = 0;
    t->tx_root = t->root;
    t->path_for = NULL;
}

static void tree_end(ta_heap *heap, bool is_commit)
{
    tree_state *t = state_of(heap);
    if (is_commit && !t->is_failed) {
        for (size_t i = 0; i < t->dirty_count; i++) {
            tx_node *n = &t->nodes[t->dirty[i]];
            if (n->is_gone)
                continue;
            node_put(heap, n->chunk, n->child[LEFT], n->child[RIGHT],
                     n->max | (uintptr_t)(n->balance + 1));
        }
        t->root = t->tx_root;
    }
    tree_begin(heap); /* the copies are stale now either way */
}

/* ---- the largest size of a subtree ------------------------------------------------------- */

/* Recomputes the largest size of n's subtree: FIX_FAILED on damage, else whether it changed. */
enum { FIX_FAILED = -1, FIX_SAME = 0, FIX_CHANGED = 1 };

static int fix_max(ta_heap *heap, tree_state *t, tx_node *n)
{
    if (t->is_best_fit) /* best fit orders by size: no largest size to keep */
        return t->is_failed ? FIX_FAILED : FIX_SAME;
    size_t max = n->size;
    for (int side = LEFT; side <= RIGHT; side++) {
        tx_node *k = child(heap, t, n, side);
        if (t->is_failed)
            return FIX_FAILED;
        if (k && k->max > max)
            max = k->max;
    }
    if (max == n->max)
        return FIX_SAME;
    n->max = max;
    mark_dirty(t, n);
    return FIX_CHANGED;
}

/* ---- paths ------------------------------------------------------------------------------ */


/* Makes `chunk` (read from the link `src`, NULL when none) the child of node[at] on the path
   (at < 0: the root). */
static void set_child(tree_state *t, path *p, int at, ta_chunk *chunk, const uintptr_t *src)
{
    if (at < 0) {
        t->tx_root = chunk;
        return;
    }
    p->node[at]->child[p->side[at]] = chunk;
    p->node[at]->src[p->side[at]] = src;
    mark_dirty(t, p->node[at]);
}

/* The path from the root to where `chunk` (key size) is or would be, in t->path; the found
   node (or NULL). On damage: NULL with the step failed. The last descent is kept until the
   tree changes: verify, then remove or replace of the same chunk, descend once. */
static tx_node *descend(ta_heap *heap, tree_state *t, const ta_chunk *chunk, size_t size)
{
    if (t->path_for == chunk && chunk != NULL)
        return t->path_end;
    path *p = &t->path;
    p->depth = 0;
    t->path_for = NULL;
    if (t->tx_root == NULL) {
        t->path_for = chunk;
        return t->path_end = NULL;
    }
    tx_node *n = load(heap, t, t->tx_root, NULL);
    while (n) {
        if (n->chunk == chunk)
            break;
        if (p->depth == MAX_DEPTH) {
            fail(heap, t, n->chunk);
            return NULL;
        }
        int side = is_before(t, chunk, size, n->chunk, n->size) ? LEFT : RIGHT;
        p->node[p->depth] = n;
        p->side[p->depth++] = side;
        n = child(heap, t, n, side);
    }
    if (t->is_failed)
        return NULL;
    t->path_for = chunk;
    return t->path_end = n;
}

/* A change to the tree: the kept descent no longer holds. */
static void forget_path(tree_state *t)
{
    t->path_for = NULL;
}

/* ---- rotations ---------------------------------------------------------------------------- */

/* Rotates the subtree at `a` towards `side` (its child on the other side rises); returns the
   new subtree root. Balances follow the AVL rules for a single rotation. */
static tx_node *rotate(ta_heap *heap, tree_state *t, tx_node *a, int side)
{
    int other = 1 - side;
    tx_node *b = child(heap, t, a, other);
    if (b == NULL)
        return NULL;
    a->child[other] = b->child[side];
    a->src[other] = b->src[side];
    b->child[side] = a->chunk;
    b->src[side] = NULL;
    int sign = other == RIGHT ? 1 : -1; /* b leans this way when it was the heavy child */
    if (b->balance == sign) {
        a->balance = 0;
        b->balance = 0;
    } else { /* b balanced (deletion only) */
        a->balance = (int8_t)sign;
        b->balance = (int8_t)-sign;
    }
    mark_dirty(t, a);
    mark_dirty(t, b);
    if (fix_max(heap, t, a) == FIX_FAILED || fix_max(heap, t, b) == FIX_FAILED)
        return NULL;
    return b;
}

/* Double rotation at `a`: its child on `other` leans towards `side`; that grandchild rises. */
static tx_node *rotate_double(ta_heap *heap, tree_state *t, tx_node *a, int side)
{
    int other = 1 - side;
    tx_node *b = child(heap, t, a, other);
    tx_node *c = b ? child(heap, t, b, side) : NULL;
    if (c == NULL)
        return NULL;
    a->child[other] = c->child[side];
    a->src[other] = c->src[side];
    b->child[side] = c->child[other];
    b->src[side] = c->src[other];
    c->child[side] = a->chunk;
    c->child[other] = b->chunk;
    c->src[side] = c->src[other] = NULL;
    int sign = other == RIGHT ? 1 : -1;
    a->balance = (int8_t)(c->balance == sign ? -sign : 0);
    b->balance = (int8_t)(c->balance == -sign ? sign : 0);
    c->balance = 0;
    mark_dirty(t, a);
    mark_dirty(t, b);
    mark_dirty(t, c);
    if (fix_max(heap, t, a) == FIX_FAILED || fix_max(heap, t, b) == FIX_FAILED ||
        fix_max(heap, t, c) == FIX_FAILED)
        return NULL;
    return c;
}

/* Rebalances `a`, whose balance is +-2; returns the subtree's new root and whether its height
   shrank (`*is_shorter`) compared with before the change that unbalanced it. */
static tx_node *rebalance(ta_heap *heap, tree_state *t, tx_node *a, bool *is_shorter)
{
    int heavy = a->balance > 0 ? RIGHT : LEFT;
    int sign = heavy == RIGHT ? 1 : -1;
    tx_node *b = child(heap, t, a, heavy);
    if (b == NULL)
        return NULL;
    *is_shorter = b->balance != 0;
    if (b->balance == -sign)
        return rotate_double(heap, t, a, 1 - heavy);
    return rotate(heap, t, a, 1 - heavy);
}

/* ---- insert -------------------------------------------------------------------------------- */

/* Walks back up `p` after the subtree under node[depth - 1] grew by one level (`is_taller`) or
   only changed its largest size: balances, rotations, largest sizes, as far up as anything
   changes. */
static bool retrace_insert(ta_heap *heap, tree_state *t, path *p, bool is_taller)
{
    for (int i = p->depth - 1; i >= 0; i--) {
        tx_node *n = p->node[i];
        if (is_taller) {
            n->balance = (int8_t)(n->balance + (p->side[i] == RIGHT ? 1 : -1));
            mark_dirty(t, n);
            is_taller = n->balance != 0;
            if (n->balance == 2 || n->balance == -2) {
                bool ignored;
                tx_node *top = rebalance(heap, t, n, &ignored);
                if (top == NULL)
                    return false;
                set_child(t, p, i - 1, top->chunk, NULL);
                is_taller = false;
                continue;
            }
        }
        int fixed = fix_max(heap, t, n);
        if (fixed == FIX_FAILED)
            return false;
        if (fixed == FIX_SAME && !is_taller)
            break; /* nothing above changes */
    }
    return !t->is_failed;
}

static bool tree_insert(ta_heap *heap, ta_chunk *chunk, size_t size)
{
    tree_state *t = state_of(heap);
    if (t->is_failed || descend(heap, t, chunk, size) != NULL || t->is_failed)
        return t->is_failed ? false : fail(heap, t, chunk); /* already filed: a damaged tree */
    path *p = &t->path;
    forget_path(t);
    fresh(t, chunk, size);
    set_child(t, p, p->depth - 1, chunk, NULL);
    return retrace_insert(heap, t, p, true);
}

/* ---- remove ------------------------------------------------------------------------------- */

/* Walks back up `p` after the subtree under node[depth - 1] lost one level (`is_shorter`),
   as far up as anything changes, and at least to node[floor]. */
static bool retrace_remove(ta_heap *heap, tree_state *t, path *p, bool is_shorter, int floor)
{
    for (int i = p->depth - 1; i >= 0; i--) {
        tx_node *n = p->node[i];
        if (is_shorter) {
            n->balance = (int8_t)(n->balance - (p->side[i] == RIGHT ? 1 : -1));
            mark_dirty(t, n);
            is_shorter = n->balance == 0;
            if (n->balance == 2 || n->balance == -2) {
                tx_node *top = rebalance(heap, t, n, &is_shorter);
                if (top == NULL)
                    return false;
                set_child(t, p, i - 1, top->chunk, NULL);
                continue;
            }
        }
        int fixed = fix_max(heap, t, n);
        if (fixed == FIX_FAILED)
            return false;
        if (fixed == FIX_SAME && !is_shorter && i <= floor)
            break; /* nothing above changes */
    }
    return !t->is_failed;
}

/* Takes node `n`, the child of the path's last node (or the root), out of the tree. */
static bool unlink_node(ta_heap *heap, tree_state *t, tx_node *n, path *p)
{
    tx_node *left = child(heap, t, n, LEFT), *right = child(heap, t, n, RIGHT);
    if (t->is_failed)
        return false;
    n->is_gone = true;
    if (left == NULL || right == NULL) {
        int side = left ? LEFT : RIGHT;
        set_child(t, p, p->depth - 1, n->child[side], n->src[side]);
        return retrace_remove(heap, t, p, true, p->depth);
    }
    /* two children: the successor s (leftmost of the right subtree) takes n's place */
    int at = p->depth;
    p->node[p->depth] = n; /* replaced by s below */
    p->side[p->depth++] = RIGHT;
    tx_node *s = right;
    for (tx_node *k; (k = child(heap, t, s, LEFT)) != NULL; s = k) {
        if (p->depth == MAX_DEPTH)
            return fail(heap, t, s->chunk);
        p->node[p->depth] = s;
        p->side[p->depth++] = LEFT;
    }
    if (t->is_failed)
        return false;
    if (s != right) { /* s's parent takes s's right subtree; s takes n's right */
        set_child(t, p, p->depth - 1, s->child[RIGHT], s->src[RIGHT]);
        s->child[RIGHT] = n->child[RIGHT];
        s->src[RIGHT] = n->src[RIGHT];
    }
    s->child[LEFT] = n->child[LEFT];
    s->src[LEFT] = n->src[LEFT];
    s->balance = n->balance;
    s->max = n->max; /* recomputed on the way up, which reaches s's new place */
    mark_dirty(t, s);
    p->node[at] = s;
    set_child(t, p, at - 1, s->chunk, NULL);
    return retrace_remove(heap, t, p, true, at);
}

static bool tree_remove(ta_heap *heap, ta_chunk *chunk)
{
    tree_state *t = state_of(heap);
    tx_node *n = t->is_failed ? NULL : descend(heap, t, chunk, ta_chunk_size(chunk));
    if (n == NULL)
        return t->is_failed ? false : fail(heap, t, chunk); /* not in the tree */
    forget_path(t);
    return unlink_node(heap, t, n, &t->path);
}

/* ---- replace ------------------------------------------------------------------------------ */

static bool tree_replace(ta_heap *heap, ta_chunk *old_chunk, ta_chunk *new_chunk, size_t size)
{
    tree_state *t = state_of(heap);
    if (t->is_best_fit) /* the key changes with the size */
        return tree_remove(heap, old_chunk) && tree_insert(heap, new_chunk, size);
    tx_node *n = t->is_failed ? NULL : descend(heap, t, old_chunk, ta_chunk_size(old_chunk));
    if (n == NULL)
        return t->is_failed ? false : fail(heap, t, old_chunk);
    path *p = &t->path;
    forget_path(t);
    /* same place in address order: the node moves and changes size, the shape stays */
    tx_node copy = *n;
    if (new_chunk != old_chunk) {
        n->is_gone = true;
        n = fresh(t, new_chunk, size);
        for (int side = LEFT; side <= RIGHT; side++) {
            n->child[side] = copy.child[side];
            n->src[side] = copy.src[side];
        }
        n->balance = copy.balance;
        set_child(t, p, p->depth - 1, new_chunk, NULL);
    }
    n->size = size;
    mark_dirty(t, n);
    if (fix_max(heap, t, n) == FIX_FAILED)
        return false;
    return retrace_insert(heap, t, p, false);
}

/* ---- find and verify ---------------------------------------------------------------------- */

static ta_chunk *first_fit_find(ta_heap *heap, tree_state *t, size_t size)
{
    tx_node *n = t->tx_root ? load(heap, t, t->tx_root, NULL) : NULL;
    if (n == NULL || n->max < size)
        return NULL;
    for (int depth = 0; n && depth < MAX_DEPTH; depth++) {
        tx_node *left = child(heap, t, n, LEFT);
        if (t->is_failed)
            return NULL;
        if (left && left->max >= size) {
            n = left;
            continue;
        }
        if (n->size >= size)
            return n->chunk;
        n = child(heap, t, n, RIGHT);
        if (n && n->max < size) { /* the largest sizes above promised one */
            fail(heap, t, &n->chunk->word[META]);
            return NULL;
        }
    }
    if (!t->is_failed)
        fail(heap, t, t->tx_root);
    return NULL;
}

static ta_chunk *best_fit_find(ta_heap *heap, tree_state *t, size_t size)
{
    ta_chunk *best = NULL;
    tx_node *n = t->tx_root ? load(heap, t, t->tx_root, NULL) : NULL;
    for (int depth = 0; n && depth < MAX_DEPTH; depth++) {
        if (n->size >= size) {
            best = n->chunk;
            if (n->size == size && n->child[LEFT] == NULL)
                break;
            n = child(heap, t, n, LEFT);
        } else {
            n = child(heap, t, n, RIGHT);
        }
    }
    return t->is_failed ? NULL : best;
}

static ta_chunk *tree_find(ta_heap *heap, size_t size)
{
    tree_state *t = state_of(heap);
    if (t->is_failed)
        return NULL;
    return t->is_best_fit ? best_fit_find(heap, t, size) : first_fit_find(heap, t, size);
}

/* The path to `chunk` and its children are intact. */
static bool tree_verify(ta_heap *heap, ta_chunk *chunk)
{
    tree_state *t = state_of(heap);
    tx_node *n = t->is_failed ? NULL : descend(heap, t, chunk, ta_chunk_size(chunk));
    if (n == NULL)
        return t->is_failed ? false : fail(heap, t, chunk);
    child(heap, t, n, LEFT);
    child(heap, t, n, RIGHT);
    return !t->is_failed;
}

static bool tree_verify_insert(ta_heap *heap, size_t size)
{
    (void)heap, (void)size; /* insert itself fails before anything is written */
    return true;
}

/* ---- I5 ---------------------------------------------------------------------------------- */

typedef struct tree_check {
    ta_heap *heap;
    ta_index_check *ck;
    const ta_chunk *last;   /* the previous node in key order */
    size_t last_size;
    size_t limit;
    bool is_broken;
} tree_check;

TA_NO_COVERAGE static void report(tree_check *tc, const void *address, const char *detail)
{
    tc->ck->violation(tc->ck->ctx, TALLOC_I5_FREE_INDEX, address, detail);
}

/* Checks the subtree `chunk` named by `field`; returns its height, its largest size in *max. */
TA_NO_COVERAGE static int check_subtree(tree_check *tc, ta_chunk *chunk, const uintptr_t *field, int depth,
                         size_t *max)
{
    ta_heap *heap = tc->heap;
    *max = 0;
    if (chunk == NULL || tc->is_broken)
        return 0;
    if (depth >= MAX_DEPTH || ++tc->ck->reached > tc->limit) {
        report(tc, chunk, "free tree too deep (cycle)");
        tc->is_broken = true;
        return 0;
    }
    if (((uintptr_t)chunk & (TALLOC_ALIGNMENT - 1)) != 0 ||
        tc->ck->find_arena(heap, ta_chunk_payload(chunk)) == NULL ||
        !ta_chunk_is_valid(heap, chunk) || !ta_chunk_is_free(chunk)) {
        report(tc, field ? (const void *)field : (const void *)chunk,
               "free tree link names no free chunk");
        tc->is_broken = true;
        return 0;
    }
    size_t left_max, right_max, size = ta_chunk_size(chunk);
    ta_chunk *left, *right;
    uintptr_t meta;
    const uintptr_t *bad;
    if (!node_take(heap, chunk, &left, &right, &meta, &bad)) {
        report(tc, bad, "free tree node fails its check");
        tc->is_broken = true;
        return 0;
    }
    int lh = check_subtree(tc, left, &chunk->word[LEFT], depth + 1, &left_max);
    if (tc->last && !is_before(state_of(heap), tc->last, tc->last_size, chunk, size))
        report(tc, chunk, "free tree out of key order");
    tc->last = chunk;
    tc->last_size = size;
    int rh = check_subtree(tc, right, &chunk->word[RIGHT], depth + 1, &right_max);
    *max = size > left_max ? size : left_max;
    *max = right_max > *max ? right_max : *max;
    if (tc->is_broken)
        return 0;
    if ((int)(meta & 3) - 1 != rh - lh)
        report(tc, chunk, "free tree balance disagrees with the subtree heights");
    if (!state_of(heap)->is_best_fit && (meta & ~(uintptr_t)15) != *max)
        report(tc, chunk, "free tree largest size disagrees with the subtree");
    return 1 + (lh > rh ? lh : rh);
}

TA_NO_COVERAGE static void tree_check_all(ta_heap *heap, ta_index_check *ck)
{
    tree_check tc = {heap, ck, NULL, 0, heap->stats.mapped_bytes / TA_MIN_CHUNK_SIZE + 1, false};
    size_t max;
    check_subtree(&tc, state_of(heap)->root, NULL, 0, &max);
}

/* Whether a search for `chunk`'s key reaches it, every node on the way a valid free chunk. */
TA_NO_COVERAGE static bool tree_is_reached(const ta_heap *heap, const ta_chunk *chunk, const ta_index_check *ck)
{
    const tree_state *t = (const tree_state *)(const void *)heap->index_state;
    size_t size = ta_chunk_size(chunk);
    ta_chunk *n = t->root;
    for (int depth = 0; n && depth < MAX_DEPTH; depth++) {
        if (((uintptr_t)n & (TALLOC_ALIGNMENT - 1)) != 0 ||
            ck->find_arena(heap, ta_chunk_payload(n)) == NULL || !ta_chunk_is_valid(heap, n) ||
            !ta_chunk_is_free(n))
            return false;
        if (n == chunk)
            return true;
        int side = is_before(t, chunk, size, n, ta_chunk_size(n)) ? LEFT : RIGHT;
        ta_chunk *children[2];
        uintptr_t meta;
        const uintptr_t *bad;
        if (!node_take(heap, n, &children[LEFT], &children[RIGHT], &meta, &bad))
            return false;
        n = children[side];
    }
    return false;
}

/* A node that fails its check under the old secret keeps its words' bits as they are, so it
   fails under the new one too. */
static void tree_rekey(ta_heap *heap, ta_chunk *chunk, uint64_t old_secret)
{
    uint64_t secret = heap->secret;
    ta_heap_set_secret(heap, old_secret);
    uintptr_t raw[3];
    for (int i = 0; i < 3; i++)
        raw[i] = ta_word_get(heap, &chunk->word[i]);
    ta_chunk *left, *right;
    uintptr_t meta;
    const uintptr_t *bad;
    bool is_intact = node_take(heap, chunk, &left, &right, &meta, &bad);
    ta_heap_set_secret(heap, secret);
    if (is_intact) {
        node_put(heap, chunk, left, right, meta);
        return;
    }
    for (int i = 0; i < 3; i++)
        ta_word_set(heap, &chunk->word[i], raw[i]);
}

static void first_fit_init(ta_heap *heap)
{
    state_of(heap)->is_best_fit = false;
    tree_begin(heap);
}

static void best_fit_init(ta_heap *heap)
{
    state_of(heap)->is_best_fit = true;
    tree_begin(heap);
}

#define TREE_OPS(policy_name, init_fn)                                                         \
    {                                                                                          \
        .name = policy_name, .init = init_fn, .find = tree_find, .verify = tree_verify,        \
        .verify_insert = tree_verify_insert, .insert = tree_insert, .remove = tree_remove,     \
        .replace = tree_replace, .begin = tree_begin, .end = tree_end,                         \
        .check = tree_check_all, .is_reached = tree_is_reached, .rekey = tree_rekey,           \
    }

const ta_index_ops ta_index_first_fit = TREE_OPS("first-fit", first_fit_init);
const ta_index_ops ta_index_best_fit = TREE_OPS("best-fit", best_fit_init);
