/*
 * fuzz_misuse_kinds.h - the damage kinds of fuzz_misuse (the table in fuzz_misuse.h): how each
 * is injected, what report it calls for, and the forced probes that meet deferred damage.
 * A part of the fuzz_misuse targets' one translation unit.
 */
#ifndef TALLOC_FUZZ_MISUSE_KINDS_H
#define TALLOC_FUZZ_MISUSE_KINDS_H

#include "fuzz_misuse.h"

/* A realloc size that keeps a block as it is (a realloc to 0 would free it). */
static size_t keep_size(size_t size)
{
    return size ? size : 1;
}

/* ---- kinds 0-3 and 9: bad pointers, reported by the damage op itself ---------------------- */

static void expect_immediate(misuse *m, th_run *run, size_t op_index, damage_kind kind,
                             misuse_call call, void *ptr, size_t realloc_size, TAlloc_error want)
{
    stats[kind].injected++;
    size_t reports = probe_call(m, run, call, ptr, realloc_size);
    if (th_run_has_failed(run))
        return;
    if (reports == 0) {
        miss(m, run, kind, ptr, "%s not reported by op %zu (%s(%p))", row_names[kind], op_index,
             call_names[call], ptr);
        return;
    }
    if (reports != 1 || m->error != want || m->address != ptr) {
        miss(m, run, kind, m->address,
             "%s by %s(%p): %zu report(s), last \"%s\" at %p; expected \"%s\" at %p",
             row_names[kind], call_names[call], ptr, reports, TAlloc_error_string(m->error),
             m->address, TAlloc_error_string(want), ptr);
        return;
    }
    count_detection(kind, 1, m->error);
}

/* What a call on a block freed during this op must report: foreign pointer when a free
   unmapped its arena, unless the block was the first of a dedicated arena (TAlloc remembers
   the last 16 of those), else double free (free) or use after free. */
static TAlloc_error freed_error(const misuse *m, misuse_call call)
{
    if (m->is_watched_unmapped && !m->is_watched_first_large)
        return TALLOC_ERROR_FOREIGN_POINTER;
    return call == CALL_FREE ? TALLOC_ERROR_DOUBLE_FREE : TALLOC_ERROR_USE_AFTER_FREE;
}

static void damage_double_free(misuse *m, th_run *run, size_t op_index, size_t index,
                               unsigned char *block, misuse_call call, uint8_t param)
{
    m->watched = block;
    m->is_watched_unmapped = false;
    TAlloc_heap_free(th_run_heap(run), block); /* legitimate: a report fails the run */
    m->watched = NULL;
    th_run_forget_block(run, index);
    if (th_run_has_failed(run))
        return;
    expect_immediate(m, run, op_index, DAMAGE_DOUBLE_FREE, call, block, 1u + param,
                     freed_error(m, call));
}

/* Kind 9: B is freed, then P % QUARANTINE other live blocks; with a quarantine of that many
   B is still held back, without one its chunk may have merged or its arena gone. */
static void damage_free_after_frees(misuse *m, th_run *run, size_t op_index, size_t index,
                                    unsigned char *block, misuse_call call, uint8_t param)
{
    TAlloc_heap *heap = th_run_heap(run);
    release_quarantine(m, run); /* what earlier probes freed: B must not be pushed out */
    m->watched = block;
    m->is_watched_unmapped = false;
    TAlloc_heap_free(heap, block);
    th_run_forget_block(run, index);
    for (size_t j = 0; j < param % QUARANTINE && th_run_live_count(run) > 0; j++) {
        size_t other = (index + j) % th_run_live_count(run);
        TAlloc_heap_free(heap, th_run_live_block(run, other, NULL));
        th_run_forget_block(run, other);
    }
    m->watched = NULL;
    if (th_run_has_failed(run))
        return;
    expect_immediate(m, run, op_index, DAMAGE_FREE_AFTER_FREES, call, block, 1u + param,
                     freed_error(m, call));
}

static void damage_interior_free(misuse *m, th_run *run, size_t op_index, unsigned char *block,
                                 misuse_call call, uint8_t param)
{
    size_t usable = quiet_usable(run, block);
    size_t offset = 16u * (1u + param % 4u);
    if (offset >= usable)
        offset = 16;
    expect_immediate(m, run, op_index, DAMAGE_INTERIOR_FREE, call, block + offset, 1u + param,
                     TALLOC_ERROR_INTERIOR_POINTER);
}

static _Alignas(16) unsigned char foreign_static[64];

