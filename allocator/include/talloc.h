/*
 * talloc.h - the public interface of TAlloc, a general-purpose allocator.
 *
 * Three groups of calls:
 *   - the C allocation family on the process-wide default heap (TAlloc_malloc ...);
 *   - explicit heaps, created from a TAlloc_config, with a per-heap form of every call
 *     (TAlloc_heap_malloc ...), used by the fuzz and stress harness for deterministic runs;
 *   - introspection: walk every arena and chunk, check the heap invariants I1..I6, read stats.
 *
 * Errors follow C: NULL plus errno (ENOMEM, EINVAL). Misuse (double free, foreign or interior
 * pointers, corrupted headers) is reported as one line "talloc: <what> <address>" on stderr,
 * then abort(), unless the heap's config installs an error handler.
 *
 * All calls are thread-safe. The installed header lives in <tallocator/talloc.h>; inside the
 * source tree "talloc.h" keeps working, as in the original proof of concept.
 */
#ifndef TALLOC_H
#define TALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; TAlloc_version() gives the library's. */
#define TALLOC_VERSION_MAJOR 0
#define TALLOC_VERSION_MINOR 3
#define TALLOC_VERSION_PATCH 0
#define TALLOC_VERSION_STRING "0.3.0"
#define TALLOC_VERSION (TALLOC_VERSION_MAJOR * 10000 + TALLOC_VERSION_MINOR * 100 + TALLOC_VERSION_PATCH)

/* Attributes that let the compiler know what a call returns: a fresh block (malloc), its size
   in bytes from the arguments numbered (alloc_size). Code that writes past a request on
   purpose (a test of the allocator's checks) defines TALLOC_NO_ALLOC_ATTRIBUTES first. There
   is no alloc_align: a call with an alignment that is not a power of two is legal (it fails
   with EINVAL), the attribute would claim that alignment, and clang 14 -O3 crashed compiling
   such calls (test_api's) with it. */
#if defined(__GNUC__)
#define TALLOC_API __attribute__((visibility("default")))
#define TALLOC_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#define TALLOC_MUST_USE __attribute__((warn_unused_result))
#else
#define TALLOC_API
#define TALLOC_MALLOC_LIKE
#define TALLOC_MUST_USE
#endif
#if defined(__GNUC__) && !defined(TALLOC_NO_ALLOC_ATTRIBUTES)
#define TALLOC_SIZE(n) __attribute__((alloc_size(n)))
#define TALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#else
#define TALLOC_SIZE(n)
#define TALLOC_SIZE2(n, m)
#endif

/* TALLOC_VERSION of the library in use ("0.2.0" for TALLOC_VERSION_STRING). */
TALLOC_API int TAlloc_version(void);
TALLOC_API const char *TAlloc_version_string(void);

/* Alignment of every pointer TAlloc returns, in bytes. */
#define TALLOC_ALIGNMENT 16
/* Size of a standard arena when the config leaves it 0, in bytes (the proof of concept's). */
#define TALLOC_DEFAULT_ARENA_SIZE ((size_t)16384000)
/* Bytes of large-block mappings a heap keeps for reuse by default (config.large_cache). */
#define TALLOC_DEFAULT_LARGE_CACHE ((size_t)64 << 20)
/* Payload bytes of freed small blocks a heap keeps in its quick lists by default
   (config.quick), and the largest request a quick list serves. */
#define TALLOC_DEFAULT_QUICK ((size_t)1 << 20)
/* Payload bytes the quarantine holds at most (config.quarantine_bytes). */
#define TALLOC_DEFAULT_QUARANTINE_BYTES ((size_t)32 << 20)
#define TALLOC_QUICK_MAX_REQUEST ((size_t)1024)
/* Free-chunk bytes at which a heap purges a free chunk's pages by default (config.purge). */
#define TALLOC_DEFAULT_PURGE ((size_t)4 << 20)

/* ---- The C allocation family, on the default heap ------------------------------------- */

