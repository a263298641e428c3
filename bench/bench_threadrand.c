/* bench_threadrand (2 threads): each thread runs its own random-size churn (bench_churn's
 * 16..512 bytes) over a thread-local live set of 10000 blocks; no block crosses threads.
 * Both threads fill their live sets first; the measured section runs from a barrier that
 * starts them together to a barrier both reach when done. ops = free/malloc pairs (steps)
 * of both threads.
 *
 * usage: bench_threadrand [SCALE] [LIVE]   (LIVE blocks per thread, default 10000) */
#include "churn.h"

#include <pthread.h>

#define USAGE "bench_threadrand [SCALE] [LIVE]"
#define THREADS 2

static pthread_barrier_t barrier;
static size_t live, steps;

static void *run(void *arg)
{
    churn_set *set = arg;
    churn_init(set, live, set->rng);
    pthread_barrier_wait(&barrier); /* start */
    churn_run(set, steps);
    pthread_barrier_wait(&barrier); /* done */
    churn_free(set);
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    live = (size_t)bench_arg(argc, argv, 2, 10000, USAGE);
    steps = bench_scaled(4e6, scale);
    static churn_set sets[THREADS];
    pthread_t threads[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++) {
        sets[i].rng = 0xbb67ae8584caa73bu + (uint64_t)i; /* the seed churn_init takes */
        if (pthread_create(&threads[i], NULL, run, &sets[i]) != 0) {
            fprintf(stderr, "bench_threadrand: pthread_create failed\n");
            return 1;
        }
    }

    pthread_barrier_wait(&barrier);
    double start = bench_now();
    pthread_barrier_wait(&barrier);
    double seconds = bench_now() - start;
    uint64_t checksum = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        checksum += sets[i].checksum;
    }

    pthread_barrier_destroy(&barrier);
    bench_report("threadrand", (uint64_t)steps * THREADS, seconds, checksum);
    return 0;
}
