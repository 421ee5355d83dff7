# The public grammar API (muse_grammar_*, generation grammars, response_format): a
# public-API test linked like test-c-api, plus the Python tests in tests/python.
muse_cpp_test(test-c-api-grammar muse::muse muse_core)
target_compile_definitions(test-c-api-grammar PRIVATE MUSE_TEST_GRAMMAR_DIR="${CMAKE_CURRENT_SOURCE_DIR}/grammar")
muse_cpp_test(test-cpp-api-grammar muse::muse muse_core)
target_compile_features(test-cpp-api-grammar PRIVATE cxx_std_17)