TALLOC_API TALLOC_MALLOC_LIKE TALLOC_SIZE(1) void *TAlloc_malloc(size_t size);
TALLOC_API void TAlloc_free(void *ptr);
TALLOC_API TALLOC_MALLOC_LIKE TALLOC_SIZE2(1, 2) void *TAlloc_calloc(size_t count, size_t size);
TALLOC_API TALLOC_MUST_USE TALLOC_SIZE(2) void *TAlloc_realloc(void *ptr, size_t size);
TALLOC_API TALLOC_MALLOC_LIKE TALLOC_SIZE(2) void *TAlloc_aligned_alloc(size_t alignment,
                                                                                size_t size);
TALLOC_API int TAlloc_posix_memalign(void **out, size_t alignment, size_t size);
TALLOC_API size_t TAlloc_usable_size(const void *ptr);
/* Prints every arena and chunk of the default heap to stdout (format: see README). */
TALLOC_API void TAlloc_debug_print(void);

/* ---- Heaps and their configuration ---------------------------------------------------- */

typedef struct TAlloc_heap TAlloc_heap;

/* Where a free chunk for a request is found (README "Placement policies"). */
typedef enum TAlloc_policy {
    TALLOC_POLICY_SEGREGATED = 0, /* segregated size classes with bitmaps, O(1): the default */
    TALLOC_POLICY_FIRST_FIT = 1,  /* lowest-addressed free chunk that fits, O(log n) */
    TALLOC_POLICY_BEST_FIT = 2,   /* smallest free chunk that fits, lowest address on ties */
    TALLOC_POLICY_COUNT
} TAlloc_policy;

/* "segregated", "first-fit", "best-fit" (the TALLOC_OPTIONS policy= values). */
TALLOC_API const char *TAlloc_policy_name(TAlloc_policy policy);
/* The policy `length` bytes at `name` name (or the older "first", "best"); false if none. */
TALLOC_API int TAlloc_policy_parse(const char *name, size_t length, TAlloc_policy *out);

/*
 * The OS layer: the only way a heap obtains and returns memory. map() returns `size` bytes
 * (a multiple of TAlloc_page_size()), page-aligned and zero-filled, or NULL on failure;
 * unmap() returns exactly what one map(), map_aligned() or remap() returned. Tests install
 * their own functions to make chosen maps fail. Every entry after ctx is optional (NULL):
 *   map_aligned     as map, at an address that is a multiple of `alignment` (a power of two
 *                   above the page size). Standard arenas are mapped with it, so the arena
 *                   that owns a pointer is found in O(1); without it they are found by a
 *                   binary search over the arenas.
 *   remap           resizes a mapping, keeping min(old_size, new_size) bytes of its contents
 *                   (new bytes zero), possibly at a new address; returns the address or NULL
 *                   (the old mapping intact). Large blocks grow with it instead of a copy, and
 *                   the large-block cache resizes a kept mapping to fit; without it they copy
 *                   and the cache reuses only mappings of the exact size.
 *   protect         makes whole pages inside a mapping inaccessible; 0 on success. The guard
 *                   option needs it (without it no guard page is placed).
 *   map_metadata,   pages for the heap's own tables (its control block, the arena registry,
 *   unmap_metadata  the quarantine ring, the debug print's text). Both or neither; when
 *                   NULL, map and unmap serve them too.
 *   purge           tells the OS that whole pages inside a mapping hold nothing the heap
 *                   needs: it may take them back, and they read as zero or as before; 0 on
 *                   success. The heap purges the inside of large free chunks with it (the
 *                   default layer: madvise MADV_DONTNEED); without it freed pages stay.
 */
typedef struct TAlloc_os {
    void *(*map)(void *ctx, size_t size);
    void (*unmap)(void *ctx, void *address, size_t size);
    void *ctx;
    void *(*map_aligned)(void *ctx, size_t size, size_t alignment);
    void *(*remap)(void *ctx, void *address, size_t old_size, size_t new_size);
    int (*protect)(void *ctx, void *address, size_t size);
    void *(*map_metadata)(void *ctx, size_t size);
    void (*unmap_metadata)(void *ctx, void *address, size_t size);
    int (*purge)(void *ctx, void *address, size_t size);
} TAlloc_os;

