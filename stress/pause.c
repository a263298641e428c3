/*
 * pause.c - the safe point: "stop the world" for a full check.
 *
 * A thread that wants a check sets `requested` under the lock and waits until every other
 * running thread is parked in pause_safe_point (between two ops), runs the check while
 * holding the lock, then bumps the epoch and wakes them. A second thread asking while a
 * check is pending parks like the others and asks again afterwards, so two checkers never
 * deadlock. A thread leaving the run decrements `active` so nobody waits for it.
 */
#include <stdio.h>
#include <string.h>

#include "stress.h"

static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parked_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t resume_cv = PTHREAD_COND_INITIALIZER;
static atomic_bool requested;
static int active;
static int parked;
static uint64_t epoch;

void pause_init(int threads)
{
    active = threads;
    parked = 0;
}

/* With the lock held: wait until the pending check is over. */
static void park_locked(void)
{
    uint64_t seen = epoch;
    parked++;
    pthread_cond_signal(&parked_cv);
    while (epoch == seen)
        pthread_cond_wait(&resume_cv, &pause_lock);
    parked--;
}

void pause_safe_point(void)
{
    if (!atomic_load_explicit(&requested, memory_order_acquire))
        return;
    pthread_mutex_lock(&pause_lock);
    if (atomic_load(&requested))
        park_locked();
    pthread_mutex_unlock(&pause_lock);
}

void pause_thread_exit(void)
{
    pthread_mutex_lock(&pause_lock);
    active--;
    pthread_cond_signal(&parked_cv);
    pthread_mutex_unlock(&pause_lock);
}

bool pause_full_check(stress_thread *self, const char *why)
{
    pthread_mutex_lock(&pause_lock);
    while (atomic_load(&requested))
        park_locked();
    atomic_store(&requested, true);
    while (parked < active - 1)
        pthread_cond_wait(&parked_cv, &pause_lock);
    bool ok = stress_heap_check(why, self, false);
    atomic_store(&requested, false);
    epoch++;
    pthread_cond_broadcast(&resume_cv);
    pthread_mutex_unlock(&pause_lock);
    return ok;
}

/* ---- the check itself (world stopped, or after the workers have been joined) -------------- */

typedef struct first_violation {
    int invariant;
    const void *address;
    char detail[200];
    size_t count;
} first_violation;

static void on_violation(void *ctx, int invariant, const void *address, const char *detail)
{
    first_violation *v = ctx;
    if (v->count++ == 0) {
        v->invariant = invariant;
        v->address = address;
        snprintf(v->detail, sizeof v->detail, "%s", detail);
    }
}

static bool verify_all_blocks(stress_thread *self)
{
    size_t bad = 0;
    for (int i = 0; i < g.opt.threads; i++) {
        const stress_thread *t = &g.threads[i];
        for (size_t k = 0; k < t->live; k++) {
            const stress_block *b = &t->blocks[k];
            if (!stress_verify_block(b->id, b->ptr, b->size, &bad)) {
                stress_fail(self, "pattern", "thread %d block #%zu %p (%zu bytes) byte %zu "
                            "changed (seen by the full check)", i, k, (void *)b->ptr, b->size, bad);
                return false;
            }
        }
    }
    pthread_mutex_lock(&g.queue_lock);
    bool ok = true;
    for (size_t k = 0; k < g.queue_count && ok; k++) {
        const stress_queue_item *q = &g.queue[k];
        ok = stress_verify_block(q->id, q->ptr, q->size, &bad);
        if (!ok)
            stress_fail(self, "pattern", "queued block %p (%zu bytes) byte %zu changed",
                        (void *)q->ptr, q->size, bad);
    }
    pthread_mutex_unlock(&g.queue_lock);
    return ok;
}

/* With no live block anywhere the default heap must hold no allocated chunk and no more
   than the retained arena, once the blocks it holds in quarantine (TALLOC_OPTIONS) are
   released and its quick lists flushed (their blocks merge as frees would). */
static bool check_drained(stress_thread *self, const char *why)
{
    TAlloc_release_quarantine();
    TAlloc_flush();
    TAlloc_stats st;
    TAlloc_get_stats(&st);
    if (st.allocated_count != 0) {
        stress_fail(self, "I8 drained", "%s: %zu chunks still allocated with no live block",
                    why, st.allocated_count);
        return false;
    }
    if (st.arena_count > g.retained_arenas) {
        stress_fail(self, "I8 drained", "%s: %zu arenas mapped after a drain, retained %zu", why,
                    st.arena_count, g.retained_arenas);
        return false;
    }
    return true;
}

bool stress_heap_check(const char *why, stress_thread *self, bool is_drained_expected)
{
    atomic_fetch_add(&g.checks, 1);
    stress_note_rss();
    if (g.opt.allocator == A_TALLOC) {
        first_violation v;
        memset(&v, 0, sizeof v);
        if (TAlloc_check(on_violation, &v) != 0) {
            stress_fail(self, th_invariant_name(v.invariant), "%s check: I%d at %p: %s (%zu "
                        "violations)", why, v.invariant, v.address, v.detail, v.count);
            return false;
        }
    }
    if (!verify_all_blocks(self))
        return false;
    bool is_empty = atomic_load(&g.live_blocks) == 0;
    if (g.opt.allocator == A_TALLOC && (is_empty || is_drained_expected))
        return check_drained(self, why);
    return true;
}
