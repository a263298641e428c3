/*
 * adapters.c - the allocators talloc-stress drives (--allocator): TAlloc's default heap, the
 * C library's malloc, and jemalloc, mimalloc and tcmalloc, which are loaded at run time with
 * dlopen so that the driver builds and runs without them.
 *
 * Each loaded library is called through its own prefixed or non-standard entry points, never
 * through the plain malloc/free names some of them also export: a library opened with
 * RTLD_LOCAL does not interpose on the C library, and its prefixed names reach it whatever
 * the symbol lookup order.
 *
 *   jemalloc  mallocx/dallocx/rallocx/sallocx (flags: MALLOCX_ALIGN, MALLOCX_ZERO)
 *   mimalloc  mi_malloc, mi_free, mi_calloc, mi_realloc, mi_aligned_alloc,
 *             mi_posix_memalign, mi_usable_size
 *   tcmalloc  tc_malloc, tc_free, tc_calloc, tc_realloc, tc_memalign, tc_posix_memalign,
 *             tc_malloc_size
 *
 * Where a library's call does not have the C contract the driver checks (NULL with errno
 * ENOMEM on failure, EINVAL for a bad alignment), a small wrapper supplies it; one works
 * around a misaligned result of mimalloc 2.0.9 (mi_size_for).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

static const char *const allocator_names[A_COUNT] = {
    [A_TALLOC] = "talloc", [A_SYSTEM] = "system", [A_JEMALLOC] = "jemalloc",
    [A_MIMALLOC] = "mimalloc", [A_TCMALLOC] = "tcmalloc",
};

const char *stress_allocator_name(int allocator)
{
    return allocator_names[allocator];
}

int stress_allocator_find(const char *name)
{
    for (int i = 0; i < A_COUNT; i++)
        if (strcmp(allocator_names[i], name) == 0)
            return i;
    return -1;
}

/* TAlloc and the C library give every block 16 bytes; the C standard asks only for the
   strictest fundamental alignment an object of the requested size can need, so an allocator
   may return an 8-byte block 8-aligned (mimalloc and tcmalloc do). */
size_t stress_min_alignment(size_t size)
{
    if (g.opt.allocator == A_TALLOC || g.opt.allocator == A_SYSTEM || size >= 16)
        return 16;
    size_t a = 1;
    while (a * 2 <= size)
        a *= 2;
    return a;
}

/* ---- built in ------------------------------------------------------------------------------ */

static size_t usable_talloc(const void *p) { return TAlloc_usable_size(p); }
static size_t usable_system(const void *p) { return malloc_usable_size((void *)(uintptr_t)p); }

static bool is_power_of_two(size_t a)
{
    return a != 0 && (a & (a - 1)) == 0;
}

/* ---- jemalloc: the non-standard API ------------------------------------------------------ */

enum { JE_MALLOCX_ZERO = 0x40 };

static void *(*je_mallocx)(size_t, int);
static void (*je_dallocx)(void *, int);
static void *(*je_rallocx)(void *, size_t, int);
static size_t (*je_sallocx)(const void *, int);

/* MALLOCX_ALIGN(a): log2 of a power-of-two alignment in the low bits of the flags. */
static int je_align_flag(size_t align)
{
    int k = 0;
    while (((size_t)1 << k) < align)
        k++;
    return k;
}

/* mallocx with errno set on failure (mallocx leaves errno alone); size 0 is undefined
   for mallocx, so it becomes 1. */
static void *je_alloc(size_t size, int flags)
{
    void *p = je_mallocx(size ? size : 1, flags);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

static void *je_malloc(size_t size) { return je_alloc(size, 0); }

static void je_free(void *p)
{
    if (p != NULL)
        je_dallocx(p, 0);
}

static void *je_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return je_alloc(count * size, JE_MALLOCX_ZERO);
}

static void *je_realloc(void *p, size_t size)
{
    if (p == NULL)
        return je_malloc(size);
    void *q = je_rallocx(p, size ? size : 1, 0);
    if (q == NULL)
        errno = ENOMEM;
    return q;
}

static void *je_aligned(size_t align, size_t size)
{
    if (!is_power_of_two(align)) {
        errno = EINVAL;
        return NULL;
    }
    return je_alloc(size, je_align_flag(align));
}

