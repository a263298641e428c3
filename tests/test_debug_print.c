/*
 * test_debug_print - TAlloc_debug_print and TAlloc_heap_debug_print print exactly the heap:
 * every line parses in the proof of concept's format and matches the walk, arena by arena and
 * chunk by chunk (address, bytes, reserved, state), for explicit heaps and the default heap.
 */
#include "testutil.h"

typedef struct expected_lines {
    char text[64][128];
    size_t count;
} expected_lines;

static int record_line(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    expected_lines *e = ctx;
    if (e->count == 64)
        return 1;
    if (chunk == NULL)
        snprintf(e->text[e->count++], 128, "Arena at %p, %zu bytes, %zu reserved", arena->address,
                 arena->size, arena->reserved);
    else
        snprintf(e->text[e->count++], 128, "  %s chunk at %p, %zu bytes, %zu reserved",
                 chunk->is_free ? "Free" : chunk->is_quick ? "Quick" : "Allocated", chunk->address, chunk->size,
                 chunk->reserved);
    return 0;
}

/* Compares printed text with the walk, line by line, and checks each line's shape. */
static void expect_matches_walk(TAlloc_heap *heap, const char *text, const char *what)
{
    expected_lines e = {.count = 0};
    EXPECT(TAlloc_heap_walk(heap, record_line, &e) == 0, "%s: walk completes", what);
    size_t line = 0;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        void *address;
        size_t bytes, reserved;
        char kind[16];
        int is_arena = sscanf(p, "Arena at %p, %zu bytes, %zu reserved", &address, &bytes, &reserved) == 3;
        int is_chunk = sscanf(p, "  %15s chunk at %p, %zu bytes, %zu reserved", kind, &address,
                              &bytes, &reserved) == 4;
        EXPECT(is_arena || is_chunk, "%s: line %zu has the seed's format: %.*s", what, line,
               (int)len, p);
        EXPECT(line < e.count && strlen(e.text[line]) == len && strncmp(e.text[line], p, len) == 0,
               "%s: line %zu is \"%.*s\", the walk says \"%s\"", what, line, (int)len, p,
               line < e.count ? e.text[line] : "(nothing)");
        line++;
        p = end ? end + 1 : p + len;
    }
    EXPECT(line == e.count, "%s: %zu lines printed, walk has %zu", what, line, e.count);
}

static void print_to_string(TAlloc_heap *heap, char *buf, size_t cap)
{
    FILE *f = fmemopen(buf, cap, "w");
    TAlloc_heap_debug_print(heap, f);
    fclose(f);
}

static void test_explicit_heap_layout(void)
{
    TAlloc_config config;
    TAlloc_config_init(&config);
    config.policy = test_policy();
    config.arena_size = 8192;
    TAlloc_heap *heap = TAlloc_heap_create(&config);
    char buf[8192];
    print_to_string(heap, buf, sizeof buf);
    EXPECT(buf[0] == 0, "an empty heap prints nothing, got \"%s\"", buf);

    void *a = TAlloc_heap_malloc(heap, 10);
    void *b = TAlloc_heap_malloc(heap, 50);
    void *c = TAlloc_heap_malloc(heap, 2000);
    void *big = TAlloc_heap_malloc(heap, 20000);
    TAlloc_heap_free(heap, b);
    print_to_string(heap, buf, sizeof buf);
    expect_matches_walk(heap, buf, "explicit heap");

    char want[512];
    snprintf(want, sizeof want,
             "Arena at %p, 8192 bytes, 64 reserved\n"
             "  Allocated chunk at %p, 32 bytes, 16 reserved\n"
             "  Quick chunk at %p, 64 bytes, 16 reserved\n"
             "  Allocated chunk at %p, 2000 bytes, 16 reserved\n"
             "  Free chunk at %p, 5968 bytes, 16 reserved\n",
             (char *)a - 64, (char *)a - 16, (char *)b - 16, (char *)c - 16, (char *)c + 2000);
    EXPECT(strncmp(buf, want, strlen(want)) == 0, "first arena printed as\n%s\nwant\n%s", buf, want);
    EXPECT(strstr(buf, "Arena at ") != NULL && strstr(buf, ", 20480 bytes, 64 reserved\n") != NULL,
           "the dedicated arena is printed with its page-rounded size:\n%s", buf);
    EXPECT(strstr(buf, "  Allocated chunk at ") != NULL && strstr(buf, ", 20000 bytes, 16 reserved\n"),
           "the large chunk is printed:\n%s", buf);
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, c);
    TAlloc_heap_free(heap, big);
    print_to_string(heap, buf, sizeof buf);
    expect_matches_walk(heap, buf, "drained heap");
    EXPECT(strstr(buf, "  Quick chunk at ") != NULL, "freed small blocks print as quick:\n%s", buf);
    TAlloc_heap_flush(heap);
    print_to_string(heap, buf, sizeof buf);
    expect_matches_walk(heap, buf, "flushed heap");
    snprintf(want, sizeof want, "Arena at %p, 8192 bytes, 64 reserved\n"
             "  Free chunk at %p, 8112 bytes, 16 reserved\n", (char *)a - 64, (char *)a - 16);
    EXPECT(strcmp(buf, want) == 0, "flushed heap printed as\n%s\nwant\n%s", buf, want);
    TAlloc_heap_destroy(heap);
}

/* TAlloc_debug_print writes the default heap to stdout. */
static void test_default_heap_to_stdout(void)
{
    void *blocks[5];
    for (int i = 0; i < 5; i++)
        blocks[i] = TAlloc_malloc((size_t)(i + 1) * 100);
    TAlloc_free(blocks[2]);

    char path[] = "/tmp/talloc-debug-print-XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    TAlloc_debug_print();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);

    char buf[8192] = {0};
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    EXPECT(got > 0, "TAlloc_debug_print wrote to stdout");
    expect_matches_walk(TAlloc_default_heap(), buf, "default heap");
    for (int i = 0; i < 5; i++)
        if (i != 2)
            TAlloc_free(blocks[i]);
}

/* A damaged header ends that arena's listing with a note instead of printing garbage. */
static void test_damaged_header_is_noted(void)
{
    TAlloc_heap *heap = TAlloc_heap_create(NULL);
    unsigned char *a = TAlloc_heap_malloc(heap, 64);
    unsigned char *b = TAlloc_heap_malloc(heap, 64);
    volatile unsigned char *check_byte = b - 8; /* volatile: the damage must really happen */
    test_unpoison(check_byte, 1);
    *check_byte ^= 0x40;                        /* one bit of b's check value */
    char buf[4096];
    print_to_string(heap, buf, sizeof buf);
    EXPECT(strstr(buf, "  Allocated chunk at") == strchr(buf, '\n') + 1 &&
               strstr(buf, "(a damaged header ends the walk of an arena; run TAlloc_check)\n"),
           "listing stops at the damaged header with a note:\n%s", buf);
    *check_byte ^= 0x40;
    TAlloc_heap_free(heap, a);
    TAlloc_heap_free(heap, b);
    EXPECT_HEAP_OK(heap, "repaired heap");
    TAlloc_heap_destroy(heap);
}

int main(void)
{
    test_explicit_heap_layout();
    test_default_heap_to_stdout();
    test_damaged_header_is_noted();
    return test_summary("test_debug_print");
}
