#include "vision/vision-encoder.h"

#include "core/error.h"

namespace muse {

std::unique_ptr<VisionEncoder> VisionEncoder::load(const gguf::File &file, Backend &backend) {
    const std::string type = read_projector_type(file);
    std::unique_ptr<VisionEncoder> encoder;
    if (type == "muse-glimmer") encoder = make_muse_glimmer_vision(file, backend);
    else if (type == "mlp") encoder = make_clip_mlp_vision(file, backend);
    else if (type == "idefics3") encoder = make_idefics3_vision(file, backend);
    if (encoder) {
        encoder->reader_.commit_weights();
        return encoder;
    }
    fail(MUSE_ERR_UNSUPPORTED, "mmproj: projector type '", type,
         "' is not supported (muse supports: muse-glimmer, mlp, idefics3)");
}

int VisionEncoder::square_patch_grid() const {
    if (hp_.image_size % hp_.patch_size != 0)
        fail(MUSE_ERR_FORMAT, "mmproj: image_size ", hp_.image_size, " is not a multiple of patch_size ", hp_.patch_size);
    const int grid = hp_.image_size / hp_.patch_size;
    if (int64_t(grid) * grid > kMaxPatches)
        fail(MUSE_ERR_FORMAT, "mmproj: image_size ", hp_.image_size, " makes more than ", kMaxPatches, " patches");
    return grid;
}

std::vector<float> VisionEncoder::encode(const float *planar_rgb, int width, int height) const {
    if (!planar_rgb) fail(MUSE_ERR_INVALID_ARGUMENT, "vision encode: no image data");
    const int64_t n_tok = n_output_tokens(width, height);  // validates the size first
    Arena ar(be_);
    Graph g(be_);
    // Embeddings tolerate BF16 products (1e-2 relative of the F32 pass, tests/python/test_vision_bf16.py);
    // backends without fast BF16, or MUSE_VISION_BF16=0, compute in F32.
    g.allow_bf16(true);
    const Tensor img = ar.f32(width, height, 3);
    g.input(img, planar_rgb, static_cast<size_t>(width) * static_cast<size_t>(height) * 3 * 4);
    const Tensor out = forward(ar, g, img);
    if (out.ne[0] != hp_.n_embd_out || out.n_rows() != n_tok)
        fail(MUSE_ERR_INTERNAL, "vision encode produced [", out.ne[0], ",", out.n_rows(), "], expected [",
             hp_.n_embd_out, ",", n_tok, "]");
    be_.compute(g);
    std::vector<float> result(static_cast<size_t>(n_tok * hp_.n_embd_out));
    be_.download(out, result.data(), result.size() * 4);
    return result;
}

} // namespace muse
