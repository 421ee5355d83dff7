#include "tools/visual-tools.h"

#include "core/error.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

// stb_image_write and stb_easy_font come from Debian's libstb-dev. Both are
// single-header libraries: the implementation is compiled here, static so that no
// stb symbol leaves this file (tests compile their own copies).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wshadow"
#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace muse::tools {

using json = nlohmann::ordered_json;

namespace {

template <class... Args>
[[noreturn]] void bad(Args &&...args) {
    fail(MUSE_ERR_INVALID_ARGUMENT, std::forward<Args>(args)...);
}

// An integer argument. JSON floats with an integral value (12.0) are accepted:
// models write them, and they name the same pixel.
std::optional<int64_t> opt_int(const json &obj, const char *key, const std::string &what) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (it->is_number_integer()) {
        if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
            bad(what, ": \"", key, "\" is out of range");
        return it->get<int64_t>();
    }
    if (it->is_number_float()) {
        const double d = it->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return static_cast<int64_t>(d);
    }
    bad(what, ": \"", key, "\" must be an integer (pixel coordinates), got ", it->dump());
}

int64_t req_int(const json &obj, const char *key, const std::string &what) {
    const std::optional<int64_t> v = opt_int(obj, key, what);
    if (!v) bad(what, ": \"", key, "\" is required");
    return *v;
}

std::optional<std::string> opt_string(const json &obj, const char *key, const std::string &what) {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) bad(what, ": \"", key, "\" must be a string, got ", it->dump());
    return it->get<std::string>();
}

void only_keys(const json &obj, std::initializer_list<const char *> keys, const std::string &what) {
    for (const auto &[k, v] : obj.items()) {
        bool known = false;
        for (const char *key : keys) known = known || k == key;
        if (!known) {
            std::string list;
            for (const char *key : keys) list += std::string(list.empty() ? "" : ", ") + key;
            bad(what, ": unknown field \"", k, "\" (expected ", list, ")");
        }
    }
}

std::string size_text(const Image &img) { return str_cat(img.width, "x", img.height); }

// The image an `image` argument selects (default: the last one), and its index.
std::pair<const Image *, size_t> pick_image(const json &args, const ToolContext &ctx, const char *tool) {
    if (ctx.images.empty()) bad(tool, ": there is no image in the conversation");
    const std::optional<int64_t> idx = opt_int(args, "image", tool);
    const size_t i = idx ? static_cast<size_t>(*idx) : ctx.images.size() - 1;
    if (idx && (*idx < 0 || *idx >= int64_t(ctx.images.size())))
        bad(tool, ": \"image\" is ", *idx, " but the conversation has ", ctx.images.size(), " image",
            ctx.images.size() == 1 ? "" : "s", " (indices 0 to ", ctx.images.size() - 1, ")");
    const Image *img = ctx.images[i];
    if (!img || img->width <= 0 || img->height <= 0 ||
        img->rgb.size() != size_t(img->width) * size_t(img->height) * 3)
        bad(tool, ": image ", i, " has no pixels");
    return {img, i};
}

// Checks 0 <= x0 < x1 <= width and the same for y.
PixelBox check_box(const json &obj, const Image &img, const std::string &what) {
    const int64_t x0 = req_int(obj, "x0", what), y0 = req_int(obj, "y0", what);
    const int64_t x1 = req_int(obj, "x1", what), y1 = req_int(obj, "y1", what);
    if (x1 <= x0 || y1 <= y0)
        bad(what, ": the box (", x0, ", ", y0, ")-(", x1, ", ", y1, ") is empty or inverted; x1 and y1 are exclusive "
            "and must be greater than x0 and y0");
    if (x0 < 0 || y0 < 0 || x1 > img.width || y1 > img.height)
        bad(what, ": the box (", x0, ", ", y0, ")-(", x1, ", ", y1, ") is outside the ", size_text(img),
            " image; pixel coordinates need 0 <= x0 < x1 <= ", img.width, " and 0 <= y0 < y1 <= ", img.height);
    return PixelBox{int(x0), int(y0), int(x1), int(y1)};
}

