/*
 * run.c - executes a program on a fresh heap: resolves each op's operands, calls TAlloc,
 * checks the C contract of the result (TH_API), keeps the model, and runs the full check
 * after every op. The heap gets an OS layer that can refuse maps on request (fail_maps) and
 * an error handler that turns any report into a failure unless a hook expects it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* TALLOC_TEST_POLICY names the policy runs use (ctest runs the corpus under each); else
   TAlloc's default. */
TAlloc_policy th_default_policy(void)
{
    const char *name = getenv("TALLOC_TEST_POLICY");
    TAlloc_config defaults;
    TAlloc_config_init(&defaults);
    if (name)
        TAlloc_policy_parse(name, strlen(name), &defaults.policy);
    return defaults.policy;
}

void th_config_init(th_config *config)
{
    *config = (th_config){
        .arena_size = 16384,
        .retained_arena_count = 1,
        .policy = th_default_policy(),
        .allowed_ops = 0,
        .check_every = 1,
        .max_live_blocks = 256,
        .max_request = (size_t)4 << 20,
        .stop_at_failure = true,
        .large_cache = TALLOC_DEFAULT_LARGE_CACHE,
        .quick = 4096,
        .purge = 4096,
        .quarantine_bytes = TALLOC_DEFAULT_QUARANTINE_BYTES,
    };
}

static const char *const invariant_names[] = {
    "none", "I1 tiling", "I2 headers", "I3 boundary tags", "I4 coalesced", "I5 free index",
    "I6 accounting", "I7 model", "I8 drained", "API contract", "placement policy",
    "misuse detection", "crash",
};

const char *th_invariant_name(int invariant)
{
    if (invariant < 0 || invariant > TH_CRASH)
        return "unknown";
    return invariant_names[invariant];
}

/* ---- accessors for hooks ----------------------------------------------------------------- */

TAlloc_heap *th_run_heap(th_run *run) { return run->heap; }
size_t th_run_live_count(const th_run *run) { return run->live_count; }
bool th_run_has_failed(const th_run *run) { return run->result->failure.has_failed; }
void th_run_set_checking(th_run *run, bool is_checking) { run->is_checking = is_checking; }
void th_run_forget_block(th_run *run, size_t index) { th_model_remove(run, index); }

void *th_run_live_block(const th_run *run, size_t index, size_t *size)
{
    if (size)
        *size = run->live[index].size;
    return run->live[index].ptr;
}

void th_run_fail(th_run *run, int invariant, const void *address, const char *fmt, ...)
{
    th_failure *f = &run->result->failure;
    if (f->has_failed)
        return;
    *f = (th_failure){true, run->op_index, invariant, address, {0}};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
}

void th_print_failure(const th_failure *failure, FILE *out)
{
    if (!failure->has_failed) {
        fprintf(out, "ok\n");
        return;
    }
    fprintf(out, "op %zu: %s (invariant %d): %s\n", failure->op_index,
            th_invariant_name(failure->invariant), failure->invariant, failure->detail);
}

/* ---- the heap's OS layer and error handler ---------------------------------------------- */

/* Whether the next map is refused (fail_maps); counts it. */
static bool refuse_map(th_run *run)
{
    if (run->maps_to_fail == 0)
        return false;
    run->maps_to_fail--;
    run->maps_failed_in_op++;
    run->result->counters.maps_failed++;
    return true;
}

static void *run_map_aligned(void *ctx, size_t size, size_t alignment)
{
    th_run *run = ctx;
    if (refuse_map(run))
        return NULL;
    void *p = th_space_map(size, alignment);
    if (p == NULL) {
        run->maps_failed_in_op++;
        return NULL;
    }
    run->outstanding_maps++;
    if (run->config->hooks.on_map)
        run->config->hooks.on_map(run->config->hooks.ctx, p, size);
    return p;
}

static void *run_map(void *ctx, size_t size)
{
    return run_map_aligned(ctx, size, 0);
}

static void run_unmap(void *ctx, void *address, size_t size)
{
    th_run *run = ctx;
    run->outstanding_maps--;
    if (run->config->hooks.on_unmap)
        run->config->hooks.on_unmap(run->config->hooks.ctx, address, size);
    th_space_unmap(address, size);
}

/* A mapping that grows may be refused like a map; one that shrinks is not. */
static void *run_remap(void *ctx, void *address, size_t old_size, size_t new_size)
{
    th_run *run = ctx;
    if (new_size > old_size && refuse_map(run))
        return NULL;
    void *p = th_space_remap(address, old_size, new_size);
    if (p == NULL) {
        run->maps_failed_in_op++;
        return NULL;
    }
    if (run->config->hooks.on_remap)
        run->config->hooks.on_remap(run->config->hooks.ctx, address, old_size, p, new_size);
    return p;
}

