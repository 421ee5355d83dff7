// Image pipeline: decoding (every format, alpha, limits, hostile input), the C
// API, Pillow-compatible resizing, float bilinear resampling and the
// per-family preprocessing. Byte-for-byte comparisons with Pillow itself live in
// tests/python/test_image.py; here the expectations come from the seed corpus's
// known pattern (tests/fuzz/make_image_corpus.py) and from values worked out by
// hand from the definitions.
#include "api/image-handle.h"
#include "core/error.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "image/resample-float.h"
#include "image/resize.h"
#include "muse/muse.hpp"

#include <catch2/catch.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace muse;
namespace fs = std::filesystem;

namespace {

const fs::path kCorpus = MUSE_TEST_IMAGE_CORPUS_DIR;
constexpr int W = 7, H = 5;  // size of the corpus pattern

// The corpus pattern (tests/fuzz/make_image_corpus.py: pattern()).
uint8_t pat(int x, int y, int c) {
    switch (c) {
    case 0: return uint8_t((x * 37 + y * 11 + 3) % 256);
    case 1: return uint8_t((x * 5 + y * 29 + 40) % 256);
    case 2: return uint8_t((x * x * 3 + y * 7 + 200) % 256);
    default: return uint8_t((x * 51 + y * 73) % 256);
    }
}

// Alpha over white, from the definition (real numbers), for a tolerance check.
double blend_exact(int c, int a) { return (c * a + 255.0 * (255 - a)) / 255.0; }

std::vector<uint8_t> read_file(const fs::path &p) {
    std::ifstream f(p, std::ios::binary);
    REQUIRE(f.good());
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Runs fn, expecting a muse::Error with `status` whose message contains `needle`.
template <class F>
void expect_error(F &&fn, muse_status status, const std::string &needle = "") {
    try {
        fn();
        FAIL("succeeded, expected " << muse_status_name(status) << " mentioning '" << needle << "'");
    } catch (const Error &e) {
        INFO("message: " << e.what());
        CHECK(e.status() == status);
        CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
}

// Decodes, accepting success or a clean error of one of the expected kinds.
void decode_or_clean_error(const std::vector<uint8_t> &bytes, ImageLoadOptions o = {}) {
    try {
        Image img = decode_image(bytes.data(), bytes.size(), o);
        CHECK(img.rgb.size() == size_t(img.width) * size_t(img.height) * 3);
    } catch (const Error &e) {
        const bool expected = e.status() == MUSE_ERR_FORMAT || e.status() == MUSE_ERR_OUT_OF_RANGE;
        INFO("status " << muse_status_name(e.status()) << ": " << e.what());
        CHECK(expected);
    }
}

// ---- hand-made PNGs (chunks with correct CRCs, IDAT zlib-compressed by stb_image_write)

uint32_t crc32(const uint8_t *p, size_t n, uint32_t crc = 0) {
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void put_be32(std::vector<uint8_t> &v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void chunk(std::vector<uint8_t> &png, const char *type, const std::vector<uint8_t> &data) {
    put_be32(png, uint32_t(data.size()));
    std::vector<uint8_t> body(type, type + 4);
    body.insert(body.end(), data.begin(), data.end());
    png.insert(png.end(), body.begin(), body.end());
    put_be32(png, crc32(body.data(), body.size()));
}

std::vector<uint8_t> zlib(std::vector<uint8_t> raw) {
    int n = 0;
    unsigned char *z = stbi_zlib_compress(raw.data(), int(raw.size()), &n, 8);
    std::vector<uint8_t> out(z, z + n);
    STBIW_FREE(z);
    return out;
}

// An 8-bit RGB PNG of w x h whose IDAT inflates to `raw` (normally h rows of 1 + 3w bytes).
std::vector<uint8_t> make_png(uint32_t w, uint32_t h, const std::vector<uint8_t> &raw) {
    std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<uint8_t> ihdr;
    put_be32(ihdr, w);
    put_be32(ihdr, h);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // depth 8, RGB, deflate, no filter, no interlace
    chunk(png, "IHDR", ihdr);
    chunk(png, "IDAT", zlib(raw));
    chunk(png, "IEND", {});
    return png;
}

Image solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    Image img;
    img.width = w;
    img.height = h;
    for (int i = 0; i < w * h; ++i) img.rgb.insert(img.rgb.end(), {r, g, b});
    return img;
}

Image random_image(int w, int h, uint32_t seed) {
    std::mt19937 rng(seed);
    Image img;
    img.width = w;
    img.height = h;
    img.rgb.resize(size_t(w) * size_t(h) * 3);
    for (auto &v : img.rgb) v = uint8_t(rng());
    return img;
}

} // namespace

// ------------------------------------------------------------------ pixels

TEST_CASE("alpha over white: 255 keeps the colour, 0 gives white, within 1 of the exact blend", "[image]") {
    for (int a = 0; a < 256; ++a)
        for (int c = 0; c < 256; ++c) {
            const int out = composite_on_white(uint8_t(c), uint8_t(a));
            if (a == 255) REQUIRE(out == c);
            if (a == 0) REQUIRE(out == 255);
            REQUIRE(std::fabs(out - blend_exact(c, a)) <= 1.0);
        }
}

TEST_CASE("from_pixels converts gray, gray+alpha, RGB and RGBA rows with a stride", "[image]") {
    const int stride = W * 4 + 5;  // padding bytes at the end of each row must be ignored
    std::vector<uint8_t> buf(size_t(stride) * H, 0xEE);
    for (int ch : {1, 2, 3, 4}) {
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x)
                for (int c = 0; c < ch; ++c) {
                    // gray: R; gray+alpha: R, A; RGB; RGBA
                    const int src_c = (ch == 2 && c == 1) ? 3 : c;
                    buf[size_t(y) * stride + size_t(x) * ch + c] = pat(x, y, src_c);
                }
        const Image img = image_from_pixels(buf.data(), W, H, ch, stride);
        REQUIRE(img.width == W);
        REQUIRE(img.height == H);
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x)
                for (int c = 0; c < 3; ++c) {
                    const uint8_t v = (ch <= 2) ? pat(x, y, 0) : pat(x, y, c);
                    const uint8_t want = (ch % 2 == 0) ? composite_on_white(v, pat(x, y, 3)) : v;
                    INFO("channels " << ch << " at " << x << "," << y << "," << c);
                    REQUIRE(img.rgb[(size_t(y) * W + x) * 3 + c] == want);
                }
    }
}

TEST_CASE("from_pixels rejects bad arguments", "[image]") {
    const uint8_t px[12] = {};
    expect_error([&] { image_from_pixels(px, 0, 1, 3, 0); }, MUSE_ERR_INVALID_ARGUMENT, "at least one pixel");
    expect_error([&] { image_from_pixels(px, 2, -1, 3, 0); }, MUSE_ERR_INVALID_ARGUMENT, "at least one pixel");
    expect_error([&] { image_from_pixels(px, 2, 2, 5, 0); }, MUSE_ERR_INVALID_ARGUMENT, "channels");
    expect_error([&] { image_from_pixels(px, 2, 2, 3, 5); }, MUSE_ERR_INVALID_ARGUMENT, "stride");
    expect_error([&] { image_from_pixels(nullptr, 2, 2, 3, 0); }, MUSE_ERR_INVALID_ARGUMENT, "NULL");
    expect_error([&] { image_from_pixels(px, kMaxImageSide + 1, 1, 3, 0); }, MUSE_ERR_OUT_OF_RANGE, "65536");
}

// ------------------------------------------------------------------ decoding

TEST_CASE("every corpus format decodes to the pattern", "[image][decode]") {
    struct Case {
        const char *file;
        int channels;  // what the file stores: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
        int transparent_pixel = -1;  // palette files: this index is fully transparent
    };
    const Case cases[] = {
        {"rgb.png", 3},         {"rgba.png", 4},    {"gray.png", 1},     {"la.png", 2},
        {"gray16.png", 1},      {"rgb.bmp", 3},     {"palette.bmp", 3},  {"rgb.tga", 3},
        {"rgba.tga", 4},        {"rle.tga", 3},     {"rgb.ppm", 3},      {"gray.pgm", 1},
        {"rgb.psd", 3},         {"palette.png", 3, 3}, {"palette.gif", 3, 3},
    };
    for (const auto &cs : cases) {
        INFO(cs.file);
        const auto bytes = read_file(kCorpus / cs.file);
        const Image img = decode_image(bytes.data(), bytes.size());
        REQUIRE(img.width == W);
        REQUIRE(img.height == H);
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x)
                for (int c = 0; c < 3; ++c) {
                    uint8_t want = cs.channels <= 2 ? pat(x, y, 0) : pat(x, y, c);
                    if (cs.channels % 2 == 0) want = composite_on_white(want, pat(x, y, 3));
                    if (y * W + x == cs.transparent_pixel) want = 255;
                    INFO("pixel " << x << "," << y << " channel " << c);
                    REQUIRE(int(img.rgb[(size_t(y) * W + x) * 3 + c]) == int(want));
                }
    }
}

