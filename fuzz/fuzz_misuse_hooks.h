/*
 * fuzz_misuse_hooks.h - the harness hooks of the fuzz_misuse targets: executing damage ops,
 * following pending damage through the program's own ops (after_op, on_unmap), and the
 * configuration shared by fuzz_misuse and fuzz_misuse_hardened. A part of their one
 * translation unit; the property is in fuzz_misuse.h.
 */
#ifndef TALLOC_FUZZ_MISUSE_HOOKS_H
#define TALLOC_FUZZ_MISUSE_HOOKS_H

#include "fuzz_misuse_kinds.h"

/* The line TAlloc writes when no handler is installed names the error and the address. */
static void check_report_line(th_run *run, TAlloc_error error, const void *address)
{
    char line[128], want[128];
    TAlloc_error_format(line, sizeof line, error, address);
    snprintf(want, sizeof want, "talloc: %s %p\n", TAlloc_error_string(error), address);
    if (strcmp(line, want) != 0)
        th_run_fail(run, TH_API, address, "report line \"%s\" differs from \"%s\"", line, want);
}

static void on_error(void *ctx, th_run *run, TAlloc_error error, const void *address)
{
    misuse *m = ctx;
    pending_damage *d = &m->damage;
    check_report_line(run, error, address);
    m->report_count++;
    m->error = error;
    m->address = address;
    if (d->is_active && !d->is_reported) {
        /* TAlloc returns without touching the damaged bytes: make them whole before it does */
        if (!d->is_unmapped && is_restorable(d))
            write_owned(d->at, d->saved, d->length);
        d->is_reported = true;
        d->error = error;
        d->address = address;
        return;
    }
    if (d->is_active && !m->is_probing) { /* a call after the report met what it left behind */
        miss(m, run, d->row, address, "%s of block %p (op %zu): after the report \"%s\" at %p, "
             "TAlloc reported \"%s\" at %p", row_names[d->row], (void *)d->block, d->op_index,
             TAlloc_error_string(d->error), d->address, TAlloc_error_string(error), address);
        return;
    }
    if (!m->is_probing && !m->is_spoiled)
        th_run_fail(run, TH_API, address, "TAlloc reported \"%s\" with no damage pending",
                    TAlloc_error_string(error));
}

static void on_damage(void *ctx, th_run *run, size_t op_index, const th_op *op, th_op_result *result)
{
    misuse *m = ctx;
    m->run = run;
    if (m->is_spoiled)
        return;
    damage_kind kind = (damage_kind)(op->count % DAMAGE_KIND_COUNT);
    misuse_call call = (misuse_call)(op->count / DAMAGE_KIND_COUNT % CALL_COUNT);
    if (m->damage.is_active) { /* one damage at a time */
        probe_forced(m, run, op_index);
        if (th_run_has_failed(run) || m->is_spoiled)
            return;
    }
    size_t live = th_run_live_count(run);
    if (live == 0) {
        stats[kind].skipped++;
        return;
    }
    size_t index = op->block % live;
    size_t size;
    unsigned char *block = th_run_live_block(run, index, &size);
    result->is_executed = true;
    result->block = block;
    result->block_size = size;
    switch (kind) {
    case DAMAGE_DOUBLE_FREE: damage_double_free(m, run, op_index, index, block, call, op->param); break;
    case DAMAGE_INTERIOR_FREE: damage_interior_free(m, run, op_index, block, call, op->param); break;
    case DAMAGE_MISALIGNED_FREE:
        expect_immediate(m, run, op_index, kind, call, block + 1 + op->param % 15u, 1u + op->param,
                         TALLOC_ERROR_MISALIGNED_POINTER);
        break;
    case DAMAGE_FOREIGN_FREE: damage_foreign_free(m, run, op_index, call, op->param); break;
    case DAMAGE_FLIP_HEADER:
    case DAMAGE_OVERFLOW_NEXT: damage_header(m, run, op_index, kind, block, call, op->param); break;
    case DAMAGE_WRITE_AFTER_FREE:
        damage_write_after_free(m, run, op_index, size, call, op->param);
        break;
    case DAMAGE_LINK_OVERWRITE:
        if (op->count / (DAMAGE_KIND_COUNT * CALL_COUNT) % 2 == 1)
            damage_retarget(m, run, op_index, index, block, op->param);
        else
            damage_link(m, run, op_index, index, block, call, op->param);
        break;
    case DAMAGE_CANARY_OVERFLOW: damage_canary(m, run, op_index, block, size, call, op->param); break;
    default: damage_free_after_frees(m, run, op_index, index, block, call, op->param); break;
    }
    save_stats();
}

