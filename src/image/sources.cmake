list(APPEND MUSE_SOURCES image/decode.cpp image/image.cpp image/preprocess.cpp image/resample-float.cpp
     image/resize.cpp)
# Pixel-exact references (Pillow's resampler, normalization): a contracted
# a*b + c would round differently from the references on FMA machines.
set_source_files_properties(image/resize.cpp image/preprocess.cpp image/resample-float.cpp
                            PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
# Debian's stb_image with the upstream fixes it lacks, for image/decode.cpp.
include(${CMAKE_CURRENT_LIST_DIR}/stb-image.cmake)
