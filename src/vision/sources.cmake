list(APPEND MUSE_SOURCES vision/mmproj.cpp vision/vit.cpp vision/patch-layout.cpp vision/vision-encoder.cpp
     vision/muse-glimmer-vision.cpp vision/clip-mlp.cpp vision/idefics3.cpp)
