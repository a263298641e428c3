/*
 * report.c - the one funnel for misuse and corruption. A detected fault becomes either a call
 * to the heap's error handler or the line "talloc: <what> <address>" on stderr followed by
 * abort(). Written with write(2) into a stack buffer: no stdio, no allocation, usable while
 * the heap is damaged.
 */
#include <errno.h>
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
    [TALLOC_ERROR_CANARY_CORRUPTED] = "canary corrupted",
    [TALLOC_ERROR_WRITE_AFTER_FREE] = "write after free",
    [TALLOC_ERROR_RECURSIVE_CALL] = "recursive call",
};

const char *TAlloc_error_string(TAlloc_error error)
{
    if ((unsigned)error >= TALLOC_ERROR_COUNT)
        return "unknown error";
    return error_strings[error];
}

void ta_text_str(ta_text *t, const char *s)
{
    while (*s && t->used < t->cap)
        t->buf[t->used++] = *s++;
    t->buf[t->used] = 0;
}

void ta_text_u64(ta_text *t, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && t->used < t->cap)
        t->buf[t->used++] = digits[--n];
    t->buf[t->used] = 0;
}

/* An address as printf's "%p" writes it on glibc: 0x and lowercase hex, "(nil)" for 0. */
void ta_text_ptr(ta_text *t, const void *p)
{
    uintptr_t v = (uintptr_t)p;
    if (v == 0) {
        ta_text_str(t, "(nil)");
        return;
    }
    char digits[2 * sizeof v];
    size_t n = 0;
    for (; v != 0; v >>= 4)
        digits[n++] = "0123456789abcdef"[v & 15];
    ta_text_str(t, "0x");
    while (n > 0 && t->used < t->cap)
        t->buf[t->used++] = digits[--n];
    t->buf[t->used] = 0;
}

/* Writes all of buf, or as much as the descriptor takes; errno is left as it was. */
void ta_write_all(int fd, const char *buf, size_t n)
{
    int saved = errno;
    while (n > 0) {
        ssize_t done = write(fd, buf, n);
        if (done <= 0)
            break;
        buf += done;
        n -= (size_t)done;
    }
    errno = saved;
}

size_t TAlloc_error_format(char *buf, size_t capacity, TAlloc_error error, const void *address)
{
    if (capacity == 0)
        return 0;
    ta_text t = {buf, 0, capacity - 1};
    buf[0] = 0;
    ta_text_str(&t, "talloc: ");
    ta_text_str(&t, TAlloc_error_string(error));
    ta_text_str(&t, " ");
    ta_text_ptr(&t, address);
    ta_text_str(&t, "\n");
    return t.used;
}

/* errno is left as it was: a handler that changes it (one that logs, say) does not change
   what the call that met the fault says to its caller. */
void ta_report(const ta_heap *heap, const ta_fault *fault)
{
    if (heap->config.error_handler) {
        int saved = errno;
        heap->config.error_handler(heap->config.error_ctx, fault->error, fault->address);
        errno = saved;
        return;
    }
    char line[128];
    size_t used = TAlloc_error_format(line, sizeof line, fault->error, fault->address);
    ta_write_all(2, line, used);
    abort();
}
