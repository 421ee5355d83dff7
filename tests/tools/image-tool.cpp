// image-tool JOBS.json RESULTS.json — runs image jobs for the Python tests,
// which compare muse's resizing and preprocessing with Pillow / numpy
// references (tests/python/test_image_pillow.py). Internal only: the public ABI
// exposes decoding, not these stages.
//
// JOBS.json is an array of objects; each has "op" and writes its result object
// (same index) to RESULTS.json. Raw inputs/outputs are files of interleaved
// uint8 RGB (".rgb") or little-endian float32 (".f32").
//   {"op": "resize", "input", "width", "height", "channels", "out_width", "out_height", "filter", "output",
//    "order": "hfirst" (default) | "pillow13"}
//   {"op": "bilinear_f32", "input", "width", "height", "channels", "out_width", "out_height", "output"}
//   {"op": "decode", "input" (an encoded file), "output"}             -> width, height
//   {"op": "glimmer_grid", "width", "height", "patch_size", "merge", "max_tokens"} -> nw, nh
//   {"op": "idefics3_sizes", "width", "height", "longest_edge", "tile"} -> resized_w/h, tiled_w/h
//   {"op": "glimmer" | "clip" | "idefics3", "input", "width", "height", "params": {...}, "output"}
//       (params: patch_size, merge, max_tokens, image_size, longest_edge, mean, std,
//        clip_resize "pad" | "crop" | "stretch", order "hfirst" | "pillow13")
//       -> the planar float tensors concatenated in "output" (Idefics3: tiles then
//          global) and their sizes in "tensors": [[w, h], ...] (+ nw/nh, rows/cols)
// A failed job gives {"error": message, "status": "MUSE_ERR_..."}.
#include "core/error.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "image/resample-float.h"
#include "image/resize.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

using namespace muse;
using json = nlohmann::json;

namespace {

std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(MUSE_ERR_IO, "cannot read ", path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string &path, const void *data, size_t n) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char *>(data), std::streamsize(n));
    if (!f) fail(MUSE_ERR_IO, "cannot write ", path);
}