TEST_CASE("JPEG decodes within a few levels of the source gradient", "[image][decode]") {
    for (const char *file : {"smooth.jpg", "progressive.jpg", "gray.jpg"}) {
        INFO(file);
        const auto bytes = read_file(kCorpus / file);
        const Image img = decode_image(bytes.data(), bytes.size());
        REQUIRE(img.width == 16);
        REQUIRE(img.height == 16);
        const bool gray = std::string(file) == "gray.jpg";
        int worst = 0;
        for (int y = 0; y < 16; ++y)
            for (int x = 0; x < 16; ++x) {
                const int src[3] = {x * 16, y * 16, 128};
                // Pillow's L = (R*299 + G*587 + B*114) / 1000, rounded.
                const int l = (src[0] * 299 + src[1] * 587 + src[2] * 114 + 500) / 1000;
                for (int c = 0; c < 3; ++c)
                    worst = std::max(worst, std::abs(int(img.rgb[(size_t(y) * 16 + x) * 3 + c]) - (gray ? l : src[c])));
            }
        CHECK(worst <= 12);  // lossy: quality 90-95 on a 16x16 gradient
    }
}

TEST_CASE("HDR is tone-mapped like stb_image's LDR path (gamma 1/2.2, clamped)", "[image][decode]") {
    const auto bytes = read_file(kCorpus / "radiance.hdr");
    const Image img = decode_image(bytes.data(), bytes.size());
    REQUIRE(img.width == W);
    REQUIRE(img.height == H);
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
            // make_image_corpus.py: hdr()
            const int mant[3] = {(x * 40 + 7) % 256, (y * 50 + 30) % 256, ((x + y) * 20 + 100) % 256};
            const int e = 120 + (x + y) % 12;
            for (int c = 0; c < 3; ++c) {
                const double f = mant[c] * std::ldexp(1.0, e - 136);
                const double want = std::min(255.0, std::max(0.0, std::pow(f, 1.0 / 2.2) * 255.0 + 0.5));
                INFO("pixel " << x << "," << y << " channel " << c << " value " << f);
                CHECK(std::abs(int(img.rgb[(size_t(y) * W + x) * 3 + c]) - int(want)) <= 1);
            }
        }
}

