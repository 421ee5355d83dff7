# Jinja chat-template engine (see chat/jinja.h).
list(APPEND MUSE_SOURCES
  chat/jinja.cpp
  chat/jinja-lexer.cpp
  chat/jinja-parser.cpp
  chat/jinja-value.cpp
  chat/jinja-interpreter.cpp
  chat/jinja-builtins.cpp
  chat/chat-turn.cpp
)
