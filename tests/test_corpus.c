/*
 * test_corpus - the seed corpus is well formed and covers what it claims.
 *
 *   test_corpus CORPUS_DIR
 *
 * (a) In every corpus/<target>/ and corpus/regressions/<target>/: each text twin NAME.txt
 *     parses, the binary twin NAME exists and equals th_encode(parse(NAME.txt)) byte for
 *     byte, and every binary has a text twin (tools/make-corpus.sh regenerates them).
 * (b) Replaying corpus/fuzz_ops/ under fuzz_ops's configuration (th_config_init defaults)
 *     passes, executes every op kind fuzz_ops allows and reaches every allocator event but
 *     map_failed.
 * (c) Replaying corpus/fuzz_oom/ under fuzz_oom's configuration (retention 0, every op but
 *     damage) passes, executes fail_maps and reaches map_failed.
 * The op and event counts are printed as a table.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "testutil.h"

typedef struct name_list {
    char **names;
    size_t count;
} name_list;

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

static bool is_binary_name(const char *name)
{
    return !has_suffix(name, ".txt") && !has_suffix(name, ".md");
}

/* a + "/" + b + suffix, malloc'd. */
static char *join(const char *a, const char *b, const char *suffix)
{
    size_t na = strlen(a), nb = strlen(b), ns = strlen(suffix);
    char *path = malloc(na + nb + ns + 2);
    if (path == NULL)
        abort();
    memcpy(path, a, na);
    path[na] = '/';
    memcpy(path + na + 1, b, nb);
    memcpy(path + na + 1 + nb, suffix, ns + 1);
    return path;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_kind(const char *path, bool is_dir)
{
    struct stat st;
    return stat(path, &st) == 0 && (is_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

/* The names in `dir` (no dot files) that are directories (`is_dir`) or regular files,
   sorted. Returns false when the directory cannot be read. */
static bool list_dir(const char *dir, bool is_dir, name_list *out)
{
    *out = (name_list){NULL, 0};
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        char *path = join(dir, entry->d_name, "");
        bool is_wanted = entry->d_name[0] != '.' && is_kind(path, is_dir);
        free(path);
        if (!is_wanted)
            continue;
        out->names = realloc(out->names, (out->count + 1) * sizeof *out->names);
        out->names[out->count++] = strdup(entry->d_name);
    }
    closedir(d);
    if (out->count)
        qsort(out->names, out->count, sizeof *out->names, compare_names);
    return true;
}

static void free_list(name_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    *list = (name_list){NULL, 0};
}

/* ---- (a) text and binary twins ------------------------------------------------------------- */

/* NAME.txt parses and NAME holds exactly its encoding. */
static void check_text_twin(const char *dir, const char *text_name)
{
    char *path = join(dir, text_name, "");
    char *bin_path = strdup(path);
    bin_path[strlen(bin_path) - 4] = 0; /* without .txt */
    size_t text_size = 0, bin_size = 0;
    char *text = th_read_file(path, &text_size);
    char *bin = th_read_file(bin_path, &bin_size);
    th_program program;
    char error[160] = "";
    int bad_line = text ? th_parse_text(text, &program, error, sizeof error) : -1;
    EXPECT(bad_line == 0, "%s does not parse: %s", path, error);
    EXPECT(bin != NULL, "%s has no binary twin (run tools/make-corpus.sh)", path);
    if (bad_line == 0 && bin != NULL) {
        size_t size = th_encode(&program, NULL, 0);
        uint8_t *encoded = malloc(size + 1);
        th_encode(&program, encoded, size);
        EXPECT(size == bin_size && memcmp(encoded, bin, size) == 0,
               "%s (%zu bytes) differs from the encoding of its text twin (%zu bytes)", bin_path,
               bin_size, size);
        free(encoded);
    }
    if (text != NULL) /* th_parse_text initialized it, even when it failed */
        th_program_free(&program);
    free(text);
    free(bin);
    free(path);
    free(bin_path);
}

/* Every file in `dir` has its twin; returns the number of seeds (text twins). */
static size_t check_twins(const char *dir)
{
    name_list files;
    EXPECT(list_dir(dir, false, &files), "cannot read %s", dir);
    size_t seeds = 0;
    for (size_t i = 0; i < files.count; i++) {
        const char *name = files.names[i];
        if (has_suffix(name, ".txt")) {
            check_text_twin(dir, name);
            seeds++;
        } else if (is_binary_name(name)) {
            char *twin = join(dir, name, ".txt");
            EXPECT(is_kind(twin, false), "%s/%s has no text twin %s", dir, name, twin);
            free(twin);
        }
    }
    free_list(&files);
    return seeds;
}

/* Checks every target directory under `base` (skipping `skip`, e.g. "regressions"). */
static void check_target_dirs(const char *base, const char *skip)
{
    name_list dirs;
    if (!list_dir(base, true, &dirs))
        return;
    for (size_t i = 0; i < dirs.count; i++) {
        if (skip && strcmp(dirs.names[i], skip) == 0)
            continue;
        char *dir = join(base, dirs.names[i], "");
        size_t seeds = check_twins(dir);
        printf("%-40s %3zu seeds\n", dir, seeds);
        free(dir);
    }
    free_list(&dirs);
}

/* ---- (b), (c) replaying a target's seeds ----------------------------------------------------- */

/* Runs every binary seed in `dir` under `config`, adding the counters to `total`. Returns
   the number of inputs replayed. */
static size_t replay_dir(const char *dir, const th_config *config, th_counters *total)
{
    name_list files;
    EXPECT(list_dir(dir, false, &files), "cannot read %s", dir);
    size_t replayed = 0;
    for (size_t i = 0; i < files.count; i++) {
        if (!is_binary_name(files.names[i]))
            continue;
        char *path = join(dir, files.names[i], "");
        size_t size = 0;
        char *data = th_read_file(path, &size);
        EXPECT(data != NULL, "cannot read %s", path);
        th_program program;
        th_decode((const uint8_t *)data, size, &program);
        th_result result;
        bool ok = th_run_program(&program, config, &result);
        EXPECT(ok, "%s: op %zu: %s: %s", path, result.failure.op_index,
               th_invariant_name(result.failure.invariant), result.failure.detail);
        th_counters_add(total, &result.counters);
        th_result_free(&result);
        th_program_free(&program);
        free(data);
        free(path);
        replayed++;
    }
    free_list(&files);
    return replayed;
}

static void print_table(const char *title, size_t inputs, const th_counters *c)
{
    printf("\n%s: %zu inputs, %llu checks\n", title, inputs, (unsigned long long)c->checks);
    printf("  %-16s %9s %9s\n", "op", "decoded", "executed");
    for (int k = 0; k < TH_OP_KIND_COUNT; k++)
        printf("  %-16s %9llu %9llu\n", th_op_name((th_op_kind)k),
               (unsigned long long)c->decoded[k], (unsigned long long)c->executed[k]);
    printf("  %-26s %9s\n", "event", "count");
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++)
        printf("  %-26s %9llu\n", TAlloc_event_name((TAlloc_event)e),
               (unsigned long long)c->events[e]);
    printf("  %-26s %9llu\n", "(maps refused)", (unsigned long long)c->maps_failed);
}

/* The seeds of `target` (and its regressions) replayed under `config`. */
static size_t replay_target(const char *corpus, const char *target, const th_config *config,
                            th_counters *total)
{
    memset(total, 0, sizeof *total);
    char *dir = join(corpus, target, "");
    size_t inputs = replay_dir(dir, config, total);
    free(dir);
    dir = join(corpus, "regressions/", target);
    if (is_kind(dir, true))
        inputs += replay_dir(dir, config, total);
    free(dir);
    EXPECT(inputs > 0, "no %s seeds in %s", target, corpus);
    return inputs;
}

static void check_ops_coverage(const char *corpus)
{
    th_config config;
    th_config_init(&config);
    th_counters c;
    size_t inputs = replay_target(corpus, "fuzz_ops", &config, &c);
    print_table("fuzz_ops corpus", inputs, &c);
    for (int k = 0; k < TH_OP_KIND_COUNT; k++)
        if (k != TH_OP_FAIL_MAPS && k != TH_OP_DAMAGE)
            EXPECT(c.executed[k] > 0, "fuzz_ops corpus never executes %s", th_op_name((th_op_kind)k));
    for (int e = 0; e < TALLOC_EVENT_COUNT; e++)
        if (e != TALLOC_EVENT_MAP_FAILED)
            EXPECT(c.events[e] > 0, "fuzz_ops corpus never reaches %s",
                   TAlloc_event_name((TAlloc_event)e));
}

static void check_oom_coverage(const char *corpus)
{
    th_config config;
    th_config_init(&config);
    config.retained_arena_count = 0;
    config.allowed_ops = ((1u << TH_OP_KIND_COUNT) - 1) & ~(1u << TH_OP_DAMAGE);
    th_counters c;
    size_t inputs = replay_target(corpus, "fuzz_oom", &config, &c);
    print_table("fuzz_oom corpus", inputs, &c);
    EXPECT(c.executed[TH_OP_FAIL_MAPS] > 0, "fuzz_oom corpus never executes fail_maps");
    EXPECT(c.events[TALLOC_EVENT_MAP_FAILED] > 0, "fuzz_oom corpus never reaches map_failed");
    EXPECT(c.maps_failed > 0, "fuzz_oom corpus never has a map refused");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_corpus CORPUS_DIR\n");
        return 2;
    }
    const char *corpus = argv[1];
    EXPECT(is_kind(corpus, true), "%s is not a directory", corpus);
    char *regressions = join(corpus, "regressions", "");
    check_target_dirs(corpus, "regressions");
    check_target_dirs(regressions, NULL);
    free(regressions);
    check_ops_coverage(corpus);
    check_oom_coverage(corpus);
    return test_summary("test_corpus");
}
