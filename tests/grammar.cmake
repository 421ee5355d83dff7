# The grammar engine (src/grammar/): GBNF, matcher and token masks, regex and JSON
# Schema compilers. Cases needing ../shared (vocabularies, the JSON-Schema-Test-Suite,
# bench-dev) skip when it is absent. The [.bench] case is hidden (run it by tag).
muse_cpp_test(test-grammar muse_internal)
target_compile_definitions(test-grammar PRIVATE
  MUSE_TEST_GRAMMAR_DIR="${CMAKE_CURRENT_SOURCE_DIR}/grammar"
  MUSE_TEST_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared")
