# Reasoning formats and output-channel parsers (see reasoning/reasoning-format.h and
# reasoning/channel-parser.h).
list(APPEND MUSE_SOURCES
  reasoning/reasoning-format.cpp
  reasoning/channel-parser.cpp
  reasoning/atem-header.cpp
  reasoning/atem-parser.cpp
  reasoning/tag-parser.cpp
  reasoning/json-call-parser.cpp
  reasoning/text-scan.cpp
  reasoning/tool-call-parse.cpp
)
