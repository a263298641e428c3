/*
 * faults.c - --test-fault KIND@OP, a test aid and nothing else: thread 0 makes one deliberate
 * fault when it reaches op OP (or the first op after it at which it holds a live block), so
 * the tests can follow each failure path of the driver end to end.
 *
 *   pattern   changes one byte of the thread's newest block and stops the world for a full
 *             check, which must report it: exit 1, a reproducer the replay runs cleanly (the
 *             fault is the driver's, not the heap's)
 *   wild      writes through a wild pointer: SIGSEGV, reported by the crash handler, or by
 *             AddressSanitizer and then the death callback in ASan builds
 *   overflow  writes one byte past the requested end of the newest block: AddressSanitizer
 *             reports it (TAlloc keeps the bytes past a request poisoned); without ASan it may
 *             go unseen or surface later as a damaged header
 *
 * The option is left out of --help on purpose; docs/stress.md describes it.
 */
#include <stdlib.h>
#include <string.h>

#include "stress.h"

static const char *const fault_names[] = {[FAULT_NONE] = "none", [FAULT_PATTERN] = "pattern", [FAULT_WILD] = "wild",
                                          [FAULT_OVERFLOW] = "overflow"};

const char *stress_fault_name(int fault)
{
    return fault_names[fault];
}

bool stress_fault_parse(const char *arg, stress_options *o)
{
    const char *at = strchr(arg, '@');
    if (at == NULL)
        return false;
    for (int k = FAULT_PATTERN; k <= FAULT_OVERFLOW; k++) {
        size_t n = strlen(fault_names[k]);
        char *end;
        if ((size_t)(at - arg) != n || strncmp(arg, fault_names[k], n) != 0)
            continue;
        unsigned long long op = strtoull(at + 1, &end, 10);
        if (end == at + 1 || *end)
            return false;
        o->fault = k;
        o->fault_at = op;
        return true;
    }
    return false;
}

/* Called by each worker before each op; false when the fault was reported and the thread
   must stop. */
bool stress_fault_maybe(stress_thread *t)
{
    static bool is_done;
    if (g.opt.fault == FAULT_NONE || t->index != 0 || is_done || t->op_index < g.opt.fault_at ||
        t->live == 0)
        return true;
    is_done = true;
    stress_block *b = &t->blocks[t->live - 1];
    switch (g.opt.fault) {
    case FAULT_PATTERN:
        b->ptr[b->size / 2] ^= 0x5A;
        return pause_full_check(t, "after --test-fault pattern");
    case FAULT_WILD: {
        volatile uintptr_t where = 8; /* below any mapping */
        *(volatile unsigned char *)where = 1;
        return true;
    }
    case FAULT_OVERFLOW: {
        volatile unsigned char *end = b->ptr + b->size;
        *end = (unsigned char)(*end + 1);
        return true;
    }
    default:
        return true;
    }
}
