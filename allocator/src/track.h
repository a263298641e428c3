/*
 * track.h - what TAlloc tells AddressSanitizer and Valgrind memcheck about its own memory, so
 * that both see inside arenas instead of one big valid mmap.
 *
 * The contract (layout: internal.h)
 *   - A new arena is entirely inaccessible: arena header, chunk headers, free chunks, fence.
 *   - An allocated block is accessible for exactly the bytes requested; the rest of its
 *     payload (up to the usable size), its header and everything around it stay inaccessible,
 *     so one byte past the end, a header byte or a freed block is reported. Payloads and
 *     headers are 16-aligned, so no ASan shadow granule (8 bytes) holds both a payload byte
 *     and a header byte; a payload's last granule may be partial (ASan records "first k bytes
 *     valid"), which is how an odd-sized request gets an exact end.
 *   - TAlloc_usable_size(p) makes the whole usable size accessible: the caller was told it may
 *     use those bytes (glibc's malloc_usable_size under ASan/memcheck behaves alike).
 *   - realloc in place moves the end of the accessible range to the new requested size;
 *     bytes gained are undefined for memcheck, bytes lost become inaccessible.
 *   - free makes the block inaccessible again; memcheck also remembers it as "free'd".
 *   - An arena going back to the OS layer becomes plain memory again, so whatever maps those
 *     addresses next (another arena, the OS layer's own use, a foreign mmap) starts clean.
 *
 * How the allocator itself gets at memory it has marked inaccessible
 *   AddressSanitizer: the allocator's sources are compiled without address instrumentation
 *     (allocator/CMakeLists.txt adds -fno-sanitize=address to them, keeping UBSan, and
 *     defines TALLOC_ASAN_ANNOTATIONS when TALLOC_SANITIZE contains "address"). Its plain
 *     loads and stores of headers, links and footers are then unchecked, while every other
 *     file - tests, harness, users - is checked against the shadow it maintains through
 *     __asan_(un)poison_memory_region. This is simpler and more robust than a no_sanitize
 *     attribute on every function (static inline helpers included) or unpoisoning around each
 *     access. One thing stays checked: ASan's interceptors of memset/memcpy, which the
 *     allocator calls for calloc and realloc; ta_track_open makes those bytes accessible
 *     first. Compiling this file with address instrumentation and TALLOC_ASAN_ANNOTATIONS
 *     is an error; without TALLOC_ASAN_ANNOTATIONS (say, the library built by hand with
 *     -fsanitize=address) nothing is annotated and arenas are opaque to ASan, as before.
 *   Valgrind: memcheck checks every instruction and has no per-function exemption. The
 *     allocator turns error reporting off for the calling thread while it works on a heap
 *     (ta_track_enter/leave, called by ta_heap_lock/unlock and around heap destroy) and back
 *     on around user callbacks it runs under the lock (walk visitors, check reports). Loads
 *     from inaccessible bytes then go unreported and yield "defined" values, and stores
 *     leave the inaccessible state alone, which is what the allocator wants. Blocks are
 *     announced with MALLOCLIKE/FREELIKE/RESIZEINPLACE with a 16-byte redzone (the header),
 *     so reports read "N bytes after a block of size M alloc'd", "inside a block ... free'd".
 *     memcheck needs the old size of a block it resizes; TAlloc does not store the requested
 *     size, so ta_track_resize asks memcheck where the block's accessible range ends.
 *     Enabled by TALLOC_VALGRIND_ANNOTATIONS (CMake option TALLOC_VALGRIND, on when
 *     <valgrind/memcheck.h> exists). Outside valgrind every request would still run its
 *     magic instruction sequence, which shows on a tight malloc/free loop; behind the cached
 *     answer of ta_vg_active it costs a load and a predictable branch.
 *
 * Without either define every ta_track_* call compiles to nothing.
 */
