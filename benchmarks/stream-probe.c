/* Memory bandwidth, STREAM-style: each of T threads streams its own array of --mib MiB
 * (256 by default; run.py asks for 512, past the 480 MB L3 one host reports). "read" sums it
 * as 8 interleaved streams (what a decode step does with the weights);
 * "triad" is STREAM's a[i] = b[i] + s * c[i] (bytes counted: 3 per element moved,
 * the write-allocate read not counted, as STREAM does). Best of R passes, GB/s.
 *   usage: stream-probe [--threads T] [--mib M] [--reps R]
 * Prints one JSON line: {"threads": T, "read_gbs": ..., "triad_gbs": ...}. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    double *a, *b, *c;
    size_t n;
    int kind; /* 0 read, 1 triad */
    double sink;
    pthread_barrier_t *start;
} Work;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *run(void *p) {
    Work *w = p;
    pthread_barrier_wait(w->start);
    if (w->kind == 0) {
        /* An integer sum of the bit patterns: associative, so the compiler vectorizes it
         * and the loads, not the adds, are the limit. The array is read as kStreams
         * interleaved streams, as a matvec reads its row groups: one stream left this host
         * at 25-31 GB/s with 2 threads where 8 reached 33-36 (more misses in flight), and
         * muse's decode of the Glimmer slice already moved 29 GB/s: a one-stream roofline
         * would put it above 100%. */
        enum { kStreams = 8 };
        const unsigned long long *u = (const unsigned long long *)w->a;
        const size_t part = w->n / kStreams / 8 * 8;
        unsigned long long acc[kStreams][8] = {{0}}, s = 0;
        for (size_t i = 0; i < part; i += 8)
            for (int k = 0; k < kStreams; ++k)
                for (int j = 0; j < 8; ++j) acc[k][j] += u[k * part + i + j];
        for (int k = 0; k < kStreams; ++k)
            for (int j = 0; j < 8; ++j) s += acc[k][j];
        for (size_t i = kStreams * part; i < w->n; ++i) s += u[i];
        w->sink = (double)s;
    } else {
        for (size_t i = 0; i < w->n; ++i) w->a[i] = w->b[i] + 3.0 * w->c[i];
        w->sink = w->a[w->n / 2];
    }
    return NULL;
}

static double pass(Work *ws, int threads, int kind) {
    pthread_t tid[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; ++t) {
        ws[t].kind = kind;
        ws[t].start = &start;
        pthread_create(&tid[t], NULL, run, &ws[t]);
    }
    pthread_barrier_wait(&start);
    const double t0 = now();
    for (int t = 0; t < threads; ++t) pthread_join(tid[t], NULL);
    const double dt = now() - t0;
    pthread_barrier_destroy(&start);
    return dt;
}

int main(int argc, char **argv) {
    int threads = 1, reps = 5;
    size_t mib = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib")) mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (threads < 1 || threads > 256 || mib < 1 || reps < 1) {
        fprintf(stderr, "usage: stream-probe [--threads 1..256] [--mib M] [--reps R]\n");
        return 2;
    }
    const size_t n = mib * 1024 * 1024 / sizeof(double);
    Work ws[256];
    for (int t = 0; t < threads; ++t) {
        memset(&ws[t], 0, sizeof ws[t]);
        ws[t].n = n;
        ws[t].a = malloc(n * sizeof(double));
        ws[t].b = malloc(n * sizeof(double));
        ws[t].c = malloc(n * sizeof(double));
        if (!ws[t].a || !ws[t].b || !ws[t].c) {
            fprintf(stderr, "stream-probe: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; ++i) ws[t].a[i] = ws[t].b[i] = ws[t].c[i] = 1.0; /* pages touched */
    }
    double best_read = 1e30, best_triad = 1e30;
    for (int r = 0; r < reps; ++r) {
        const double a = pass(ws, threads, 0), b = pass(ws, threads, 1);
        if (a < best_read) best_read = a;
        if (b < best_triad) best_triad = b;
    }
    const double bytes = (double)n * sizeof(double) * threads;
    printf("{\"threads\": %d, \"read_gbs\": %.2f, \"triad_gbs\": %.2f}\n", threads, bytes / best_read / 1e9,
           3.0 * bytes / best_triad / 1e9);
    for (int t = 0; t < threads; ++t) {
        free(ws[t].a);
        free(ws[t].b);
        free(ws[t].c);
    }
    return 0;
}
