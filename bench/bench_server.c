/* bench_server (2 threads): a server simulation. Each of two threads accepts requests: it
 * allocates a request buffer (64..4096 bytes), fills its ends and hands it to the other
 * thread. Each thread also serves the requests handed to it: it reads the request, builds a
 * response in a short-lived block (an eighth of the request's size, at least 16 bytes),
 * replaces one entry of its own session table (256 blocks of 16..512 bytes) and frees both
 * the response and the request, a block the other thread allocated. A thread accepts while
 * there is room in the other's queue and serves in between. ops = malloc/free pairs (three
 * per request: request, response, session entry).
 *
 * usage: bench_server [SCALE] */
#include "ring.h"

#include <pthread.h>

#define USAGE "bench_server [SCALE]"
#define SESSIONS 256

typedef struct {
    ring *in, *out;
    uint64_t accept_rng, serve_rng; /* separate, so neither depends on the interleaving */
    message *session[SESSIONS];
    uint64_t checksum;
} worker;

static size_t requests; /* accepted by each thread */

static void serve(worker *w, message *request)
{
    size_t size = request->size / 8 < 16 ? 16 : request->size / 8;
    message *response = message_new(size, request->tag);
    size_t s = rng_range(&w->serve_rng, 0, SESSIONS - 1);
    w->checksum += message_free(w->session[s]);
    w->session[s] = message_new(rng_range(&w->serve_rng, 16, 512), request->tag);
    w->checksum += message_free(response) + message_free(request);
}

static void *run(void *arg)
{
    worker *w = arg;
    size_t accepted = 0, served = 0;
    message *pending = NULL;
    while (accepted < requests || served < requests) {
        int progress = 0;
        if (pending == NULL && accepted < requests)
            pending = message_new(rng_range(&w->accept_rng, 64, 4096), (uint32_t)accepted);
        if (pending != NULL && ring_try_push(w->out, pending)) {
            pending = NULL;
            accepted++;
            progress = 1;
        }
        message *m;
        while (served < requests && (m = ring_try_pop(w->in)) != NULL) {
            serve(w, m);
            served++;
            progress = 1;
        }
        if (!progress)
            sched_yield();
    }
    return NULL;
}

static void worker_init(worker *w, ring *in, ring *out, uint64_t seed)
{
    *w = (worker){.in = in, .out = out, .accept_rng = seed, .serve_rng = ~seed};
    for (size_t s = 0; s < SESSIONS; s++)
        w->session[s] = message_new(rng_range(&w->serve_rng, 16, 512), (uint32_t)s);
}

static uint64_t worker_finish(worker *w)
{
    for (size_t s = 0; s < SESSIONS; s++)
        w->checksum += message_free(w->session[s]);
    return w->checksum;
}

int main(int argc, char **argv)
{
    double scale = bench_arg(argc, argv, 1, 1.0, USAGE);
    requests = bench_scaled(1e6, scale);
    static ring queues[2];
    static worker workers[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        ring_init(&queues[i]);
        worker_init(&workers[i], &queues[i], &queues[1 - i], 0x6a09e667f3bcc909u + (uint64_t)i);
    }

    double start = bench_now();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&threads[i], NULL, run, &workers[i]) != 0) {
            fprintf(stderr, "bench_server: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    double seconds = bench_now() - start;

    uint64_t checksum = worker_finish(&workers[0]) + worker_finish(&workers[1]);
    bench_report("server", (uint64_t)requests * 2 * 3, seconds, checksum);
    return 0;
}
