# Tools the chat tool loop calls (tools/tool.h): the built-ins zoom, annotate and
# calculator (docs/TOOLS.md).
list(APPEND MUSE_SOURCES tools/builtin-tools.cpp tools/calculator.cpp tools/visual-tools.cpp)
