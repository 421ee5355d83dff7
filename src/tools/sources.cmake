# Tools (tools/tool.h is the contract a tool implements): call grammars and the lazy
# call stage, the tool loop of chat turns, and the built-ins zoom, annotate and
# calculator (docs/TOOLS.md).
list(APPEND MUSE_SOURCES
  tools/call-grammar.cpp
  tools/call-stage.cpp
  tools/tool-loop.cpp
  tools/builtin-tools.cpp
  tools/calculator.cpp
  tools/visual-tools.cpp
)
