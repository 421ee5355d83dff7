# Images in prompts: embedding images and placing them (see multimodal/image-embedder.h).
list(APPEND MUSE_SOURCES
  multimodal/image-embedder.cpp
  multimodal/mm-prompt.cpp
)
