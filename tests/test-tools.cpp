// The built-in tools (src/tools/): zoom, annotate and calculator, each through the
// Tool interface the chat tool loop uses (declaration + run), with good and bad
// arguments. The declarations' parameter schemas are compiled by muse's own JSON
// Schema front end (src/grammar/) and must accept the good arguments used here and
// refuse malformed ones, as they will when the grammar constrains a call.
#include "core/error.h"
#include "grammar/grammar.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "tools/builtin-tools.h"
#include "tools/calculator.h"
#include "tools/visual-tools.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace muse;
using namespace muse::tools;
using json = nlohmann::ordered_json;

namespace {

Tool get(const char *name) {
    std::optional<Tool> t = builtin_tool(name);
    REQUIRE(t.has_value());
    return *t;
}

// Every pixel different from its neighbours and from every other region of the same
// size: R follows x, G follows y, B mixes both, so two crops can only be equal if
// they are the same region.
Image gradient(int w, int h) {
    Image img;
    img.width = w;
    img.height = h;
    img.rgb.resize(size_t(w) * h * 3);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            uint8_t *p = &img.rgb[(size_t(y) * w + x) * 3];
            p[0] = uint8_t(x * 255 / (w - 1));
            p[1] = uint8_t(y * 255 / (h - 1));
            p[2] = uint8_t((x * 7 + y * 13) % 256);
        }
    }
    return img;
}

Rgb pixel(const Image &img, int x, int y) {
    const uint8_t *p = &img.rgb[(size_t(y) * img.width + x) * 3];
    return Rgb{p[0], p[1], p[2]};
}

// The crop computed here pixel by pixel, independently of the tool's crop_image.
Image reference_crop(const Image &img, int x0, int y0, int x1, int y1) {
    Image out;
    out.width = x1 - x0;
    out.height = y1 - y0;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
            const Rgb c = pixel(img, x, y);
            out.rgb.push_back(c.r);
            out.rgb.push_back(c.g);
            out.rgb.push_back(c.b);
        }
    return out;
}

std::shared_ptr<const grammar::Grammar> parameters_grammar(const Tool &t) {
    return grammar::Grammar::from_json_schema(t.declaration.at("function").at("parameters"));
}

} // namespace

TEST_CASE("builtin tools: names, lookup and declarations") {
    REQUIRE(builtin_tool_names() == std::vector<std::string>{"zoom", "annotate", "calculator"});
    for (const std::string &name : builtin_tool_names()) {
        const Tool t = get(name.c_str());
        CHECK(t.name() == name);
        CHECK(t.declaration.at("type") == "function");
        const json &fn = t.declaration.at("function");
        CHECK(fn.at("description").get<std::string>().size() > 20);
        const json &params = fn.at("parameters");
        CHECK(params.at("type") == "object");
        CHECK(params.at("properties").is_object());
        CHECK(params.at("required").is_array());
        for (const json &r : params.at("required")) CHECK(params.at("properties").contains(r.get<std::string>()));
        // Valid JSON that survives a text round trip, and a schema muse's grammar compiles.
        CHECK(json::parse(t.declaration.dump()) == t.declaration);
        CHECK_NOTHROW(parameters_grammar(t));
        CHECK(t.run);
    }
    CHECK_FALSE(builtin_tool("Zoom").has_value());
    CHECK_FALSE(builtin_tool("").has_value());
}

// ---- zoom

