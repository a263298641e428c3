/*
 * internal.h - the state of one harness run, shared by run.c (executing ops), model.c (the
 * record of live blocks and their fill patterns) and check.c (I1-I8).
 */
#ifndef TALLOC_HARNESS_INTERNAL_H
#define TALLOC_HARNESS_INTERNAL_H

#include "harness.h"

/* One live block as the harness recorded it. */
typedef struct th_block {
    unsigned char *ptr;
    size_t size;        /* requested bytes */
    size_t alignment;   /* requested alignment (16 for plain allocations) */
    uint64_t pattern;   /* seed of the fill pattern */
    size_t op_index;    /* op that allocated (or last reallocated) it */
} th_block;

struct th_run {
    const th_config *config;
    th_result *result;
    TAlloc_heap *heap;
    th_block *live;            /* in allocation order: #N picks live[N % live_count] */
    size_t live_count;
    size_t live_capacity;
    uint64_t next_pattern;
    size_t op_index;           /* the op being executed (program count during the drain) */
    bool is_checking;
    /* OS layer seen by the heap */
    size_t maps_to_fail;       /* the next this many maps fail */
    size_t maps_failed_in_op;  /* maps refused (injected or real) during the current op */
    size_t errors_in_op;       /* misuse/corruption reports during the current op */
    size_t outstanding_maps;   /* maps not yet unmapped */
    bool is_capturing;         /* a debug print for a heap picture: its buffer is not the run's */
    TAlloc_os os;
    /* scratch space of the per-op model check, kept between checks */
    TAlloc_chunk_info *scratch_chunks;
    size_t scratch_chunk_capacity;
    th_block **scratch_blocks;
    size_t scratch_block_capacity;
};

/* space.c: every mapping of a run, placed the same way in every process */
/* Whether TAlloc can represent a request of `size` bytes at `alignment` (raised to 16): the
   bound of its allocation path (allocator/src/paths.c, alloc_path: the chunk and the gap an
   alignment may need, 64 bytes, must stay within PTRDIFF_MAX). A NULL for a larger request
   needs no refused map. */
bool th_is_representable(size_t size, size_t alignment);
void *th_space_map(size_t size, size_t alignment);
void th_space_unmap(void *address, size_t size);
void *th_space_remap(void *address, size_t old_size, size_t new_size);

/* model.c */
void th_model_add(th_run *run, void *ptr, size_t size, size_t alignment);
void th_model_remove(th_run *run, size_t index);
void th_model_fill(th_run *run, th_block *block);
bool th_model_verify(th_run *run, const th_block *block, size_t prefix, const char *what);
bool th_model_verify_edges(th_run *run, const th_block *block);
unsigned char th_pattern_byte(uint64_t pattern, size_t i);

/* check.c */
bool th_check_drained(th_run *run);

#endif