static int visit_first_arena(void *ctx, const TAlloc_arena_info *arena,
                             const TAlloc_chunk_info *chunk)
{
    if (chunk == NULL && !arena->is_dedicated) {
        *(const unsigned char **)ctx = arena->address;
        return 1;
    }
    return 0;
}

/* A 16-aligned pointer into the header of the heap's first standard arena (16, 32 or 48
   bytes in: never a payload), or NULL when there is none. */
static void *into_arena_header(th_run *run, uint8_t param)
{
    const unsigned char *base = NULL;
    TAlloc_heap_walk(th_run_heap(run), visit_first_arena, &base);
    return base ? (void *)(uintptr_t)(base + 16u * (1u + param / 4u % 3u)) : NULL;
}

static void damage_foreign_free(misuse *m, th_run *run, size_t op_index, misuse_call call,
                                uint8_t param)
{
    _Alignas(16) unsigned char on_stack[64] = {0};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *mapped = NULL;
    void *ptr;
    switch (param % 4) {
    case 0: ptr = on_stack + 16; break;
    case 1: ptr = foreign_static + 16; break;
    case 3:
        if ((ptr = into_arena_header(run, param)) == NULL)
            ptr = on_stack + 16;
        break;
    default:
        mapped = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) {
            stats[DAMAGE_FOREIGN_FREE].skipped++;
            return;
        }
        ptr = (unsigned char *)mapped + 16;
        break;
    }
    expect_immediate(m, run, op_index, DAMAGE_FOREIGN_FREE, call, ptr, 1u + param,
                     TALLOC_ERROR_FOREIGN_POINTER);
    if (mapped)
        munmap(mapped, page);
}

/* ---- pending damage ---------------------------------------------------------------------- */

static bool is_header_kind(damage_kind kind)
{
    return kind == DAMAGE_FLIP_HEADER || kind == DAMAGE_OVERFLOW_NEXT;
}

/* Pointer to the damaged chunk's payload (where its own validation reports). */
static unsigned char *damaged_payload(const pending_damage *d)
{
    return d->header + HEADER_SIZE;
}

/* Whether `error` at `address` is the report the damage calls for. For a header: "corrupted
   header" about the damaged chunk - its header, its payload, or (through its right
   neighbour's merge) its footer. */
static bool is_expected_report(const pending_damage *d, TAlloc_error error, const void *address)
{
    if (is_header_kind(d->kind)) {
        uintptr_t a = (uintptr_t)address, h = (uintptr_t)d->header;
        size_t extent = d->chunk_size > HEADER_SIZE ? d->chunk_size : HEADER_SIZE;
        return error == TALLOC_ERROR_CORRUPTED_HEADER && a >= h && a <= h + extent;
    }
    for (size_t i = 0; i < d->want_count; i++)
        if (error == d->want_error && address == d->want[i])
            return true;
    return false;
}

/* Whether the damaged bytes still hold what was written. */
static bool is_rewritten(const pending_damage *d)
{
    if (d->kind == DAMAGE_WRITE_AFTER_FREE) {
        open_bytes(d->at, d->length);
        size_t i = 0;
        while (i < d->length && d->at[i] == d->fill)
            i++;
        close_bytes(d->at, d->length);
        return i < d->length;
    }
    unsigned char now[SAVED_MAX];
    read_owned(now, d->at, d->length);
    return memcmp(now, d->damaged, d->length) != 0;
}

/* Marks `length` bytes at `at` pending and saves them (the caller damages them). */
static pending_damage *begin_damage(misuse *m, size_t op_index, damage_kind kind,
                                    unsigned char *block, unsigned char *at, size_t length)
{
    pending_damage *d = &m->damage;
    *d = (pending_damage){.is_active = true, .kind = kind, .row = kind, .op_index = op_index,
                          .block = block, .at = at, .length = length};
    if (length <= SAVED_MAX)
        read_owned(d->saved, at, length);
    return d;
}

/* Resumes checks and frees the blocks taken over from the model (their headers are whole:
   a report here fails the run). */
static void end_damage(misuse *m, th_run *run)
{
    pending_damage *d = &m->damage;
    d->is_active = false;
    th_run_set_checking(run, true);
    for (size_t i = 0; i < d->held_count && !th_run_has_failed(run); i++)
        TAlloc_heap_free(th_run_heap(run), d->held[i]);
    d->held_count = 0;
    release_quarantine(m, run);
}

static void count_damage_detection(const pending_damage *d, size_t op_index, bool is_forced)
{
    count_detection(d->row, op_index - d->op_index + 1, d->error);
    if (is_forced)
        stats[d->row].forced++;
}

