# Vision encoders (src/vision/): Catch2 tests of the loader, the layout helpers and the
# vision backend ops, and the vision-encode tool that python/test_vision.py and
# benchmarks/vision-bench.py drive (found next to the library, or via MUSE_VISION_ENCODE).
add_executable(vision-encode tools/vision-encode.cpp)
target_link_libraries(vision-encode PRIVATE muse_internal)

muse_cpp_test(test-vision muse_internal)