// A pixel position (0 <= x < width, 0 <= y < height) from fields kx, ky.
std::pair<int, int> check_point(const json &obj, const char *kx, const char *ky, const Image &img,
                                const std::string &what) {
    const int64_t x = req_int(obj, kx, what), y = req_int(obj, ky, what);
    if (x < 0 || y < 0 || x >= img.width || y >= img.height)
        bad(what, ": (", kx, ", ", ky, ") = (", x, ", ", y, ") is outside the ", size_text(img),
            " image; pixel coordinates need 0 <= x < ", img.width, " and 0 <= y < ", img.height);
    return {int(x), int(y)};
}

// ---- drawing (every primitive clips to the image)

void fill_rect(Image &img, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c) {
    x0 = std::max<int64_t>(x0, 0), y0 = std::max<int64_t>(y0, 0);
    x1 = std::min<int64_t>(x1, img.width), y1 = std::min<int64_t>(y1, img.height);
    for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x = x0; x < x1; ++x) {
            uint8_t *p = &img.rgb[size_t(y * img.width + x) * 3];
            p[0] = c.r, p[1] = c.g, p[2] = c.b;
        }
    }
}

// A box outline of thickness t drawn inside [x0, x1) x [y0, y1).
void draw_box(Image &img, const PixelBox &b, int t, Rgb c) {
    fill_rect(img, b.x0, b.y0, b.x1, std::min(b.y0 + t, b.y1), c);
    fill_rect(img, b.x0, std::max(b.y1 - t, b.y0), b.x1, b.y1, c);
    fill_rect(img, b.x0, b.y0, std::min(b.x0 + t, b.x1), b.y1, c);
    fill_rect(img, std::max(b.x1 - t, b.x0), b.y0, b.x1, b.y1, c);
}

// A line of thickness t: at each step of Bresenham's walk, a span of t pixels across
// the line's major axis (vertical for a shallow line, horizontal for a steep one),
// centred on the pixel: t writes a step, not t * t. Endpoints are bounded by the image
// (plus an arrowhead's length), so the walk is short.
void draw_line(Image &img, int x0, int y0, int x1, int y1, int t, Rgb c) {
    const int lo = t / 2;
    const int64_t dx = std::abs(int64_t(x1) - x0), dy = -std::abs(int64_t(y1) - y0);
    const bool shallow = dx >= -dy;
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int64_t err = dx + dy;
    int64_t x = x0, y = y0;
    for (;;) {
        if (shallow) fill_rect(img, x, y - lo, x + 1, y - lo + t, c);
        else fill_rect(img, x - lo, y, x - lo + t, y + 1, c);
        if (x == x1 && y == y1) break;
        const int64_t e2 = 2 * err;
        if (e2 >= dy) err += dy, x += sx;
        if (e2 <= dx) err += dx, y += sy;
    }
}

void draw_disk(Image &img, int cx, int cy, int r, Rgb c) {
    for (int dy = -r; dy <= r; ++dy)
        for (int dx = -r; dx <= r; ++dx)
            if (dx * dx + dy * dy <= r * r) fill_rect(img, int64_t(cx) + dx, int64_t(cy) + dy, int64_t(cx) + dx + 1,
                                                      int64_t(cy) + dy + 1, c);
}

// Text is stb_easy_font's segment font (printable ASCII, about 6 x 9 units per
// character), each unit drawn as scale x scale pixels.
struct TextBox {
    int width = 0, height = 0;  // pixels, including the padding
};

constexpr int kTextPad = 2;  // font units of background around the glyphs

std::string printable(const std::string &s) {
    std::string out;
    for (unsigned char ch : s) out += ch >= 32 && ch <= 126 ? char(ch) : '?';
    return out;
}

TextBox measure_text(const std::string &text, int scale) {
    std::string copy = text;
    return TextBox{(stb_easy_font_width(copy.data()) + 2 * kTextPad) * scale, (9 + 2 * kTextPad) * scale};
}