/* The mmap/munmap/mremap/mprotect layer every heap uses unless its config names another. */
TALLOC_API const TAlloc_os *TAlloc_os_default(void);
TALLOC_API size_t TAlloc_page_size(void);

/* Kinds of misuse and corruption TAlloc detects. */
typedef enum TAlloc_error {
    TALLOC_ERROR_NONE = 0,
    TALLOC_ERROR_DOUBLE_FREE,        /* "double free": free of a chunk that is already free */
    TALLOC_ERROR_USE_AFTER_FREE,     /* "use after free": realloc/usable_size of a free chunk */
    TALLOC_ERROR_FOREIGN_POINTER,    /* "foreign pointer": not inside any arena of the heap */
    TALLOC_ERROR_MISALIGNED_POINTER, /* "misaligned pointer": inside an arena, not 16-aligned */
    TALLOC_ERROR_INTERIOR_POINTER,   /* "interior pointer": inside a chunk, not its start */
    TALLOC_ERROR_CORRUPTED_HEADER,   /* "corrupted header": a chunk header fails its check */
    TALLOC_ERROR_CORRUPTED_FREE_LIST,/* "corrupted free list": a free-list link is damaged */
    TALLOC_ERROR_CORRUPTED_ARENA,    /* "corrupted arena": an arena header fails its check */
    TALLOC_ERROR_CANARY_CORRUPTED,   /* "canary corrupted": a write past the requested size
                                        (config.canary); the address is the first damaged byte */
    TALLOC_ERROR_WRITE_AFTER_FREE,   /* "write after free": a freed payload changed before it
                                        was handed out again (config.junk); first changed byte */
    TALLOC_ERROR_RECURSIVE_CALL,     /* "recursive call": a thread re-entered a heap it is inside
                                        (a signal handler that interrupted it); the address is
                                        the heap's. The call fails (NULL, errno EDEADLK) if a
                                        handler returns. */
    TALLOC_ERROR_COUNT
} TAlloc_error;

/* The short text of an error, as it appears in the "talloc: <what> <address>" line. */
TALLOC_API const char *TAlloc_error_string(TAlloc_error error);
/* Writes the report line "talloc: <what> <address>\n" (address as printf's %p prints it) into
   `buf`, NUL-terminated and cut to fit; returns its length. Allocates nothing. */
TALLOC_API size_t TAlloc_error_format(char *buf, size_t capacity, TAlloc_error error,
                                      const void *address);

/*
 * Called instead of writing the report line and aborting. Runs without the heap's lock held,
 * so it may call into the heap. After it returns, the failing call returns without touching
 * the damaged chunk: free does nothing, realloc returns NULL (errno EINVAL), usable_size
 * returns 0, an allocation that met a damaged free list returns NULL (errno ENOMEM).
 */
typedef void (*TAlloc_error_fn)(void *ctx, TAlloc_error error, const void *address);

typedef struct TAlloc_config {
    size_t arena_size;            /* bytes mapped per standard arena, rounded up to a page;
                                     0 means TALLOC_DEFAULT_ARENA_SIZE */
    size_t retained_arena_count;  /* empty standard arenas kept mapped instead of unmapped */
    TAlloc_policy policy;         /* free-chunk placement policy */
    TAlloc_os os;                 /* os.map == NULL means TAlloc_os_default() */
    TAlloc_error_fn error_handler;/* NULL: report to stderr and abort() */
    void *error_ctx;              /* passed to error_handler */
    /* Optional checks (off by default; README "Hardening options" gives their cost). */
    int canary;                   /* bytes past the requested size verified at free/realloc */
    int junk;                     /* freed payloads filled, verified when handed out again */
    int guard;                    /* an inaccessible page after each dedicated arena */
    size_t quarantine;            /* freed blocks held back from reuse, oldest released first */
    int fork_rekey;               /* 1 (TAlloc_config_init): a fork child draws a new secret and
                                     re-keys the heap when it first uses it; 0: keeps the
                                     parent's (no page of the heap is written) */
    size_t large_cache;           /* bytes of released dedicated arenas' mappings kept for the
                                     next large blocks (TALLOC_DEFAULT_LARGE_CACHE; 0: none) */
    size_t quick;                 /* payload bytes of freed small blocks the quick lists keep,
                                     unmerged, for the next request of their size
                                     (TALLOC_DEFAULT_QUICK; 0: every free merges at once) */
    size_t purge;                 /* a free that leaves a free chunk of at least this many
                                     bytes gives the whole pages inside it back to the OS
                                     layer (os.purge), at most once per this many bytes freed
                                     (TALLOC_DEFAULT_PURGE; 0: never; never with junk) */
    size_t quarantine_bytes;      /* payload bytes the quarantine holds at most, the oldest
                                     released first; a larger block is not held
                                     (TALLOC_DEFAULT_QUARANTINE_BYTES; 0: no bound) */
} TAlloc_config;

