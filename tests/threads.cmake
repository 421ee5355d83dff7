# Concurrency (src/backends/cpu/thread-pool.*, sessions sharing a model across host
# threads). scripts/test.sh also builds and runs these under ThreadSanitizer.
muse_cpp_test(test-threads muse_internal)
target_link_libraries(test-threads PRIVATE Threads::Threads)
target_compile_definitions(test-threads PRIVATE MUSE_TEST_MODEL_PATH="${MUSE_TEST_MODEL}")
add_dependencies(test-threads test-models)
