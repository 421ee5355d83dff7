/* engine-bench: the batched engine through the public C API.
 *   engine-bench MODEL [--threads T] [--seqs 1,2,4,8,16] [--prompt P] [--n N] [--isolation L]
 * batched:   N greedy generations (distinct P-token prompts) on sequences 0..S-1 of one
 *            session, advanced together by muse_session_step; aggregate decode tokens/s
 *            after the first step (which evaluates the prompts), for each S; and the forward
 *            passes alone (host-built batches through muse_session_decode, no sampling).
 * isolation: the decode step time of one short sequence alone, then with 7 other sequences
 *            of the same session holding L cached tokens each (0 skips it).
 *   engine-bench MODEL --contemplate A [--threads T] [--prompt P] [--n N]
 * contemplate: one request of A agents (prompt of P tokens evaluated once, N tokens per agent,
 *            temperature 0.8), wall time and the process's peak RSS; run once per A (the peak
 *            is per process).
 * Prints one JSON object per measurement. */
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
    fprintf(stderr, "engine-bench: %s: %s\n", what, muse_last_error());
    exit(1);
}

static int64_t n_vocab;
static int32_t bans[2];
static float ban_values[2] = {-1e30f, -1e30f};
static size_t n_bans;

/* Random weights may end a sequence at any time: the end tokens are banned so every
 * generation runs its full length. */
static void find_end_tokens(const muse_model *m) {
    const char *keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"};
    for (int i = 0; i < 2; ++i) {
        int64_t v;
        if (muse_model_meta_get_int(m, keys[i], &v) == MUSE_OK) bans[n_bans++] = (int32_t)v;
    }
}

static void prompt_of(int seq, int n, int32_t *out) {
    for (int i = 0; i < n; ++i) out[i] = (int32_t)(((seq + 1) * 7919 + i * 104729 + 13) % n_vocab);
}

/* S generations of n tokens together; returns aggregate decode tokens/s after the first step. */
static double batched(const muse_model *m, int seqs, int n_prompt, int n_gen) {
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_seq_max = seqs;
    sp.n_ctx = seqs * (n_prompt + n_gen + 16);
    muse_session *s = NULL;
    if (muse_session_create(m, &sp, &s) != MUSE_OK) fail("session");
    muse_sampling_params samp;
    muse_sampling_params_init(&samp);
    samp.logit_bias_tokens = bans;
    samp.logit_bias_values = ban_values;
    samp.n_logit_bias = n_bans;
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = (size_t)n_gen;
    gp.sampling = &samp;
    muse_generation **gens = calloc((size_t)seqs, sizeof *gens);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (int i = 0; i < seqs; ++i) {
        prompt_of(i, n_prompt, prompt);
        if (muse_generation_start(s, i, prompt, (size_t)n_prompt, &gp, &gens[i]) != MUSE_OK) fail("start");
    }
    int32_t live = 0;
    if (muse_session_step(s, &live) != MUSE_OK) fail("step");  /* prompts + first tokens */
    const double t0 = now();
    int steps = 0;
    while (live > 0) {
        if (muse_session_step(s, &live) != MUSE_OK) fail("step");
        ++steps;
    }
    const double dt = now() - t0;
    for (int i = 0; i < seqs; ++i) muse_generation_free(gens[i]);
    free(gens);
    free(prompt);
    muse_session_free(s);
    return (double)steps * seqs / dt;
}

/* The same with the host driving the steps (muse_batch + muse_session_decode, a fixed token
 * stream, no sampling): the forward passes alone, as llama.cpp's batched-bench measures them. */
static double batched_decode(const muse_model *m, int seqs, int n_prompt, int n_gen) {
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_seq_max = seqs;
    sp.n_ctx = seqs * (n_prompt + n_gen + 16);
    muse_session *s = NULL;
    if (muse_session_create(m, &sp, &s) != MUSE_OK) fail("session");
    muse_batch *b = NULL;
    if (muse_batch_create((size_t)(seqs * n_prompt), &b) != MUSE_OK) fail("batch");
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (int i = 0; i < seqs; ++i) {
        prompt_of(i, n_prompt, prompt);
        for (int k = 0; k < n_prompt; ++k)
            if (muse_batch_add(b, prompt[k], -1, i, k == n_prompt - 1) != MUSE_OK) fail("batch_add");
    }
    if (muse_session_decode(s, b) != MUSE_OK) fail("decode");
    const double t0 = now();
    for (int step = 0; step < n_gen; ++step) {
        muse_batch_clear(b);
        for (int i = 0; i < seqs; ++i)
            if (muse_batch_add(b, (int32_t)((i * 31 + step * 7 + 11) % n_vocab), -1, i, true) != MUSE_OK) fail("batch_add");
        if (muse_session_decode(s, b) != MUSE_OK) fail("decode");
    }
    const double dt = now() - t0;
    free(prompt);
    muse_batch_free(b);
    muse_session_free(s);
    return (double)n_gen * seqs / dt;
}