static int run_protect(void *ctx, void *address, size_t size)
{
    (void)ctx;
    return TAlloc_os_default()->protect(NULL, address, size);
}

/* The kernel's own purge: the pages read as zero afterwards, so a purge that reaches a live
   block, a header or an index word shows as damage to the checks. */
static int run_purge(void *ctx, void *address, size_t size)
{
    (void)ctx;
    return TAlloc_os_default()->purge(NULL, address, size);
}

/* The heap's own tables: refused like arena maps, counted, not reported to on_map. */
static void *run_map_metadata(void *ctx, size_t size)
{
    th_run *run = ctx;
    if (run->is_capturing) /* outside the space: a picture must not move what follows */
        return TAlloc_os_default()->map(NULL, size);
    if (refuse_map(run))
        return NULL;
    void *p = th_space_map(size, 0);
    if (p == NULL) {
        run->maps_failed_in_op++;
        return NULL;
    }
    run->outstanding_maps++;
    return p;
}

static void run_unmap_metadata(void *ctx, void *address, size_t size)
{
    th_run *run = ctx;
    if (run->is_capturing) {
        TAlloc_os_default()->unmap(NULL, address, size);
        return;
    }
    run->outstanding_maps--;
    th_space_unmap(address, size);
}

static void run_error(void *ctx, TAlloc_error error, const void *address)
{
    th_run *run = ctx;
    run->errors_in_op++;
    run->result->counters.errors_reported[error]++;
    if (run->config->hooks.on_error)
        run->config->hooks.on_error(run->config->hooks.ctx, run, error, address);
    else
        th_run_fail(run, TH_API, address, "TAlloc reported \"%s\" on a valid program",
                    TAlloc_error_string(error));
}

/* ---- executing ops ------------------------------------------------------------------------ */

static bool is_allowed(const th_run *run, th_op_kind kind)
{
    uint32_t allowed = run->config->allowed_ops;
    if (allowed == 0)
        allowed = ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_FAIL_MAPS) & ~(1u << TH_OP_DAMAGE);
    return (allowed >> kind) & 1;
}

/* A NULL result is legitimate only with ENOMEM when a map was refused or the size cannot be
   represented (th_is_representable), or after TAlloc reported damage during the call (fuzz_misuse: the call then
   fails without touching the damaged chunk); a non-NULL one only when the size can be. */
bool th_is_representable(size_t size, size_t alignment)
{
    size_t limit = (size_t)PTRDIFF_MAX;
    if (alignment < 16)
        alignment = 16;
    return size <= limit && alignment <= limit / 4 && size <= limit - alignment - 64;
}

static void check_outcome(th_run *run, const th_op_result *r, size_t size, bool is_einval)
{
    bool is_representable = th_is_representable(size, r->alignment);
    if (r->result == NULL && run->errors_in_op > 0)
        return;
    if (r->result != NULL) {
        if (!is_representable || is_einval)
            th_run_fail(run, TH_API, r->result, "request of %zu bytes (alignment %zu) succeeded",
                        size, r->alignment);
        return;
    }
    int want = is_einval ? EINVAL : ENOMEM;
    if (r->error != want)
        th_run_fail(run, TH_API, NULL, "failed with errno %d, expected %d", r->error, want);
    else if (!is_einval && is_representable && run->maps_failed_in_op == 0)
        th_run_fail(run, TH_API, NULL, "request of %zu bytes failed with no map refused", size);
}

static bool has_room(const th_run *run, size_t size)
{
    return run->live_count < run->config->max_live_blocks &&
           (size <= run->config->max_request || size > (size_t)PTRDIFF_MAX);
}

static void adopt(th_run *run, th_op_result *r, size_t size, size_t alignment)
{
    if (r->result == NULL)
        return;
    th_model_add(run, r->result, size, alignment < 16 ? 16 : alignment);
    th_model_fill(run, &run->live[run->live_count - 1]);
}

/* The index of the first nonzero byte among `n`, or SIZE_MAX; memcmp keeps it fast in
   instrumented builds. */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    static const unsigned char zeros[4096];
    for (size_t i = 0; i < n; i += sizeof zeros) {
        size_t chunk = n - i < sizeof zeros ? n - i : sizeof zeros;
        if (memcmp(p + i, zeros, chunk) != 0) {
            while (p[i] == 0)
                i++;
            return i;
        }
    }
    return SIZE_MAX;
}

