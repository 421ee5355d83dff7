# Built-in tools (src/tools/): zoom, annotate, calculator through the Tool interface.
muse_cpp_test(test-tools muse_internal)