/* Mean decode step time (ms) of sequence 0 generating n tokens after a short prompt. */
static double short_step_ms(muse_session *s, int n_gen) {
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    muse_sampling_params samp;
    muse_sampling_params_init(&samp);
    samp.logit_bias_tokens = bans;
    samp.logit_bias_values = ban_values;
    samp.n_logit_bias = n_bans;
    gp.sampling = &samp;
    gp.max_tokens = (size_t)n_gen + 1;
    int32_t prompt[16];
    prompt_of(0, 16, prompt);
    if (muse_session_seq_remove(s, 0, 0, -1) != MUSE_OK) fail("seq_remove");
    muse_generation *g = NULL;
    if (muse_generation_start(s, 0, prompt, 16, &gp, &g) != MUSE_OK) fail("start");
    int32_t live = 0;
    if (muse_session_step(s, &live) != MUSE_OK) fail("step");
    const double t0 = now();
    int steps = 0;
    while (live > 0) {
        if (muse_session_step(s, &live) != MUSE_OK) fail("step");
        ++steps;
    }
    const double ms = (now() - t0) * 1e3 / steps;
    muse_generation_free(g);
    return ms;
}

static void contemplate(const muse_model *m, int agents, int n_prompt, int n_gen) {
    muse_session_params sp;
    muse_session_params_init(&sp);
    sp.n_seq_max = agents;
    sp.n_ctx = n_prompt + agents * (n_gen + 16);
    muse_session *s = NULL;
    if (muse_session_create(m, &sp, &s) != MUSE_OK) fail("session");
    muse_sampling_params samp;
    muse_sampling_params_init(&samp);
    samp.temperature = 0.8f;
    samp.seed = 1;
    samp.logit_bias_tokens = bans;
    samp.logit_bias_values = ban_values;
    samp.n_logit_bias = n_bans;
    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.sampling = &samp;
    gp.max_tokens = (size_t)n_gen;
    gp.contemplate.n_agents = agents;
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    prompt_of(0, n_prompt, prompt);
    muse_generation *g = NULL;
    const double t0 = now();
    if (muse_generation_start(s, 0, prompt, (size_t)n_prompt, &gp, &g) != MUSE_OK) fail("start");
    muse_event ev;
    ev.struct_size = sizeof ev;
    double first = 0;
    int64_t tokens = 0;
    while (muse_generation_next(g, &ev) == MUSE_OK && ev.kind != MUSE_EVENT_DONE) {
        if (ev.token >= 0 && first == 0) first = now();
        if (ev.kind == MUSE_EVENT_TOKEN || ev.kind == MUSE_EVENT_ANSWER) tokens += ev.token >= 0;
    }
    const double wall = now() - t0;
    if (ev.kind != MUSE_EVENT_DONE) fail("generation");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bench\": \"contemplate\", \"agents\": %d, \"prompt\": %d, \"tokens_per_agent\": %d, \"wall_s\": %.3f, "
           "\"prefill_s\": %.3f, \"decode_s\": %.3f, \"peak_rss_mb\": %.1f}\n", agents, n_prompt, n_gen, wall, first - t0,
           wall - (first - t0), ru.ru_maxrss / 1024.0);
    muse_generation_free(g);
    free(prompt);
    muse_session_free(s);
}

int main(int argc, char **argv) {
    int threads = 0, n_prompt = 32, n_gen = 32, isolation = 2000, agents = 0;
    const char *seq_list = "1,2,4,8,16";
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--threads T] [--seqs 1,2,4,8,16] [--prompt P] [--n N] [--isolation L]\n",
                argv[0]);
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seqs")) seq_list = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n")) n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--isolation")) isolation = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--contemplate")) agents = atoi(argv[i + 1]);
    }
    muse_model_params mp;
    muse_model_params_init(&mp);
    mp.n_threads = threads;
    muse_model *m = NULL;
    if (muse_model_load(argv[1], &mp, &m) != MUSE_OK) fail("load");
    n_vocab = muse_model_n_vocab(m);
    find_end_tokens(m);
    if (agents > 0) {
        contemplate(m, agents, n_prompt, n_gen);
        muse_model_free(m);
        return 0;
    }

    double one = 0, one_raw = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", seq_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        const int seqs = atoi(tok);
        if (seqs <= 0) continue;
        const double tps = batched(m, seqs, n_prompt, n_gen);
        const double raw = batched_decode(m, seqs, n_prompt, n_gen);
        if (seqs == 1) {
            one = tps;
            one_raw = raw;
        }
        printf("{\"bench\": \"batched\", \"seqs\": %d, \"decode_tps\": %.3f, \"vs_one\": %.2f, "
               "\"forward_only_tps\": %.3f, \"forward_only_vs_one\": %.2f}\n", seqs, tps, one > 0 ? tps / one : 0.0, raw,
               one_raw > 0 ? raw / one_raw : 0.0);
        fflush(stdout);
    }

    if (isolation > 0) {
        muse_session_params sp;
        muse_session_params_init(&sp);
        sp.n_seq_max = 8;
        sp.n_ctx = 7 * isolation + 256;
        muse_session *s = NULL;
        if (muse_session_create(m, &sp, &s) != MUSE_OK) fail("session");
        const double alone = short_step_ms(s, n_gen);
        int32_t *prompt = malloc(sizeof(int32_t) * (size_t)isolation);
        for (int seq = 1; seq < 8; ++seq) {
            prompt_of(seq, isolation, prompt);
            if (muse_session_eval(s, seq, prompt, (size_t)isolation, NULL) != MUSE_OK) fail("eval");
        }
        free(prompt);
        const double crowded = short_step_ms(s, n_gen);
        printf("{\"bench\": \"isolation\", \"others\": 7, \"cached_each\": %d, \"step_ms_alone\": %.3f, "
               "\"step_ms_crowded\": %.3f, \"ratio\": %.3f}\n", isolation, alone, crowded, crowded / alone);
        muse_session_free(s);
    }
    muse_model_free(m);
    return 0;
}