/* Makes `call` on `target` (a realloc to `usable` bytes resizes nothing) and requires the
   pending damage to be reported during it; counts the detection at op `op_index`. */
static void probe_damage(misuse *m, th_run *run, misuse_call call, unsigned char *target,
                         size_t usable, size_t op_index, bool is_forced)
{
    pending_damage *d = &m->damage;
    size_t reports = probe_call(m, run, call, target, keep_size(usable));
    if (th_run_has_failed(run))
        return;
    if (!d->is_reported) {
        miss(m, run, d->row, d->at, "%s of block %p (op %zu) not reported by op %zu (%s(%p))",
             row_names[d->row], (void *)d->block, d->op_index, op_index, call_names[call],
             (void *)target);
        return;
    }
    bool is_right;
    const void *want;
    if (is_header_kind(d->kind)) {
        want = target == damaged_payload(d) ? (const void *)target : (const void *)d->header;
        is_right = d->error == TALLOC_ERROR_CORRUPTED_HEADER && d->address == want;
    } else {
        want = d->want[0];
        is_right = is_expected_report(d, d->error, d->address);
    }
    if (reports != 1 || !is_right) {
        TAlloc_error want_error = is_header_kind(d->kind) ? TALLOC_ERROR_CORRUPTED_HEADER : d->want_error;
        miss(m, run, d->row, d->address,
             "%s of block %p (op %zu) by %s(%p): %zu report(s), first \"%s\" at %p; "
             "expected \"%s\" at %p%s",
             row_names[d->row], (void *)d->block, d->op_index, call_names[call], (void *)target,
             reports, TAlloc_error_string(d->error), d->address, TAlloc_error_string(want_error),
             want, d->want_count > 1 ? " (or the stored size word)" : "");
        return;
    }
    count_damage_detection(d, op_index, is_forced);
    end_damage(m, run);
}

/* ---- kinds 4 and 5: header damage ------------------------------------------------------ */

/* Takes the live block `ptr` over from the model until the damage is resolved. */
static void hold(misuse *m, th_run *run, void *ptr)
{
    pending_damage *d = &m->damage;
    size_t index = live_index(run, ptr);
    if (index == SIZE_MAX || d->held_count == MAX_HELD)
        return;
    th_run_forget_block(run, index);
    d->held[d->held_count++] = ptr;
}

/* Deferred damage: takes over every live block whose free, realloc or usable_size would
   validate the damaged header, so the harness's model never disagrees with TAlloc. */
static void hold_neighbours(misuse *m, th_run *run)
{
    pending_damage *d = &m->damage;
    hold(m, run, d->block);
    if (d->kind == DAMAGE_FLIP_HEADER) {
        chunk_place s = locate(run, d->header);
        if (s.is_found && s.has_left && !s.left.is_free)
            hold(m, run, s.left.payload);
    } else if (d->chunk_size > 0 && !d->is_chunk_free) {
        hold(m, run, damaged_payload(d));
    }
}

static void damage_header(misuse *m, th_run *run, size_t op_index, damage_kind kind,
                          unsigned char *block, misuse_call call, uint8_t param)
{
    size_t usable = quiet_usable(run, block);
    if (th_run_has_failed(run))
        return;
    /* kind 5 overflows the chunk, not the requested size (with canary they differ) */
    unsigned char *header = kind == DAMAGE_FLIP_HEADER ? block - HEADER_SIZE
                                                       : block + chunk_payload(run, block);
    pending_damage *d = begin_damage(m, op_index, kind, block, header, HEADER_SIZE);
    d->block_usable = usable;
    d->header = header;
    uint64_t word;
    memcpy(&word, d->saved, sizeof word);
    d->chunk_size = (size_t)(word & SIZE_MASK);
    d->is_chunk_free = (word & FLAG_FREE) != 0;
    memcpy(d->damaged, d->saved, HEADER_SIZE);
    if (kind == DAMAGE_FLIP_HEADER) {
        d->damaged[param % 16u] ^= (unsigned char)(1u << (param / 16u % 8u));
    } else {
        for (size_t i = 0; i < 1u + param % 16u; i++)
            d->damaged[i] ^= overflow_masks[param / 16u % 8u];
    }
    bool is_deferred = (param & PARAM_DEFERRED) != 0 &&
                       !(kind == DAMAGE_OVERFLOW_NEXT && d->is_chunk_free);
    if (is_deferred) {
        d->row = kind == DAMAGE_FLIP_HEADER ? ROW_FLIP_DEFERRED : ROW_OVERFLOW_DEFERRED;
        d->window = (size_t)WINDOW_BASE << call;
        hold_neighbours(m, run); /* walks the heap: before the damage */
        th_run_set_checking(run, false);
    }
    stats[d->row].injected++;
    write_owned(d->header, d->damaged, HEADER_SIZE);
    /* the checker, too, must see every damaged header */
    if (TAlloc_heap_check(th_run_heap(run), NULL, NULL) == 0)
        th_run_fail(run, TH_DETECTION, d->header, "%s of block %p: TAlloc_heap_check found nothing",
                    row_names[kind], (void *)block);
    if (is_deferred)
        return; /* after_op takes it from here */
    unsigned char *target = block;
    size_t target_usable = usable;
    /* a quarantine takes B and meets the next header only when it lets B go; that release
       would then keep B allocated with its canary junk-filled, for good: realloc(B) instead */
    if (kind == DAMAGE_OVERFLOW_NEXT && call == CALL_FREE && m->has_quarantine)
        call = CALL_REALLOC;
    if (kind == DAMAGE_OVERFLOW_NEXT && call == CALL_USABLE_SIZE) {
        if (live_index(run, damaged_payload(d)) != SIZE_MAX) {
            target = damaged_payload(d);
            target_usable = d->chunk_size - HEADER_SIZE;
        } else {
            call = CALL_REALLOC;
        }
    }
    probe_damage(m, run, call, target, target_usable, op_index, false);
}