/* Fills `config` with the defaults: default arena size, 1 retained arena, segregated fit,
   mmap. */
TALLOC_API void TAlloc_config_init(TAlloc_config *config);

/* Creates a heap (NULL config: the defaults). Returns NULL with errno on failure. */
TALLOC_API TAlloc_heap *TAlloc_heap_create(const TAlloc_config *config);
/* Unmaps every arena of the heap and the heap itself; all its blocks become invalid.
   The default heap is never destroyed (the call does nothing for it). */
TALLOC_API void TAlloc_heap_destroy(TAlloc_heap *heap);
/* The process-wide heap behind the TAlloc_* calls, created on first use. */
TALLOC_API TAlloc_heap *TAlloc_default_heap(void);

TALLOC_API TALLOC_MALLOC_LIKE TALLOC_SIZE(2) void *TAlloc_heap_malloc(TAlloc_heap *heap, size_t size);
TALLOC_API void TAlloc_heap_free(TAlloc_heap *heap, void *ptr);
TALLOC_API TALLOC_MALLOC_LIKE TALLOC_SIZE2(2, 3) void *TAlloc_heap_calloc(TAlloc_heap *heap, size_t count,
                                                                         size_t size);
TALLOC_API TALLOC_MUST_USE TALLOC_SIZE(3) void *TAlloc_heap_realloc(TAlloc_heap *heap, void *ptr,
                                                                   size_t size);
TALLOC_API TALLOC_MALLOC_LIKE TALLOC_SIZE(3) void *
TAlloc_heap_aligned_alloc(TAlloc_heap *heap, size_t alignment, size_t size);
TALLOC_API int TAlloc_heap_posix_memalign(TAlloc_heap *heap, void **out, size_t alignment,
                                          size_t size);
TALLOC_API size_t TAlloc_heap_usable_size(TAlloc_heap *heap, const void *ptr);
TALLOC_API void TAlloc_heap_debug_print(TAlloc_heap *heap, FILE *out);

/* ---- Introspection --------------------------------------------------------------------- */

typedef struct TAlloc_arena_info {
    const void *address;   /* start of the mapping */
    size_t size;           /* bytes mapped */
    size_t reserved;       /* bytes of arena header and end fence: size - reserved = chunk bytes */
    int is_dedicated;      /* 1 when mapped for one request too large for a standard arena */
} TAlloc_arena_info;

typedef struct TAlloc_chunk_info {
    const void *address;   /* the chunk header */
    void *payload;         /* what malloc returned for it */
    size_t size;           /* payload bytes (the usable size) */
    size_t reserved;       /* header bytes */
    int is_free;
    int is_quarantined;    /* freed by the program, held back from reuse (is_free is 0) */
    int is_quick;          /* freed by the program, kept in a quick list for the next request
                              of its size (is_free is 0) */
} TAlloc_chunk_info;

/*
 * Visit callback: once per arena with chunk == NULL, then once per chunk in address order.
 * It runs under the heap's lock and must not call into the same heap. A nonzero return
 * stops the walk and is returned by the walk.
 */
typedef int (*TAlloc_walk_fn)(void *ctx, const TAlloc_arena_info *arena,
                              const TAlloc_chunk_info *chunk);
/* Returns 0 after a full walk, the callback's value if it stopped, -1 if a damaged header
   made the rest of an arena unreadable (the walk goes on with the next arena) or if the
   calling thread is already inside the heap (a recursive call, reported). */
