/*
 * debug_print.c - TAlloc_debug_print: every arena and chunk of a heap as text, in the format
 * of the original proof of concept, now read from the real chunk states:
 *
 *   Arena at 0x7f.., 16384000 bytes, 64 reserved
 *     Allocated chunk at 0x7f.., 32 bytes, 16 reserved
 *     Free chunk at 0x7f.., 16381776 bytes, 16 reserved
 *
 * A block freed into a quick list (kept whole for the next request of its size) is a
 * "Quick chunk".
 * Arena bytes include the reserved header and fence; chunk bytes are payload bytes and the
 * header is the reserved part, so the chunk lines of an arena add up to its bytes - reserved.
 */
#include "internal.h"

enum { LINE_MAX_BYTES = 96 };

static int render_line(void *ctx, const TAlloc_arena_info *arena, const TAlloc_chunk_info *chunk)
{
    ta_text *t = ctx;
    if (chunk == NULL) {
        ta_text_str(t, "Arena at ");
        ta_text_ptr(t, arena->address);
        ta_text_str(t, ", ");
        ta_text_u64(t, arena->size);
        ta_text_str(t, " bytes, ");
        ta_text_u64(t, arena->reserved);
    } else {
        ta_text_str(t, chunk->is_free    ? "  Free chunk at "
                       : chunk->is_quick ? "  Quick chunk at "
                                         : "  Allocated chunk at ");
        ta_text_ptr(t, chunk->address);
        ta_text_str(t, ", ");
        ta_text_u64(t, chunk->size);
        ta_text_str(t, " bytes, ");
        ta_text_u64(t, chunk->reserved);
    }
    ta_text_str(t, " reserved\n");
    return 0;
}

/*
 * The text is rendered under the lock into pages mapped for it, and written to `out` after
 * the lock is released: stdio may allocate, and when TAlloc is the program's malloc that
 * allocation would wait for the lock this thread holds.
 */
void TAlloc_heap_debug_print(TAlloc_heap *heap, FILE *out)
{
    static const char damaged[] =
        "  (a damaged header ends the walk of an arena; run TAlloc_check)\n";
    if (!ta_heap_lock(heap))
        return;
    size_t lines = heap->stats.arena_count + heap->stats.allocated_count + heap->stats.free_count +
                   heap->stats.quick_count;
    size_t capacity = ta_align_up((lines + 1) * LINE_MAX_BYTES + sizeof damaged, ta_os_page_size());
    char *buf = ta_os_map_metadata(&heap->config.os, capacity);
    ta_text t = {buf, 0, buf ? capacity - 1 : 0};
    if (buf && ta_walk_locked(heap, render_line, &t) < 0)
        ta_text_str(&t, damaged);
    ta_heap_unlock(heap);
    if (buf == NULL) {
        fputs("  (no memory to render the heap)\n", out);
    } else {
        fwrite(buf, 1, t.used, out);
        ta_os_unmap_metadata(&heap->config.os, buf, capacity);
    }
    fflush(out);
}

void TAlloc_debug_print(void)
{
    TAlloc_heap_debug_print(ta_default_heap(), stdout);
}