/* ---- kind 7: a write after free over a free chunk's links ------------------------------- */

/* The flush as a probe: it reads the links of every quick chunk, and of the free chunks the
   quick ones merge with. */
static void probe_link_by_flush(misuse *m, th_run *run, size_t op_index, bool is_forced)
{
    pending_damage *d = &m->damage;
    size_t reports = probe_flush(m, run);
    if (th_run_has_failed(run))
        return;
    if (!d->is_reported || reports != 1 || !is_expected_report(d, d->error, d->address)) {
        miss(m, run, d->row, d->address,
             "%s of block %p (op %zu) by the flush at op %zu: %zu report(s), first \"%s\" at "
             "%p; expected \"%s\" at %p", row_names[d->row], (void *)d->block, d->op_index,
             op_index, reports, TAlloc_error_string(d->error), d->address,
             TAlloc_error_string(d->want_error), d->want[0]);
        return;
    }
    count_damage_detection(d, op_index, is_forced);
    end_damage(m, run);
}

/* Forced probe: realloc of B's left neighbour to its usable size verifies the links of its
   free successor before anything else. When B is a quick chunk, or its left neighbour one
   (freed since), the flush meets the link. */
static void probe_link(misuse *m, th_run *run, size_t op_index, bool is_forced)
{
    pending_damage *d = &m->damage;
    chunk_place s = locate(run, d->header);
    bool is_same = s.is_found && s.chunk.address == d->header && s.has_left &&
                   (s.chunk.is_quick || (s.chunk.is_free && !s.left.is_free));
    if (!is_same) {
        miss(m, run, d->row, d->at,
             "%s of block %p (op %zu): by op %zu its chunk was changed without a report",
             row_names[d->row], (void *)d->block, d->op_index, op_index);
        return;
    }
    if (s.chunk.is_quick || s.left.is_quick) {
        probe_link_by_flush(m, run, op_index, is_forced);
        return;
    }
    size_t usable = quiet_usable(run, s.left.payload); /* the left block is live, or held */
    probe_damage(m, run, CALL_REALLOC, s.left.payload, usable, op_index, is_forced);
}

/* Frees the live block `block` (model index `index`) before damage to what the free leaves,
   quarantine released: legitimate, so a report fails the run (false). */
static bool free_for_damage(misuse *m, th_run *run, size_t index, unsigned char *block)
{
    TAlloc_heap_free(th_run_heap(run), block);
    release_quarantine(m, run);
    th_run_forget_block(run, index);
    return !th_run_has_failed(run);
}