TALLOC_API int TAlloc_heap_walk(TAlloc_heap *heap, TAlloc_walk_fn visit, void *ctx);
TALLOC_API int TAlloc_walk(TAlloc_walk_fn visit, void *ctx);

/* Invariant ids reported by the check (see README, "Heap invariants"). Tools built on the
   check number their own from TALLOC_INVARIANT_COUNT up (the harness: I7, I8, ...). */
typedef enum TAlloc_invariant {
    TALLOC_I1_TILING = 1,
    TALLOC_I2_HEADERS = 2,
    TALLOC_I3_BOUNDARY_TAGS = 3,
    TALLOC_I4_COALESCED = 4,
    TALLOC_I5_FREE_INDEX = 5,
    TALLOC_I6_ACCOUNTING = 6,
    TALLOC_INVARIANT_COUNT = 7 /* the first id free for others */
} TAlloc_invariant;

/* One violation: the invariant id, the address it concerns, a short explanation. */
typedef void (*TAlloc_violation_fn)(void *ctx, int invariant, const void *address,
                                    const char *detail);
/* Validates I1..I6; calls `report` (may be NULL) per violation; returns the count, or
   SIZE_MAX when called by a thread already inside the heap (a recursive call, reported). */
TALLOC_API size_t TAlloc_heap_check(TAlloc_heap *heap, TAlloc_violation_fn report, void *ctx);
TALLOC_API size_t TAlloc_check(TAlloc_violation_fn report, void *ctx);

/* Allocator events, counted per heap; the harness asserts each is reached. */
typedef enum TAlloc_event {
    TALLOC_EVENT_EXACT_FIT,          /* a free chunk of exactly the needed size was used */
    TALLOC_EVENT_SPLIT,              /* a free chunk was split, the tail stayed free */
    TALLOC_EVENT_NO_SPLIT,           /* the remainder was too small for a chunk: handed out whole */
    TALLOC_EVENT_MERGE_LEFT,         /* a freed chunk merged with its free predecessor only */
    TALLOC_EVENT_MERGE_RIGHT,        /* ... with its free successor only */
    TALLOC_EVENT_MERGE_BOTH,         /* ... with both */
    TALLOC_EVENT_NEW_ARENA,          /* a standard arena was mapped */
    TALLOC_EVENT_DEDICATED_ARENA,    /* an arena was mapped for one large request */
    TALLOC_EVENT_ARENA_RELEASED,     /* an empty arena was unmapped */
    TALLOC_EVENT_ARENA_RETAINED,     /* an empty arena was kept mapped for reuse */
    TALLOC_EVENT_REALLOC_GROW_IN_PLACE,
    TALLOC_EVENT_REALLOC_SHRINK_IN_PLACE,
    TALLOC_EVENT_REALLOC_MOVED,
    TALLOC_EVENT_ALIGNED_SPLIT,      /* the gap before an aligned block became a free chunk */
    TALLOC_EVENT_MAP_FAILED,         /* the OS layer refused a map */
    TALLOC_EVENT_LARGE_CACHED,       /* a released dedicated arena's mapping was kept */
    TALLOC_EVENT_LARGE_REUSED,       /* a dedicated arena was made from a kept mapping */
    TALLOC_EVENT_REALLOC_REMAPPED,   /* a large block grew by remapping its arena, uncopied */
    TALLOC_EVENT_QUICK_REUSED,       /* a request was served from a quick list */
    TALLOC_EVENT_QUICK_FLUSHED,      /* a block left a quick list for the free index (merged) */
    TALLOC_EVENT_PAGES_PURGED,       /* the pages inside a large free chunk went back to the OS */
    TALLOC_EVENT_COUNT
} TAlloc_event;

TALLOC_API const char *TAlloc_event_name(TAlloc_event event);