static void do_calloc(th_run *run, const th_op *op, th_op_result *r, size_t elem)
{
    size_t total;
    bool is_overflow = __builtin_mul_overflow((size_t)op->count, elem, &total);
    r->request_size = is_overflow ? SIZE_MAX : total;
    if (!has_room(run, r->request_size))
        return;
    r->is_executed = true;
    errno = 0;
    r->result = TAlloc_heap_calloc(run->heap, op->count, elem);
    r->error = errno;
    check_outcome(run, r, r->request_size, false);
    if (r->result == NULL)
        return;
    size_t nonzero = first_nonzero(r->result, total < 65536 ? total : 65536);
    if (nonzero != SIZE_MAX)
        th_run_fail(run, TH_API, (char *)r->result + nonzero, "calloc memory not zero at byte %zu", nonzero);
    adopt(run, r, total, 16);
}

static void do_aligned(th_run *run, const th_op *op, th_op_result *r, size_t size)
{
    size_t a = th_alignment(op->align);
    r->alignment = a;
    if (!has_room(run, size))
        return;
    r->is_executed = true;
    bool is_pow2 = a != 0 && (a & (a - 1)) == 0;
    if (op->kind == TH_OP_ALIGNED_ALLOC) {
        errno = 0;
        r->result = TAlloc_heap_aligned_alloc(run->heap, a, size);
        r->error = errno;
        check_outcome(run, r, size, !is_pow2);
    } else {
        void *sentinel = (void *)&run->live;
        void *out = sentinel;
        r->error = TAlloc_heap_posix_memalign(run->heap, &out, a, size);
        r->result = r->error == 0 ? out : NULL;
        if (r->error != 0 && out != sentinel)
            th_run_fail(run, TH_API, out, "posix_memalign changed *out on failure");
        check_outcome(run, r, size, !is_pow2 || a % sizeof(void *) != 0);
    }
    if (r->result && a > 1 && ((uintptr_t)r->result & (a - 1)) != 0)
        th_run_fail(run, TH_API, r->result, "pointer not aligned to %zu", a);
    adopt(run, r, size, a);
}

static void do_realloc(th_run *run, size_t index, th_op_result *r, size_t size)
{
    th_block *b = &run->live[index];
    if (size > run->config->max_request && size <= (size_t)PTRDIFF_MAX)
        return;
    r->is_executed = true;
    if (!th_model_verify(run, b, SIZE_MAX, "before realloc"))
        return;
    errno = 0;
    r->result = TAlloc_heap_realloc(run->heap, b->ptr, size);
    r->error = errno;
    if (size == 0) {
        if (r->result != NULL)
            th_run_fail(run, TH_API, r->result, "realloc to 0 returned a pointer");
        th_model_remove(run, index);
        return;
    }
    check_outcome(run, r, size, false);
    if (r->result == NULL) {
        th_model_verify(run, b, SIZE_MAX, "old block after failed realloc");
        return;
    }
    size_t old_size = b->size;
    b->ptr = r->result;
    if (th_model_verify(run, b, old_size < size ? old_size : size, "prefix after realloc")) {
        b->size = size;
        b->alignment = 16;
        b->op_index = run->op_index;
        th_model_fill(run, b);
    }
}

static void do_block_op(th_run *run, const th_op *op, th_op_result *r)
{
    if (run->live_count == 0)
        return;
    size_t index = op->block % run->live_count;
    th_block *b = &run->live[index];
    r->block = b->ptr;
    r->block_size = b->size;
    if (op->kind == TH_OP_REALLOC) {
        r->request_size = th_size_value(op->size, run->config->arena_size);
        do_realloc(run, index, r, r->request_size);
        return;
    }
    r->is_executed = true;
    switch (op->kind) {
    case TH_OP_FREE:
        if (th_model_verify(run, b, SIZE_MAX, "before free")) {
            TAlloc_heap_free(run->heap, b->ptr);
            th_model_remove(run, index);
        }
        break;
    case TH_OP_USABLE_SIZE: {
        size_t usable = TAlloc_heap_usable_size(run->heap, b->ptr);
        if (usable < b->size)
            th_run_fail(run, TH_API, b->ptr, "usable size %zu below requested %zu", usable, b->size);
        break;
    }
    case TH_OP_WRITE: th_model_fill(run, b); break;
    default: th_model_verify(run, b, SIZE_MAX, "verify"); break;
    }
}

static void execute(th_run *run, const th_op *op, th_op_result *r)
{
    size_t size = th_size_value(op->size, run->config->arena_size);
    r->request_size = size;
    switch (op->kind) {
    case TH_OP_MALLOC:
        if (!has_room(run, size))
            return;
        r->is_executed = true;
        errno = 0;
        r->result = TAlloc_heap_malloc(run->heap, size);
        r->error = errno;
        check_outcome(run, r, size, false);
        adopt(run, r, size, 16);
        break;
    case TH_OP_CALLOC: do_calloc(run, op, r, size); break;
    case TH_OP_ALIGNED_ALLOC:
    case TH_OP_POSIX_MEMALIGN: do_aligned(run, op, r, size); break;
    case TH_OP_FAIL_MAPS:
        r->is_executed = true;
        run->maps_to_fail = op->count % 8u;
        break;
    case TH_OP_DAMAGE:
        if (run->config->hooks.damage)
            run->config->hooks.damage(run->config->hooks.ctx, run, run->op_index, op, r);
        break;
    default: do_block_op(run, op, r); break;
    }
}