static void damage_link(misuse *m, th_run *run, size_t op_index, size_t index,
                        unsigned char *block, misuse_call call, uint8_t param)
{
    TAlloc_heap *heap = th_run_heap(run);
    chunk_place s = locate(run, block);
    if (!s.is_found || s.is_dedicated || !s.has_left || s.left.is_free || s.left.is_quick) {
        stats[DAMAGE_LINK_OVERWRITE].skipped++;
        return;
    }
    if (!free_for_damage(m, run, index, block))
        return;
    s = locate(run, block);
    if (!s.is_found || !(s.chunk.is_free || s.chunk.is_quick) || s.chunk.payload != block) {
        th_run_fail(run, TH_API, block, "block %p freed after an allocated neighbour is not "
                    "the start of a free or quick chunk", (void *)block);
        return;
    }
    size_t length = 1u + param % 8u;
    pending_damage *d = begin_damage(m, op_index, DAMAGE_LINK_OVERWRITE, block,
                                     block + LINK_SIZE * (param / 8u % 2u), length);
    d->header = block - HEADER_SIZE;
    d->want_error = TALLOC_ERROR_CORRUPTED_FREE_LIST;
    d->want[0] = d->at;
    d->want_count = 1;
    /* a quick chunk holds its link twice: when the damaged copy still names another quick
       chunk of the list's size, TAlloc cannot tell which copy is damaged and blames the link */
    if (s.chunk.is_quick && d->at != block)
        d->want[d->want_count++] = block;
    for (size_t i = 0; i < length; i++)
        d->damaged[i] = d->saved[i] ^ overflow_masks[param / 16u % 8u];
    bool is_deferred = (param & PARAM_DEFERRED) != 0;
    if (is_deferred) {
        d->row = ROW_LINK_DEFERRED;
        d->window = (size_t)WINDOW_BASE << call;
        th_run_set_checking(run, false);
        /* a quarantine meets the link only when it lets the freed left neighbour go, and
           would keep it allocated, canary junk-filled, for good: the target holds it */
        if (m->has_quarantine)
            hold(m, run, s.left.payload);
    }
    stats[d->row].injected++;
    write_owned(d->at, d->damaged, length);
    if (TAlloc_heap_check(heap, NULL, NULL) == 0)
        th_run_fail(run, TH_DETECTION, d->at, "%s of block %p: TAlloc_heap_check found nothing",
                    row_names[d->row], (void *)block);
    else if (!is_deferred)
        probe_link(m, run, op_index, false);
}

/* ---- kind 7, K / 30 odd: both copies of a quick link retargeted by one XOR ---------------- */

enum { RETARGET_MAX_ARENAS = 64, RETARGET_MAX_QUICK = 256, RETARGET_MARGIN = 64 };

/* The arenas and the quick chunks of one payload size, from a walk. */
typedef struct retarget_scan {
    size_t size;
    uintptr_t arena_from[RETARGET_MAX_ARENAS], arena_to[RETARGET_MAX_ARENAS];
    size_t arena_count;
    uintptr_t quick[RETARGET_MAX_QUICK]; /* headers */
    size_t quick_count;
    bool is_full;
} retarget_scan;

static int visit_retarget(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    retarget_scan *r = ctx;
    if (chunk == NULL) {
        if (r->arena_count == RETARGET_MAX_ARENAS) {
            r->is_full = true;
            return 1;
        }
        r->arena_from[r->arena_count] = (uintptr_t)arena->address;
        r->arena_to[r->arena_count++] = (uintptr_t)arena->address + arena->size;
    } else if (chunk->is_quick && chunk->size == r->size) {
        if (r->quick_count == RETARGET_MAX_QUICK) {
            r->is_full = true;
            return 1;
        }
        r->quick[r->quick_count++] = (uintptr_t)chunk->address;
    }
    return 0;
}

/* Whether every link the quick list of B's size can hold (NULL or one of its chunks), moved
   by `delta`, names a place outside every arena (with a margin): there TAlloc cannot take it
   for a header, so the pop that meets it must report it. A delta that may land inside an
   arena can name a real chunk (the list would be changed beyond any check) or bytes that a
   later pop reads as a header: such a damage op is skipped. */
static bool is_retarget_outside(th_run *run, size_t size, uintptr_t delta)
{
    static retarget_scan r;
    r = (retarget_scan){.size = size};
    TAlloc_heap_walk(th_run_heap(run), visit_retarget, &r);
    if (r.is_full)
        return false;
    for (size_t q = 0; q <= r.quick_count; q++) {
        uintptr_t moved = (q < r.quick_count ? r.quick[q] : 0) ^ delta;
        for (size_t a = 0; a < r.arena_count; a++)
            if (moved + RETARGET_MARGIN > r.arena_from[a] && moved < r.arena_to[a] + RETARGET_MARGIN)
                return false;
    }
    return true;
}

/* The probe: malloc of B's size pops B first. Without junk and quarantine that is the fast
   entry's pop (quick.h), which must decline and leave the report to the full path; with
   either, the flush meets B as kind 7's probe does. `size`: B's chunk payload. */