// Draws `text` with its top-left corner (background included) at (x, y), moved left
// and up as needed to stay inside the image. The background is white or black,
// whichever contrasts with the text colour, so a label reads on any picture.
void draw_text(Image &img, int x, int y, const std::string &text, int scale, Rgb c) {
    const TextBox box = measure_text(text, scale);
    x = std::max(0, std::min(x, img.width - box.width));
    y = std::max(0, std::min(y, img.height - box.height));
    const int luma = (299 * c.r + 587 * c.g + 114 * c.b) / 1000;
    const Rgb bg = luma > 110 ? Rgb{0, 0, 0} : Rgb{255, 255, 255};
    fill_rect(img, x, y, int64_t(x) + box.width, int64_t(y) + box.height, bg);
    // 270 bytes of vertex data per character is stb_easy_font's documented worst case.
    std::vector<char> vbuf(text.size() * 270 + 64);
    std::string copy = text;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, vbuf.data(), int(vbuf.size()));
    for (int q = 0; q < quads; ++q) {
        float v[2][2];
        for (int k = 0; k < 2; ++k) {
            const char *vert = vbuf.data() + size_t(q) * 64 + size_t(k == 0 ? 0 : 2) * 16;
            std::memcpy(&v[k][0], vert, sizeof(float));
            std::memcpy(&v[k][1], vert + 4, sizeof(float));
        }
        const int64_t px0 = x + int64_t((v[0][0] + kTextPad) * scale), py0 = y + int64_t((v[0][1] + kTextPad) * scale);
        const int64_t px1 = x + int64_t((v[1][0] + kTextPad) * scale), py1 = y + int64_t((v[1][1] + kTextPad) * scale);
        fill_rect(img, px0, py0, px1, py1, c);
    }
}

// ---- shapes

struct Shape {
    enum class Kind { Box, Point, Arrow, Label } kind = Kind::Box;
    PixelBox box;       // Box: the box; Arrow: tail (x0, y0) to head (x1, y1)
    int x = 0, y = 0;   // Point, Label
    Rgb color{255, 0, 0};
    int thickness = 2;
    int radius = 4;
    std::string label;  // Box, Point, Arrow: optional caption; Label: the text
};

int default_thickness(const Image &img) { return std::max(2, std::min(img.width, img.height) / 200); }
int text_scale(const Image &img) { return std::max(1, std::min(img.width, img.height) / 256); }

Shape parse_shape(const json &s, size_t i, const Image &img) {
    const std::string what = str_cat("annotate: shapes[", i, "]");
    if (!s.is_object()) bad(what, " must be an object, got ", s.dump());
    const std::optional<std::string> type = opt_string(s, "type", what);
    if (!type) bad(what, ": \"type\" is required (box, point, arrow or label)");
    Shape sh;
    if (const auto color = opt_string(s, "color", what)) {
        try {
            sh.color = parse_color(*color);
        } catch (const Error &e) {
            bad(what, ": ", e.what());
        }
    }
    sh.thickness = default_thickness(img);
    if (const auto t = opt_int(s, "thickness", what)) {
        if (*t < 1 || *t > kAnnotateMaxThickness)
            bad(what, ": \"thickness\" is ", *t, "; expected 1 to ", kAnnotateMaxThickness, " pixels");
        sh.thickness = int(*t);
    }
    if (const auto label = opt_string(s, *type == "label" ? "text" : "label", what)) {
        if (label->size() > kAnnotateMaxText)
            bad(what, ": the text is ", label->size(), " bytes long; at most ", kAnnotateMaxText, " are drawn");
        sh.label = printable(*label);
    }
    if (*type == "box") {
        only_keys(s, {"type", "x0", "y0", "x1", "y1", "color", "label", "thickness"}, what);
        sh.kind = Shape::Kind::Box;
        sh.box = check_box(s, img, what);
    } else if (*type == "point") {
        only_keys(s, {"type", "x", "y", "color", "label", "radius"}, what);
        sh.kind = Shape::Kind::Point;
        std::tie(sh.x, sh.y) = check_point(s, "x", "y", img, what);
        sh.radius = std::max(3, sh.thickness * 2);
        if (const auto r = opt_int(s, "radius", what)) {
            if (*r < 1 || *r > kAnnotateMaxRadius)
                bad(what, ": \"radius\" is ", *r, "; expected 1 to ", kAnnotateMaxRadius, " pixels");
            sh.radius = int(*r);
        }
    } else if (*type == "arrow") {
        only_keys(s, {"type", "x0", "y0", "x1", "y1", "color", "label", "thickness"}, what);
        sh.kind = Shape::Kind::Arrow;
        const auto [tx, ty] = check_point(s, "x0", "y0", img, what);
        const auto [hx, hy] = check_point(s, "x1", "y1", img, what);
        if (tx == hx && ty == hy) bad(what, ": the arrow's tail (x0, y0) and head (x1, y1) are the same pixel");
        sh.box = PixelBox{tx, ty, hx, hy};
    } else if (*type == "label") {
        only_keys(s, {"type", "x", "y", "text", "color"}, what);
        sh.kind = Shape::Kind::Label;
        std::tie(sh.x, sh.y) = check_point(s, "x", "y", img, what);
        if (sh.label.empty()) bad(what, ": a label needs a non-empty \"text\"");
    } else {
        bad(what, ": unknown \"type\" \"", *type, "\" (expected box, point, arrow or label)");
    }
    return sh;
}

