list(APPEND MUSE_SOURCES sampling/sampler.cpp)
