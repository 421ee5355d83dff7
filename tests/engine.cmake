# The batched generation engine (src/engine/): batch invariance, paged cache,
# generations and the C batch / pull API.
muse_cpp_test(test-engine muse_internal)