void draw_shape(Image &img, const Shape &sh) {
    const int scale = text_scale(img);
    switch (sh.kind) {
    case Shape::Kind::Box:
        draw_box(img, sh.box, sh.thickness, sh.color);
        if (!sh.label.empty()) {
            // Above the box when there is room, else inside its top-left corner.
            const int h = measure_text(sh.label, scale).height;
            const int y = sh.box.y0 >= h ? sh.box.y0 - h : sh.box.y0 + sh.thickness;
            draw_text(img, sh.box.x0, y, sh.label, scale, sh.color);
        }
        break;
    case Shape::Kind::Point:
        draw_disk(img, sh.x, sh.y, sh.radius, sh.color);
        if (!sh.label.empty()) {
            const int h = measure_text(sh.label, scale).height;
            draw_text(img, sh.x + sh.radius + 2, sh.y - h / 2, sh.label, scale, sh.color);
        }
        break;
    case Shape::Kind::Arrow: {
        const PixelBox &a = sh.box;
        draw_line(img, a.x0, a.y0, a.x1, a.y1, sh.thickness, sh.color);
        // The head: two strokes back from the tip, 30 degrees either side of the shaft.
        const double len = std::hypot(double(a.x1 - a.x0), double(a.y1 - a.y0));
        const double head = std::min(len, double(std::max(8, 4 * sh.thickness)));
        const double ux = (a.x0 - a.x1) / len, uy = (a.y0 - a.y1) / len;
        for (double ang : {0.5235987755982988, -0.5235987755982988}) {
            const double rx = ux * std::cos(ang) - uy * std::sin(ang), ry = ux * std::sin(ang) + uy * std::cos(ang);
            draw_line(img, a.x1, a.y1, int(std::lround(a.x1 + rx * head)), int(std::lround(a.y1 + ry * head)),
                      sh.thickness, sh.color);
        }
        if (!sh.label.empty()) {
            // At the tail, on the side away from the head.
            const TextBox tb = measure_text(sh.label, scale);
            const int x = a.x0 <= a.x1 ? a.x0 - tb.width : a.x0;
            const int y = a.y0 <= a.y1 ? a.y0 - tb.height : a.y0;
            draw_text(img, x, y, sh.label, scale, sh.color);
        }
        break;
    }
    case Shape::Kind::Label:
        draw_text(img, sh.x, sh.y, sh.label, scale, sh.color);
        break;
    }
}

json box_properties(const char *what) {
    return {{"x0", {{"type", "integer"}, {"description", str_cat("left edge of the ", what, " (pixels)")}}},
            {"y0", {{"type", "integer"}, {"description", str_cat("top edge of the ", what, " (pixels)")}}},
            {"x1", {{"type", "integer"}, {"description", str_cat("right edge of the ", what, ", exclusive")}}},
            {"y1", {{"type", "integer"}, {"description", str_cat("bottom edge of the ", what, ", exclusive")}}}};
}

json image_property() {
    return {{"type", "integer"},
            {"minimum", 0},
            {"description", "Which image: 0 is the first image of the conversation; default the latest image."}};
}

template <class F>
ToolOutcome run_guarded(F &&f) {
    try {
        return f();
    } catch (const Error &e) {
        ToolOutcome out;
        out.failed = true;
        out.content = e.what();
        return out;
    }
}

} // namespace

Image crop_image(const Image &img, const PixelBox &b) {
    if (b.x0 < 0 || b.y0 < 0 || b.x1 > img.width || b.y1 > img.height || b.x1 <= b.x0 || b.y1 <= b.y0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "crop_image: box outside the image or empty");
    Image out;
    out.width = b.x1 - b.x0;
    out.height = b.y1 - b.y0;
    out.rgb.resize(size_t(out.width) * size_t(out.height) * 3);
    const size_t row = size_t(out.width) * 3;
    for (int y = 0; y < out.height; ++y)
        std::memcpy(&out.rgb[size_t(y) * row], &img.rgb[(size_t(b.y0 + y) * size_t(img.width) + size_t(b.x0)) * 3],
                    row);
    return out;
}

