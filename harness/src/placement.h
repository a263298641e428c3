/*
 * placement.h - the placement oracle's model, shared by placement.c (the arenas, the policies,
 * the ops) and placement_os.c (the maps, unmaps and remaps each op must cause, and the
 * large-block cache). Private to harness/src.
 */
#ifndef TALLOC_HARNESS_PLACEMENT_H
#define TALLOC_HARNESS_PLACEMENT_H

#include "internal.h"

enum {
    CHUNK_HEADER = 16,  /* bytes before each payload */
    MIN_CHUNK = 48,     /* smallest chunk; smallest remainder worth splitting off */
    ARENA_HEADER = 48,  /* bytes before an arena's first chunk */
    ARENA_FENCE = 16,   /* bytes after its last chunk */
    PLAIN_ALIGNMENT = 16,
    MAX_OS_EVENTS = 1024, /* maps, unmaps and remaps one op can cause (a flush may empty many
                            arenas) */
    QUICK_MAX_CHUNK = TALLOC_QUICK_MAX_REQUEST + CHUNK_HEADER, /* largest quick chunk */
    FLUSH_MERGED = 65536, /* a free merging into this many bytes flushes the quick lists */
};

typedef struct segment {
    size_t offset;  /* from the arena base to the chunk header */
    size_t size;    /* chunk bytes, header included */
    bool is_free;
    bool is_quick;  /* allocated to its neighbours, freed into a quick list */
    uint64_t filed; /* free: when it was last filed (segregated fit's order); quick: when it
                       joined its list (the last to join is taken first) */
} segment;

typedef struct model_arena {
    uintptr_t base;
    size_t size;
    bool is_dedicated;
    segment *segments; /* ascending offsets, tiling [ARENA_HEADER, size - ARENA_FENCE) */
    size_t count;
    size_t capacity;
} model_arena;

typedef enum event_kind { EVENT_MAP, EVENT_UNMAP, EVENT_REMAP } event_kind;

typedef struct os_event {
    event_kind kind;
    uintptr_t base;       /* the mapping (a remap: before) */
    size_t size;
    uintptr_t new_base;   /* a remap: after */
    size_t new_size;
    bool is_taken;        /* matched by a prediction */
} os_event;

/* A mapping the large-block cache keeps (large.c's rules, modelled). */
typedef struct kept_mapping {
    uintptr_t base;
    size_t size;
    uint64_t stamp;
} kept_mapping;

enum { KEPT_SLOTS = 8, KEPT_DECAY = 64 };

typedef struct model {
    model_arena *arenas; /* ascending base addresses */
    size_t count;
    size_t capacity;
    size_t arena_size;   /* standard arena bytes, page-rounded as the heap does */
    size_t page_size;
    size_t retained;     /* empty standard arenas the heap keeps */
    TAlloc_policy policy;
    uint64_t next_filed; /* the filing clock */
    os_event events[MAX_OS_EVENTS]; /* maps, unmaps, remaps since the last op was modelled */
    size_t event_count;
    bool is_event_overflow;
    size_t cache_bound;  /* config.large_cache */
    size_t quick_bound;  /* config.quick */
    size_t quick_bytes;  /* payload bytes in the quick lists */
    size_t quick_count;
    size_t fresh_since_flush; /* standard arena bytes mapped since the last flush (SIZE_MAX:
                                 none yet): a flush before a map waits for quick_bytes of them */
    kept_mapping kept[KEPT_SLOTS];
    size_t kept_count;
    uint64_t large_clock;
    th_run *run;         /* for the op being modelled */
    const th_op *op;
    bool is_broken;      /* a difference was reported: stop modelling */
} model;

/* Where a segment is: arena index and segment index (indices survive reallocation). */
typedef struct place {
    size_t arena;
    size_t index;
} place;

/* The outcome the model predicts for an allocation. */
typedef enum alloc_outcome {
    ALLOC_PLACED,  /* a chunk was found or mapped */
    ALLOC_INVALID, /* rejected before any search (EINVAL, unrepresentable size) */
    ALLOC_NO_MAP,  /* a new arena was needed and no map happened (it was refused) */
} alloc_outcome;

/* A difference from the model: a TH_POLICY failure, and the model stops. */
void pl_differ(model *m, const void *address, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t pl_round_up(size_t n, size_t multiple);

/* placement_os.c: the OS events of the current op, matched in any order */
void pl_record(model *m, os_event e);
/* The next unmatched map of `size` bytes: its base (false when there is none). */
bool pl_take_map(model *m, size_t size, uintptr_t *base);
void pl_expect_unmap(model *m, uintptr_t base, size_t size, const char *what);
/* The unmatched remap of the mapping at `base`: its new base (false when there is none). */
bool pl_take_remap(model *m, uintptr_t base, size_t old_size, size_t new_size, uintptr_t *new_base);
void pl_expect_no_more_events(model *m);
/* The large-block cache: a kept mapping made into `size` bytes for a dedicated arena (its
   base), or false; a released dedicated arena's mapping kept (true) or to be unmapped. */
bool pl_cache_take(model *m, size_t size, uintptr_t *base, size_t *got);
bool pl_cache_keep(model *m, uintptr_t base, size_t size);

#endif
