// The built-in tools (src/tools/) on hostile arguments: the first byte picks the tool
// and the image context, the rest is the JSON arguments object the model would send.
// Properties: run() never throws, crashes or trips a sanitizer; a failed outcome says
// why; a zoom's image is exactly the asked-for size; annotate returns a PNG.
#include "tools/builtin-tools.h"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace muse;
using namespace muse::tools;
using json = nlohmann::ordered_json;

namespace {

Image make_image(int w, int h) {
    Image img;
    img.width = w;
    img.height = h;
    img.rgb.resize(size_t(w) * size_t(h) * 3);
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 37);
    return img;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const std::vector<std::string> names = builtin_tool_names();
    static const Image big = make_image(300, 200), tiny = make_image(1, 1), empty;
    const std::string &name = names[data[0] % names.size()];
    ToolContext ctx;
    switch ((data[0] / names.size()) % 4) {
    case 0: ctx.images = {&big, &tiny}; break;
    case 1: ctx.images = {&tiny}; break;
    case 2: ctx.images = {&empty, &big}; break;
    default: break;  // no images
    }
    const json args = json::parse(std::string(reinterpret_cast<const char *>(data + 1), size - 1), nullptr, false);
    if (args.is_discarded()) return 0;
    static const Tool zoom = *builtin_tool("zoom"), annotate = *builtin_tool("annotate"),
                      calc = *builtin_tool("calculator");
    const Tool &tool = name == "zoom" ? zoom : name == "annotate" ? annotate : calc;
    const ToolOutcome out = tool.run(args, ctx);  // an exception here is a finding
    if (out.content.empty()) __builtin_trap();    // success or failure, the model is told something
    if (!out.failed && name == "zoom") {
        if (!out.image || out.image->rgb.size() != size_t(out.image->width) * out.image->height * 3 ||
            out.image->width != args.at("x1").get<int64_t>() - args.at("x0").get<int64_t>())
            __builtin_trap();
    }
    if (!out.failed && name == "annotate" && (out.artefacts.size() != 1 || out.artefacts[0].data.size() < 8))
        __builtin_trap();
    return 0;
}