typedef struct TAlloc_stats {
    size_t allocated_count;  /* allocated chunks */
    size_t allocated_bytes;  /* their payload bytes (usable sizes) */
    size_t free_count;       /* free chunks */
    size_t free_bytes;       /* their payload bytes */
    size_t arena_count;      /* arenas mapped now */
    size_t mapped_bytes;     /* bytes of those arenas */
    size_t cached_count;     /* large-block mappings kept for reuse (not arenas) */
    size_t cached_bytes;     /* their bytes */
    size_t quick_count;      /* freed blocks in the quick lists (not allocated, not free) */
    size_t quick_bytes;      /* their payload bytes */
    uint64_t map_count;      /* maps of the OS layer since creation (arena memory) */
    uint64_t unmap_count;    /* unmaps since creation: arenas + cached = maps - unmaps */
    uint64_t event_count[TALLOC_EVENT_COUNT];
    uint64_t alloc_total;    /* successful allocations since creation (realloc moves count) */
    uint64_t free_total;     /* blocks freed since creation */
} TAlloc_stats;

TALLOC_API void TAlloc_heap_get_stats(TAlloc_heap *heap, TAlloc_stats *out);
TALLOC_API void TAlloc_get_stats(TAlloc_stats *out);

/* Writes the heap's statistics as "talloc: ..." lines to file descriptor `fd` (write(2): no
   stdio, no allocation). The default heap's lines also say whether the program break moved
   since the heap was created, which shows that nothing else served the program's memory. */
TALLOC_API void TAlloc_heap_write_stats(TAlloc_heap *heap, int fd);
TALLOC_API void TAlloc_write_stats(int fd);

/* Releases the blocks held in quarantine (config.quarantine) for reuse. */
TALLOC_API void TAlloc_heap_release_quarantine(TAlloc_heap *heap);
TALLOC_API void TAlloc_release_quarantine(void);

/* Gives every block of the quick lists to the free index, merged with its free neighbours as
   a free would (an arena left empty is retained or unmapped then). Allocation does it itself
   before it maps a standard arena. */
TALLOC_API void TAlloc_heap_flush(TAlloc_heap *heap);
TALLOC_API void TAlloc_flush(void);

/* Releases the blocks held in quarantine, flushes the quick lists, then unmaps every empty
   arena: those the heap retains for reuse, and any a free had to keep because it met a
   damaged link (reported then); gives back the large-block mappings kept for reuse too.
   Returns how many arenas and mappings were unmapped. */
TALLOC_API size_t TAlloc_heap_trim(TAlloc_heap *heap);
TALLOC_API size_t TAlloc_trim(void);

/*
 * TALLOC_OPTIONS: the default heap reads this environment variable once, when it is created,
 * without allocating. A list of key=value separated by ':' or ',':
 *   stats=1         write the statistics (TAlloc_write_stats) to stderr at exit
 *   verbose=1       write the options in force to stderr when the heap is created
 *   arena_size=N    standard arena bytes (suffix k, m or g allowed)
 *   retain=N        empty arenas kept mapped for reuse
 *   policy=segregated|first-fit|best-fit  (first and best also accepted)
 *   canary=1        config.canary: writes past the requested size caught at free/realloc
 *   junk=1          config.junk: writes after free caught when the memory is handed out again
 *   guard=1         config.guard: a large overflow of a dedicated arena's block faults
 *   quarantine=N    config.quarantine: the last N freed blocks are not reused yet
 *   quarantine_bytes=N  config.quarantine_bytes: ... nor more than N payload bytes of them
 *                   (suffix k, m, g)
 *   fork_rekey=0|1  config.fork_rekey: a fork child re-keys the heap on first use (default 1)
 *   large_cache=N   config.large_cache: bytes of large-block mappings kept (suffix k, m, g)
 *   quick=N         config.quick: payload bytes the quick lists keep (suffix k, m, g; 0: off)
 *   purge=N         config.purge: free chunks this large give their pages back (k, m, g; 0: off)
 * An unknown key or a bad value is reported on stderr and ignored.
 */
typedef struct TAlloc_options {
    int stats;
    int verbose;
} TAlloc_options;
/* The options in force for the default heap (reading them creates it). */
TALLOC_API void TAlloc_get_options(TAlloc_options *out);

#ifdef __cplusplus
}
#endif

#endif /* TALLOC_H */