static bool is_allocation(th_op_kind kind)
{
    return kind == TH_OP_MALLOC || kind == TH_OP_CALLOC || kind == TH_OP_ALIGNED_ALLOC ||
           kind == TH_OP_POSIX_MEMALIGN;
}

/* A report arrived during a program op: it must be the one the damage calls for, the call
   must have kept its contract, and the heap must be whole again (restored by the handler).
   A free the program meant to make, which TAlloc refused while the damage was there, is
   completed. */
static void settle_report(misuse *m, th_run *run, size_t op_index, const th_op *op,
                          const th_op_result *r)
{
    pending_damage *d = &m->damage;
    const char *name = th_op_name((th_op_kind)op->kind);
    if (!is_expected_report(d, d->error, d->address)) {
        miss(m, run, d->row, d->address,
             "%s of block %p (op %zu) reported by op %zu (%s) as \"%s\" at %p; expected \"%s\" "
             "at %p", row_names[d->row], (void *)d->block, d->op_index, op_index, name,
             TAlloc_error_string(d->error), d->address,
             is_header_kind(d->kind) ? "corrupted header" : TAlloc_error_string(d->want_error),
             is_header_kind(d->kind) ? (const void *)d->header : d->want[0]);
        return;
    }
    /* met a damaged header or link: an allocation returns NULL (junk: the memory is handed out) */
    if (d->kind != DAMAGE_WRITE_AFTER_FREE && is_allocation((th_op_kind)op->kind) && r->result) {
        miss(m, run, d->row, r->result,
             "%s of block %p (op %zu): op %zu (%s) reported \"%s\" at %p and returned %p",
             row_names[d->row], (void *)d->block, d->op_index, op_index, name,
             TAlloc_error_string(d->error), d->address, r->result);
        return;
    }
    if (d->kind == DAMAGE_WRITE_AFTER_FREE)
        clean_junk(m, run);
    first_violation v;
    if (check_heap(run, &v) != 0) {
        miss(m, run, d->row, v.address,
             "%s of block %p (op %zu): op %zu (%s) reported \"%s\" at %p, then with the damage "
             "restored %s at %p: %s", row_names[d->row], (void *)d->block, d->op_index, op_index,
             name, TAlloc_error_string(d->error), d->address, th_invariant_name(v.invariant),
             v.address, v.detail);
        return;
    }
    count_damage_detection(d, op_index, false);
    end_damage(m, run);
    bool is_dropped = r->is_executed && r->block &&
                      (op->kind == TH_OP_FREE ||
                       (op->kind == TH_OP_REALLOC && (r->request_size == 0 ||
                                                      (r->result && r->result != r->block))));
    if (is_dropped && !th_run_has_failed(run)) {
        chunk_place s = locate(run, r->block);
        /* a free that met the damage left the block allocated, or quarantined when the
           quarantine could not release it: the release below finishes that one */
        if (s.is_found && !s.chunk.is_free && !s.chunk.is_quarantined && !s.chunk.is_quick &&
            s.chunk.payload == r->block)
            TAlloc_heap_free(th_run_heap(run), r->block);
        release_quarantine(m, run);
    }
    /* a free that met a damaged link keeps the arena it would have unmapped (beyond the
       retained count): trim lets it go, as the final drain expects */
    if (!th_run_has_failed(run))
        TAlloc_heap_trim(th_run_heap(run));
}

/* TAlloc rewrote the damaged bytes without a report: harmless only if the heap is whole
   (and, for a link, the chunk behind it still free where it was). */
