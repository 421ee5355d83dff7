// Writes the tiny random chat models of tests/chat-models.h and tests/tool-models.h (for
// the Python tests).
//   make-chat-model OUT.gguf atem|think|atem-tools|hermes-tools
#include "tool-models.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

int main(int argc, char **argv) {
    const std::string kind = argc == 3 ? argv[2] : "";
    muse::test::TinyDecoderSpec spec;
    if (kind == "atem") spec = muse::test::atem_chat_spec();
    else if (kind == "think") spec = muse::test::think_chat_spec();
    else if (kind == "atem-tools") spec = muse::test::atem_tool_spec();
    else if (kind == "hermes-tools") spec = muse::test::hermes_tool_spec();
    else {
        std::fprintf(stderr, "usage: %s OUT.gguf atem|think|atem-tools|hermes-tools\n", argv[0]);
        return 2;
    }
    const auto bytes = muse::test::tiny_decoder_writer(spec).to_bytes();
    std::ofstream f(argv[1], std::ios::binary);
    f.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return f ? 0 : 1;
}
