list(APPEND MUSE_SOURCES sampling/sampler.cpp sampling/stop-strings.cpp)
