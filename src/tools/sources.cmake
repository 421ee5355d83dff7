# Tools: call grammars and the lazy call stage, the tool loop of chat turns
# (tools/tool.h is the contract a tool implements).
list(APPEND MUSE_SOURCES
  tools/call-grammar.cpp
  tools/call-stage.cpp
  tools/tool-loop.cpp
)