static void probe_retarget(misuse *m, th_run *run, size_t size, size_t op_index)
{
    if (m->has_canary)
        size -= CANARY_RESERVE; /* the request whose chunk, canary included, is B's */
    if (m->has_junk || m->has_quarantine) {
        probe_link_by_flush(m, run, op_index, false);
        return;
    }
    pending_damage *d = &m->damage;
    m->is_probing = true;
    m->report_count = 0;
    m->error = TALLOC_ERROR_NONE;
    m->address = NULL;
    errno = 0;
    void *p = TAlloc_heap_malloc(th_run_heap(run), size);
    int error = errno;
    m->is_probing = false;
    if (p != NULL || error != ENOMEM) {
        if (m->report_count > 0)
            th_run_fail(run, TH_API, p, "malloc(%zu) returned %p, errno %d after a report", size,
                        p, error);
        else
            miss(m, run, d->row, d->at, "%s of block %p (op %zu): malloc(%zu) returned %p "
                 "without a report", row_names[d->row], (void *)d->block, d->op_index, size, p);
        return;
    }
    if (m->report_count != 1 || !is_expected_report(d, d->error, d->address)) {
        miss(m, run, d->row, d->address,
             "%s of block %p (op %zu) by malloc(%zu): %zu report(s), first \"%s\" at %p; "
             "expected \"%s\" at %p", row_names[d->row], (void *)d->block, d->op_index, size,
             m->report_count, TAlloc_error_string(d->error), d->address,
             TAlloc_error_string(d->want_error), d->want[0]);
        return;
    }
    count_damage_detection(d, op_index, false);
    end_damage(m, run);
}

/* B freed into a quick list (skipped otherwise); both of its link words XORed with the same
   bytes, so that both still decode to one address, moved: the keyed encoding cannot tell
   this from a true link, only the place it names can. Bytes P % 8 to 7 (P / 8 % 2 = 0) or
   byte P % 8 alone (1) of each word, with mask[(P / 16) % 8]. Immediate. */
static void damage_retarget(misuse *m, th_run *run, size_t op_index, size_t index,
                            unsigned char *block, uint8_t param)
{
    TAlloc_heap *heap = th_run_heap(run);
    chunk_place s = locate(run, block);
    if (!s.is_found || s.is_dedicated) {
        stats[ROW_LINK_RETARGET].skipped++;
        return;
    }
    size_t from = param % 8u, to = param / 8u % 2u == 0 ? 8 : from + 1;
    uintptr_t delta = 0;
    for (size_t i = from; i < to; i++)
        delta |= (uintptr_t)overflow_masks[param / 16u % 8u] << (8 * i);
    /* the list B joins holds its chunks now, and B will name one of them or NULL */
    if (!is_retarget_outside(run, s.chunk.size, delta)) {
        stats[ROW_LINK_RETARGET].skipped++;
        return;
    }
    if (!free_for_damage(m, run, index, block))
        return;
    s = locate(run, block);
    if (!s.is_found || !s.chunk.is_quick || s.chunk.payload != block) {
        stats[ROW_LINK_RETARGET].skipped++; /* merged into the free index instead */
        return;
    }
    pending_damage *d = begin_damage(m, op_index, DAMAGE_LINK_OVERWRITE, block, block, 2 * LINK_SIZE);
    d->row = ROW_LINK_RETARGET;
    d->header = block - HEADER_SIZE;
    d->want_error = TALLOC_ERROR_CORRUPTED_FREE_LIST;
    d->want[0] = block; /* both copies agree: the link word itself is blamed */
    d->want_count = 1;
    memcpy(d->damaged, d->saved, 2 * LINK_SIZE);
    for (size_t w = 0; w < 2; w++)
        for (size_t i = from; i < to; i++)
            d->damaged[w * LINK_SIZE + i] ^= overflow_masks[param / 16u % 8u];
    stats[d->row].injected++;
    write_owned(d->at, d->damaged, d->length);
    if (TAlloc_heap_check(heap, NULL, NULL) == 0) {
        th_run_fail(run, TH_DETECTION, d->at, "%s of block %p: TAlloc_heap_check found nothing",
                    row_names[d->row], (void *)block);
        return;
    }
    probe_retarget(m, run, s.chunk.size, op_index);
}

/* ---- kind 8: a write past the requested size, on a canary heap -------------------------- */