TEST_CASE("zoom: the encoder is fed exactly the region, re-encoded by the normal preprocessing") {
    const Image first = gradient(40, 30);
    const Image img = gradient(224, 168);
    ToolContext ctx{{&first, &img}};
    const json args = {{"image", 1}, {"x0", 56}, {"y0", 28}, {"x1", 168}, {"y1", 140}};
    CHECK(parameters_grammar(get("zoom"))->matches(args.dump()));
    const ToolOutcome out = get("zoom").run(args, ctx);
    INFO(out.content);
    REQUIRE_FALSE(out.failed);
    REQUIRE(out.image.has_value());
    CHECK(out.artefacts.empty());
    CHECK(out.content.find("(56, 28)-(168, 140)") != std::string::npos);
    CHECK(out.content.find("112x112") != std::string::npos);

    const Image expect = reference_crop(img, 56, 28, 168, 140);
    REQUIRE(out.image->width == 112);
    REQUIRE(out.image->height == 112);
    CHECK(out.image->rgb == expect.rgb);

    // What the muse-glimmer encoder receives (image-embedder.cpp runs this on every image part).
    PreprocessParams p;
    const GlimmerInput zoomed = preprocess_muse_glimmer(*out.image, p);
    const GlimmerInput independent = preprocess_muse_glimmer(expect, p);
    const GlimmerInput full = preprocess_muse_glimmer(img, p);
    const GlimmerInput shifted = preprocess_muse_glimmer(reference_crop(img, 57, 28, 169, 140), p);
    CHECK(zoomed.grid.nw == 4);
    CHECK(zoomed.grid.nh == 4);
    CHECK(zoomed.image.width == independent.image.width);
    CHECK(zoomed.image.height == independent.image.height);
    CHECK(zoomed.image.data == independent.image.data);
    CHECK(zoomed.image.data != full.image.data);
    // Same size, one pixel to the right: the tensor must change, so it depends on the region's pixels.
    REQUIRE(shifted.image.data.size() == zoomed.image.data.size());
    CHECK(shifted.image.data != zoomed.image.data);
    // And the CLIP-style square path sees the crop too.
    PreprocessParams clip;
    clip.image_size = 56;
    CHECK(preprocess_clip(*out.image, clip).data == preprocess_clip(expect, clip).data);
    CHECK(preprocess_clip(*out.image, clip).data != preprocess_clip(img, clip).data);
}

TEST_CASE("zoom: defaults to the latest image; whole image and single pixel regions") {
    const Image a = gradient(40, 30);
    const Image b = gradient(20, 10);
    ToolContext ctx{{&a, &b}};
    const Tool zoom = get("zoom");
    ToolOutcome out = zoom.run({{"x0", 0}, {"y0", 0}, {"x1", 20}, {"y1", 10}}, ctx);
    REQUIRE_FALSE(out.failed);
    CHECK(out.image->rgb == b.rgb);  // the whole of image 1, the latest
    CHECK(out.content.find("image 1") != std::string::npos);
    out = zoom.run({{"image", 0}, {"x0", 39}, {"y0", 29}, {"x1", 40}, {"y1", 30}}, ctx);
    REQUIRE_FALSE(out.failed);
    CHECK(out.image->width == 1);
    CHECK(out.image->rgb == reference_crop(a, 39, 29, 40, 30).rgb);
    // Integral floats name the same pixels.
    out = zoom.run({{"x0", 2.0}, {"y0", 1}, {"x1", 6.0}, {"y1", 5}}, ctx);
    REQUIRE_FALSE(out.failed);
    CHECK(out.image->rgb == reference_crop(b, 2, 1, 6, 5).rgb);
}

