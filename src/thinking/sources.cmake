# Thinking-budget controller (see thinking/thinking-controller.h).
list(APPEND MUSE_SOURCES
  thinking/thinking-controller.cpp
)