TEST_CASE("decoding through the file reader", "[image][decode]") {
    const Image img = load_image_file((kCorpus / "rgb.png").string());
    CHECK(img.width == W);
    expect_error([] { load_image_file("/nonexistent/muse.png"); }, MUSE_ERR_IO, "cannot open");
    expect_error([] { load_image_file("/tmp"); }, MUSE_ERR_IO, "not a regular file");
    const std::string empty = "/tmp/muse-test-image-" + std::to_string(::getpid()) + ".png";
    std::ofstream(empty).close();
    expect_error([&] { load_image_file(empty); }, MUSE_ERR_FORMAT, "empty");
    std::ofstream(empty) << "this is not an image at all, just some text";
    expect_error([&] { load_image_file(empty); }, MUSE_ERR_FORMAT, empty);
    std::remove(empty.c_str());
}

TEST_CASE("the pixel budget and side limit are enforced from the header", "[image][limits]") {
    const auto png = read_file(kCorpus / "rgb.png");
    ImageLoadOptions o;
    o.max_pixels = W * H - 1;
    expect_error([&] { decode_image(png.data(), png.size(), o); }, MUSE_ERR_OUT_OF_RANGE, "over the limit");
    o.max_pixels = W * H;
    CHECK(decode_image(png.data(), png.size(), o).width == W);

    // Headers claiming huge sizes over a few bytes of data: refused before any
    // pixel buffer exists (a 60000 x 60000 RGB canvas would be 10 GiB).
    const std::vector<uint8_t> row(1 + 3, 0);
    expect_error([&] { auto b = make_png(60000, 60000, row); decode_image(b.data(), b.size()); },
                 MUSE_ERR_OUT_OF_RANGE, "over the limit");
    expect_error([&] { auto b = make_png(1, 100000, row); decode_image(b.data(), b.size()); }, MUSE_ERR_OUT_OF_RANGE,
                 "side longer than 65536");
    expect_error([&] { auto b = make_png(0xFFFFFFFF, 0x7FFFFFFF, row); decode_image(b.data(), b.size()); },
                 MUSE_ERR_OUT_OF_RANGE, "4294967295x2147483647");
    // PNM sizes are decimal text: stb would overflow an int on this one (found by fuzz-image).
    const std::string pnm = "P5\n7 " + std::string(34, '9') + "#5#\xff";
    expect_error([&] { decode_image(pnm.data(), pnm.size()); }, MUSE_ERR_OUT_OF_RANGE, "side longer");
    const std::string maxval = "P6 1 1 " + std::string(20, '9') + " abc";
    expect_error([&] { decode_image(maxval.data(), maxval.size()); }, MUSE_ERR_FORMAT, "maximum value");
    // Exactly at the default budget (2^26 pixels) the header is accepted and the
    // missing data is what fails; one row more is refused.
    expect_error([&] { auto b = make_png(8192, 8192, row); decode_image(b.data(), b.size()); }, MUSE_ERR_FORMAT);
    expect_error([&] { auto b = make_png(8192, 8193, row); decode_image(b.data(), b.size()); }, MUSE_ERR_OUT_OF_RANGE);
}

TEST_CASE("zero-sized images are format errors", "[image][limits]") {
    const std::vector<uint8_t> nothing;
    expect_error([&] { auto b = make_png(0, 5, nothing); decode_image(b.data(), b.size()); }, MUSE_ERR_FORMAT);
    expect_error([&] { auto b = make_png(5, 0, nothing); decode_image(b.data(), b.size()); }, MUSE_ERR_FORMAT);
    const std::string pnm = "P6\n0 0\n255\n";
    expect_error([&] { decode_image(pnm.data(), pnm.size()); }, MUSE_ERR_FORMAT);
    // BMP and GIF headers with a zero width.
    auto bmp = read_file(kCorpus / "rgb.bmp");
    std::memset(&bmp[18], 0, 4);
    expect_error([&] { decode_image(bmp.data(), bmp.size()); }, MUSE_ERR_FORMAT);
    auto gif = read_file(kCorpus / "palette.gif");
    gif[6] = gif[7] = 0;
    expect_error([&] { decode_image(gif.data(), gif.size()); }, MUSE_ERR_FORMAT);
    expect_error([&] { decode_image(bmp.data(), 0); }, MUSE_ERR_FORMAT, "empty");
}