Rgb parse_color(std::string_view text) {
    std::string s;
    for (char ch : text)
        if (!std::isspace(static_cast<unsigned char>(ch))) s += char(std::tolower(static_cast<unsigned char>(ch)));
    auto hex = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        return -1;
    };
    if (!s.empty() && s[0] == '#' && (s.size() == 7 || s.size() == 4)) {
        bool ok = true;
        for (size_t i = 1; i < s.size(); ++i) ok = ok && hex(s[i]) >= 0;
        if (ok && s.size() == 7)
            return Rgb{uint8_t(hex(s[1]) * 16 + hex(s[2])), uint8_t(hex(s[3]) * 16 + hex(s[4])),
                       uint8_t(hex(s[5]) * 16 + hex(s[6]))};
        if (ok) return Rgb{uint8_t(hex(s[1]) * 17), uint8_t(hex(s[2]) * 17), uint8_t(hex(s[3]) * 17)};
    }
    static const std::pair<const char *, Rgb> kNames[] = {
        {"red", {255, 0, 0}},        {"green", {0, 128, 0}},     {"blue", {0, 0, 255}},
        {"yellow", {255, 255, 0}},   {"orange", {255, 165, 0}},  {"purple", {128, 0, 128}},
        {"cyan", {0, 255, 255}},     {"magenta", {255, 0, 255}}, {"pink", {255, 192, 203}},
        {"brown", {165, 42, 42}},    {"black", {0, 0, 0}},       {"white", {255, 255, 255}},
        {"gray", {128, 128, 128}},   {"grey", {128, 128, 128}},  {"lime", {0, 255, 0}},
        {"navy", {0, 0, 128}},       {"teal", {0, 128, 128}}};
    for (const auto &[name, rgb] : kNames)
        if (s == name) return rgb;
    fail(MUSE_ERR_INVALID_ARGUMENT, "unknown color \"", text,
         "\" (use #rrggbb, #rgb or red, green, blue, yellow, orange, purple, cyan, magenta, pink, brown, black, "
         "white, gray, lime, navy, teal)");
}

std::vector<uint8_t> encode_png(const Image &img) {
    if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
        fail(MUSE_ERR_INVALID_ARGUMENT, "encode_png: the image has no pixels or a wrong buffer size");
    std::vector<uint8_t> out;
    auto sink = [](void *ctx, void *data, int size) {
        auto *v = static_cast<std::vector<uint8_t> *>(ctx);
        v->insert(v->end(), static_cast<uint8_t *>(data), static_cast<uint8_t *>(data) + size);
    };
    if (!stbi_write_png_to_func(sink, &out, img.width, img.height, 3, img.rgb.data(), img.width * 3))
        fail(MUSE_ERR_OUT_OF_MEMORY, "encode_png: stb_image_write failed");
    return out;
}

void draw_shapes(Image &img, const json &shapes) {
    if (!shapes.is_array()) bad("annotate: \"shapes\" must be an array of shapes, got ", shapes.dump());
    if (shapes.empty()) bad("annotate: \"shapes\" is empty; give at least one box, point, arrow or label");
    if (shapes.size() > kAnnotateMaxShapes)
        bad("annotate: ", shapes.size(), " shapes; at most ", kAnnotateMaxShapes, " per call");
    std::vector<Shape> parsed;
    for (size_t i = 0; i < shapes.size(); ++i) parsed.push_back(parse_shape(shapes[i], i, img));
    for (const Shape &sh : parsed) draw_shape(img, sh);
}

