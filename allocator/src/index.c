/*
 * index.c - what every free index policy shares: the table of policies, the note of damage
 * met during a call, and the checks a link's target passes before its words are read.
 */
#include "internal.h"

extern const ta_index_ops ta_index_segregated;
extern const ta_index_ops ta_index_first_fit;
extern const ta_index_ops ta_index_best_fit;

const ta_index_ops *ta_index_for_policy(TAlloc_policy policy)
{
    switch (policy) {
    case TALLOC_POLICY_FIRST_FIT: return &ta_index_first_fit;
    case TALLOC_POLICY_BEST_FIT: return &ta_index_best_fit;
    default: return &ta_index_segregated;
    }
}

const char *TAlloc_policy_name(TAlloc_policy policy)
{
    return (unsigned)policy < TALLOC_POLICY_COUNT ? ta_index_for_policy(policy)->name : "unknown";
}

static bool is_named(const char *name, size_t length, const char *candidate)
{
    size_t i = 0;
    while (i < length && candidate[i] && name[i] == candidate[i])
        i++;
    return i == length && candidate[i] == 0;
}

int TAlloc_policy_parse(const char *name, size_t length, TAlloc_policy *out)
{
    for (int p = 0; p < TALLOC_POLICY_COUNT; p++)
        if (is_named(name, length, TAlloc_policy_name((TAlloc_policy)p))) {
            *out = (TAlloc_policy)p;
            return 1;
        }
    if (is_named(name, length, "first") || is_named(name, length, "best")) {
        *out = name[0] == 'f' ? TALLOC_POLICY_FIRST_FIT : TALLOC_POLICY_BEST_FIT;
        return 1;
    }
    return 0;
}

bool ta_index_note(ta_heap *heap, TAlloc_error error, const void *address)
{
    if (heap->index_fault.error == TALLOC_ERROR_NONE)
        heap->index_fault = (ta_fault){error, address};
    return false;
}

bool ta_index_is_free_chunk(const ta_heap *heap, const ta_chunk *target)
{
    return ta_index_is_plausible(heap, target) && ta_chunk_is_valid(heap, target) &&
           ta_chunk_is_free(target);
}