TEST_CASE("a PNG starting with an empty IDAT chunk decodes (no memcpy from NULL)", "[image][hostile]") {
    // Found by fuzz-image: stb copies the empty chunk into a not yet allocated buffer (fix 5).
    std::vector<uint8_t> raw(16 * 49, 7);
    for (size_t row = 0; row < 16; ++row) raw[row * 49] = 0;  // filter type "none"
    auto png = make_png(16, 16, raw);
    const size_t idat = 8 + 25;  // signature, then IHDR (4 length + 4 type + 13 data + 4 CRC)
    std::vector<uint8_t> empty_idat;
    chunk(empty_idat, "IDAT", {});
    png.insert(png.begin() + long(idat), empty_idat.begin(), empty_idat.end());
    const Image img = decode_image(png.data(), png.size());
    CHECK(img.rgb.front() == 7);
}

TEST_CASE("a PNG whose data inflates far beyond its header is refused", "[image][limits]") {
    // 16 x 16 RGB needs 16 * 49 = 784 bytes of filtered data; this IDAT inflates
    // to 8 MiB of zeros (about 80 KiB with stb_image_write's deflate).
    const auto png = make_png(16, 16, std::vector<uint8_t>(8u << 20, 0));
    CHECK(png.size() * 50 < (8u << 20));
    expect_error([&] { decode_image(png.data(), png.size()); }, MUSE_ERR_FORMAT, "decompression bomb");
    // The same header with the right amount of data decodes.
    const auto ok = make_png(16, 16, std::vector<uint8_t>(16 * 49, 0));
    CHECK(decode_image(ok.data(), ok.size()).width == 16);
}

TEST_CASE("a JPEG Huffman table of more than 256 codes is refused before stb builds it", "[image][hostile]") {
    // stb_image 2.27 would write past stbi__huffman::size[257] (fix 1 in src/image/stb-image.cmake).
    for (const char *file : {"smooth.jpg", "progressive.jpg"}) {
        INFO(file);
        auto bytes = read_file(kCorpus / file);
        // The last DHT: in the progressive file it sits between scans, behind entropy-coded data.
        size_t dht = 0;
        for (size_t i = 2; i + 1 < bytes.size(); ++i)
            if (bytes[i] == 0xFF && bytes[i + 1] == 0xC4) dht = i;
        REQUIRE(dht > 0);
        for (int k = 0; k < 16; ++k) bytes[dht + 5 + k] = 200;  // 16 counts after length and class/id
        expect_error([&] { decode_image(bytes.data(), bytes.size()); }, MUSE_ERR_FORMAT, "bad DHT header");
    }
}

TEST_CASE("truncated and corrupted corpus files fail cleanly", "[image][hostile]") {
    ImageLoadOptions small;
    small.max_pixels = 1 << 20;
    for (const auto &entry : fs::directory_iterator(kCorpus)) {
        INFO(entry.path().filename().string());
        const auto bytes = read_file(entry.path());
        for (size_t n = 0; n < bytes.size(); ++n)
            decode_or_clean_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(n)), small);
        for (size_t i = 0; i < bytes.size(); ++i)
            for (uint8_t flip : {uint8_t(0xFF), uint8_t(0x80), uint8_t(0x01)}) {
                auto mutated = bytes;
                mutated[i] ^= flip;
                decode_or_clean_error(mutated, small);
            }
        // Huge values over every 4-byte window (sizes, lengths, offsets).
        for (size_t i = 0; i + 4 <= bytes.size(); ++i) {
            auto mutated = bytes;
            std::memset(&mutated[i], 0xFF, 4);
            decode_or_clean_error(mutated, small);
        }
    }
}

TEST_CASE("random bytes are refused or decoded, never crash", "[image][hostile]") {
    std::mt19937 rng(7);
    ImageLoadOptions small;
    small.max_pixels = 1 << 20;
    int refused = 0;
    for (int i = 0; i < 2000; ++i) {
        std::vector<uint8_t> b(1 + rng() % 512);
        for (auto &v : b) v = uint8_t(rng());
        // Half of them start with a real magic, so the format parsers are reached.
        static const char *magics[] = {"\x89PNG\r\n\x1a\n", "\xFF\xD8\xFF", "GIF89a", "BM",
                                       "8BPS",                "P6\n",         "#?RADIANCE\n"};
        if (i % 2) {
            const char *m = magics[rng() % 7];
            std::memcpy(b.data(), m, std::min(b.size(), std::strlen(m)));
        }
        try {
            decode_image(b.data(), b.size(), small);
        } catch (const Error &e) {
            INFO(e.what());
            CHECK((e.status() == MUSE_ERR_FORMAT || e.status() == MUSE_ERR_OUT_OF_RANGE));
            ++refused;
        }
    }
    CHECK(refused > 1900);  // a rare random header can be a valid TGA
}

// ------------------------------------------------------------------ C API

