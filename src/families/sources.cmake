# Decoder families: the Decoder base class and one file per architecture.
list(APPEND MUSE_SOURCES families/decoder.cpp families/registry.cpp families/llama-like.cpp families/llama.cpp
     families/qwen2.cpp families/qwen3.cpp families/muse-glimmer.cpp)
