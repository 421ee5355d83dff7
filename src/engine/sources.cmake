# The generation engine: paged KV cache, sessions (batched decode), generations,
# the scheduler and the chat turn built on them.
list(APPEND MUSE_SOURCES engine/kv-cache.cpp engine/session.cpp engine/generation.cpp engine/aggregate.cpp
     engine/contemplation.cpp engine/chat-turn.cpp engine/grammar-gate.cpp)