TEST_CASE("C API: images load, report their size and pixels, and reject bad calls", "[image][capi]") {
    muse_image_params p;
    muse_image_params_init(&p);
    CHECK(p.struct_size == sizeof(p));
    CHECK(p.max_pixels == (uint64_t(64) << 20));

    const auto bytes = read_file(kCorpus / "rgba.png");
    muse_image *img = nullptr;
    REQUIRE(muse_image_load_memory(bytes.data(), bytes.size(), &p, &img) == MUSE_OK);
    CHECK(muse_image_width(img) == W);
    CHECK(muse_image_height(img) == H);
    CHECK(muse_image_pixels(img)[0] == composite_on_white(pat(0, 0, 0), pat(0, 0, 3)));
    muse_image_free(img);

    REQUIRE(muse_image_load_file((kCorpus / "rgb.ppm").c_str(), nullptr, &img) == MUSE_OK);
    CHECK(muse_image_pixels(img)[3 * 2 + 1] == pat(2, 0, 1));
    muse_image_free(img);

    img = reinterpret_cast<muse_image *>(0x1);
    CHECK(muse_image_load_file("/nonexistent.png", nullptr, &img) == MUSE_ERR_IO);
    CHECK(img == nullptr);
    CHECK(std::string(muse_last_error()).find("/nonexistent.png") != std::string::npos);
    CHECK(muse_image_load_file(nullptr, nullptr, &img) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_image_load_memory(nullptr, 10, nullptr, &img) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_image_load_memory(bytes.data(), bytes.size(), nullptr, nullptr) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_image_load_memory(bytes.data(), 10, nullptr, &img) == MUSE_ERR_FORMAT);

    muse_image_params bad = p;
    bad.max_pixels = 0;
    CHECK(muse_image_load_memory(bytes.data(), bytes.size(), &bad, &img) == MUSE_ERR_INVALID_ARGUMENT);
    bad = p;
    bad.max_pixels = 10;
    CHECK(muse_image_load_memory(bytes.data(), bytes.size(), &bad, &img) == MUSE_ERR_OUT_OF_RANGE);
    bad.struct_size = 4;
    CHECK(muse_image_load_memory(bytes.data(), bytes.size(), &bad, &img) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(std::string(muse_last_error()).find("struct_size") != std::string::npos);

    const uint8_t px[8] = {10, 20, 30, 255, 40, 50, 60, 0};
    REQUIRE(muse_image_from_pixels(px, 2, 1, 4, 0, &img) == MUSE_OK);
    CHECK(muse_image_pixels(img)[0] == 10);
    CHECK(muse_image_pixels(img)[3] == 255);
    muse_image_free(img);
    CHECK(muse_image_from_pixels(px, 2, 1, 4, -1, &img) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_image_from_pixels(px, 2, 1, 0, 0, &img) == MUSE_ERR_INVALID_ARGUMENT);
    CHECK(muse_image_from_pixels(nullptr, 2, 1, 3, 0, &img) == MUSE_ERR_INVALID_ARGUMENT);

    CHECK(muse_image_width(nullptr) == -1);
    CHECK(muse_image_height(nullptr) == -1);
    CHECK(muse_image_pixels(nullptr) == nullptr);
    muse_image_free(nullptr);
}

TEST_CASE("C++ wrapper: muse::image owns the handle and throws muse::error", "[image][capi]") {
    const muse::image a = muse::image::open((kCorpus / "rgb.bmp").string());
    CHECK(a.width() == W);
    CHECK(a.height() == H);
    CHECK(a.rgb()[3 * 6 + 2] == pat(6, 0, 2));
    const auto bytes = read_file(kCorpus / "rgb.tga");
    const muse::image b = muse::image::from_memory(bytes.data(), bytes.size());
    CHECK(b.rgb() == a.rgb());
    const uint8_t gray[4] = {0, 64, 128, 255};
    const muse::image c = muse::image::from_pixels(gray, 2, 2, 1);
    CHECK(c.pixels()[3 * 3] == 255);
    try {
        muse::image::from_memory(bytes.data(), bytes.size(), muse::image_options().max_pixels(3));
        FAIL("expected muse::error");
    } catch (const muse::error &e) {
        CHECK(e.code() == MUSE_ERR_OUT_OF_RANGE);
        CHECK(std::string(e.what()).find("MUSE_ERR_OUT_OF_RANGE") != std::string::npos);
    }
}

// ------------------------------------------------------------------ resizing

TEST_CASE("resize: a constant image stays constant for every filter and size", "[image][resize]") {
    for (auto f : {ResampleFilter::Box, ResampleFilter::Bilinear, ResampleFilter::Hamming, ResampleFilter::Bicubic,
                   ResampleFilter::Lanczos})
        for (auto [iw, ih, ow, oh] : {std::array{1, 1, 5, 3}, {5, 3, 1, 1}, {17, 9, 4, 30}, {3, 40, 41, 2}}) {
            const Image out = resize_image(solid(iw, ih, 0, 128, 255), ow, oh, f);
            REQUIRE(out.width == ow);
            REQUIRE(out.height == oh);
            for (size_t i = 0; i < out.rgb.size(); i += 3) {
                REQUIRE(out.rgb[i] == 0);
                REQUIRE(out.rgb[i + 1] == 128);
                REQUIRE(out.rgb[i + 2] == 255);
            }
        }
}

TEST_CASE("resize: hand-computed Pillow values", "[image][resize]") {
    // BOX 2 -> 1: weights 1/2, 1/2 = 2^21 each; (10 + 20) * 2^21 + 2^21 >> 22 = 15.
    uint8_t two[2] = {10, 20}, one = 0;
    resize_u8(two, 2, 1, 1, &one, 1, 1, ResampleFilter::Box);
    CHECK(one == 15);
    resize_u8(two, 1, 2, 1, &one, 1, 1, ResampleFilter::Box);  // the vertical pass alone
    CHECK(one == 15);
    // BILINEAR 2 -> 4 (upscale, support 1): centers 0.25, 0.75, 1.25, 1.75.
    // out0: taps [0, int(1.75)) = {0}, weight alone -> 10; out1: taps 0, 1 with
    // triangle(0.25 - 0.5... ) = 0.75, 0.25 -> (3145728 * 10 + 1048576 * 20 + 2^21) >> 22 = 13;
    // out2: 0.25, 0.75 -> 18; out3: taps [1, 2) -> 20.
    uint8_t four[4];
    resize_u8(two, 2, 1, 1, four, 4, 1, ResampleFilter::Bilinear);
    CHECK(four[0] == 10);
    CHECK(four[1] == 13);
    CHECK(four[2] == 18);
    CHECK(four[3] == 20);
    // Same size is a copy, whatever the filter.
    const Image r = random_image(13, 7, 1);
    CHECK(resize_image(r, 13, 7, ResampleFilter::Lanczos).rgb == r.rgb);
    // Lanczos overshoot is clamped: a black/white step produces 0 and 255, never wraps.
    Image step = solid(8, 1, 0, 0, 0);
    for (int x = 4; x < 8; ++x) step.rgb[x * 3] = step.rgb[x * 3 + 1] = step.rgb[x * 3 + 2] = 255;
    const Image up = resize_image(step, 37, 1, ResampleFilter::Lanczos);
    CHECK(up.rgb.front() == 0);
    CHECK(up.rgb.back() == 255);
}

TEST_CASE("resize: pass order only matters where Pillow 13 would switch to vertical first", "[image][resize]") {
    const Image r = random_image(57, 97, 4);
    // Height shrinks by 86, width by 20: Pillow 13 runs the vertical pass first;
    // the uint8 intermediate then rounds differently somewhere.
    CHECK(resize_image(r, 37, 11, ResampleFilter::Lanczos, PassOrder::Pillow13).rgb !=
          resize_image(r, 37, 11, ResampleFilter::Lanczos, PassOrder::HorizontalFirst).rgb);
    // The same result as running the two single-axis passes by hand, in that order.
    const Image v = resize_image(r, 57, 11, ResampleFilter::Lanczos);
    CHECK(resize_image(r, 37, 11, ResampleFilter::Lanczos, PassOrder::Pillow13).rgb ==
          resize_image(v, 37, 11, ResampleFilter::Lanczos).rgb);
    // Height shrinks by 40 = 2 * 20: not "more than twice", horizontal first as before.
    CHECK(resize_image(r, 37, 57, ResampleFilter::Lanczos, PassOrder::Pillow13).rgb ==
          resize_image(r, 37, 57, ResampleFilter::Lanczos, PassOrder::HorizontalFirst).rgb);
}

TEST_CASE("resize: a padded canvas equals resizing the materialized canvas", "[image][resize]") {
    const Image src = random_image(9, 4, 3);
    const uint8_t fill[3] = {122, 116, 104};
    Image canvas = solid(9, 9, fill[0], fill[1], fill[2]);
    for (int y = 0; y < 4; ++y) std::memcpy(&canvas.rgb[size_t(y + 2) * 9 * 3], &src.rgb[size_t(y) * 9 * 3], 9 * 3);
    for (auto [w, h] : {std::pair{9, 9}, {4, 4}, {20, 20}, {8, 2}, {2, 8}})
        for (auto f : {ResampleFilter::Bicubic, ResampleFilter::Lanczos})
            for (auto o : {PassOrder::HorizontalFirst, PassOrder::Pillow13})
                CHECK(resize_on_canvas(src, 9, 9, 0, 2, fill, w, h, f, o).rgb == resize_image(canvas, w, h, f, o).rgb);
}

TEST_CASE("resize rejects bad sizes", "[image][resize]") {
    const Image r = random_image(4, 4, 2);
    expect_error([&] { resize_image(r, 0, 4, ResampleFilter::Box); }, MUSE_ERR_INVALID_ARGUMENT, "positive");
    expect_error([&] { resize_image(r, 4, kMaxResizeSide + 1, ResampleFilter::Box); }, MUSE_ERR_OUT_OF_RANGE);
    expect_error([&] { resize_image(r, 1 << 14, 1 << 14, ResampleFilter::Box); }, MUSE_ERR_OUT_OF_RANGE, "pixels");
    expect_error([&] { parse_resample_filter("nearest"); }, MUSE_ERR_INVALID_ARGUMENT, "nearest");
    CHECK(parse_resample_filter("lanczos") == ResampleFilter::Lanczos);
}

TEST_CASE("float bilinear: half-pixel centres, clamped edges, channels innermost", "[image][resize]") {
    // 2 x 1 grid, 2 channels: (x=0: 0, 100), (x=1: 4, 200) -> 4 x 1.
    const float src[4] = {0, 100, 4, 200};
    const auto out = resize_bilinear_f32(src, 2, 1, 2, 4, 1);
    // source x = (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> t clamped at the edges
    const float want[8] = {0, 100, 1, 125, 3, 175, 4, 200};
    for (int i = 0; i < 8; ++i) CHECK(out[size_t(i)] == Approx(want[i]).margin(1e-6));
    // Downscale 4 -> 2 without antialiasing: samples at 0.5 and 2.5 (midpoints).
    const float row[4] = {0, 10, 20, 30};
    const auto down = resize_bilinear_f32(row, 4, 1, 1, 2, 1);
    CHECK(down[0] == Approx(5));
    CHECK(down[1] == Approx(25));
    // Vertical axis, and identity at the same size.
    const auto col = resize_bilinear_f32(row, 1, 4, 1, 1, 2);
    CHECK(col[1] == Approx(25));
    const std::vector<float> grid = {1, 2, 3, 4, 5, 6};
    CHECK(resize_bilinear_f32(grid.data(), 3, 2, 1, 3, 2) == grid);
    expect_error([&] { resize_bilinear_f32(grid.data(), 3, 2, 1, 0, 2); }, MUSE_ERR_INVALID_ARGUMENT);
}

// ------------------------------------------------------------------ preprocessing

TEST_CASE("muse-glimmer grid rule (spec §2.3)", "[image][preprocess]") {
    auto grid = [](int w, int h, int T = 4096) { return glimmer_grid_size(w, h, 14, 2, T); };
    // The spec's example: a 10 x 10 image becomes 1 x 1 token.
    CHECK(grid(10, 10).nw == 1);
    CHECK(grid(10, 10).nh == 1);
    // Exact multiples of P = 28 keep their grid.
    CHECK(grid(448, 224).nw == 16);
    CHECK(grid(448, 224).nh == 8);
    // Over the budget: scaled to sqrt(T / r) rows.
    CHECK(grid(2000, 2000).nw == 64);
    CHECK(grid(2000, 2000).nh == 64);
    CHECK(grid(2000, 2000, 16).nw == 4);
    // 100 x 50: nh = 1.79, nw = 3.57; candidates (1,3) d=.167, (1,4) d=.25, (2,3) d=.167, (2,4) d=0 -> 4 x 2.
    CHECK(grid(100, 50).nw == 4);
    CHECK(grid(100, 50).nh == 2);
    // 60 x 40: nh = 1.43, nw = 2.14: (1,2) d=.167, (1,3) d=.333, (2,2) d=.333, (2,3) d=0 -> 3 x 2.
    CHECK(grid(60, 40).nw == 3);
    CHECK(grid(60, 40).nh == 2);
    // 70 x 35: nh = 1.25, nw = 2.5: (1,2) d=0 beats (1,3), (2,2), (2,3) -> 2 x 1.
    CHECK(grid(70, 35).nw == 2);
    CHECK(grid(70, 35).nh == 1);
    // Equal d keeps the larger area: 42 x 42 gives nh = nw = 1.5; (1,1) and (2,2) both have d = 0.
    CHECK(grid(42, 42).nw == 2);
    CHECK(grid(42, 42).nh == 2);
    CHECK(grid(42, 42, 3).nw == 1);  // (2,2) is over T = 3
    // A 1 x 1000 strip: only nw' = 1 candidates are valid; (36, 1) is closest to 1000.
    CHECK(grid(1, 1000).nw == 1);
    CHECK(grid(1, 1000).nh == 36);
    // With T = 16 no candidate fits: lround fallback (36 rows, over T, as the spec says).
    CHECK(grid(1, 1000, 16).nw == 1);
    CHECK(grid(1, 1000, 16).nh == 36);
    expect_error([] { glimmer_grid_size(10, 10, 0, 2, 16); }, MUSE_ERR_INVALID_ARGUMENT, "patch_size");
    expect_error([] { glimmer_grid_size(10, 10, 14, 2, 0); }, MUSE_ERR_INVALID_ARGUMENT, "max_tokens");
}

TEST_CASE("muse-glimmer preprocessing: Lanczos stretch to the grid, planar normalization", "[image][preprocess]") {
    PreprocessParams p;
    p.patch_size = 4;
    p.merge = 2;
    p.mean[0] = 0.25f;
    p.std[0] = 0.5f;
    const GlimmerInput in = preprocess_muse_glimmer(solid(30, 17, 51, 102, 204), p);
    CHECK(in.grid.nw == 4);  // 30/8 = 3.75, 17/8 = 2.125 -> best ratio 2/4 vs 17/30
    CHECK(in.grid.nh == 2);
    REQUIRE(in.image.width == 32);
    REQUIRE(in.image.height == 16);
    const size_t plane = 32 * 16;
    CHECK(in.image.data[0] == (51 / 255.0f - 0.25f) / 0.5f);
    CHECK(in.image.data[plane + 100] == (102 / 255.0f - 0.5f) / 0.5f);
    CHECK(in.image.data[2 * plane + plane - 1] == (204 / 255.0f - 0.5f) / 0.5f);
    p.std[1] = 0.0f;
    expect_error([&] { preprocess_muse_glimmer(solid(3, 3, 0, 0, 0), p); }, MUSE_ERR_INVALID_ARGUMENT, "std");
}

TEST_CASE("CLIP preprocessing: pad to square with the mean colour, crop, stretch", "[image][preprocess]") {
    PreprocessParams p;
    p.image_size = 4;
    p.mean[0] = 0.48145466f;
    p.mean[1] = 0.4578275f;
    p.mean[2] = 0.40821073f;
    // 4 x 2 image -> 4 x 4 square (no resize needed): rows 0 and 3 are the LLaVA
    // background (122, 116, 104), rows 1 and 2 the image.
    const ImageTensor t = preprocess_clip(solid(4, 2, 255, 0, 10), p);
    REQUIRE(t.width == 4);
    REQUIRE(t.height == 4);
    const int bg[3] = {122, 116, 104}, fg[3] = {255, 0, 10};
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 4; ++y) {
            const int v = (y == 0 || y == 3) ? bg[c] : fg[c];
            CHECK(t.data[size_t(c) * 16 + size_t(y) * 4 + 1] == (float(v) / 255.0f - p.mean[c]) / p.std[c]);
        }
    // Shortest edge: 6 x 4 -> 3 x 2 (int(2 * 6 / 4)), then the centred 2 x 2 crop.
    p.image_size = 2;
    p.clip_resize = ClipResize::ShortestEdgeCenterCrop;
    Image lr = solid(6, 4, 0, 0, 0);
    for (int y = 0; y < 4; ++y)
        for (int x = 3; x < 6; ++x) lr.rgb[(size_t(y) * 6 + x) * 3] = 255;  // right half red
    const ImageTensor c = preprocess_clip(lr, p);
    REQUIRE(c.width == 2);
    REQUIRE(c.height == 2);
    CHECK(c.data[0] < c.data[1]);  // left column darker than right
    p.clip_resize = ClipResize::Stretch;
    const ImageTensor s = preprocess_clip(solid(5, 9, 0, 0, 0), p);
    CHECK((s.width == 2 && s.height == 2));
    p.image_size = 0;
    expect_error([&] { preprocess_clip(lr, p); }, MUSE_ERR_INVALID_ARGUMENT, "image_size");
}