TEST_CASE("zoom: bad regions and arguments fail with a clear message") {
    const Image img = gradient(40, 30);
    ToolContext ctx{{&img}};
    const Tool zoom = get("zoom");
    auto fails = [&](const json &args, const std::string &needle, const ToolContext &c) {
        const ToolOutcome out = zoom.run(args, c);
        INFO(args.dump() << " -> " << out.content);
        CHECK(out.failed);
        CHECK_FALSE(out.image.has_value());
        CHECK(out.content.find(needle) != std::string::npos);
    };
    fails({{"x0", 10}, {"y0", 0}, {"x1", 10}, {"y1", 5}}, "empty or inverted", ctx);
    fails({{"x0", 10}, {"y0", 8}, {"x1", 4}, {"y1", 5}}, "empty or inverted", ctx);
    fails({{"x0", 0}, {"y0", 0}, {"x1", 41}, {"y1", 30}}, "outside the 40x30 image", ctx);
    fails({{"x0", -1}, {"y0", 0}, {"x1", 10}, {"y1", 10}}, "outside the 40x30 image", ctx);
    fails({{"x0", 0}, {"y0", 0}, {"x1", 10}}, "\"y1\" is required", ctx);
    fails({{"x0", 0.5}, {"y0", 0}, {"x1", 10}, {"y1", 10}}, "must be an integer", ctx);
    fails({{"x0", "0"}, {"y0", 0}, {"x1", 10}, {"y1", 10}}, "must be an integer", ctx);
    fails({{"x0", 0}, {"y0", 0}, {"x1", uint64_t(1) << 63}, {"y1", 10}}, "out of range", ctx);
    fails({{"image", 1}, {"x0", 0}, {"y0", 0}, {"x1", 10}, {"y1", 10}}, "has 1 image", ctx);
    fails({{"image", -1}, {"x0", 0}, {"y0", 0}, {"x1", 10}, {"y1", 10}}, "has 1 image", ctx);
    fails({{"x0", 0}, {"y0", 0}, {"x1", 10}, {"y1", 10}, {"zoom", 2}}, "unknown field \"zoom\"", ctx);
    fails(json::array({1, 2}), "must be an object", ctx);
    fails({{"x0", 0}, {"y0", 0}, {"x1", 10}, {"y1", 10}}, "no image in the conversation", ToolContext{});
    const Image empty;
    fails({{"x0", 0}, {"y0", 0}, {"x1", 1}, {"y1", 1}}, "has no pixels", ToolContext{{&empty}});
    // The schema refuses what it can see is malformed (wrong type, unknown field, missing field).
    const auto g = parameters_grammar(zoom);
    CHECK_FALSE(g->matches(R"({"x0":"a","y0":0,"x1":1,"y1":1})"));
    CHECK_FALSE(g->matches(R"({"x0":0,"y0":0,"x1":1})"));
    CHECK_FALSE(g->matches(R"({"x0":0,"y0":0,"x1":1,"y1":1,"scale":2})"));
}

// ---- annotate