/* ---- the run ------------------------------------------------------------------------------ */

/* The heap as TAlloc_debug_print shows it. Its text buffer is a metadata map, which an
   injected failure (fail_maps) meant for the program must not hit. */
static char *heap_text(th_run *run)
{
    char *text = NULL;
    size_t length = 0;
    FILE *f = open_memstream(&text, &length);
    if (f == NULL)
        return NULL;
    run->is_capturing = true;
    TAlloc_heap_debug_print(run->heap, f);
    run->is_capturing = false;
    fclose(f);
    return text;
}

static bool create_heap(th_run *run)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.arena_size = run->config->arena_size;
    config.retained_arena_count = run->config->retained_arena_count;
    config.policy = run->config->policy;
    config.canary = run->config->canary;
    config.junk = run->config->junk;
    config.quarantine = run->config->quarantine;
    config.quarantine_bytes = run->config->quarantine_bytes;
    config.large_cache = run->config->large_cache;
    config.quick = run->config->quick;
    config.purge = run->config->purge;
    config.os = (TAlloc_os){.map = run_map, .unmap = run_unmap, .ctx = run,
                            .map_aligned = run_map_aligned, .remap = run_remap,
                            .protect = run_protect, .map_metadata = run_map_metadata,
                            .unmap_metadata = run_unmap_metadata, .purge = run_purge};
    config.error_handler = run_error;
    config.error_ctx = run;
    run->heap = TAlloc_heap_create(&config);
    if (run->heap == NULL)
        th_run_fail(run, TH_API, NULL, "heap creation failed");
    return run->heap != NULL;
}

static void run_op(th_run *run, const th_program *program, size_t i)
{
    const th_op *op = &program->ops[i];
    th_op_result r = {0};
    char *before = run->config->capture_heap ? heap_text(run) : NULL;
    run->op_index = i;
    run->maps_failed_in_op = 0;
    run->errors_in_op = 0;
    if (run->config->progress)
        *run->config->progress = i;
    if (is_allowed(run, (th_op_kind)op->kind))
        execute(run, op, &r);
    if (run->config->quarantine && !run->config->keep_quarantine)
        TAlloc_heap_release_quarantine(run->heap);
    r.maps_failed = run->maps_failed_in_op;
    if (r.is_executed)
        run->result->counters.executed[op->kind]++;
    if (run->config->hooks.after_op)
        run->config->hooks.after_op(run->config->hooks.ctx, run, i, op, &r);
    size_t every = run->config->check_every;
    if (!th_run_has_failed(run) && run->is_checking && every && (i + 1) % every == 0)
        th_run_check(run, i);
    if (th_run_has_failed(run) && run->result->heap_before == NULL && before) {
        run->result->heap_before = before;
        run->result->heap_after = heap_text(run);
        before = NULL;
    }
    free(before);
}

bool th_run_program(const th_program *program, const th_config *config, th_result *result)
{
    *result = (th_result){0};
    th_run run = {.config = config, .result = result, .is_checking = true};
    for (size_t i = 0; i < program->count; i++)
        result->counters.decoded[program->ops[i].kind % TH_OP_KIND_COUNT]++;
    if (create_heap(&run)) {
        for (size_t i = 0; i < program->count; i++) {
            run_op(&run, program, i);
            if (th_run_has_failed(&run) && config->stop_at_failure)
                break;
        }
        run.op_index = program->count;
        if (config->progress)
            *config->progress = program->count;
        if (!th_run_has_failed(&run) || !config->stop_at_failure)
            th_check_drained(&run);
    }
    free(run.live);
    free(run.scratch_chunks);
    free(run.scratch_blocks);
    return !result->failure.has_failed;
}

void th_result_free(th_result *result)
{
    free(result->heap_before);
    free(result->heap_after);
    result->heap_before = result->heap_after = NULL;
}

void th_counters_add(th_counters *into, const th_counters *from)
{
    for (int k = 0; k < TH_OP_KIND_COUNT; k++) {
        into->decoded[k] += from->decoded[k];
        into->executed[k] += from->executed[k];
    }
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++)
        into->events[e] += from->events[e];
    for (int e = 0; e < TALLOC_ERROR_COUNT; e++)
        into->errors_reported[e] += from->errors_reported[e];
    into->maps_failed += from->maps_failed;
    into->checks += from->checks;
}