static void damage_canary(misuse *m, th_run *run, size_t op_index, unsigned char *block,
                          size_t size, misuse_call call, uint8_t param)
{
    if (!m->has_canary) {
        stats[DAMAGE_CANARY_OVERFLOW].skipped++;
        return;
    }
    size_t usable = quiet_usable(run, block), payload = chunk_payload(run, block);
    if (usable != size || payload < size + CANARY_RESERVE) {
        th_run_fail(run, TH_API, block, "canary block %p of %zu bytes: usable size %zu, chunk "
                    "payload %zu", (void *)block, size, usable, payload);
        return;
    }
    size_t length = 1u + param % 16u;
    if (length > payload - size)
        length = payload - size;
    pending_damage *d = begin_damage(m, op_index, DAMAGE_CANARY_OVERFLOW, block, block + size, length);
    d->block_usable = usable;
    d->want_error = TALLOC_ERROR_CANARY_CORRUPTED;
    d->want[0] = d->at;
    d->want_count = 1;
    if (size + length > payload - 8) /* reaches the stored size */
        d->want[d->want_count++] = block + payload - 8;
    for (size_t i = 0; i < length; i++)
        d->damaged[i] = d->saved[i] ^ overflow_masks[param / 16u % 8u];
    stats[DAMAGE_CANARY_OVERFLOW].injected++;
    write_owned(d->at, d->damaged, length);
    probe_damage(m, run, call, block, usable, op_index, false);
}

/* ---- kind 6: a write into a freed block ------------------------------------------------- */

static void count_junk_probe(misuse *m, th_run *run, size_t op_index, size_t reports)
{
    pending_damage *d = &m->damage;
    if (reports != 1 || !is_expected_report(d, d->error, d->address))
        miss(m, run, d->row, d->address,
             "%s into %p (op %zu) met by the forced probe at op %zu: %zu report(s), first \"%s\" "
             "at %p; expected \"write after free\" at %p", row_names[d->row], (void *)d->block,
             d->op_index, op_index, reports, TAlloc_error_string(d->error), d->address, d->want[0]);
    else
        count_damage_detection(d, op_index, true);
}

/* After a junk report: the op handed out part of the damaged bytes (and checked only those);
   the rest still lies in free memory, where the target puts the junk back. */
static void clean_junk(misuse *m, th_run *run)
{
    pending_damage *d = &m->damage;
    unsigned char *end = d->at + d->length;
    for (unsigned char *p = d->at; p < end;) {
        chunk_place s = locate(run, p);
        if (!s.is_found)
            break;
        unsigned char *payload = s.chunk.payload, *next = payload + s.chunk.size;
        unsigned char *from = payload + LINKS_AND_MARK, *to = next - FOOTER;
        from = from > p ? from : p;
        to = to < end ? to : end;
        if ((s.chunk.is_free || s.chunk.is_quick) && from < to) {
            open_bytes(from, (size_t)(to - from));
            memset(from, JUNK_BYTE, (size_t)(to - from));
            close_bytes(from, (size_t)(to - from));
        }
        p = next;
    }
}

/* Forced probe: hands out the free chunk that holds the damage - by growing its left
   neighbour over it, or (first in its arena) by allocations that the policy serves from
   chunks of its size (th_placement_take_size) until it is the one handed out. Every
   allocation is freed again. */