TEST_CASE("annotate: the PNG shows the shapes where they were asked for") {
    const Image img = gradient(160, 120);
    ToolContext ctx{{&img}};
    const json shapes = json::parse(R"([
        {"type": "box", "x0": 10, "y0": 30, "x1": 50, "y1": 60, "color": "red", "thickness": 2},
        {"type": "point", "x": 100, "y": 20, "color": "#00ff00", "radius": 3},
        {"type": "arrow", "x0": 60, "y0": 100, "x1": 110, "y1": 100, "color": "blue", "thickness": 1},
        {"type": "label", "x": 120, "y": 60, "text": "Hi", "color": "white"}
    ])");
    const json args = {{"shapes", shapes}};
    CHECK(parameters_grammar(get("annotate"))->matches(args.dump()));
    const ToolOutcome out = get("annotate").run(args, ctx);
    INFO(out.content);
    REQUIRE_FALSE(out.failed);
    CHECK_FALSE(out.image.has_value());  // the model gets text; the picture goes to the host
    CHECK(out.content.find("4 shapes") != std::string::npos);
    REQUIRE(out.artefacts.size() == 1);
    CHECK(out.artefacts[0].kind == "annotation");
    CHECK(out.artefacts[0].mime == "image/png");
    const Image png = decode_image(out.artefacts[0].data.data(), out.artefacts[0].data.size());
    REQUIRE(png.width == 160);
    REQUIRE(png.height == 120);

    const Rgb red{255, 0, 0}, green{0, 255, 0}, blue{0, 0, 255}, white{255, 255, 255}, black{0, 0, 0};
    // Box: a 2-pixel outline inside [10, 50) x [30, 60); the inside and outside untouched.
    for (int y : {30, 31, 45, 58, 59}) {
        CHECK(pixel(png, 10, y) == red);
        CHECK(pixel(png, 11, y) == red);
        CHECK(pixel(png, 48, y) == red);
        CHECK(pixel(png, 49, y) == red);
    }
    for (int x : {10, 30, 49}) {
        CHECK(pixel(png, x, 30) == red);
        CHECK(pixel(png, x, 59) == red);
    }
    CHECK(pixel(png, 12, 45) == pixel(img, 12, 45));
    CHECK(pixel(png, 30, 45) == pixel(img, 30, 45));
    CHECK(pixel(png, 9, 45) == pixel(img, 9, 45));
    CHECK(pixel(png, 50, 45) == pixel(img, 50, 45));
    CHECK(pixel(png, 30, 29) == pixel(img, 30, 29));
    CHECK(pixel(png, 30, 60) == pixel(img, 30, 60));
    // Point: a disk of radius 3 around (100, 20).
    for (auto [x, y] : std::vector<std::pair<int, int>>{{100, 20}, {103, 20}, {97, 20}, {100, 17}, {102, 22}})
        CHECK(pixel(png, x, y) == green);
    CHECK(pixel(png, 104, 20) == pixel(img, 104, 20));
    CHECK(pixel(png, 103, 23) == pixel(img, 103, 23));  // the corner of the disk's square is outside it
    // Arrow: the shaft from (60, 100) to (110, 100), and a head from the tip back at +-30 degrees
    // over 8 pixels, ending near (103, 96) and (103, 104).
    for (int x = 60; x <= 110; ++x) CHECK(pixel(png, x, 100) == blue);
    CHECK(pixel(png, 103, 96) == blue);
    CHECK(pixel(png, 103, 104) == blue);
    CHECK(pixel(png, 85, 98) == pixel(img, 85, 98));
    CHECK(pixel(png, 59, 100) == pixel(img, 59, 100));
    // Label: white glyphs on a black background whose top-left corner is (120, 60).
    CHECK(pixel(png, 120, 60) == black);
    int glyph = 0;
    for (int y = 60; y < 73; ++y)
        for (int x = 120; x < 140; ++x) glyph += pixel(png, x, y) == white;
    CHECK(glyph >= 10);

    // Nothing changes outside the shapes' extents.
    auto near_shape = [](int x, int y) {
        return (x >= 10 && x < 50 && y >= 30 && y < 60) || (x >= 97 && x <= 103 && y >= 17 && y <= 23) ||
               (x >= 60 && x <= 110 && y >= 95 && y <= 105) || (x >= 120 && x < 150 && y >= 60 && y < 75);
    };
    int changed_outside = 0;
    for (int y = 0; y < png.height; ++y)
        for (int x = 0; x < png.width; ++x)
            if (!near_shape(x, y) && !(pixel(png, x, y) == pixel(img, x, y))) ++changed_outside;
    CHECK(changed_outside == 0);
    // The conversation's image itself is not drawn on.
    CHECK(img.rgb == gradient(160, 120).rgb);
}

TEST_CASE("annotate: captions, default colour, shapes at the edges") {
    const Image img = gradient(64, 48);
    const Image other = gradient(32, 32);
    ToolContext ctx{{&img, &other}};
    const json args = json::parse(R"({"image": 0, "shapes": [
        {"type": "box", "x0": 0, "y0": 0, "x1": 64, "y1": 48, "label": "whole"},
        {"type": "point", "x": 63, "y": 47, "label": "corner"},
        {"type": "arrow", "x0": 63, "y0": 0, "x1": 0, "y1": 47, "label": "diag", "color": "#FF8800"},
        {"type": "label", "x": 63, "y": 47, "text": "clipped \u00e9\n"}
    ]})");
    CHECK(parameters_grammar(get("annotate"))->matches(args.dump()));
    const ToolOutcome out = get("annotate").run(args, ctx);
    INFO(out.content);
    REQUIRE_FALSE(out.failed);
    CHECK(out.content.find("image 0") != std::string::npos);
    const Image png = decode_image(out.artefacts.at(0).data.data(), out.artefacts[0].data.size());
    REQUIRE(png.width == 64);
    CHECK(pixel(png, 0, 24) == (Rgb{255, 0, 0}));   // red by default
    CHECK(pixel(png, 63, 30) == (Rgb{255, 0, 0}));  // the right edge (x1 = 64 exclusive)
}

