# muse-server end to end (tests/server/test_server.py): the official openai client, the SSE
# framing, the API key and a hostile-request corpus against the server on the bundled model.
# tests/server/test_soak.py: 2,000 mixed requests with the server's RSS flat after a warm-up
# (MUSE_SANITIZE tells it a sanitizer build, where RSS means nothing and requests are slow).
if(TARGET muse-server AND EXISTS ${PROJECT_SOURCE_DIR}/models/muse-glimmer-nano.gguf)
  set(MUSE_SERVER_TEST_ENV "MUSE_SERVER=$<TARGET_FILE:muse-server>;MUSE_MODELS_DIR=${PROJECT_SOURCE_DIR}/models;MUSE_IMAGES_DIR=${PROJECT_SOURCE_DIR}/examples/images;MUSE_SANITIZE=${MUSE_SANITIZE}")
  add_test(NAME server-openai COMMAND ${MUSE_PYTHON} -m pytest -q -p no:cacheprovider
           ${CMAKE_CURRENT_SOURCE_DIR}/server/test_server.py)
  set_tests_properties(server-openai PROPERTIES TIMEOUT 300 ENVIRONMENT "${MUSE_SERVER_TEST_ENV}")
  add_test(NAME server-soak COMMAND ${MUSE_PYTHON} -m pytest -q -s -p no:cacheprovider
           ${CMAKE_CURRENT_SOURCE_DIR}/server/test_soak.py)
  set_tests_properties(server-soak PROPERTIES TIMEOUT 300 ENVIRONMENT "${MUSE_SERVER_TEST_ENV}")
endif()
