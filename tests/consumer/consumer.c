/* A host program that knows muse only through its installed header and library. */
#include <muse/muse.h>
#include <stdio.h>

int main(int argc, char **argv) {
    muse_model_params p;
    muse_model *m = NULL;
    if (argc < 2) return 2;
    muse_model_params_init(&p);
    p.vocab_only = true;
    if (muse_model_load(argv[1], &p, &m) != MUSE_OK) {
        fprintf(stderr, "load failed: %s\n", muse_last_error());
        return 1;
    }
    printf("muse %s: %s with %lld layers\n", muse_version(), muse_model_arch(m), (long long)muse_model_n_layer(m));
    muse_model_free(m);
    return 0;
}
