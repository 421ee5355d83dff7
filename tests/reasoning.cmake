# Reasoning formats and output-channel parsers (src/reasoning/). test-reasoning-format
# renders the templates in ../shared/templates (or $MUSE_SHARED_DIR/templates); those
# cases skip when it is absent.
muse_cpp_test(test-channels muse_internal)
muse_cpp_test(test-reasoning-format muse_internal)
target_compile_definitions(test-reasoning-format PRIVATE
  MUSE_TEST_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared")
