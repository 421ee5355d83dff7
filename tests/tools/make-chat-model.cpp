// Writes the tiny random chat models of tests/chat-models.h (for the Python tests).
//   make-chat-model OUT.gguf atem|think
#include "chat-models.h"

#include <cstdio>
#include <cstring>
#include <fstream>

int main(int argc, char **argv) {
    if (argc != 3 || (std::strcmp(argv[2], "atem") && std::strcmp(argv[2], "think"))) {
        std::fprintf(stderr, "usage: %s OUT.gguf atem|think\n", argv[0]);
        return 2;
    }
    const auto spec = std::strcmp(argv[2], "atem") == 0 ? muse::test::atem_chat_spec() : muse::test::think_chat_spec();
    const auto bytes = muse::test::tiny_decoder_writer(spec).to_bytes();
    std::ofstream f(argv[1], std::ios::binary);
    f.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return f ? 0 : 1;
}
