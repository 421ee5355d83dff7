/* muse-bench: prefill and decode speed of one GGUF through the public C API.
 * usage: muse-bench MODEL [--prompt N] [--n N] [--threads T] [--reps R]
 * Prints one JSON object: best-of-reps prefill and decode tokens/s, the load time (model,
 * a session and the first one-token evaluation: weights are mapped and repacked on first
 * use) and the process's peak resident set. */
#include <muse/muse.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what) {
    fprintf(stderr, "muse-bench: %s: %s\n", what, muse_last_error());
    return 1;
}

int main(int argc, char **argv) {
    int n_prompt = 128, n_gen = 64, threads = 0, reps = 3, i, r;
    muse_model_params mp;
    muse_session_params sp;
    muse_model *m = NULL;
    double best_pp = 0, best_tg = 0;
    int32_t *prompt;
    int64_t n_vocab;
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--prompt N] [--n N] [--threads T] [--reps R]\n", argv[0]);
        return 2;
    }
    for (i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n")) n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    muse_model_params_init(&mp);
    mp.n_threads = threads;
    const double t_load = now();
    if (muse_model_load(argv[1], &mp, &m) != MUSE_OK) return fail("load");
    n_vocab = muse_model_n_vocab(m);
    muse_session_params_init(&sp);
    sp.n_ctx = n_prompt + n_gen + 8;
    {
        muse_session *s = NULL;
        const float *logits = NULL;
        const int32_t first = 1;
        if (muse_session_create(m, &sp, &s) != MUSE_OK) return fail("session");
        if (muse_session_eval(s, 0, &first, 1, &logits) != MUSE_OK) return fail("first token");
        muse_session_free(s);
    }
    const double load_s = now() - t_load;
    prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (i = 0; i < n_prompt; ++i) prompt[i] = (int32_t)((i * 7919 + 13) % n_vocab);
    for (r = 0; r < reps; ++r) {
        muse_session *s = NULL;
        const float *logits = NULL;
        double t0, t1, t2;
        int32_t tok = 1;
        if (muse_session_create(m, &sp, &s) != MUSE_OK) return fail("session");
        t0 = now();
        if (muse_session_eval(s, 0, prompt, (size_t)n_prompt, &logits) != MUSE_OK) return fail("prefill");
        t1 = now();
        for (i = 0; i < n_gen; ++i) {
            tok = (int32_t)((tok * 31 + i) % n_vocab);  /* fixed token stream: timing only */
            if (muse_session_eval(s, 0, &tok, 1, &logits) != MUSE_OK) return fail("decode");
        }
        t2 = now();
        if (n_prompt / (t1 - t0) > best_pp) best_pp = n_prompt / (t1 - t0);
        if (n_gen / (t2 - t1) > best_tg) best_tg = n_gen / (t2 - t1);
        muse_session_free(s);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"engine\": \"muse\", \"prompt_tokens\": %d, \"gen_tokens\": %d, \"prefill_tps\": %.3f, "
           "\"decode_tps\": %.3f, \"load_s\": %.3f, \"peak_rss_mb\": %.1f}\n", n_prompt, n_gen, best_pp, best_tg, load_s,
           (double)ru.ru_maxrss / 1024.0);
    free(prompt);
    muse_model_free(m);
    return 0;
}
