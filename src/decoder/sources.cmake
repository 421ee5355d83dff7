list(APPEND MUSE_SOURCES decoder/decoder.cpp decoder/kv-cache.cpp decoder/session.cpp)
