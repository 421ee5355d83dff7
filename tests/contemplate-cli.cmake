# muse-cli chat in contemplating mode (--agents), on the tiny ATEM chat model of thinking.cmake.
# Fragments are included in name order, so the model's path is spelled here too.
if(MUSE_BUILD_EXAMPLES)
  set(MUSE_CONTEMPLATE_CHAT_MODEL ${PROJECT_BINARY_DIR}/models/tiny-atem-chat.gguf)
  add_test(NAME cli-chat-contemplate
           COMMAND muse-cli chat -m ${MUSE_CONTEMPLATE_CHAT_MODEL} -p "How many?" --think off -n 6
                   --agents 3 --aggregate vote --temp 0.8 --temp-spread 0.4)
  set_tests_properties(cli-chat-contemplate PROPERTIES PASS_REGULAR_EXPRESSION
    "\\[agent 2\\] T=1\\.00 seed 2, confidence [0-9.]+.*\\[aggregate vote, agreement [01]\\.[0-9]+\\]")
  add_test(NAME cli-chat-contemplate-json
           COMMAND muse-cli chat -m ${MUSE_CONTEMPLATE_CHAT_MODEL} -p "How many?" --think off -n 4
                   --agents 2 --aggregate synthesize --json)
  set_tests_properties(cli-chat-contemplate-json PROPERTIES PASS_REGULAR_EXPRESSION "\"method\": \"synthesize\"")
  add_test(NAME cli-chat-contemplate-bad-aggregate
           COMMAND muse-cli chat -m ${MUSE_CONTEMPLATE_CHAT_MODEL} -p "x" --agents 2 --aggregate median)
  set_tests_properties(cli-chat-contemplate-bad-aggregate PROPERTIES WILL_FAIL ON)
endif()
