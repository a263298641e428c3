/*
 * space.c - the address space the harness maps heaps into. A heap's placement depends on
 * the order of its arenas' addresses, and the kernel's choice of addresses depends on
 * everything else the process ever mapped: a sanitizer's allocator, a debug print's buffer,
 * the inputs run before. A program would then pass in one process and fail in another, and
 * a reproducer would not reproduce. So the harness reserves one region per process (inaccessible,
 * no memory committed) and places every mapping of a run inside it itself, as the kernel
 * would (the highest free range that fits, top down), replacing reserved pages with memory
 * (MAP_FIXED) and returning them to the reservation on unmap. The same sequence of maps,
 * unmaps and remaps then gives the same offsets in every process. Without the region (the
 * reservation refused) the calls go to TAlloc's default OS layer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define SPACE_BYTES ((size_t)16 << 30)
#define SPACE_ALIGNMENT ((size_t)1 << 30)
#define PAGE ((size_t)4096)

typedef struct span {
    uintptr_t from, to;
} span;

static struct {
    pthread_mutex_t lock;
    bool is_tried;
    uintptr_t base, top;
    span *used; /* disjoint, sorted, adjacent ones merged */
    size_t count, capacity;
} space = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool reserve(void)
{
    if (space.is_tried)
        return space.base != 0;
    space.is_tried = true;
    size_t span_bytes = SPACE_BYTES + SPACE_ALIGNMENT;
    char *p = mmap(NULL, span_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    uintptr_t base = ((uintptr_t)p + SPACE_ALIGNMENT - 1) & ~(SPACE_ALIGNMENT - 1);
    if (base > (uintptr_t)p)
        munmap(p, base - (uintptr_t)p);
    uintptr_t end = (uintptr_t)p + span_bytes;
    if (end > base + SPACE_BYTES)
        munmap((void *)(base + SPACE_BYTES), end - (base + SPACE_BYTES));
    space.base = base;
    space.top = base + SPACE_BYTES;
    return true;
}

static bool contains(uintptr_t address)
{
    return space.base != 0 && address >= space.base && address < space.top;
}

/* ---- the set of used ranges ------------------------------------------------------------- */

static bool is_free(uintptr_t from, uintptr_t to)
{
    if (from < space.base || to > space.top || to < from)
        return false;
    for (size_t i = 0; i < space.count; i++)
        if (space.used[i].from < to && from < space.used[i].to)
            return false;
    return true;
}

/* Room for one more span; the harness cannot go on without its own bookkeeping. */
static void make_room(void)
{
    if (space.count < space.capacity)
        return;
    size_t capacity = space.capacity ? space.capacity * 2 : 64;
    span *grown = realloc(space.used, capacity * sizeof *grown);
    if (grown == NULL) {
        fputs("talloc harness: out of memory for the address space's table\n", stderr);
        abort();
    }
    space.used = grown;
    space.capacity = capacity;
}

static void add(uintptr_t from, uintptr_t to)
{
    make_room();
    size_t i = 0;
    while (i < space.count && space.used[i].from < from)
        i++;
    memmove(&space.used[i + 1], &space.used[i], (space.count - i) * sizeof *space.used);
    space.used[i] = (span){from, to};
    space.count++;
    if (i + 1 < space.count && space.used[i].to == space.used[i + 1].from) {
        space.used[i].to = space.used[i + 1].to;
        memmove(&space.used[i + 1], &space.used[i + 2],
                (space.count - i - 2) * sizeof *space.used);
        space.count--;
    }
    if (i > 0 && space.used[i - 1].to == space.used[i].from) {
        space.used[i - 1].to = space.used[i].to;
        memmove(&space.used[i], &space.used[i + 1], (space.count - i - 1) * sizeof *space.used);
        space.count--;
    }
}

/* Removes [from, to) from the used set; a span cut in the middle becomes two. */
static void subtract(uintptr_t from, uintptr_t to)
{
    for (size_t i = 0; i < space.count;) {
        span *s = &space.used[i];
        if (s->to <= from || s->from >= to) {
            i++;
        } else if (s->from >= from && s->to <= to) {
            memmove(s, s + 1, (space.count - i - 1) * sizeof *s);
            space.count--;
        } else if (s->from < from && s->to > to) {
            make_room();
            s = &space.used[i];
            memmove(s + 2, s + 1, (space.count - i - 1) * sizeof *s);
            s[1] = (span){to, s->to};
            s->to = from;
            space.count++;
            i += 2;
        } else if (s->from < from) {
            s->to = from;
            i++;
        } else {
            s->from = to;
            i++;
        }
    }
}

/* The highest address of an `alignment`-aligned free range of `size` bytes, or 0. */
static uintptr_t place(size_t size, size_t alignment)
{
    uintptr_t hi = space.top;
    for (size_t k = space.count + 1; k-- > 0;) {
        uintptr_t lo = k > 0 ? space.used[k - 1].to : space.base;
        if (hi - lo >= size) {
            uintptr_t at = (hi - size) & ~(alignment - 1);
            if (at >= lo)
                return at;
        }
        if (k > 0)
            hi = space.used[k - 1].from;
    }
    return 0;
}

static size_t round_pages(size_t size)
{
    return (size + PAGE - 1) & ~(PAGE - 1);
}

/* Gives [from, to) back to the reservation: no memory, no access. */
static void give_back(uintptr_t from, uintptr_t to)
{
    mmap((void *)from, to - from, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
         -1, 0);
    subtract(from, to);
}

static bool commit(uintptr_t from, uintptr_t to)
{
    void *p = mmap((void *)from, to - from, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        return false;
    add(from, to);
    return true;
}

/* ---- the calls ---------------------------------------------------------------------------- */

void *th_space_map(size_t size, size_t alignment)
{
    pthread_mutex_lock(&space.lock);
    if (!reserve()) {
        pthread_mutex_unlock(&space.lock);
        return TAlloc_os_default()->map_aligned(NULL, size, alignment);
    }
    void *result = NULL;
    size = round_pages(size);
    if (alignment < PAGE)
        alignment = PAGE;
    if (size != 0 && size <= SPACE_BYTES && alignment <= SPACE_ALIGNMENT &&
        (alignment & (alignment - 1)) == 0) {
        uintptr_t at = place(size, alignment);
        if (at != 0 && commit(at, at + size))
            result = (void *)at;
    }
    pthread_mutex_unlock(&space.lock);
    return result;
}

void th_space_unmap(void *address, size_t size)
{
    pthread_mutex_lock(&space.lock);
    uintptr_t from = (uintptr_t)address;
    if (contains(from))
        give_back(from, from + round_pages(size));
    else
        TAlloc_os_default()->unmap(NULL, address, size);
    pthread_mutex_unlock(&space.lock);
}

/* Grows in place when the pages after the mapping are free, else moves it (mremap) to the
   place a map of the new size would get; shrinks in place. */
void *th_space_remap(void *address, size_t old_size, size_t new_size)
{
    pthread_mutex_lock(&space.lock);
    uintptr_t from = (uintptr_t)address;
    if (!contains(from)) {
        pthread_mutex_unlock(&space.lock);
        return TAlloc_os_default()->remap(NULL, address, old_size, new_size);
    }
    void *result = NULL;
    size_t old_bytes = round_pages(old_size), new_bytes = round_pages(new_size);
    if (new_bytes <= old_bytes) {
        if (new_bytes < old_bytes)
            give_back(from + new_bytes, from + old_bytes);
        result = address;
    } else if (is_free(from + old_bytes, from + new_bytes)) {
        if (commit(from + old_bytes, from + new_bytes))
            result = address;
    } else if (new_bytes <= SPACE_BYTES) {
        uintptr_t at = place(new_bytes, PAGE);
        if (at != 0) {
            add(at, at + new_bytes);
            void *moved = mremap(address, old_bytes, new_bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
                                 (void *)at);
            if (moved == MAP_FAILED) {
                subtract(at, at + new_bytes);
            } else {
                give_back(from, from + old_bytes); /* mremap left a hole in the region */
                result = moved;
            }
        }
    }
    pthread_mutex_unlock(&space.lock);
    return result;
}