Image read_rgb(const json &job) {
    Image img;
    img.width = job.at("width");
    img.height = job.at("height");
    img.rgb = read_bytes(job.at("input"));
    if (img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
        fail(MUSE_ERR_INVALID_ARGUMENT, job.at("input").get<std::string>(), " does not hold ", img.width, "x",
             img.height, " RGB pixels");
    return img;
}

PassOrder read_order(const json &j) {
    const std::string o = j.value("order", "hfirst");
    if (o == "hfirst") return PassOrder::HorizontalFirst;
    if (o == "pillow13") return PassOrder::Pillow13;
    fail(MUSE_ERR_INVALID_ARGUMENT, "unknown pass order '", o, "'");
}

PreprocessParams read_params(const json &j) {
    PreprocessParams p;
    p.patch_size = j.value("patch_size", p.patch_size);
    p.merge = j.value("merge", p.merge);
    p.max_tokens = j.value("max_tokens", p.max_tokens);
    p.image_size = j.value("image_size", p.image_size);
    p.longest_edge = j.value("longest_edge", p.longest_edge);
    p.pass_order = read_order(j);
    const std::string mode = j.value("clip_resize", "pad");
    p.clip_resize = mode == "pad"    ? ClipResize::PadToSquare
                    : mode == "crop" ? ClipResize::ShortestEdgeCenterCrop
                                     : ClipResize::Stretch;
    for (int c = 0; c < 3; ++c) {
        if (j.contains("mean")) p.mean[c] = j["mean"].at(size_t(c)).get<float>();
        if (j.contains("std")) p.std[c] = j["std"].at(size_t(c)).get<float>();
    }
    return p;
}

// Appends tensors to the output file and records their sizes.
void write_tensors(const json &job, const std::vector<const ImageTensor *> &ts, json &out) {
    std::vector<float> all;
    json sizes = json::array();
    for (const ImageTensor *t : ts) {
        all.insert(all.end(), t->data.begin(), t->data.end());
        sizes.push_back({t->width, t->height});
    }
    write_bytes(job.at("output"), all.data(), all.size() * sizeof(float));
    out["tensors"] = sizes;
}

json run(const json &job) {
    const std::string op = job.at("op");
    json out = json::object();
    if (op == "resize") {
        const int w = job.at("width"), h = job.at("height"), ch = job.value("channels", 3);
        const int ow = job.at("out_width"), oh = job.at("out_height");
        const auto src = read_bytes(job.at("input"));
        if (src.size() != size_t(w) * size_t(h) * size_t(ch)) fail(MUSE_ERR_INVALID_ARGUMENT, "input size mismatch");
        std::vector<uint8_t> dst(size_t(ow) * size_t(oh) * size_t(ch));
        resize_u8(src.data(), w, h, ch, dst.data(), ow, oh,
                  parse_resample_filter(job.at("filter").get<std::string>().c_str()), read_order(job));
        write_bytes(job.at("output"), dst.data(), dst.size());
    } else if (op == "bilinear_f32") {
        const int w = job.at("width"), h = job.at("height"), ch = job.at("channels");
        const auto raw = read_bytes(job.at("input"));
        if (raw.size() != size_t(w) * size_t(h) * size_t(ch) * sizeof(float))
            fail(MUSE_ERR_INVALID_ARGUMENT, "input size mismatch");
        std::vector<float> src(raw.size() / sizeof(float));
        std::memcpy(src.data(), raw.data(), raw.size());
        const auto dst = resize_bilinear_f32(src.data(), w, h, ch, job.at("out_width"), job.at("out_height"));
        write_bytes(job.at("output"), dst.data(), dst.size() * sizeof(float));
    } else if (op == "decode") {
        ImageLoadOptions o;
        o.max_pixels = job.value("max_pixels", o.max_pixels);
        const Image img = load_image_file(job.at("input"), o);
        write_bytes(job.at("output"), img.rgb.data(), img.rgb.size());
        out["width"] = img.width;
        out["height"] = img.height;
    } else if (op == "glimmer_grid") {
        const GlimmerGrid g = glimmer_grid_size(job.at("width"), job.at("height"), job.at("patch_size"),
                                                job.at("merge"), job.at("max_tokens"));
        out["nw"] = g.nw;
        out["nh"] = g.nh;
    } else if (op == "idefics3_sizes") {
        int rw, rh, tw, th;
        idefics3_sizes(job.at("width"), job.at("height"), job.at("longest_edge"), job.at("tile"), &rw, &rh, &tw, &th);
        out["resized"] = {rw, rh};
        out["tiled"] = {tw, th};
    } else if (op == "glimmer") {
        const GlimmerInput in = preprocess_muse_glimmer(read_rgb(job), read_params(job.at("params")));
        write_tensors(job, {&in.image}, out);
        out["nw"] = in.grid.nw;
        out["nh"] = in.grid.nh;
    } else if (op == "clip") {
        const ImageTensor t = preprocess_clip(read_rgb(job), read_params(job.at("params")));
        write_tensors(job, {&t}, out);
    } else if (op == "idefics3") {
        const Idefics3Input in = preprocess_idefics3(read_rgb(job), read_params(job.at("params")));
        std::vector<const ImageTensor *> ts;
        for (const auto &t : in.tiles) ts.push_back(&t);
        ts.push_back(&in.global);
        write_tensors(job, ts, out);
        out["rows"] = in.rows;
        out["cols"] = in.cols;
    } else {
        fail(MUSE_ERR_INVALID_ARGUMENT, "unknown op '", op, "'");
    }
    return out;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: image-tool JOBS.json RESULTS.json\n";
        return 2;
    }
    json jobs;
    try {
        std::ifstream f(argv[1]);
        jobs = json::parse(f);
    } catch (const std::exception &e) {
        std::cerr << "image-tool: cannot parse " << argv[1] << ": " << e.what() << "\n";
        return 2;
    }
    json results = json::array();
    for (const auto &job : jobs) {
        try {
            results.push_back(run(job));
        } catch (const Error &e) {
            results.push_back({{"error", e.what()}, {"status", muse_status_name(e.status())}});
        } catch (const std::exception &e) {
            results.push_back({{"error", e.what()}, {"status", "MUSE_ERR_INTERNAL"}});
        }
    }
    std::ofstream(argv[2]) << results.dump();
    return 0;
}
