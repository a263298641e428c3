/*
 * options.c - TALLOC_OPTIONS, read once when the default heap is created, and the
 * statistics lines (TAlloc_write_stats, and stats=1 at exit).
 *
 * Both run where allocating is not allowed - the first malloc of a process may come from the
 * dynamic loader, and the exit statistics from a destructor - so the parser reads the
 * environment string in place and every line is formatted into a stack buffer and written
 * with write(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static TAlloc_options process_options;
static const void *brk_at_start;
/* stats=1 writes to a private copy of stderr taken at start: some programs close stderr on
   their way out (coreutils check it for write errors), before the exit statistics. */
static int stats_fd = 2;

static void warn(const char *what, const char *item, size_t length)
{
    char line[192];
    ta_text t = {line, 0, sizeof line - 1};
    ta_text_str(&t, "talloc: TALLOC_OPTIONS: ");
    ta_text_str(&t, what);
    ta_text_str(&t, " '");
    for (size_t i = 0; i < length && t.used < t.cap; i++)
        line[t.used++] = item[i];
    line[t.used] = 0;
    ta_text_str(&t, "' ignored\n");
    ta_write_all(2, line, t.used);
}

/* A decimal number with an optional k/m/g suffix; false on anything else or on overflow. */
static bool parse_size(const char *s, size_t length, size_t *out)
{
    size_t value = 0, i = 0;
    for (; i < length && s[i] >= '0' && s[i] <= '9'; i++)
        if (__builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, (size_t)(s[i] - '0'), &value))
            return false;
    if (i == 0)
        return false;
    unsigned shift = 0;
    if (i + 1 == length) {
        switch (s[i] | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return false;
        }
    } else if (i != length) {
        return false;
    }
    if (shift && value > (SIZE_MAX >> shift))
        return false;
    *out = value << shift;
    return true;
}

static bool is_key(const char *item, size_t key_length, const char *key)
{
    return strlen(key) == key_length && memcmp(item, key, key_length) == 0;
}

/* The options that set a size_t of the configuration, with their accepted range. */
typedef struct size_option {
    const char *key;
    size_t offset, min, max;
} size_option;

static const size_option size_options[] = {
    {"quarantine", offsetof(TAlloc_config, quarantine), 0, (size_t)1 << 20},
    {"quarantine_bytes", offsetof(TAlloc_config, quarantine_bytes), 0, (size_t)1 << 40},
    {"arena_size", offsetof(TAlloc_config, arena_size), 4096, (size_t)1 << 40},
    {"retain", offsetof(TAlloc_config, retained_arena_count), 0, 1024},
    {"large_cache", offsetof(TAlloc_config, large_cache), 0, (size_t)1 << 40},
    {"quick", offsetof(TAlloc_config, quick), 0, (size_t)1 << 40},
    {"purge", offsetof(TAlloc_config, purge), 0, (size_t)1 << 40},
};

/* One key=value item; false when the key is unknown or the value is bad. */
static bool apply(TAlloc_config *config, const char *item, size_t length, const char **why)
{
    const char *eq = memchr(item, '=', length);
    *why = "unknown option";
    if (eq == NULL)
        return false;
    size_t key_length = (size_t)(eq - item);
    const char *value = eq + 1;
    size_t value_length = length - key_length - 1;
    size_t n = 0;
    bool is_number = parse_size(value, value_length, &n);
    bool is_flag = is_number && n <= 1;
    *why = "bad value in";
    if (is_key(item, key_length, "stats") || is_key(item, key_length, "verbose")) {
        if (!is_flag)
            return false;
        *(item[0] == 's' ? &process_options.stats : &process_options.verbose) = (int)n;
        return true;
    }
    if (is_key(item, key_length, "canary") || is_key(item, key_length, "junk") ||
        is_key(item, key_length, "guard") || is_key(item, key_length, "fork_rekey")) {
        if (!is_flag)
            return false;
        *(item[0] == 'c'   ? &config->canary
          : item[0] == 'j' ? &config->junk
          : item[0] == 'g' ? &config->guard
                           : &config->fork_rekey) = (int)n;
        return true;
    }
    for (size_t i = 0; i < sizeof size_options / sizeof size_options[0]; i++) {
        const size_option *o = &size_options[i];
        if (is_key(item, key_length, o->key)) {
            if (!is_number || n < o->min || n > o->max)
                return false;
            *(size_t *)(void *)((char *)config + o->offset) = n;
            return true;
        }
    }
    if (is_key(item, key_length, "policy"))
        return TAlloc_policy_parse(value, value_length, &config->policy) != 0;
    *why = "unknown option";
    return false;
}

