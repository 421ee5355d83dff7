list(APPEND MUSE_SOURCES grammar/rules.cpp grammar/gbnf.cpp grammar/matcher.cpp grammar/token-trie.cpp
     grammar/grammar.cpp grammar/grammar-stage.cpp grammar/regex.cpp grammar/json-schema.cpp)
