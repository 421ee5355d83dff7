# Contemplating mode (src/engine/contemplation.*, src/engine/aggregate.*).
muse_cpp_test(test-contemplate muse_internal)
