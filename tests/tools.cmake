# Tool declarations, call parsing, call grammars and the tool loop (src/tools/,
# reasoning/json-call-parser). The template cases read ../shared/templates (or
# $MUSE_SHARED_DIR/templates) and skip when it is absent.
muse_cpp_test(test-tool-calls muse_internal)
target_compile_definitions(test-tool-calls PRIVATE MUSE_TEST_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared")
muse_cpp_test(test-call-grammar muse_internal)
muse_cpp_test(test-tool-loop muse::muse muse_core)
muse_cpp_test(test-tool-phase muse_internal)
# Built-in tools (src/tools/): zoom, annotate, calculator through the Tool interface.
muse_cpp_test(test-tools muse_internal)