#ifndef TALLOC_TRACK_H
#define TALLOC_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#if defined(__has_feature)
#define TA_HAS_FEATURE(x) __has_feature(x)
#else
#define TA_HAS_FEATURE(x) 0
#endif

/* ---- AddressSanitizer ------------------------------------------------------------------- */
#if defined(TALLOC_ASAN_ANNOTATIONS)
#if defined(__SANITIZE_ADDRESS__) || TA_HAS_FEATURE(address_sanitizer)
#error "TALLOC_ASAN_ANNOTATIONS needs the allocator compiled with -fno-sanitize=address (track.h)"
#endif
#include <sanitizer/asan_interface.h>
#define TA_ASAN_POISON(p, n) __asan_poison_memory_region((p), (n))
#define TA_ASAN_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define TA_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define TA_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- Valgrind memcheck ------------------------------------------------------------------ */
#if defined(TALLOC_VALGRIND_ANNOTATIONS)
#include <stdatomic.h>
#include <valgrind/memcheck.h>
/* Whether the process runs under valgrind, asked once per file: each request then costs a
   load and a predictable branch instead of the request's magic instruction sequence. */
static inline bool ta_vg_active(void)
{
    static atomic_int state; /* 0: not asked yet, 1: no, 2: yes */
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s == 0) {
        s = RUNNING_ON_VALGRIND ? 2 : 1;
        atomic_store_explicit(&state, s, memory_order_relaxed);
    }
    return s == 2;
}
/* A request, made only under valgrind: TA_VG for the expression kind, TA_VG_DO for the
   statement kind of memcheck.h. */
#define TA_VG(request) ((void)(ta_vg_active() ? (request) : 0))
#define TA_VG_DO(request)                                                                     \
    do {                                                                                      \
        if (ta_vg_active())                                                                   \
            request;                                                                          \
    } while (0)
#define TA_VG_NOACCESS(p, n) TA_VG(VALGRIND_MAKE_MEM_NOACCESS((p), (n)))
#define TA_VG_DEFINED(p, n) TA_VG(VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#define TA_VG_MALLOCLIKE(p, n, zeroed)                                                        \
    TA_VG_DO(VALGRIND_MALLOCLIKE_BLOCK((p), (n), TA_HEADER_SIZE, (zeroed)))
#define TA_VG_FREELIKE(p) TA_VG_DO(VALGRIND_FREELIKE_BLOCK((p), TA_HEADER_SIZE))
#define TA_VG_RESIZE(p, old, n)                                                               \
    TA_VG_DO(VALGRIND_RESIZEINPLACE_BLOCK((p), (old), (n), TA_HEADER_SIZE))
/* The first inaccessible address in [p, p + n), or 0. */
#define TA_VG_FIRST_NOACCESS(p, n)                                                            \
    (ta_vg_active() ? (uintptr_t)VALGRIND_CHECK_MEM_IS_ADDRESSABLE((p), (n)) : (uintptr_t)0)
#define TA_VG_ERRORS_OFF() TA_VG_DO(VALGRIND_DISABLE_ERROR_REPORTING)
#define TA_VG_ERRORS_ON() TA_VG_DO(VALGRIND_ENABLE_ERROR_REPORTING)
#else
static inline bool ta_vg_active(void) { return false; }
#define TA_VG_NOACCESS(p, n) ((void)(p), (void)(n))
#define TA_VG_DEFINED(p, n) ((void)(p), (void)(n))
#define TA_VG_MALLOCLIKE(p, n, zeroed) ((void)(p), (void)(n), (void)(zeroed))
#define TA_VG_FREELIKE(p) ((void)(p))
#define TA_VG_RESIZE(p, old, n) ((void)(p), (void)(old), (void)(n))
#define TA_VG_FIRST_NOACCESS(p, n) ((void)(p), (void)(n), (uintptr_t)0)
#define TA_VG_ERRORS_OFF() ((void)0)
#define TA_VG_ERRORS_ON() ((void)0)
#endif