TEST_CASE("annotate: thick lines are thickness pixels across") {
    const Image img = gradient(80, 60);
    ToolContext ctx{{&img}};
    const json args = json::parse(R"({"shapes": [
        {"type": "arrow", "x0": 5, "y0": 20, "x1": 70, "y1": 20, "color": "blue", "thickness": 3},
        {"type": "arrow", "x0": 40, "y0": 30, "x1": 40, "y1": 55, "color": "#ff00ff", "thickness": 4}
    ]})");
    const ToolOutcome out = get("annotate").run(args, ctx);
    INFO(out.content);
    REQUIRE_FALSE(out.failed);
    const Image png = decode_image(out.artefacts.at(0).data.data(), out.artefacts[0].data.size());
    const Rgb blue{0, 0, 255}, magenta{255, 0, 255};
    for (int x : {5, 30, 50}) {  // horizontal, thickness 3: rows 19, 20, 21
        CHECK(pixel(png, x, 18) == pixel(img, x, 18));
        CHECK(pixel(png, x, 19) == blue);
        CHECK(pixel(png, x, 20) == blue);
        CHECK(pixel(png, x, 21) == blue);
        CHECK(pixel(png, x, 22) == pixel(img, x, 22));
    }
    for (int y : {30, 40}) {  // vertical, thickness 4: columns 38 to 41
        CHECK(pixel(png, 37, y) == pixel(img, 37, y));
        for (int x = 38; x <= 41; ++x) CHECK(pixel(png, x, y) == magenta);
        CHECK(pixel(png, 42, y) == pixel(img, 42, y));
    }
}

