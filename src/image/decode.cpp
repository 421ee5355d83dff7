// stb_image is compiled here, once, from Debian's header with the fixes of
// src/image/stb-image.cmake applied (MUSE_STB_IMAGE_H), with its symbols static
// to this file (a host linking its own stb_image cannot clash with ours) and
// these guards:
//   - every allocation goes through capped_malloc/capped_realloc below, whose
//     thread-local cap is set from the header's dimensions before decoding
//     (fresh allocations are zeroed: stb 2.27 can leave pixels of a corrupt
//     TGA unwritten, and those must not show old heap contents);
//   - STBI_ASSERT stays armed in release builds: an internal invariant that a
//     hostile file breaks must stop the process, not continue into undefined
//     behaviour.
#include "image/decode.h"

#include "core/byte-source.h"
#include "core/error.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace muse {
namespace {

thread_local size_t t_alloc_cap = 0;       // largest single allocation stb may make now
thread_local bool t_alloc_refused = false;  // set when capped_* refused a request

void *capped_malloc(size_t n) {
    if (n > t_alloc_cap) {
        t_alloc_refused = true;
        return nullptr;
    }
    return std::calloc(1, n);
}

void *capped_realloc(void *p, size_t n) {
    if (n > t_alloc_cap) {
        t_alloc_refused = true;
        return nullptr;  // stb frees p itself on failure
    }
    return std::realloc(p, n);
}

[[noreturn]] void stb_assert_failed(const char *expr, int line) {
    std::fprintf(stderr, "muse: stb_image invariant failed (line %d): %s\n", line, expr);
    std::abort();
}

// Sets the allocation cap for the current scope and restores "nothing allowed".
class AllocCap {
public:
    explicit AllocCap(size_t cap) {
        t_alloc_cap = cap;
        t_alloc_refused = false;
    }
    ~AllocCap() { t_alloc_cap = 0; }
    AllocCap(const AllocCap &) = delete;
    AllocCap &operator=(const AllocCap &) = delete;
};

} // namespace
} // namespace muse

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO  // files are read by load_image_file, never by stb
#define STBI_NO_PIC    // Softimage PIC: not a format anyone hands a vision model
#define STBI_MALLOC(n) muse::capped_malloc(n)
#define STBI_REALLOC(p, n) muse::capped_realloc(p, n)
#define STBI_FREE(p) std::free(p)
#define STBI_ASSERT(x) ((x) ? (void)0 : muse::stb_assert_failed(#x, __LINE__))

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wshadow"
#pragma clang diagnostic ignored "-Wsign-compare"
#pragma clang diagnostic ignored "-Wunused-but-set-variable"
#pragma clang diagnostic ignored "-Wimplicit-fallthrough"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wtype-limits"
#endif
#ifndef MUSE_STB_IMAGE_H  // set by src/image/stb-image.cmake
#error "build decode.cpp through CMake: it needs the patched stb_image header"
#endif
#include MUSE_STB_IMAGE_H
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace muse {
namespace {

// stb's header parsers allocate their decoder state (the GIF one is ~40 KiB).
constexpr size_t kHeaderAllocCap = size_t(1) << 20;
// While decoding a W x H image no single legitimate allocation exceeds 16 bytes
// per pixel (float HDR scanlines: 12; 16-bit RGBA PNG: 8; MCU-padded JPEG planes
// fit in the slack).
constexpr size_t kBytesPerPixelCap = 16;

// The container, from the magic bytes, for error messages only (stb decides).
const char *sniff_format(const uint8_t *p, size_t n) {
    auto starts = [&](const char *magic) {
        const size_t m = std::strlen(magic);
        return n >= m && std::memcmp(p, magic, m) == 0;
    };
    if (starts("\x89PNG")) return "PNG";
    if (n >= 2 && p[0] == 0xFF && p[1] == 0xD8) return "JPEG";
    if (starts("GIF8")) return "GIF";
    if (starts("BM")) return "BMP";
    if (starts("8BPS")) return "PSD";
    if (starts("#?RADIANCE") || starts("#?RGBE")) return "HDR";
    if (starts("P5") || starts("P6")) return "PNM";
    return nullptr;
}

uint32_t be32(const uint8_t *p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint32_t le32(const uint8_t *p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }
uint16_t le16(const uint8_t *p) { return uint16_t(p[1] << 8 | p[0]); }

// The PNM header as stbi__pnm_info reads it (same whitespace, comment and
// end-of-buffer rules), but with saturating numbers: stb 2.27 accumulates the
// decimal digits in an int and overflows (undefined behaviour) on long ones.
bool peek_pnm(const uint8_t *p, size_t n, int64_t *w, int64_t *h) {
    size_t i = 2;  // after "P5" / "P6"
    auto at_eof = [&] { return i >= n; };
    auto get8 = [&]() -> char { return i < n ? char(p[i++]) : 0; };
    auto is_space = [](char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); };
    char c = get8();
    auto skip_whitespace = [&] {
        for (;;) {
            while (!at_eof() && is_space(c)) c = get8();
            if (at_eof() || c != '#') break;
            while (!at_eof() && c != '\n' && c != '\r') c = get8();
        }
    };
    auto integer = [&]() -> int64_t {
        int64_t v = 0;
        while (!at_eof() && c >= '0' && c <= '9') {
            v = std::min<int64_t>(v * 10 + (c - '0'), int64_t(1) << 40);
            c = get8();
        }
        return v;
    };
    skip_whitespace();
    *w = integer();
    skip_whitespace();
    *h = integer();
    skip_whitespace();
    const int64_t maxv = integer();
    if (maxv > 65535) fail(MUSE_ERR_FORMAT, "corrupt PNM header: maximum value ", maxv, " (at most 65535)");
    return true;
}

// The dimensions stated by PNG, GIF, BMP, PSD and PNM headers. stb refuses some
// oversized headers itself, with a generic message (and overflows on others);
// reading the size first lets the limit error name the size.
bool peek_size(const uint8_t *p, size_t n, const char *format, int64_t *w, int64_t *h) {
    if (!format) return false;
    const std::string_view f = format;
    if (f == "PNM") return peek_pnm(p, n, w, h);
    if (f == "PNG" && n >= 24 && std::memcmp(p + 12, "IHDR", 4) == 0) {
        *w = be32(p + 16);
        *h = be32(p + 20);
        return true;
    }
    if (f == "GIF" && n >= 10) {
        *w = le16(p + 6);
        *h = le16(p + 8);
        return true;
    }
    if (f == "BMP" && n >= 26) {
        if (le32(p + 14) == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
            *w = le16(p + 18);
            *h = le16(p + 20);
        } else {  // a negative height means top-down rows
            *w = int32_t(le32(p + 18));
            *h = std::abs(int64_t(int32_t(le32(p + 22))));
        }
        return true;
    }
    if (f == "PSD" && n >= 22) {
        *h = be32(p + 14);
        *w = be32(p + 18);
        return true;
    }
    return false;
}

const char *stb_reason() {
    const char *r = stbi_failure_reason();
    return r && *r ? r : "unknown error";
}

struct StbFree {
    void operator()(unsigned char *p) const noexcept { stbi_image_free(p); }
};

} // namespace

Image decode_image(const void *data, size_t size, const ImageLoadOptions &options) {
    if (!data && size > 0) fail(MUSE_ERR_INVALID_ARGUMENT, "image data is NULL");
    if (size == 0) fail(MUSE_ERR_FORMAT, "the image data is empty (0 bytes)");
    if (size > size_t(INT_MAX))
        fail(MUSE_ERR_OUT_OF_RANGE, "the encoded image is ", size, " bytes; at most ", INT_MAX, " are supported");
    const auto *bytes = static_cast<const uint8_t *>(data);
    const int len = static_cast<int>(size);
    const char *format = sniff_format(bytes, size);

    int64_t pw = 0, ph = 0;
    if (peek_size(bytes, size, format, &pw, &ph))
        check_image_size(pw, ph, options.max_pixels, MUSE_ERR_FORMAT, str_cat("the ", format, " header").c_str());

    int w = 0, h = 0, comp = 0;
    {
        AllocCap cap(kHeaderAllocCap);
        if (!stbi_info_from_memory(bytes, len, &w, &h, &comp)) {
            if (format)
                fail(MUSE_ERR_FORMAT, "corrupt or unsupported ", format, " header (", stb_reason(), ")");
            fail(MUSE_ERR_FORMAT, "not a supported image (", stb_reason(),
                 "); muse reads PNG, JPEG, BMP, GIF, TGA, PNM (P5/P6), PSD and HDR");
        }
    }
    check_image_size(w, h, options.max_pixels, MUSE_ERR_FORMAT, "the image (from its header)");
    if (comp < 1 || comp > 4) fail(MUSE_ERR_FORMAT, "the image header reports ", comp, " channels");

    std::unique_ptr<unsigned char, StbFree> pixels;
    int ow = 0, oh = 0, file_comp = 0;
    {
        AllocCap cap(kBytesPerPixelCap * size_t(w) * size_t(h) + kHeaderAllocCap);
        // Asking for the header's channel count keeps gray gray and alpha alpha;
        // image_from_pixels then expands and composites exactly once.
        pixels.reset(stbi_load_from_memory(bytes, len, &ow, &oh, &file_comp, comp));
        if (!pixels) {
            if (t_alloc_refused)
                fail(MUSE_ERR_FORMAT, "decoding the ", w, "x", h, " ", format ? format : "image",
                     " needed more memory than its size allows (corrupt data or a decompression bomb)");
            fail(MUSE_ERR_FORMAT, "cannot decode the ", format ? format : "image", ": ", stb_reason());
        }
    }
    if (ow != w || oh != h)
        fail(MUSE_ERR_FORMAT, "the image header says ", w, "x", h, " but its data decodes to ", ow, "x", oh);
    return image_from_pixels(pixels.get(), w, h, comp, 0);
}

Image load_image_file(const std::string &path, const ImageLoadOptions &options) {
    // pread, not mmap: a file truncated while mapped would raise SIGBUS.
    auto src = open_file_source(path, /*use_mmap=*/false);
    if (src->size() == 0) fail(MUSE_ERR_FORMAT, "'", path, "' is empty");
    if (src->size() > uint64_t(INT_MAX))
        fail(MUSE_ERR_OUT_OF_RANGE, "'", path, "' is ", src->size(), " bytes; images of at most ", INT_MAX,
             " bytes are supported");
    std::vector<uint8_t> bytes(static_cast<size_t>(src->size()));
    src->read(0, bytes.data(), bytes.size());
    try {
        return decode_image(bytes.data(), bytes.size(), options);
    } catch (const Error &e) {
        throw Error(e.status(), str_cat("'", path, "': ", e.what()));
    }
}

} // namespace muse