/* The chunk header before the payload p: a chunk is [header, p + usable). */
#define TA_TRACK_HEADER(p) ((const char *)(p) - TA_HEADER_SIZE)

/* The calling thread starts / stops working on allocator metadata. Nests. */
static inline void ta_track_enter(void) { TA_VG_ERRORS_OFF(); }
static inline void ta_track_leave(void) { TA_VG_ERRORS_ON(); }

/* Whether live blocks must be announced as freed when their heap is destroyed. */
static inline bool ta_track_wants_destroy_walk(void) { return ta_vg_active(); }

/* A fresh arena from the OS layer: all of it inaccessible. */
static inline void ta_track_arena_map(const void *base, size_t size)
{
    TA_ASAN_POISON(base, size);
    TA_VG_NOACCESS(base, size);
}

/* An arena about to go back to the OS layer: plain memory again. */
static inline void ta_track_arena_unmap(const void *base, size_t size)
{
    TA_ASAN_UNPOISON(base, size);
    TA_VG_DEFINED(base, size);
}

/* The allocator is about to fill or copy n bytes at p with memset/memcpy (ASan intercepts
   those even in uninstrumented code). The final state is set by the ta_track_* call that
   follows. */
static inline void ta_track_open(const void *p, size_t n)
{
    TA_ASAN_UNPOISON(p, n);
}

/* A block of `size` requested bytes at p, in a chunk of `usable` payload bytes, is handed
   out. `is_zeroed`: its bytes are known to be zero (calloc). */
static inline void ta_track_alloc(const void *p, size_t size, size_t usable, bool is_zeroed)
{
    TA_ASAN_POISON(TA_TRACK_HEADER(p), TA_HEADER_SIZE + usable);
    TA_ASAN_UNPOISON(p, size);
    TA_VG_NOACCESS(TA_TRACK_HEADER(p), TA_HEADER_SIZE + usable);
    TA_VG_MALLOCLIKE(p, size, is_zeroed);
}

/* The block at p, in a chunk of `usable` payload bytes, was freed. */
static inline void ta_track_free(const void *p, size_t usable)
{
    TA_VG_FREELIKE(p);
    TA_VG_NOACCESS(TA_TRACK_HEADER(p), TA_HEADER_SIZE + usable);
    TA_ASAN_POISON(TA_TRACK_HEADER(p), TA_HEADER_SIZE + usable);
}

/* The block at p now has `size` accessible bytes (size > 0). `span` covers its chunk's
   payload before and after the change (the larger usable size): everything in it past the
   new size becomes inaccessible. */
static inline void ta_track_resize(const void *p, size_t span, size_t size)
{
    TA_ASAN_POISON(TA_TRACK_HEADER(p), TA_HEADER_SIZE + span);
    TA_ASAN_UNPOISON(p, size);
    uintptr_t end = TA_VG_FIRST_NOACCESS(p, span);
    size_t old = end ? (size_t)(end - (uintptr_t)p) : span;
    if (old != size)
        TA_VG_RESIZE(p, old, size);
}

/* How many bytes at p, in a chunk of `span` payload bytes, the program may use now (the
   request, or the usable size once asked for): what a block that moves keeps. */
static inline size_t ta_track_valid(const void *p, size_t span)
{
#if defined(TALLOC_ASAN_ANNOTATIONS)
    const void *poisoned = __asan_region_is_poisoned((void *)(uintptr_t)p, span);
    if (poisoned)
        return (size_t)((const char *)poisoned - (const char *)p);
#endif
    uintptr_t end = TA_VG_FIRST_NOACCESS(p, span);
    return end ? (size_t)(end - (uintptr_t)p) : span;
}

/* A block moved with its arena (remap): `size` bytes at p are the block now, of which the
   first `kept` hold what it held. */
static inline void ta_track_moved(const void *p, size_t kept, size_t size, size_t usable)
{
    ta_track_alloc(p, size, usable, false);
    TA_VG_DEFINED(p, kept);
}

#endif /* TALLOC_TRACK_H */
