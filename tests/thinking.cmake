# The thinking-budget controller and chat turns (src/thinking/, src/engine/chat-turn.cpp).
muse_cpp_test(test-thinking muse_internal)
target_compile_definitions(test-thinking PRIVATE MUSE_TEST_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared")
add_executable(make-chat-model tools/make-chat-model.cpp)
target_link_libraries(make-chat-model PRIVATE muse_internal)
target_include_directories(make-chat-model PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})

set(MUSE_CHAT_MODEL ${PROJECT_BINARY_DIR}/models/tiny-atem-chat.gguf)
add_custom_command(OUTPUT ${MUSE_CHAT_MODEL}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/models
  COMMAND make-chat-model ${MUSE_CHAT_MODEL} atem
  DEPENDS make-chat-model COMMENT "Generating a tiny ATEM chat model")
add_custom_target(chat-test-models ALL DEPENDS ${MUSE_CHAT_MODEL})
if(MUSE_BUILD_EXAMPLES)
  add_test(NAME cli-chat-budget COMMAND muse-cli chat -m ${MUSE_CHAT_MODEL} -p "How many?" --think on
           --think-budget 5 -n 80 --show-thinking)
  set_tests_properties(cli-chat-budget PROPERTIES PASS_REGULAR_EXPRESSION "reasoning [0-9]+ tokens \\(budget\\)")
  add_test(NAME cli-chat-off-json COMMAND muse-cli chat -m ${MUSE_CHAT_MODEL} -p "How many?" --think off -n 8 --json)
  set_tests_properties(cli-chat-off-json PROPERTIES PASS_REGULAR_EXPRESSION "\"reasoning_tokens\": 0")
  add_test(NAME cli-chat-bad-think COMMAND muse-cli chat -m ${MUSE_CHAT_MODEL} -p "x" --think maybe)
  set_tests_properties(cli-chat-bad-think PROPERTIES WILL_FAIL ON)
endif()