/* verbose=1: the options in force, once the default heap exists (sizes as it rounded them). */
void ta_options_announce(const ta_heap *heap)
{
    if (!process_options.verbose)
        return;
    const TAlloc_config *config = &heap->config;
    char line[320]; /* every option at its longest value fits */
    ta_text t = {line, 0, sizeof line - 1};
    ta_text_str(&t, "talloc: options stats=");
    ta_text_u64(&t, (uint64_t)process_options.stats);
    ta_text_str(&t, " verbose=");
    ta_text_u64(&t, (uint64_t)process_options.verbose);
    ta_text_str(&t, " arena_size=");
    ta_text_u64(&t, config->arena_size);
    ta_text_str(&t, " retain=");
    ta_text_u64(&t, config->retained_arena_count);
    ta_text_str(&t, " policy=");
    ta_text_str(&t, TAlloc_policy_name(config->policy));
    ta_text_str(&t, " canary=");
    ta_text_u64(&t, (uint64_t)config->canary);
    ta_text_str(&t, " junk=");
    ta_text_u64(&t, (uint64_t)config->junk);
    ta_text_str(&t, " guard=");
    ta_text_u64(&t, (uint64_t)config->guard);
    ta_text_str(&t, " quarantine=");
    ta_text_u64(&t, config->quarantine);
    ta_text_str(&t, " quarantine_bytes=");
    ta_text_u64(&t, (uint64_t)config->quarantine_bytes);
    ta_text_str(&t, " fork_rekey=");
    ta_text_u64(&t, (uint64_t)config->fork_rekey);
    ta_text_str(&t, " large_cache=");
    ta_text_u64(&t, (uint64_t)config->large_cache);
    ta_text_str(&t, " quick=");
    ta_text_u64(&t, (uint64_t)config->quick);
    ta_text_str(&t, " purge=");
    ta_text_u64(&t, (uint64_t)config->purge);
    ta_text_str(&t, "\n");
    ta_write_all(2, line, t.used);
}

void ta_options_load(TAlloc_config *config)
{
    TAlloc_config_init(config);
    brk_at_start = sbrk(0);
    const char *s = getenv("TALLOC_OPTIONS");
    while (s && *s) {
        size_t length = strcspn(s, ":,");
        const char *why;
        if (length > 0 && !apply(config, s, length, &why))
            warn(why, s, length);
        s += length;
        if (*s)
            s++;
    }
    if (process_options.stats) {
        int saved = errno;
        int fd = fcntl(2, F_DUPFD_CLOEXEC, 200);
        if (fd >= 0)
            stats_fd = fd;
        errno = saved;
    }
}

void TAlloc_get_options(TAlloc_options *out)
{
    (void)ta_default_heap();
    *out = process_options;
}

/* ---- statistics lines ------------------------------------------------------------------ */

static void stat_line(int fd, const char *a, uint64_t x, const char *b, uint64_t y, const char *c)
{
    char line[192];
    ta_text t = {line, 0, sizeof line - 1};
    ta_text_str(&t, "talloc:   ");
    ta_text_str(&t, a);
    ta_text_u64(&t, x);
    if (b) {
        ta_text_str(&t, b);
        ta_text_u64(&t, y);
    }
    ta_text_str(&t, c);
    ta_write_all(fd, line, t.used);
}

void TAlloc_heap_write_stats(TAlloc_heap *heap, int fd)
{
    TAlloc_stats s;
    TAlloc_heap_get_stats(heap, &s);
    char line[192];
    ta_text t = {line, 0, sizeof line - 1};
    ta_text_str(&t, "talloc: statistics of heap ");
    ta_text_ptr(&t, heap);
    ta_text_str(&t, heap->is_default ? " (default heap, pid " : " (pid ");
    ta_text_u64(&t, (uint64_t)getpid());
    ta_text_str(&t, ")\n");
    ta_write_all(fd, line, t.used);
    stat_line(fd, "allocations ", s.alloc_total, ", frees ", s.free_total, "\n");
    stat_line(fd, "live blocks ", s.allocated_count, ", live bytes ", s.allocated_bytes, "\n");
    stat_line(fd, "free chunks ", s.free_count, ", free bytes ", s.free_bytes, "\n");
    stat_line(fd, "quick blocks ", s.quick_count, ", quick bytes ", s.quick_bytes, "\n");
    stat_line(fd, "arenas ", s.arena_count, ", mapped bytes ", s.mapped_bytes, "\n");
    stat_line(fd, "arena maps ", s.map_count, ", unmaps ", s.unmap_count, "\n");
    stat_line(fd, "large mappings kept ", s.cached_count, ", kept bytes ", s.cached_bytes, "\n");
    if (heap->is_default) {
        const void *now = sbrk(0);
        t = (ta_text){line, 0, sizeof line - 1};
        ta_text_str(&t, "talloc:   program break at start ");
        ta_text_ptr(&t, brk_at_start);
        ta_text_str(&t, ", now ");
        ta_text_ptr(&t, now);
        ta_text_str(&t, now == brk_at_start ? " (unchanged)\n" : " (moved)\n");
        ta_write_all(fd, line, t.used);
    }
}

void TAlloc_write_stats(int fd)
{
    TAlloc_heap_write_stats(ta_default_heap(), fd);
}

__attribute__((destructor)) static void stats_at_exit(void)
{
    if (process_options.stats)
        TAlloc_write_stats(stats_fd);
}
