// The built-in visual tools, zoom and annotate (docs/TOOLS.md).
//
// Coordinates, for both: integer pixel coordinates of the image as it is in the
// conversation (its own width x height, before any model preprocessing), origin at
// the top-left pixel, x to the right, y down. A region is the half-open box
// [x0, x1) x [y0, y1): x1 and y1 are exclusive, so {0, 0, width, height} is the whole
// image. A point is one pixel: 0 <= x < width, 0 <= y < height. Anything outside
// these ranges, and empty or inverted boxes, fail with a message that gives the
// image's size; nothing is silently clamped.
//
// `image` selects the image by its index in ToolContext::images (0 = the first image
// of the conversation); it is optional and defaults to the last (most recent) image,
// which after a zoom is the zoomed view, whose coordinates are its own.
#pragma once

#include "image/image.h"
#include "tools/tool.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace muse::tools {

// A half-open pixel box [x0, x1) x [y0, y1).
struct PixelBox {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

struct Rgb {
    uint8_t r = 0, g = 0, b = 0;
    bool operator==(const Rgb &) const = default;
};

// The pixels of `box` (which must lie inside `img`), as a new image.
Image crop_image(const Image &img, const PixelBox &box);

// A colour by CSS-style name ("red", "green", "blue", "yellow", "orange", "purple",
// "cyan", "magenta", "pink", "brown", "black", "white", "gray"/"grey", "lime",
// "navy", "teal") or as "#rrggbb" / "#rgb". Throws muse::Error for anything else.
Rgb parse_color(std::string_view text);

// PNG bytes of `img` (stb_image_write).
std::vector<uint8_t> encode_png(const Image &img);

// Shape limits of one annotate call: each bounds the work a call can ask for.
inline constexpr size_t kAnnotateMaxShapes = 256;
inline constexpr size_t kAnnotateMaxText = 200;     // bytes of one label
inline constexpr int kAnnotateMaxThickness = 64;    // pixels
inline constexpr int kAnnotateMaxRadius = 256;      // pixels

// Draws the annotate tool's `shapes` array (docs/TOOLS.md) onto `img`. Throws
// muse::Error (MUSE_ERR_INVALID_ARGUMENT) naming the shape and field at fault;
// shapes are all checked before anything is drawn.
void draw_shapes(Image &img, const nlohmann::ordered_json &shapes);

Tool zoom_tool();
Tool annotate_tool();

} // namespace muse::tools