TEST_CASE("Idefics3 sizes follow transformers' rules", "[image][preprocess]") {
    int rw, rh, tw, th;
    // 800 x 600, longest edge 1456, tiles 364: 1456 x int(1456 / (4/3)) = 1092 (even),
    // then ceil to tiles: 1456 x 1092 (4 x 3 tiles).
    idefics3_sizes(800, 600, 1456, 364, &rw, &rh, &tw, &th);
    CHECK((rw == 1456 && rh == 1092 && tw == 1456 && th == 1092));
    // Portrait 300 x 1000 with 2048 / 512: 2048 tall, int(2048 * 0.3) = 614 (even);
    // tiles: 2048 x ceil(int(2048 * 0.2998..)/512) -> 1024.
    idefics3_sizes(300, 1000, 2048, 512, &rw, &rh, &tw, &th);
    CHECK((rw == 614 && rh == 2048 && tw == 1024 && th == 2048));
    // Odd results are made even: 1000 x 999 -> 1456 x int(1454.54..) = 1454.
    idefics3_sizes(1000, 999, 1456, 364, &rw, &rh, &tw, &th);
    CHECK((rw == 1456 && rh == 1454));
    CHECK((tw == 1456 && th == 1456));
    // Small images are upscaled to the longest edge too.
    idefics3_sizes(10, 10, 1456, 364, &rw, &rh, &tw, &th);
    CHECK((rw == 1456 && rh == 1456));
}

