/*
 * test_harness - the harness itself: any bytes decode to a program; bytes, programs and text
 * convert into each other without losing meaning; and the checker really fails - a damaged
 * pattern, a leaked chunk, a block freed behind the model's back and a broken C contract
 * are each reported with the right invariant and op index; and a run's mappings land at the
 * same addresses in every process.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

static uint64_t rng = 0x243F6A8885A308D3u;

static uint8_t random_byte(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint8_t)(rng >> 32);
}

static bool same_meaning(const th_op *a, const th_op *b)
{
    size_t arena = 16384;
    return a->kind == b->kind && a->block == b->block && a->count == b->count &&
           th_alignment(a->align) == th_alignment(b->align) && a->param == b->param &&
           th_size_value(a->size, arena) == th_size_value(b->size, arena) &&
           (a->size.form == TH_SIZE_EDGE) == (b->size.form == TH_SIZE_EDGE);
}

static bool same_op(const th_op *a, const th_op *b)
{
    return a->kind == b->kind && a->block == b->block && a->count == b->count &&
           a->align == b->align && a->param == b->param && a->size.form == b->size.form &&
           a->size.value == b->size.value;
}

/* Random bytes -> program -> bytes -> program gives the same program; -> text -> program
   gives the same meaning, and the text is stable. */
static void test_round_trips(void)
{
    int decode_mismatch = 0, text_mismatch = 0, text_unstable = 0;
    for (int round = 0; round < 2000; round++) {
        uint8_t bytes[256];
        size_t n = random_byte() % sizeof bytes;
        for (size_t i = 0; i < n; i++)
            bytes[i] = random_byte();
        th_program p, q, t;
        th_decode(bytes, n, &p);
        uint8_t again[1024];
        size_t m = th_encode(&p, again, sizeof again);
        th_decode(again, m, &q);
        decode_mismatch += q.count != p.count;
        for (size_t i = 0; i < p.count && i < q.count; i++)
            decode_mismatch += !same_op(&p.ops[i], &q.ops[i]);

        char *text = NULL, *text2 = NULL;
        size_t length = 0;
        FILE *f = open_memstream(&text, &length);
        th_print_program(&p, f);
        fclose(f);
        char error[128];
        text_mismatch += th_parse_text(text, &t, error, sizeof error) != 0 || t.count != p.count;
        for (size_t i = 0; i < t.count && i < p.count; i++)
            text_mismatch += !same_meaning(&p.ops[i], &t.ops[i]);
        f = open_memstream(&text2, &length);
        th_print_program(&t, f);
        fclose(f);
        text_unstable += strcmp(text, text2) != 0;
        free(text), free(text2);
        th_program_free(&p), th_program_free(&q), th_program_free(&t);
    }
    EXPECT(decode_mismatch == 0, "%d programs changed through encode/decode", decode_mismatch);
    EXPECT(text_mismatch == 0, "%d programs changed meaning through text", text_mismatch);
    EXPECT(text_unstable == 0, "%d texts changed through parse/print", text_unstable);
}

static void test_decoder_never_rejects(void)
{
    th_program p;
    th_decode((const uint8_t *)"", 0, &p);
    EXPECT(p.count == 0, "empty input is the empty program");
    th_program_free(&p);
    th_decode((const uint8_t *)"\x02", 1, &p); /* realloc with every operand missing */
    EXPECT(p.count == 1 && p.ops[0].kind == TH_OP_REALLOC && p.ops[0].size.value == 0,
           "a truncated op reads its missing operands as 0");
    th_program_free(&p);
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    th_decode(all, sizeof all, &p);
    EXPECT(p.count > 0, "every byte value decodes");
    th_program_free(&p);
}

