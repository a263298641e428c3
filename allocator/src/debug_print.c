/*
 * debug_print.c - TAlloc_debug_print: every arena and chunk of a heap as text, in the format
 * of the original proof of concept, now read from the real chunk states:
 *
 *   Arena at 0x7f.., 16384000 bytes, 64 reserved
 *     Allocated chunk at 0x7f.., 32 bytes, 16 reserved
 *     Free chunk at 0x7f.., 16381776 bytes, 16 reserved
 *
 * Arena bytes include the reserved header and fence; chunk bytes are payload bytes and the
 * header is the reserved part, so the chunk lines of an arena add up to its bytes - reserved.
 */
#include "internal.h"

static int print_line(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    FILE *out = ctx;
    if (chunk == NULL)
        fprintf(out, "Arena at %p, %zu bytes, %zu reserved\n", arena->address, arena->size,
                arena->reserved);
    else
        fprintf(out, "  %s chunk at %p, %zu bytes, %zu reserved\n",
                chunk->is_free ? "Free" : "Allocated", chunk->address, chunk->size,
                chunk->reserved);
    return 0;
}

void TAlloc_heap_debug_print(TAlloc_heap *heap, FILE *out)
{
    ta_heap_lock(heap);
    if (ta_walk_locked(heap, print_line, out) < 0)
        fprintf(out, "  (a damaged header ends the walk of an arena; run TAlloc_check)\n");
    ta_heap_unlock(heap);
    fflush(out);
}

void TAlloc_debug_print(void)
{
    TAlloc_heap_debug_print(ta_default_heap(), stdout);
}