static void settle_rewrite(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    first_violation v;
    if (d->kind == DAMAGE_LINK_OVERWRITE) {
        chunk_place s = locate(run, d->header);
        if (!s.is_found || s.chunk.address != d->header || !(s.chunk.is_free || s.chunk.is_quick)) {
            miss(m, run, d->row, d->at, "%s of block %p (op %zu) never reported: op %zu took "
                 "or merged its chunk", row_names[d->row], (void *)d->block, d->op_index, op_index);
            return;
        }
    }
    if (check_heap(run, &v) != 0) {
        miss(m, run, d->row, d->at,
             "%s of block %p (op %zu) never reported: op %zu rewrote the damaged bytes at %p, "
             "after which %s at %p: %s",
             row_names[d->row], (void *)d->block, d->op_index, op_index, (void *)d->at,
             th_invariant_name(v.invariant), v.address, v.detail);
        return;
    }
    stats[d->row].harmless++;
    end_damage(m, run);
}

/* A damaged link the op did not report: with the link restored the heap must be whole, or
   TAlloc acted on the damage without a report. */
static void verify_behind_link(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    write_owned(d->at, d->saved, d->length);
    first_violation v;
    if (check_heap(run, &v) != 0) {
        miss(m, run, d->row, v.address,
             "%s of block %p (op %zu) never reported: op %zu acted on it; with the link "
             "restored %s at %p: %s", row_names[d->row], (void *)d->block, d->op_index,
             op_index, th_invariant_name(v.invariant), v.address, v.detail);
        return;
    }
    if (d->held_count == 0 && !th_run_check(run, op_index)) /* held blocks: not in the model */
        return;
    write_owned(d->at, d->damaged, d->length);
}

/* Junk damage: its memory must still lie in the junk of a free chunk (not handed out, no
   header or link written over it). */
static void verify_junk_pending(misuse *m, th_run *run, size_t op_index)
{
    pending_damage *d = &m->damage;
    chunk_place s = locate(run, d->at);
    const unsigned char *payload = s.chunk.payload;
    bool is_junk = s.is_found && (s.chunk.is_free || s.chunk.is_quick) &&
                   d->at >= payload + LINKS_AND_MARK &&
                   d->at + d->length <= payload + s.chunk.size - FOOTER;
    if (!is_junk || is_rewritten(d))
        miss(m, run, d->row, d->at,
             "%s into %p (op %zu) never reported: op %zu handed out or overwrote the damaged "
             "bytes (now in the %s chunk at %p)", row_names[d->row], (void *)d->block,
             d->op_index, op_index,
             !s.is_found ? "no" : s.chunk.is_free ? "free" : s.chunk.is_quick ? "quick" : "allocated",
             s.is_found ? s.chunk.address : NULL);
}

/* The pending damage after a program op: reported, met silently, or still waiting. */
static void follow_damage(misuse *m, th_run *run, size_t op_index, const th_op *op,
                          const th_op_result *r)
{
    pending_damage *d = &m->damage;
    if (!d->is_active || th_run_has_failed(run) || m->is_spoiled)
        return;
    bool is_window_over = op_index - d->op_index >= d->window;
    if (d->is_reported) {
        settle_report(m, run, op_index, op, r);
    } else if (d->kind == DAMAGE_WRITE_AFTER_FREE) {
        if (d->is_unmapped) { /* counted unmet by on_unmap: the memory was never handed out */
            end_damage(m, run);
        } else {
            verify_junk_pending(m, run, op_index);
            if (is_window_over && !th_run_has_failed(run) && !m->is_spoiled)
                probe_forced(m, run, op_index);
        }
    } else if (d->is_unmapped) {
        stats[d->row].unmet--; /* on_unmap counted it; during the program it is a miss */
        miss(m, run, d->row, d->at, "%s of block %p (op %zu) never reported: op %zu unmapped its arena",
             row_names[d->row], (void *)d->block, d->op_index, op_index);
    } else if (is_rewritten(d)) {
        settle_rewrite(m, run, op_index);
    } else {
        if (d->kind == DAMAGE_LINK_OVERWRITE)
            verify_behind_link(m, run, op_index);
        if (is_window_over && !th_run_has_failed(run) && !m->is_spoiled)
            probe_forced(m, run, op_index);
    }
    if (!th_run_has_failed(run) && !d->is_active && !m->is_spoiled)
        release_quarantine(m, run);
}