static void test_text_errors(void)
{
    th_program p;
    char error[128];
    EXPECT(th_parse_text("malloc 10\nfrob 3\n", &p, error, sizeof error) == 2 &&
               strstr(error, "line 2: unknown op"), "unknown op is reported with its line: %s", error);
    th_program_free(&p);
    EXPECT(th_parse_text("free 3\n", &p, error, sizeof error) == 1 && strstr(error, "#N"),
           "a block needs #: %s", error);
    th_program_free(&p);
    EXPECT(th_parse_text("aligned_alloc 3 10\n", &p, error, sizeof error) == 1,
           "alignment 3 has no encoding: %s", error);
    th_program_free(&p);
    EXPECT(th_parse_text("malloc @huge\n", &p, error, sizeof error) == 1, "unknown edge: %s", error);
    th_program_free(&p);
    EXPECT(th_parse_text("# comment\n\nmalloc @arena_max+1\n  free #0\n", &p, error, sizeof error) == 0 &&
               p.count == 2 && p.ops[0].size.form == TH_SIZE_EDGE,
           "comments, blank lines and indentation are accepted");
    th_program_free(&p);
}

static th_program parse(const char *text)
{
    th_program p;
    char error[128];
    if (th_parse_text(text, &p, error, sizeof error) != 0)
        fprintf(stderr, "bad test program: %s\n", error);
    return p;
}

/* Runs `text` with an after_op hook; returns the result. */
static th_result run_with(const char *text, void (*after_op)(void *, th_run *, size_t, const th_op *,
                                                            const th_op_result *), uint32_t allowed)
{
    th_program p = parse(text);
    th_config config;
    th_config_init(&config);
    config.hooks.after_op = after_op;
    config.allowed_ops = allowed;
    config.capture_heap = true;
    th_result result;
    th_run_program(&p, &config, &result);
    th_program_free(&p);
    return result;
}

static void damage_pattern(void *ctx, th_run *run, size_t i, const th_op *op, const th_op_result *r)
{
    (void)ctx, (void)op, (void)r;
    if (i == 2) {
        size_t size;
        unsigned char *b = th_run_live_block(run, 0, &size);
        b[size - 1] ^= 1;
    }
}

static void leak_block(void *ctx, th_run *run, size_t i, const th_op *op, const th_op_result *r)
{
    (void)ctx, (void)op, (void)r;
    if (i == 1)
        th_run_forget_block(run, 0);
}

static void free_behind_back(void *ctx, th_run *run, size_t i, const th_op *op, const th_op_result *r)
{
    (void)ctx, (void)op, (void)r;
    if (i == 1)
        TAlloc_heap_free(th_run_heap(run), th_run_live_block(run, 1, NULL));
}

static void test_checker_fails(void)
{
    const char *program = "malloc 100\nmalloc 200\nusable_size #0\nmalloc 10\n";
    th_result r = run_with(program, damage_pattern, 0);
    EXPECT(r.failure.has_failed && r.failure.invariant == TH_I7_MODEL && r.failure.op_index == 2,
           "damaged pattern: I7 at op 2, got I%d at op %zu: %s", r.failure.invariant,
           r.failure.op_index, r.failure.detail);
    EXPECT(r.heap_before && r.heap_after && strstr(r.heap_before, "Allocated chunk at"),
           "the heap before and after the bad op is captured");
    th_result_free(&r);

    r = run_with(program, leak_block, 0);
    EXPECT(r.failure.has_failed && r.failure.invariant == TH_I7_MODEL && r.failure.op_index == 1 &&
               strstr(r.failure.detail, "is no live block"),
           "leaked chunk: I7 at op 1, got I%d at op %zu: %s", r.failure.invariant,
           r.failure.op_index, r.failure.detail);
    th_result_free(&r);

    r = run_with(program, free_behind_back, 0);
    EXPECT(r.failure.has_failed && r.failure.invariant == TH_I7_MODEL && r.failure.op_index == 1 &&
               strstr(r.failure.detail, "is not an allocated chunk"),
           "block freed behind the model: I7 at op 1, got I%d at op %zu: %s", r.failure.invariant,
           r.failure.op_index, r.failure.detail);
    th_result_free(&r);
}

