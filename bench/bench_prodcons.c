/* bench_prodcons (2 threads): one producer thread allocates messages of random sizes
 * (16..2048 bytes) and writes them; one consumer thread reads and frees them, so every free
 * is of a block another thread allocated. ops = messages (malloc/free pairs).
 *
 * usage: bench_prodcons [SCALE] */
#include "ring.h"

#include <pthread.h>

#define USAGE "bench_prodcons [SCALE]"

static ring queue;
static size_t total;
static uint64_t consumed;

static void *producer(void *unused)
{
    (void)unused;
    uint64_t rng = 0x94d049bb133111ebu;
    for (size_t i = 0; i < total; i++)
        ring_push(&queue, message_new(rng_range(&rng, 16, 2048), (uint32_t)i));
    return NULL;
}

static void *consumer(void *unused)
{
    (void)unused;
    uint64_t sum = 0;
    for (size_t i = 0; i < total; i++)
        sum += message_free(ring_pop(&queue));
    consumed = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    total = bench_scaled(4e6, scale);
    ring_init(&queue);
    pthread_t threads[2];

    double start = bench_now();
    if (pthread_create(&threads[0], NULL, producer, NULL) != 0 ||
        pthread_create(&threads[1], NULL, consumer, NULL) != 0) {
        fprintf(stderr, "bench_prodcons: pthread_create failed\n");
        return 1;
    }
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
    double seconds = bench_now() - start;

    bench_report("prodcons", total, seconds, consumed);
    return 0;
}
