/* A multimodal reasoning turn through the C ABI only: load a model and its vision
 * projector, attach an image, ask, stream the reasoning (stderr) and the answer (stdout).
 *
 *   chat MODEL.gguf MMPROJ.gguf IMAGE.png "question" [budget]
 */
#include <muse/muse.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool on_token(const muse_token_event *ev, void *user) {
    (void)user;
    if (ev->channel == MUSE_CHANNEL_REASONING) fwrite(ev->piece, 1, ev->piece_len, stderr);
    else if (ev->channel == MUSE_CHANNEL_ANSWER) fwrite(ev->piece, 1, ev->piece_len, stdout);
    fflush(stdout);
    return true;
}

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, muse_last_error());
    return 1;
}

/* The question as a JSON string (quotes, backslashes and control characters escaped). */
static char *json_string(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n * 6 + 3), *o = out;
    if (!out) return NULL;
    *o++ = '"';
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; }
        else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
        else *o++ = (char)c;
    }
    *o++ = '"';
    *o = 0;
    return out;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL.gguf MMPROJ.gguf IMAGE \"question\" [thinking budget]\n", argv[0]);
        return 2;
    }
    muse_model_params mp;
    muse_model_params_init(&mp);
    mp.mmproj_path = argv[2];
    muse_model *model = NULL;
    if (muse_model_load(argv[1], &mp, &model) != MUSE_OK) return fail("load model");
    muse_image *image = NULL;
    if (muse_image_load_file(argv[3], NULL, &image) != MUSE_OK) return fail("load image");
    muse_session *session = NULL;
    if (muse_session_create(model, NULL, &session) != MUSE_OK) return fail("create session");

    char *question = json_string(argv[4]);
    const char *fmt = "[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": %s}]}]";
    char *messages = malloc(strlen(fmt) + strlen(question) + 1);
    sprintf(messages, fmt, question);

    muse_generate_params gp;
    muse_generate_params_init(&gp);
    gp.max_tokens = 512;
    gp.thinking.mode = MUSE_THINKING_ON;
    gp.thinking.budget = argc > 5 ? atoi(argv[5]) : -1;
    muse_chat_params cp;
    muse_chat_params_init(&cp);
    const muse_image *images[1] = {image};
    cp.images = images;
    cp.n_images = 1;
    char *result = NULL;
    fputs("[thinking] ", stderr);
    const muse_status st = muse_session_chat(session, 0, messages, &cp, &gp, on_token, NULL, &result);
    printf("\n");
    if (st != MUSE_OK) return fail("chat");
    fprintf(stderr, "[result] %s\n", result);
    muse_string_free(result);
    free(messages);
    free(question);
    muse_session_free(session);
    muse_image_free(image);
    muse_model_free(model);
    return 0;
}