/* fail_maps counts as decoded but not executed unless allowed; when allowed, the failing
   malloc is legitimate and the heap recovers. */
static void test_fault_ops_and_counters(void)
{
    const char *program = "fail_maps 1\nmalloc 100\nmalloc 100\nfree #0\ndamage 0 #0 0\n";
    th_result r = run_with(program, NULL, 0);
    EXPECT(!r.failure.has_failed, "fail_maps ignored by default: %s", r.failure.detail);
    EXPECT(r.counters.decoded[TH_OP_FAIL_MAPS] == 1 && r.counters.executed[TH_OP_FAIL_MAPS] == 0 &&
               r.counters.decoded[TH_OP_DAMAGE] == 1 && r.counters.executed[TH_OP_DAMAGE] == 0 &&
               r.counters.executed[TH_OP_MALLOC] == 2 && r.counters.executed[TH_OP_FREE] == 1,
           "decoded and executed counts");
    EXPECT(r.counters.events[TALLOC_EVENT_NEW_ARENA] == 1 && r.counters.checks == 6,
           "one arena, a check after each of 5 ops and after the drain (%llu)",
           (unsigned long long)r.counters.checks);
    th_result_free(&r);

    uint32_t with_faults = ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_DAMAGE);
    r = run_with(program, NULL, with_faults);
    EXPECT(!r.failure.has_failed && r.counters.maps_failed == 1 &&
               r.counters.events[TALLOC_EVENT_MAP_FAILED] == 1,
           "an injected map failure is legitimate: %s", r.failure.detail);
    th_result_free(&r);
}

/* Every map of a run, in order. */
typedef struct map_log {
    uintptr_t base[64];
    size_t count;
} map_log;

static void log_map(void *ctx, void *base, size_t size)
{
    (void)size;
    map_log *log = ctx;
    if (log->count < 64)
        log->base[log->count++] = (uintptr_t)base;
}

static map_log run_logging_maps(const char *text, bool capture)
{
    map_log log = {{0}, 0};
    th_program p = parse(text);
    th_config config;
    th_config_init(&config);
    config.capture_heap = capture;
    config.hooks.on_map = log_map;
    config.hooks.ctx = &log;
    th_result result;
    th_run_program(&p, &config, &result);
    EXPECT(!result.failure.has_failed, "the arena program passes: %s", result.failure.detail);
    th_result_free(&result);
    th_program_free(&p);
    return log;
}

/* A run's mappings land at the same addresses whatever else the process mapped before it,
   and whether or not heap pictures are taken: placement depends on arena order, so a
   program must behave the same in every process that replays it. */
static void test_same_addresses(void)
{
    const char *program = "malloc 10000\nmalloc 10000\nmalloc 10000\nmalloc 100000\n"
                          "free #1\nmalloc 12000\nrealloc #0 300000\nfree #2\n"
                          "malloc 10000\nmalloc 2000000\n";
    map_log first = run_logging_maps(program, false);
    EXPECT(first.count >= 5, "the program maps arenas (%zu)", first.count);
    long page = sysconf(_SC_PAGESIZE);
    char *a = mmap(NULL, 8 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    EXPECT(a != MAP_FAILED, "a mapping between the runs");
    munmap(a + 2 * page, 3 * (size_t)page); /* and a hole the kernel could fill */
    map_log second = run_logging_maps(program, true);
    EXPECT(second.count == first.count, "same number of maps (%zu, %zu)", first.count,
           second.count);
    bool same = second.count == first.count;
    for (size_t i = 0; same && i < first.count; i++)
        same = first.base[i] == second.base[i];
    EXPECT(same, "every map at the same address in both runs");
    munmap(a, 2 * (size_t)page);
    munmap(a + 5 * page, 3 * (size_t)page);
}

int main(void)
{
    test_round_trips();
    test_decoder_never_rejects();
    test_text_errors();
    test_checker_fails();
    test_fault_ops_and_counters();
    test_same_addresses();
    return test_summary("test_harness");
}