static void probe_junk(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    TAlloc_heap *heap = th_run_heap(run);
    size_t reserve = m->has_canary ? CANARY_RESERVE : 0, count = 0;
    void **taken = NULL;
    chunk_place s = locate(run, d->at);
    size_t left_size = 0;
    bool can_grow = s.is_found && s.chunk.is_free && s.has_left && !s.left.is_free &&
                    live_index(run, s.left.payload) != SIZE_MAX;
    if (can_grow)
        th_run_live_block(run, live_index(run, s.left.payload), &left_size);
    m->is_probing = true;
    m->report_count = 0;
    if (can_grow && left_size > 0) {
        /* the left neighbour, a live block, grows in place over it and shrinks back to its
           size: it keeps its bytes (and, with canary, its requested size) */
        size_t grown = s.left.size + HEADER_SIZE + s.chunk.size - reserve;
        if (TAlloc_heap_realloc(heap, s.left.payload, grown) != s.left.payload && !d->is_reported)
            th_run_fail(run, TH_API, s.left.payload, "realloc(%p, %zu) did not grow in place",
                        s.left.payload, grown);
        else if (TAlloc_heap_realloc(heap, s.left.payload, left_size) != s.left.payload)
            th_run_fail(run, TH_API, s.left.payload, "realloc(%p, %zu) did not shrink in place",
                        s.left.payload, left_size);
    } else {
        size_t capacity = 0;
        while (s.is_found && (s.chunk.is_free || s.chunk.is_quick) && !d->is_reported &&
               !th_run_has_failed(run)) {
            if (count == capacity) {
                capacity = capacity ? 2 * capacity : 64;
                taken = realloc(taken, capacity * sizeof *taken);
                if (taken == NULL)
                    abort();
            }
            if (count == MAX_PROBE_ALLOCS) {
                th_run_fail(run, TH_DETECTION, d->at, "%s into %p (op %zu): %d allocations did "
                            "not reach the free chunk that holds it", row_names[d->row],
                            (void *)d->block, d->op_index, MAX_PROBE_ALLOCS);
                break;
            }
            size_t take = s.chunk.is_quick /* its quick list's size */
                              ? s.chunk.size + HEADER_SIZE
                              : th_placement_take_size(heap, m->config->policy, s.chunk.size + HEADER_SIZE);
            void *p = TAlloc_heap_malloc(heap, take - HEADER_SIZE - reserve);
            if (p == NULL) {
                th_run_fail(run, TH_API, NULL, "probe allocation of %zu bytes failed", s.chunk.size);
                break;
            }
            taken[count++] = p;
            s = locate(run, d->at);
        }
    }
    m->is_probing = false;
    size_t reports = m->report_count;
    if (!th_run_has_failed(run) && !d->is_reported)
        miss(m, run, d->row, d->at, "%s into %p (op %zu) handed out by the forced probe at op "
             "%zu without a report", row_names[d->row], (void *)d->block, d->op_index, op_index);
    else if (!th_run_has_failed(run))
        count_junk_probe(m, run, op_index, reports);
    if (!th_run_has_failed(run) && d->is_reported)
        clean_junk(m, run); /* what the probe left of the damaged bytes in free memory */
    for (size_t i = 0; i < count && !th_run_has_failed(run); i++)
        TAlloc_heap_free(heap, taken[i]);
    free(taken);
    if (d->is_active)
        end_damage(m, run);
}

static void damage_write_after_free(misuse *m, th_run *run, size_t op_index, size_t size,
                                    misuse_call call, uint8_t param)
{
    TAlloc_heap *heap = th_run_heap(run);
    kind_stats *k = &stats[DAMAGE_WRITE_AFTER_FREE];
    unsigned char *scratch = TAlloc_heap_malloc(heap, size);
    if (scratch == NULL) {
        k->skipped++;
        return;
    }
    size_t usable = chunk_payload(run, scratch);
    m->watched = scratch;
    m->is_watched_unmapped = false;
    TAlloc_heap_free(heap, scratch);
    release_quarantine(m, run);
    m->watched = NULL;
    if (th_run_has_failed(run))
        return;
    if (m->is_watched_unmapped || usable <= LINKS_AND_MARK + FOOTER ||
        (m->has_junk && param == JUNK_BYTE)) {
        k->skipped++;
        return;
    }
    k->injected++;
    unsigned char *from = scratch + LINKS_AND_MARK;
    size_t n = usable - LINKS_AND_MARK - FOOTER;
    if (param & 0x80) { /* one byte, at an offset P picks: the check must find a lone byte */
        from += (size_t)(param & 0x7f) * SINGLE_BYTE_STRIDE % n;
        n = 1;
    }
    open_bytes(from, n);
    memset(from, param, n);
    close_bytes(from, n);
    if (!m->has_junk) {
        if (th_run_check(run, op_index))
            k->harmless++;
        return;
    }
    pending_damage *d = begin_damage(m, op_index, DAMAGE_WRITE_AFTER_FREE, scratch, from, n);
    d->fill = param;
    d->window = (size_t)WINDOW_BASE << call;
    d->want_error = TALLOC_ERROR_WRITE_AFTER_FREE;
    d->want[0] = from;
    d->want_count = 1;
}

/* The forced probe that resolves deferred damage nobody met. */
static void probe_forced(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    switch (d->kind) {
    case DAMAGE_FLIP_HEADER:
        probe_damage(m, run, CALL_USABLE_SIZE, d->block, d->block_usable, op_index, true);
        break;
    case DAMAGE_OVERFLOW_NEXT:
        probe_damage(m, run, CALL_REALLOC, d->block, d->block_usable, op_index, true);
        break;
    case DAMAGE_LINK_OVERWRITE: probe_link(m, run, op_index, true); break;
    default: probe_junk(m, run, op_index); break;
    }
}

#endif