Tool zoom_tool() {
    Tool t;
    json props = {{"image", image_property()}};
    const json region = box_properties("region");  // a named object: items() does not keep a temporary alive
    for (const auto &[k, v] : region.items()) props[k] = v;
    t.declaration = {
        {"type", "function"},
        {"function",
         {{"name", "zoom"},
          {"description",
           "Look closer at a rectangular region of an image: returns the region as a new image at full detail. "
           "Coordinates are pixels of that image, origin at the top-left, x to the right, y down; the region is "
           "x0 <= x < x1, y0 <= y < y1."},
          {"parameters",
           {{"type", "object"},
            {"properties", props},
            {"required", {"x0", "y0", "x1", "y1"}},
            {"additionalProperties", false}}}}}};
    t.run = [](const json &args, const ToolContext &ctx) {
        return run_guarded([&] {
            if (!args.is_object()) bad("zoom: the arguments must be an object with x0, y0, x1, y1");
            only_keys(args, {"image", "x0", "y0", "x1", "y1"}, "zoom");
            const auto [img, index] = pick_image(args, ctx, "zoom");
            const PixelBox b = check_box(args, *img, "zoom");
            ToolOutcome out;
            out.image = crop_image(*img, b);
            out.content = str_cat("Zoomed into region (", b.x0, ", ", b.y0, ")-(", b.x1, ", ", b.y1, ") of image ",
                                  index, " (", size_text(*img), "): the ", b.x1 - b.x0, "x", b.y1 - b.y0,
                                  " pixel view follows as image ", ctx.images.size(), ".");
            return out;
        });
    };
    return t;
}

Tool annotate_tool() {
    const json color = {{"type", "string"}, {"description", "a color name (red, green, blue, ...) or #rrggbb"}};
    const json caption = {{"type", "string"}, {"maxLength", kAnnotateMaxText}};
    auto shape = [&](const char *type, json props, std::vector<std::string> required) {
        json p = {{"type", {{"const", type}}}};
        for (auto &[k, v] : props.items()) p[k] = v;
        required.insert(required.begin(), "type");
        return json{{"type", "object"}, {"properties", p}, {"required", required}, {"additionalProperties", false}};
    };
    const json coord = {{"type", "integer"}};
    const json thickness = {{"type", "integer"}, {"minimum", 1}, {"maximum", kAnnotateMaxThickness}};
    json box = box_properties("box");
    box["color"] = color;
    box["label"] = caption;
    box["thickness"] = thickness;
    json arrow = {{"x0", {{"type", "integer"}, {"description", "tail x"}}},
                  {"y0", {{"type", "integer"}, {"description", "tail y"}}},
                  {"x1", {{"type", "integer"}, {"description", "head (tip) x"}}},
                  {"y1", {{"type", "integer"}, {"description", "head (tip) y"}}},
                  {"color", color},
                  {"label", caption},
                  {"thickness", thickness}};
    json point = {{"x", coord},
                  {"y", coord},
                  {"color", color},
                  {"label", caption},
                  {"radius", {{"type", "integer"}, {"minimum", 1}, {"maximum", kAnnotateMaxRadius}}}};
    json label = {{"x", coord}, {"y", coord}, {"text", caption}, {"color", color}};
    Tool t;
    t.declaration = {
        {"type", "function"},
        {"function",
         {{"name", "annotate"},
          {"description",
           "Draw boxes, points, arrows and text labels on a copy of an image and show it to the user. "
           "Coordinates are pixels of that image, origin at the top-left, x to the right, y down; a box covers "
           "x0 <= x < x1, y0 <= y < y1."},
          {"parameters",
           {{"type", "object"},
            {"properties",
             {{"image", image_property()},
              {"shapes",
               {{"type", "array"},
                {"minItems", 1},
                {"maxItems", kAnnotateMaxShapes},
                {"items",
                 {{"anyOf",
                   {shape("box", box, {"x0", "y0", "x1", "y1"}), shape("point", point, {"x", "y"}),
                    shape("arrow", arrow, {"x0", "y0", "x1", "y1"}), shape("label", label, {"x", "y", "text"})}}}}}}}},
            {"required", {"shapes"}},
            {"additionalProperties", false}}}}}};
    t.run = [](const json &args, const ToolContext &ctx) {
        return run_guarded([&] {
            if (!args.is_object()) bad("annotate: the arguments must be an object with \"shapes\"");
            only_keys(args, {"image", "shapes"}, "annotate");
            const auto [img, index] = pick_image(args, ctx, "annotate");
            const auto it = args.find("shapes");
            if (it == args.end()) bad("annotate: \"shapes\" is required");
            Image copy = *img;
            draw_shapes(copy, *it);
            ToolOutcome out;
            out.artefacts.push_back(HostArtefact{"annotation", "image/png", encode_png(copy)});
            out.content = str_cat("Drew ", it->size(), " shape", it->size() == 1 ? "" : "s", " on image ", index,
                                  " (", size_text(*img), "); the annotated picture was shown to the user.");
            return out;
        });
    };
    return t;
}

} // namespace muse::tools