TEST_CASE("annotate: bad shapes fail with a clear message and draw nothing") {
    const Image img = gradient(40, 30);
    ToolContext ctx{{&img}};
    const Tool annotate = get("annotate");
    auto fails = [&](const std::string &shapes_json, const std::string &needle) {
        const json args = {{"shapes", json::parse(shapes_json)}};
        const ToolOutcome out = annotate.run(args, ctx);
        INFO(shapes_json << " -> " << out.content);
        CHECK(out.failed);
        CHECK(out.artefacts.empty());
        CHECK(out.content.find(needle) != std::string::npos);
    };
    fails(R"([{"type": "circle", "x": 1, "y": 1}])", "unknown \"type\" \"circle\"");
    fails(R"([{"x": 1, "y": 1}])", "\"type\" is required");
    fails(R"([{"type": "point", "x": 40, "y": 1}])", "outside the 40x30 image");
    fails(R"([{"type": "point", "x": 1, "y": 1}, {"type": "box", "x0": 5, "y0": 5, "x1": 2, "y1": 9}])",
          "shapes[1]: the box");
    fails(R"([{"type": "box", "x0": 0, "y0": 0, "x1": 41, "y1": 9}])", "outside the 40x30 image");
    fails(R"([{"type": "point", "x": 1, "y": 1, "color": "octarine"}])", "unknown color \"octarine\"");
    fails(R"([{"type": "point", "x": 1, "y": 1, "color": "#12345"}])", "unknown color");
    fails(R"([{"type": "arrow", "x0": 3, "y0": 3, "x1": 3, "y1": 3}])", "same pixel");
    fails(R"([{"type": "label", "x": 1, "y": 1}])", "non-empty \"text\"");
    fails(R"([{"type": "label", "x": 1, "y": 1, "text": ")" + std::string(201, 'a') + "\"}]", "at most 200");
    fails(R"([{"type": "box", "x0": 0, "y0": 0, "x1": 9, "y1": 9, "thickness": 0}])", "\"thickness\" is 0");
    fails(R"([{"type": "point", "x": 1, "y": 1, "radius": 100000}])", "\"radius\" is 100000");
    fails(R"([{"type": "point", "x": 1, "y": 1, "x0": 4}])", "unknown field \"x0\"");
    fails(R"([])", "\"shapes\" is empty");
    fails(R"({"type": "point"})", "must be an array");
    fails(R"([3])", "shapes[0] must be an object");
    json many = json::array();
    for (int i = 0; i < 257; ++i) many.push_back({{"type", "point"}, {"x", 1}, {"y", 1}});
    fails(many.dump(), "at most 256");
    CHECK(annotate.run(json::object(), ctx).content.find("\"shapes\" is required") != std::string::npos);
    CHECK(annotate.run({{"shapes", json::array()}}, ToolContext{}).content.find("no image") != std::string::npos);
    // The schema refuses an unknown shape type and a box without its corners.
    const auto g = parameters_grammar(annotate);
    CHECK_FALSE(g->matches(R"({"shapes":[{"type":"circle","x":1,"y":1}]})"));
    CHECK_FALSE(g->matches(R"({"shapes":[{"type":"box","x0":1,"y0":1}]})"));
    CHECK(g->matches(R"({"shapes":[{"type":"box","x0":1,"y0":1,"x1":4,"y1":4,"color":"red"}]})"));
}

TEST_CASE("annotate helpers: colours and PNG encoding") {
    CHECK(parse_color("red") == (Rgb{255, 0, 0}));
    CHECK(parse_color(" Grey ") == (Rgb{128, 128, 128}));
    CHECK(parse_color("#0a0B0c") == (Rgb{10, 11, 12}));
    CHECK(parse_color("#f80") == (Rgb{255, 136, 0}));
    CHECK_THROWS_AS(parse_color(""), Error);
    CHECK_THROWS_AS(parse_color("#ggg"), Error);
    const Image img = gradient(7, 5);
    const std::vector<uint8_t> png = encode_png(img);
    CHECK(decode_image(png.data(), png.size()).rgb == img.rgb);
    CHECK_THROWS_AS(encode_png(Image{}), Error);
}

// ---- calculator

TEST_CASE("calculator: arithmetic, precedence and the result format") {
    const Tool calc = get("calculator");
    auto eval = [&](const std::string &e) {
        const ToolOutcome out = calc.run({{"expression", e}}, ToolContext{});
        INFO(e << " -> " << out.content);
        CHECK_FALSE(out.failed);
        CHECK_FALSE(out.image.has_value());
        return out.content;
    };
    // The nano model's calculator episodes: "<a><op><b>" with str(int) results.
    CHECK(eval("3+2") == "5");
    CHECK(eval("4*1") == "4");
    CHECK(eval("5-2") == "3");
    CHECK(eval("2 + 3 * 4") == "14");
    CHECK(eval("(2 + 3) * 4") == "20");
    CHECK(eval("10 - 4 - 3") == "3");
    CHECK(eval("7 / 2") == "3.5");
    CHECK(eval("6 / 2") == "3");
    CHECK(eval("48 / 2 / 3") == "8");
    CHECK(eval("2^10") == "1024");
    CHECK(eval("2 ** 3 ** 2") == "512");
    CHECK(eval("-2^2") == "-4");
    CHECK(eval("(-2)^2") == "4");
    CHECK(eval("2^-1") == "0.5");
    CHECK(eval("--3") == "3");
    CHECK(eval("-0") == "0");
    CHECK(eval("0.1 + 0.2") == "0.30000000000000004");
    CHECK(eval(".5 + 1.") == "1.5");
    CHECK(eval("1e3 + 2.5E-1") == "1000.25");
    CHECK(eval("10 % 3") == "1");
    CHECK(eval("-7 % 3") == "2");
    CHECK(eval("7 % -3") == "-2");
    CHECK(eval("sqrt(16) + abs(-3)") == "7");
    CHECK(eval("max(1, 5, 3) - min(4, 2)") == "3");
    CHECK(eval("round(2.5) + round(3.5)") == "6");
    CHECK(eval("round(3.14159, 2)") == "3.14");
    CHECK(eval("floor(-1.5) + ceil(1.2)") == "0");
    CHECK(eval("pi") == "3.141592653589793");
    CHECK(eval("2 * e") == "5.43656365691809");
    CHECK(eval(" \t( 1 )\n") == "1");
    CHECK(eval("123456789 * 1000") == "123456789000");
    CHECK(eval("2^53") == "9007199254740992");
    CHECK(eval("2^60") == "1.152921504606847e+18");
    CHECK(eval("0.00001") == "1e-05");
    CHECK(eval("2^70") == "1.1805916207174113e+21");
    CHECK(format_calculator_result(-12.0) == "-12");
    CHECK(format_calculator_result(1e300) == "1e+300");
}

