# Jinja chat-template engine (see jinja/jinja.h).
list(APPEND MUSE_SOURCES
  jinja/jinja.cpp
  jinja/jinja-lexer.cpp
  jinja/jinja-parser.cpp
  jinja/jinja-value.cpp
  jinja/jinja-interpreter.cpp
  jinja/jinja-builtins.cpp
)
