/*
 * report.c - the one funnel for misuse and corruption. A detected fault becomes either a call
 * to the heap's error handler or the line "talloc: <what> <address>" on stderr followed by
 * abort(). Written with write(2) into a stack buffer: no stdio, no allocation, usable while
 * the heap is damaged.
 */
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static const char *const error_strings[TALLOC_ERROR_COUNT] = {
    [TALLOC_ERROR_NONE] = "no error",
    [TALLOC_ERROR_DOUBLE_FREE] = "double free",
    [TALLOC_ERROR_USE_AFTER_FREE] = "use after free",
    [TALLOC_ERROR_FOREIGN_POINTER] = "foreign pointer",
    [TALLOC_ERROR_MISALIGNED_POINTER] = "misaligned pointer",
    [TALLOC_ERROR_INTERIOR_POINTER] = "interior pointer",
    [TALLOC_ERROR_CORRUPTED_HEADER] = "corrupted header",
    [TALLOC_ERROR_CORRUPTED_FREE_LIST] = "corrupted free list",
    [TALLOC_ERROR_CORRUPTED_ARENA] = "corrupted arena",
};

const char *TAlloc_error_string(TAlloc_error error)
{
    if ((unsigned)error >= TALLOC_ERROR_COUNT)
        return "unknown error";
    return error_strings[error];
}

static size_t append(char *buf, size_t used, size_t cap, const char *text)
{
    while (*text && used < cap)
        buf[used++] = *text++;
    return used;
}

/* Formats an address as printf's "%p" does on glibc: 0x and lowercase hex, "(nil)" for 0. */
static size_t append_address(char *buf, size_t used, size_t cap, const void *address)
{
    uintptr_t v = (uintptr_t)address;
    if (v == 0)
        return append(buf, used, cap, "(nil)");
    char digits[2 * sizeof v];
    size_t n = 0;
    for (; v != 0; v >>= 4)
        digits[n++] = "0123456789abcdef"[v & 15];
    used = append(buf, used, cap, "0x");
    while (n > 0 && used < cap)
        buf[used++] = digits[--n];
    return used;
}

size_t TAlloc_error_format(char *buf, size_t capacity, TAlloc_error error, const void *address)
{
    if (capacity == 0)
        return 0;
    size_t cap = capacity - 1;
    size_t used = append(buf, 0, cap, "talloc: ");
    used = append(buf, used, cap, TAlloc_error_string(error));
    used = append(buf, used, cap, " ");
    used = append_address(buf, used, cap, address);
    used = append(buf, used, cap, "\n");
    buf[used] = 0;
    return used;
}

void ta_report(const ta_heap *heap, const ta_fault *fault)
{
    if (heap->config.error_handler) {
        heap->config.error_handler(heap->config.error_ctx, fault->error, fault->address);
        return;
    }
    char line[128];
    size_t used = TAlloc_error_format(line, sizeof line, fault->error, fault->address);
    ssize_t ignored = write(2, line, used);
    (void)ignored;
    abort();
}