static void after_op(void *ctx, th_run *run, size_t op_index, const th_op *op, const th_op_result *r)
{
    misuse *m = ctx;
    m->run = run;
    follow_damage(m, run, op_index, op, r);
    while (m->is_spoiled && th_run_live_count(run) > 0) /* the drain must not free them */
        th_run_forget_block(run, 0);
}

/* Unmaps come from frees during the run and from the heap's destruction after the program;
   TAlloc makes an arena plain memory again before it unmaps it. */
static void on_unmap(void *ctx, void *base, size_t size)
{
    misuse *m = ctx;
    uintptr_t from = (uintptr_t)base, to = from + size;
    if (m->watched && (uintptr_t)m->watched >= from && (uintptr_t)m->watched < to) {
        m->is_watched_unmapped = true;
        m->is_watched_first_large = size != m->arena_size &&
                                    (uintptr_t)m->watched == from + FIRST_PAYLOAD_OFFSET;
    }
    pending_damage *d = &m->damage;
    if (!d->is_active || m->is_spoiled || d->is_unmapped || (uintptr_t)d->at < from ||
        (uintptr_t)d->at >= to)
        return;
    d->is_unmapped = true;
    if (m->run && d->is_reported && !is_expected_report(d, d->error, d->address)) {
        /* met by the final drain: still the right report */
        miss(m, m->run, d->row, d->address, "%s of block %p (op %zu) reported after the "
             "program as \"%s\" at %p", row_names[d->row], (void *)d->block, d->op_index,
             TAlloc_error_string(d->error), d->address);
    } else if (m->run && !d->is_reported && is_restorable(d) && is_rewritten(d)) {
        miss(m, m->run, d->row, d->at,
             "%s of block %p (op %zu) never reported: the damaged bytes were rewritten when the "
             "arena was unmapped", row_names[d->row], (void *)d->block, d->op_index);
    } else {
        stats[d->row].unmet++;
    }
}

/* The configuration of both targets; also resets the hooks' state for the next input. */
static void misuse_configure(th_config *config, const char *name, bool has_canary, bool has_junk,
                             bool has_quarantine)
{
    static bool is_initialized;
    if (!is_initialized) {
        is_initialized = true;
        target_name = name;
        const char *flag = getenv("TALLOC_MISUSE_STATS");
        if (flag && strcmp(flag, "1") == 0)
            atexit(print_stats);
        flag = getenv("TALLOC_MISUSE_COUNT_MISSES");
        is_counting_misses = flag && strcmp(flag, "1") == 0;
        stats_path = getenv("TALLOC_MISUSE_STATS_FILE");
        load_stats();
    }
    save_stats();
    state = (misuse){.config = config};
    th_config_init(config);
    state.arena_size = config->arena_size;
    state.has_canary = has_canary;
    state.has_junk = has_junk;
    state.has_quarantine = has_quarantine;
    config->canary = has_canary;
    config->junk = has_junk;
    config->quarantine = has_quarantine ? QUARANTINE : 0;
    if (has_junk) /* junk fills every freed byte: the largest blocks would cost most of the time */
        config->max_request = HARDENED_MAX_REQUEST;
    config->allowed_ops = ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_FAIL_MAPS);
    /* damage is followed until its arena is unmapped (on_unmap); the large-block cache would
       take a dedicated arena away with no unmap (its kept mapping is plain memory no damage
       op reaches), so these targets run without it */
    config->large_cache = 0;
    config->hooks = (th_hooks){.on_unmap = on_unmap, .after_op = after_op, .damage = on_damage,
                               .on_error = on_error, .ctx = &state};
}

#endif