TEST_CASE("Idefics3 preprocessing: row-major tiles, then the global image", "[image][preprocess]") {
    // A 2x2 grid of coloured blocks already at the longest edge: no resampling of
    // the tiles, so each tile is exactly one colour.
    const int M = 8;
    Image img = solid(2 * M, 2 * M, 0, 0, 0);
    const uint8_t colours[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}};
    for (int y = 0; y < 2 * M; ++y)
        for (int x = 0; x < 2 * M; ++x)
            std::memcpy(&img.rgb[(size_t(y) * 2 * M + x) * 3], colours[(y / M) * 2 + x / M], 3);
    PreprocessParams p;
    p.image_size = M;
    p.longest_edge = 2 * M;
    const Idefics3Input in = preprocess_idefics3(img, p);
    REQUIRE(in.rows == 2);
    REQUIRE(in.cols == 2);
    REQUIRE(in.tiles.size() == 4);
    for (int t = 0; t < 4; ++t)
        for (int c = 0; c < 3; ++c) {
            const float want = (colours[t][c] / 255.0f - 0.5f) / 0.5f;
            CHECK(in.tiles[size_t(t)].data[size_t(c) * M * M + 3 * M + 4] == want);
        }
    CHECK((in.global.width == M && in.global.height == M));
    // An image that fits one tile is not split.
    p.longest_edge = M;
    const Idefics3Input one = preprocess_idefics3(solid(5, 3, 9, 9, 9), p);
    CHECK((one.rows == 0 && one.cols == 0 && one.tiles.empty()));
    CHECK((one.global.width == M && one.global.height == M));
}
