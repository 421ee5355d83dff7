# Image pipeline (src/image/): decoding, resizing, preprocessing, the C API.
muse_cpp_test(test-image muse_internal)
target_compile_definitions(test-image PRIVATE
  MUSE_TEST_IMAGE_CORPUS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-image")

# image-tool: runs resize / preprocessing jobs described in JSON for
# python/test_image_pillow.py (Pillow comparisons) without widening the public ABI.
add_executable(image-tool tools/image-tool.cpp)
target_link_libraries(image-tool PRIVATE muse_internal)