static int je_memalign(void **out, size_t align, size_t size)
{
    if (!is_power_of_two(align) || align < sizeof(void *))
        return EINVAL;
    void *p = je_alloc(size, je_align_flag(align));
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

static size_t je_usable(const void *p) { return p ? je_sallocx(p, 0) : 0; }

/* ---- mimalloc: the aligned calls --------------------------------------------------------- */

static void *(*mi_aligned_fn)(size_t, size_t);
static int (*mi_memalign_fn)(void **, size_t, size_t);

/* mimalloc 2.0.9 (Debian 12's) returns blocks aligned to less than asked when the size is a
   multiple of an alignment of 256 bytes or more and at most 1024 bytes: its small-block fast
   path (talloc-stress found it: docs/stress.md). Such a request asks for 1025 bytes instead,
   which takes the path that aligns, so the comparison runs on. */
static size_t mi_size_for(size_t align, size_t size)
{
    return align >= 256 && size <= 1024 && size % align == 0 ? 1025 : size;
}

static void *mi_aligned(size_t align, size_t size)
{
    return mi_aligned_fn(align, mi_size_for(align, size));
}

static int mi_memalign(void **out, size_t align, size_t size)
{
    return mi_memalign_fn(out, align, mi_size_for(align, size));
}

/* ---- tcmalloc: wrappers where the types or the contract differ ---------------------------- */

static void *(*tc_memalign_fn)(size_t, size_t);
static size_t (*tc_malloc_size_fn)(void *);

static void *tc_aligned(size_t align, size_t size)
{
    if (!is_power_of_two(align)) {
        errno = EINVAL;
        return NULL;
    }
    void *p = tc_memalign_fn(align, size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

static size_t tc_usable(const void *p) { return tc_malloc_size_fn((void *)(uintptr_t)p); }

#ifdef STRESS_ASAN
/* tcmalloc's start-up code registers an object it never frees; LeakSanitizer would fail
   every run that loads it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libtcmalloc.so\n";
}
#endif

/* ---- loading ------------------------------------------------------------------------------- */

/* Stores dlsym(handle, symbol) into the function pointer at `slot`. */
static bool bind_symbol(void *handle, const char *symbol, void *slot, size_t size, char *missing,
                        size_t capacity)
{
    void *sym = dlsym(handle, symbol);
    if (sym == NULL || size != sizeof sym) {
        snprintf(missing, capacity, "no symbol %s", symbol);
        return false;
    }
    memcpy(slot, &sym, sizeof sym);
    return true;
}

#define BIND(var, symbol) bind_symbol(handle, symbol, &(var), sizeof(var), err, cap)

static bool bind_jemalloc(void *handle, stress_allocator *a, char *err, size_t cap)
{
    if (!BIND(je_mallocx, "mallocx") || !BIND(je_dallocx, "dallocx") ||
        !BIND(je_rallocx, "rallocx") || !BIND(je_sallocx, "sallocx"))
        return false;
    *a = (stress_allocator){je_malloc, je_free, je_calloc, je_realloc, je_aligned, je_memalign,
                            je_usable};
    return true;
}

static bool bind_mimalloc(void *handle, stress_allocator *a, char *err, size_t cap)
{
    if (!BIND(a->malloc_fn, "mi_malloc") || !BIND(a->free_fn, "mi_free") ||
        !BIND(a->calloc_fn, "mi_calloc") || !BIND(a->realloc_fn, "mi_realloc") ||
        !BIND(mi_aligned_fn, "mi_aligned_alloc") || !BIND(mi_memalign_fn, "mi_posix_memalign") ||
        !BIND(a->usable_fn, "mi_usable_size"))
        return false;
    a->aligned_fn = mi_aligned;
    a->memalign_fn = mi_memalign;
    return true;
}

static bool bind_tcmalloc(void *handle, stress_allocator *a, char *err, size_t cap)
{
    if (!BIND(a->malloc_fn, "tc_malloc") || !BIND(a->free_fn, "tc_free") ||
        !BIND(a->calloc_fn, "tc_calloc") || !BIND(a->realloc_fn, "tc_realloc") ||
        !BIND(a->memalign_fn, "tc_posix_memalign") || !BIND(tc_memalign_fn, "tc_memalign") ||
        !BIND(tc_malloc_size_fn, "tc_malloc_size"))
        return false;
    a->aligned_fn = tc_aligned;
    a->usable_fn = tc_usable;
    return true;
}

#undef BIND

/*
 * Debian's jemalloc keeps its thread state in static TLS (2.6 KiB), more than glibc keeps in
 * reserve for libraries opened after start-up (512 bytes by default), so dlopen refuses it
 * with "cannot allocate memory in static TLS block". The reserve is a glibc tunable read at
 * start-up: the driver executes itself once more with a larger one. Returns only on failure.
 */
static void exec_with_static_tls(char **argv)
{
    const char *old = getenv("GLIBC_TUNABLES");
    if (old != NULL && strstr(old, "glibc.rtld.optional_static_tls") != NULL)
        return; /* already tried */
    char value[1024];
    int n = snprintf(value, sizeof value, "%s%sglibc.rtld.optional_static_tls=16384",
                     old ? old : "", old && *old ? ":" : "");
    if (n < 0 || (size_t)n >= sizeof value || setenv("GLIBC_TUNABLES", value, 1) != 0)
        return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
}

typedef struct loadable {
    const char *soname;  /* the run-time library name */
    const char *package; /* the Debian package that installs it */
    bool (*bind)(void *handle, stress_allocator *a, char *err, size_t cap);
} loadable;

static const loadable loadables[A_COUNT] = {
    [A_JEMALLOC] = {"libjemalloc.so.2", "libjemalloc2", bind_jemalloc},
    [A_MIMALLOC] = {"libmimalloc.so.2", "libmimalloc2.0", bind_mimalloc},
    [A_TCMALLOC] = {"libtcmalloc.so.4", "libgoogle-perftools4", bind_tcmalloc},
};

bool stress_allocator_load(int allocator, stress_allocator *out, char **argv)
{
    if (allocator == A_TALLOC) {
        *out = (stress_allocator){TAlloc_malloc, TAlloc_free, TAlloc_calloc, TAlloc_realloc,
                                  TAlloc_aligned_alloc, TAlloc_posix_memalign, usable_talloc};
        return true;
    }
    if (allocator == A_SYSTEM) {
        *out = (stress_allocator){malloc, free, calloc, realloc, aligned_alloc, posix_memalign,
                                  usable_system};
        return true;
    }
    const loadable *l = &loadables[allocator];
    char why[256];
    void *handle = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "%s", e ? e : "dlopen failed");
        if (strstr(why, "static TLS") != NULL)
            exec_with_static_tls(argv);
    } else if (l->bind(handle, out, why, sizeof why)) {
        return true; /* the handle stays open for the whole run */
    }
    fprintf(stderr, "talloc-stress: --allocator %s needs %s from the Debian package %s "
                    "(tools/install-deps.sh --bench-allocators installs it): %s\n",
            allocator_names[allocator], l->soname, l->package, why);
    return false;
}
