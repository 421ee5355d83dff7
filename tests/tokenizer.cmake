# Tokenizer tests. The reference vocabularies live in ../shared/vocab beside the
# checkout (or $MUSE_SHARED_DIR/vocab); cases needing them skip when absent.
muse_cpp_test(test-tokenizer muse_internal)
target_compile_definitions(test-tokenizer PRIVATE
  MUSE_TEST_SHARED_VOCAB_DIR="${PROJECT_SOURCE_DIR}/../shared/vocab")

# With libsentencepiece_train the test trains a tiny .model file and checks that
# muse's own SPM encoder agrees with libsentencepiece on it.
if(MUSE_SENTENCEPIECE AND MUSE_SENTENCEPIECE_INCLUDE_DIR AND MUSE_SENTENCEPIECE_LIBRARY)
  find_library(MUSE_SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train)
  if(MUSE_SENTENCEPIECE_TRAIN_LIBRARY)
    target_link_libraries(test-tokenizer PRIVATE ${MUSE_SENTENCEPIECE_TRAIN_LIBRARY} ${MUSE_SENTENCEPIECE_LIBRARY})
    target_compile_definitions(test-tokenizer PRIVATE MUSE_TEST_SPM_TRAINER=1)
  endif()
endif()
