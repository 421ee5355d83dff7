list(APPEND MUSE_SOURCES models/registry.cpp models/llama-like.cpp models/llama.cpp models/qwen2.cpp
     models/qwen3.cpp models/muse-glimmer.cpp)
