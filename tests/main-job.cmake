# The README's main job and its C and Python twins, on the bundled model (models/): the
# answer for examples/images/shapes-1.png ("How many purple shapes are there?") is 3.
set(MUSE_NANO ${PROJECT_SOURCE_DIR}/models/muse-glimmer-nano.gguf)
set(MUSE_NANO_MMPROJ ${PROJECT_SOURCE_DIR}/models/muse-glimmer-nano-mmproj.gguf)
set(MUSE_NANO_IMAGE ${PROJECT_SOURCE_DIR}/examples/images/shapes-1.png)
if(MUSE_BUILD_EXAMPLES AND EXISTS ${MUSE_NANO})
  add_test(NAME main-job-cli COMMAND muse-cli chat -m ${MUSE_NANO} --mmproj ${MUSE_NANO_MMPROJ}
           --image ${MUSE_NANO_IMAGE} -p "How many purple shapes are there?" --think on --json)
  set_tests_properties(main-job-cli PROPERTIES PASS_REGULAR_EXPRESSION "\"answer\": \"3\"")
  add_test(NAME main-job-c COMMAND muse-chat-c ${MUSE_NANO} ${MUSE_NANO_MMPROJ} ${MUSE_NANO_IMAGE}
           "How many purple shapes are there?")
  set_tests_properties(main-job-c PROPERTIES PASS_REGULAR_EXPRESSION "\"answer\":\"3\"")
  if(MUSE_BUILD_SHARED)
    add_test(NAME main-job-python COMMAND ${MUSE_PYTHON} ${PROJECT_SOURCE_DIR}/examples/python/chat.py ${MUSE_NANO}
             ${MUSE_NANO_MMPROJ} ${MUSE_NANO_IMAGE} "How many purple shapes are there?")
    set_tests_properties(main-job-python PROPERTIES PASS_REGULAR_EXPRESSION "answer: '3'"
                         ENVIRONMENT "${MUSE_PY_ENV}")
  endif()
endif()