TEST_CASE("calculator: malformed, unsafe and unbounded input fails clearly") {
    const Tool calc = get("calculator");
    auto fails = [&](const json &args, const std::string &needle) {
        const ToolOutcome out = calc.run(args, ToolContext{});
        INFO(args.dump() << " -> " << out.content);
        CHECK(out.failed);
        CHECK(out.content.find(needle) != std::string::npos);
    };
    auto bad = [&](const std::string &e, const std::string &needle) { fails({{"expression", e}}, needle); };
    bad("1 / 0", "division by zero");
    bad("1 / (2 - 2)", "division by zero");
    bad("5 % 0", "modulo by zero");
    bad("0 ^ -1", "zero raised to a negative power");
    bad("(-8) ^ 0.5", "fractional power");
    bad("sqrt(-1)", "square root of a negative");
    bad("10 ^ 400", "too large");
    bad("1e999", "out of range");
    bad("2 * (3 + 4", "expected ')'");
    bad("2 +", "expected a number");
    bad("2 3", "unexpected '3' at character 3");
    bad("3 & 4", "unexpected '&'");
    bad("import os", "unknown name 'import'");
    bad("__import__('os')", "unexpected '_'");
    bad("sqrt 4", "expected '('");
    bad("min()", "unexpected ')'");
    bad("sqrt(1, 2)", "takes 1 argument");
    bad("round(1, 2, 3)", "takes 1 to 2 arguments");
    bad("round(1, 0.5)", "whole number");
    bad("", "empty");
    bad("   ", "empty");
    bad(std::string(1001, '1'), "at most 1000");
    bad(std::string(100, '(') + "1" + std::string(100, ')'), "nests deeper than 64");
    bad(std::string(200, '-') + "1", "nests deeper than 64");
    bad(std::string(400, '9') + "^2", "out of range");
    std::string tower = "2";
    for (int i = 0; i < 100; ++i) tower += "^1";
    bad(tower, "nests deeper than 64");
    fails(json::object(), "expected {\"expression\"");
    fails({{"expression", 5}}, "expected {\"expression\"");
    fails(json::array({"1+1"}), "expected {\"expression\"");
    // 64 levels themselves are fine: the limit is not off by one.
    CHECK(format_calculator_result(evaluate_expression(std::string(64, '(') + "1" + std::string(64, ')'))) == "1");
    CHECK_THROWS_AS(evaluate_expression(std::string(65, '(') + "1" + std::string(65, ')')), Error);
    CHECK_THROWS_AS(evaluate_expression("1/0"), Error);
}
