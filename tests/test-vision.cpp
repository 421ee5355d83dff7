// Vision encoders: the mmproj loader's errors, token counts and output shapes, the
// layout helpers (window permutation, block-diagonal mask, patch-merge gather), the
// vision backend ops against plain references, and the zoom tool's view end to end. Numerical parity of whole encoders with
// independent references is in tests/python/test_vision.py.
#include "backends/backend.h"
#include "backends/cpu/cpu-bf16-matmul.h"
#include "backends/graph.h"
#include "core/error.h"
#include "gguf/gguf-writer.h"
#include "multimodal/image-embedder.h"
#include "tools/builtin-tools.h"
#include "vision/patch-layout.h"
#include "vision/vision-encoder.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <tuple>

using namespace muse;

namespace {

// ---- a tiny mmproj written with the project's GGUF writer --------------------------------

struct MiniSpec {
    std::string projector = "muse-glimmer";
    int64_t n_embd = 16, n_layer = 2, n_head = 2, n_ff = 24, n_out = 8;
    int patch = 2, image_size = 8, grid = 3, merge = 2;  // grid: muse-glimmer G (table G*G rows)
    bool class_token = false;
    std::set<std::string> skip;                          // keys / tensors left out
    std::map<std::string, std::vector<int64_t>> shape;   // tensors written with another shape
    std::function<void(gguf::Writer &)> extra_keys;
};

std::vector<uint8_t> mini_mmproj(const MiniSpec &s) {
    gguf::Writer w;
    auto key = [&](const std::string &k, const std::function<void()> &set) {
        if (!s.skip.count(k)) set();
    };
    key("general.architecture", [&] { w.set_string("general.architecture", "clip"); });
    key("clip.has_vision_encoder", [&] { w.set_bool("clip.has_vision_encoder", true); });
    key("clip.projector_type", [&] { w.set_string("clip.projector_type", s.projector); });
    key("clip.vision.embedding_length", [&] { w.set_u32("clip.vision.embedding_length", uint32_t(s.n_embd)); });
    key("clip.vision.feed_forward_length", [&] { w.set_u32("clip.vision.feed_forward_length", uint32_t(s.n_ff)); });
    key("clip.vision.block_count", [&] { w.set_u32("clip.vision.block_count", uint32_t(s.n_layer)); });
    key("clip.vision.attention.head_count", [&] { w.set_u32("clip.vision.attention.head_count", uint32_t(s.n_head)); });
    key("clip.vision.attention.layer_norm_epsilon",
        [&] { w.set_f32("clip.vision.attention.layer_norm_epsilon", 1e-6f); });
    key("clip.vision.image_size", [&] { w.set_u32("clip.vision.image_size", uint32_t(s.image_size)); });
    key("clip.vision.patch_size", [&] { w.set_u32("clip.vision.patch_size", uint32_t(s.patch)); });
    key("clip.vision.image_mean", [&] { w.set_array_f32("clip.vision.image_mean", {0.5f, 0.5f, 0.5f}); });
    key("clip.vision.image_std", [&] { w.set_array_f32("clip.vision.image_std", {0.5f, 0.5f, 0.5f}); });
    if (s.projector == "idefics3")
        key("clip.vision.projector.scale_factor",
            [&] { w.set_u32("clip.vision.projector.scale_factor", uint32_t(s.merge)); });
    if (s.extra_keys) s.extra_keys(w);

    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 0.3f);
    auto tensor = [&](const std::string &name, std::vector<int64_t> ne) {
        if (s.skip.count(name)) return;
        if (auto it = s.shape.find(name); it != s.shape.end()) ne = it->second;
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        std::vector<float> x(static_cast<size_t>(n));
        for (float &v : x) v = nd(rng);
        w.add_tensor_f32(name, GgmlType::F32, ne, x.data());
    };
    const int64_t e = s.n_embd, ps = s.patch, f2 = int64_t(s.merge) * s.merge;
    const int64_t g = s.image_size / s.patch;
    tensor("v.patch_embd.weight", {ps, ps, 3, e});
    tensor("v.patch_embd.bias", {e});
    const int64_t n_pos = s.projector == "muse-glimmer" ? int64_t(s.grid) * s.grid : g * g + (s.class_token ? 1 : 0);
    tensor("v.position_embd.weight", {e, n_pos});
    if (s.class_token) tensor("v.class_embd", {e});
    tensor("v.pre_ln.weight", {e});
    tensor("v.post_ln.weight", {e});
    for (int64_t il = 0; il < s.n_layer; ++il) {
        const std::string p = "v.blk." + std::to_string(il) + ".";
        for (const char *n : {"ln1.weight", "ln2.weight"}) tensor(p + n, {e});
        for (const char *n : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_out.weight"})
            tensor(p + n, {e, e});
        tensor(p + "ffn_up.weight", {e, s.n_ff});
        tensor(p + "ffn_down.weight", {s.n_ff, e});
    }
    if (s.projector == "muse-glimmer") {
        tensor("mm.0.weight", {f2 * e, 12});
        tensor("mm.1.weight", {12, 10});
        tensor("mm.2.weight", {10, s.n_out});
    } else if (s.projector == "mlp") {
        tensor("mm.0.weight", {e, 12});
        tensor("mm.0.bias", {12});
        tensor("mm.2.weight", {12, s.n_out});
        tensor("mm.2.bias", {s.n_out});
    } else if (s.projector == "idefics3") {
        tensor("mm.model.fc.weight", {f2 * e, s.n_out});
    }
    return w.to_bytes();
}

struct Loaded {
    std::vector<uint8_t> bytes;
    std::unique_ptr<gguf::File> file;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<VisionEncoder> enc;
};

Loaded load(const MiniSpec &s) {
    Loaded l;
    l.bytes = mini_mmproj(s);
    l.file = gguf::File::from_memory(l.bytes.data(), l.bytes.size(), gguf::OpenOptions{});
    l.backend = make_backend(MUSE_BACKEND_CPU, 2);
    l.enc = VisionEncoder::load(*l.file, *l.backend);
    return l;
}

// Loading fails with this status and a message containing `needle`.
void expect_load_error(const MiniSpec &s, muse_status status, const std::string &needle) {
    try {
        load(s);
        FAIL("loaded without error; expected: " << needle);
    } catch (const Error &e) {
        INFO(e.what());
        CHECK(e.status() == status);
        CHECK_THAT(e.what(), Catch::Contains(needle));
    }
}

muse_status status_of(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const Error &e) {
        return e.status();
    }
    return MUSE_OK;
}

// ---- host tensors for op tests ------------------------------------------------------------

struct Host {
    std::unique_ptr<Backend> be = make_backend(MUSE_BACKEND_CPU, 2);
    std::vector<std::unique_ptr<Buffer>> buffers;
    Tensor f32(int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
        buffers.push_back(be->alloc(static_cast<size_t>(ne0 * ne1 * ne2) * 4));
        Tensor t;
        t.ne[0] = ne0;
        t.ne[1] = ne1;
        t.ne[2] = ne2;
        t.buffer = buffers.back().get();
        return t;
    }
    Tensor with(const std::vector<float> &v, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
        Tensor t = f32(ne0, ne1, ne2);
        REQUIRE(v.size() == static_cast<size_t>(ne0 * ne1 * ne2));
        be->upload(t, v.data(), v.size() * 4);
        return t;
    }
    std::vector<float> get(const Tensor &t) {
        std::vector<float> v(static_cast<size_t>(t.n_elements()));
        be->download(t, v.data(), v.size() * 4);
        return v;
    }
    // Records ops into a one-off graph and runs it.
    template <class F>
    void run(F &&record) {
        Graph g(*be);
        record(g);
        be->compute(g);
    }
};

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (float &x : v) x = nd(rng);
    return v;
}

double max_rel(const std::vector<float> &a, const std::vector<float> &b) {
    REQUIRE(a.size() == b.size());
    double d = 0, m = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        d = std::max(d, std::fabs(double(a[i]) - b[i]));
        m = std::max(m, std::fabs(double(b[i])));
    }
    return d / m;
}

} // namespace

// ---- layout helpers ------------------------------------------------------------------------

TEST_CASE("window layout follows MUSE_GLIMMER.md §2.4 on a partial grid", "[vision]") {
    // A 5 x 3 patch grid in 2 x 2 windows: windows row-major, patches row-major inside,
    // edge windows partial (worked out by hand from the spec's loops).
    const WindowLayout l = window_layout(5, 3, 2);
    CHECK(l.perm == std::vector<int32_t>{0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14});
    CHECK(l.windows == std::vector<int32_t>{4, 4, 2, 2, 2, 1});
    for (size_t i = 0; i < l.perm.size(); ++i) {
        CHECK(l.inv_perm[static_cast<size_t>(l.perm[i])] == static_cast<int32_t>(i));
        CHECK(l.pos_w[i] == l.perm[i] % 5 + 1);  // 1-indexed, width = column
        CHECK(l.pos_h[i] == l.perm[i] / 5 + 1);
    }
    CHECK(l.pos_w[2] == 1);  // slot 2 is patch 5: column 0, row 1
    CHECK(l.pos_h[2] == 2);
    // Windows larger than the grid: one partial window.
    const WindowLayout one = window_layout(3, 2, 32);
    CHECK(one.windows == std::vector<int32_t>{6});
    CHECK(one.perm == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
    CHECK(status_of([] { window_layout(0, 3, 2); }) == MUSE_ERR_INVALID_ARGUMENT);
}

TEST_CASE("patch-merge gather: sub-positions row-major, padding marked -1", "[vision]") {
    CHECK(merge_gather(4, 2, 2) == std::vector<int32_t>{0, 1, 4, 5, 2, 3, 6, 7});
    CHECK(merge_gather(3, 3, 2) == std::vector<int32_t>{0, 1, 3, 4, 2, -1, 5, -1, 6, 7, -1, -1, 8, -1, -1, -1});
    CHECK(merge_gather(3, 3, 3) == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
}

// ---- vision backend ops against plain references -------------------------------------------

TEST_CASE("patches is im2col in the conv kernel's order", "[vision][ops]") {
    Host h;
    const int W = 6, H = 4, p = 2;
    const std::vector<float> img = randn(size_t(W * H * 3), 1);
    const Tensor t = h.with(img, W, H, 3), out = h.f32(p * p * 3, (W / p) * (H / p));
    h.run([&](Graph &g) { g.patches(t, p, out); });
    const std::vector<float> got = h.get(out);
    for (int py = 0; py < H / p; ++py)
        for (int px = 0; px < W / p; ++px)
            for (int c = 0; c < 3; ++c)
                for (int ky = 0; ky < p; ++ky)
                    for (int kx = 0; kx < p; ++kx)
                        CHECK(got[size_t((py * (W / p) + px) * p * p * 3 + (c * p + ky) * p + kx)] ==
                              img[size_t(c * W * H + (py * p + ky) * W + px * p + kx)]);
    CHECK(status_of([&] { h.run([&](Graph &g) { g.patches(h.f32(5, 4, 3), 2, out); }); }) == MUSE_ERR_INTERNAL);
}

TEST_CASE("resize_bilinear: half-pixel centres, clamped edges", "[vision][ops]") {
    Host h;
    // 1 channel, 2 x 1 -> 4 x 1: s = (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25.
    const Tensor up = h.f32(1, 4, 1);
    h.run([&](Graph &g) { g.resize_bilinear(h.with({10.0f, 20.0f}, 1, 2, 1), up); });
    CHECK(h.get(up) == std::vector<float>{10.0f, 12.5f, 17.5f, 20.0f});
    // 4 x 1 -> 2 x 1 (no antialiasing): s = 0.5, 2.5 -> means of neighbours.
    const Tensor down = h.f32(1, 2, 1);
    h.run([&](Graph &g) { g.resize_bilinear(h.with({0.0f, 2.0f, 4.0f, 8.0f}, 1, 4, 1), down); });
    CHECK(h.get(down) == std::vector<float>{1.0f, 6.0f});
    // Same size: identity; x and y with several channels against the formula.
    const int C = 3, wi = 3, hi = 4, wo = 5, ho = 2;
    const std::vector<float> src = randn(size_t(C * wi * hi), 2);
    const Tensor same = h.f32(C, wi, hi);
    h.run([&](Graph &g) { g.resize_bilinear(h.with(src, C, wi, hi), same); });
    CHECK(h.get(same) == src);
    const Tensor out = h.f32(C, wo, ho);
    h.run([&](Graph &g) { g.resize_bilinear(h.with(src, C, wi, hi), out); });
    const std::vector<float> got = h.get(out);
    auto tap = [](int d, int in, int outn, int *i0, int *i1, double *fr) {
        const double s = (d + 0.5) * in / outn - 0.5;
        const int fl = static_cast<int>(std::floor(s));
        *i0 = std::clamp(fl, 0, in - 1);
        *i1 = std::clamp(fl + 1, 0, in - 1);
        *fr = std::clamp(s - fl, 0.0, 1.0);
    };
    for (int y = 0; y < ho; ++y)
        for (int x = 0; x < wo; ++x) {
            int x0, x1, y0, y1;
            double fx, fy;
            tap(x, wi, wo, &x0, &x1, &fx);
            tap(y, hi, ho, &y0, &y1, &fy);
            for (int c = 0; c < C; ++c) {
                auto v = [&](int yy, int xx) { return double(src[size_t((yy * wi + xx) * C + c)]); };
                const double want = (1 - fy) * ((1 - fx) * v(y0, x0) + fx * v(y0, x1)) +
                                    fy * ((1 - fx) * v(y1, x0) + fx * v(y1, x1));
                CHECK(got[size_t((y * wo + x) * C + c)] == Approx(want).margin(1e-6));
            }
        }
}

TEST_CASE("rope_2d: width on the first half, height on the second", "[vision][ops]") {
    Host h;
    const int hd = 8, heads = 2, n = 3;
    const std::vector<float> x = randn(size_t(hd * heads * n), 3);
    const std::vector<int32_t> pa = {1, 2, 7}, pb = {3, 1, 5};
    const Tensor t = h.with(x, hd, heads, n);
    h.run([&](Graph &g) { g.rope_2d(t, g.input_i32(pa), g.input_i32(pb), 10000.0f); });
    const std::vector<float> got = h.get(t);
    for (int tok = 0; tok < n; ++tok)
        for (int hh = 0; hh < heads; ++hh)
            for (int part = 0; part < 2; ++part)
                for (int i = 0; i < hd / 4; ++i) {
                    const double theta = (part ? pb : pa)[size_t(tok)] * std::pow(10000.0, -2.0 * i / (hd / 2));
                    const size_t a = size_t((tok * heads + hh) * hd + part * hd / 2 + 2 * i);
                    CHECK(got[a] == Approx(x[a] * std::cos(theta) - x[a + 1] * std::sin(theta)).margin(1e-6));
                    CHECK(got[a + 1] == Approx(x[a] * std::sin(theta) + x[a + 1] * std::cos(theta)).margin(1e-6));
                }
}

TEST_CASE("activation functions match their definitions", "[vision][ops]") {
    Host h;
    const std::vector<float> x = {-4.0f, -1.5f, -0.3f, 0.0f, 0.2f, 1.0f, 2.5f, 6.0f};
    const double k = std::sqrt(2.0 / M_PI);
    const std::vector<std::pair<Activation, std::function<double(double)>>> fns = {
        {Activation::GeluErf, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
        {Activation::GeluTanh, [k](double v) { return 0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v))); }},
        {Activation::GeluQuick, [](double v) { return v / (1 + std::exp(-1.702 * v)); }},
        {Activation::Silu, [](double v) { return v / (1 + std::exp(-v)); }},
    };
    // A vector long enough for the SIMD paths and their tails, with the edge points above.
    std::vector<float> xs = randn(1000, 13, 3.0f);
    xs.insert(xs.end(), x.begin(), x.end());
    for (const auto &[a, fn] : fns) {
        const Tensor t = h.with(xs, static_cast<int64_t>(xs.size()));
        h.run([&](Graph &g) { g.activation(t, a); });
        const std::vector<float> got = h.get(t);
        for (size_t i = 0; i < xs.size(); ++i)
            CHECK(got[i] == Approx(fn(xs[i])).margin(1e-6 * std::max(1.0f, std::fabs(xs[i]))));
    }
    CHECK(status_of([&] { h.run([&](Graph &g) { g.activation(h.with(x, 8), static_cast<Activation>(99)); }); }) == MUSE_ERR_INTERNAL);
}

TEST_CASE("transpose swaps the first two axes", "[vision][ops]") {
    Host h;
    const std::vector<float> x = randn(4 * 3 * 2, 4);
    const Tensor out = h.f32(3, 4, 2);
    h.run([&](Graph &g) { g.transpose(h.with(x, 4, 3, 2), out); });
    const std::vector<float> got = h.get(out);
    for (int n = 0; n < 2; ++n)
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 4; ++i) CHECK(got[size_t(n * 12 + i * 3 + j)] == x[size_t(n * 12 + j * 4 + i)]);
}

TEST_CASE("attention_windows equals gathered attention over each token's window", "[vision][ops]") {
    Host h;
    // Windows of uneven sizes (one longer than the 128-row query block), GQA 4 -> 2.
    const std::vector<std::vector<int32_t>> cases = {{5, 3, 1, 7}, {16}, {150, 40}, {1, 1, 1}};
    for (const auto &windows : cases) {
        const int hd = 8, heads = 4, kv_heads = 2;
        int n = 0;
        for (int32_t s : windows) n += s;
        INFO("n = " << n);
        const Tensor q = h.with(randn(size_t(hd * heads * n), 5, 2.0f), hd, heads, n);
        const Tensor k = h.with(randn(size_t(hd * kv_heads * n), 6, 2.0f), hd * kv_heads, n);
        const Tensor v = h.with(randn(size_t(hd * kv_heads * n), 7), hd * kv_heads, n);
        // Every token of a run reads exactly the cells of its run.
        std::vector<int32_t> cells(static_cast<size_t>(n)), begin, end;
        for (int i = 0; i < n; ++i) cells[size_t(i)] = i;
        int at = 0;
        for (int32_t s : windows) {
            for (int i = 0; i < s; ++i) {
                begin.push_back(at);
                end.push_back(at + s);
            }
            at += s;
        }
        const Tensor want = h.f32(hd * heads, n), got = h.f32(hd * heads, n);
        h.run([&](Graph &g) {
            g.attention(q, k, v, KvRanges{g.input_i32(cells), g.input_i32(begin), g.input_i32(end)}, kv_heads, 0.3f, want);
            g.attention_windows(q, k, v, g.input_i32(windows), kv_heads, 0.3f, got);
        });
        CHECK(max_rel(h.get(got), h.get(want)) < 1e-5);
    }
    const std::vector<int32_t> bad = {3, 3};
    const Tensor q = h.f32(8, 4, 5), kv = h.f32(16, 5), out = h.f32(32, 5);
    CHECK(status_of([&] { h.run([&](Graph &g) { g.attention_windows(q, kv, kv, g.input_i32(bad), 2, 1.0f, out); }); }) == MUSE_ERR_INTERNAL);
}

TEST_CASE("attention_windows with BF16 allowed stays near the F32 result, or equals it", "[vision][ops]") {
    // The real tower's head dim (64), GQA 4 -> 2, windows longer and shorter than the 128-row
    // query block. Where the CPU backend honours the hint, q, k, v and the softmax weights are
    // rounded to BF16 (2^-9 relative each) with F32 sums and an F32 softmax: the scores (sd ~1
    // here) move by a few 1e-3, the weights by as much again, so the output stays within 2e-2 of
    // its largest value (measured 4.5e-3), and must differ from F32 (the BF16 path did run).
    // Elsewhere the hint is ignored and the bits are F32's.
    Host h;
    const int hd = 64, heads = 4, kv_heads = 2;
    const std::vector<int32_t> windows = {150, 40, 200};
    const int n = 390;
    const Tensor q = h.with(randn(size_t(hd * heads * n), 15), hd, heads, n);
    const Tensor k = h.with(randn(size_t(hd * kv_heads * n), 16), hd * kv_heads, n);
    const Tensor v = h.with(randn(size_t(hd * kv_heads * n), 17), hd * kv_heads, n);
    const Tensor f32 = h.f32(hd * heads, n), bf16 = h.f32(hd * heads, n);
    const float scale = 1.0f / 8.0f;
    h.run([&](Graph &g) { g.attention_windows(q, k, v, g.input_i32(windows), kv_heads, scale, f32); });
    h.run([&](Graph &g) {
        g.allow_bf16(true);
        g.attention_windows(q, k, v, g.input_i32(windows), kv_heads, scale, bf16);
    });
    const double err = max_rel(h.get(bf16), h.get(f32));
    INFO("BF16 vs F32: " << err);
    if (cpu::bf16_matmul_available()) {
        CHECK(err > 0.0);
        CHECK(err < 2e-2);
    } else {
        CHECK(err == 0.0);
    }
}

// ---- loading -------------------------------------------------------------------------------

TEST_CASE("the three families load and report their shapes and token counts", "[vision]") {
    SECTION("muse-glimmer") {
        auto l = load(MiniSpec{});
        const VisionHParams &hp = l.enc->hparams();
        CHECK(hp.projector == "muse-glimmer");
        CHECK(hp.pos_grid == 3);
        CHECK(hp.n_merge == 2);  // spatial_merge_size absent: default 2
        CHECK(hp.ffn_act == Activation::GeluErf);
        CHECK(hp.n_embd_out == 8);
        CHECK(l.enc->n_output_tokens(8, 12) == 2 * 3);  // (W / (ps·merge)) · (H / (ps·merge))
        const std::vector<float> img = randn(size_t(8 * 12 * 3), 8);
        const std::vector<float> emb = l.enc->encode(img.data(), 8, 12);
        CHECK(emb.size() == 6 * 8);
        for (float v : emb) CHECK(std::isfinite(v));
        // Sizes it cannot take, named; the patch cap bounds hostile sizes.
        CHECK(status_of([&] { l.enc->n_output_tokens(6, 8); }) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(status_of([&] { l.enc->n_output_tokens(0, 8); }) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(status_of([&] { l.enc->n_output_tokens(-4, 8); }) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(status_of([&] { l.enc->n_output_tokens(1 << 20, 1 << 20); }) == MUSE_ERR_INVALID_ARGUMENT);
        CHECK(status_of([&] { l.enc->encode(nullptr, 8, 8); }) == MUSE_ERR_INVALID_ARGUMENT);
    }
    SECTION("mlp with a class token") {
        MiniSpec s;
        s.projector = "mlp";
        s.class_token = true;
        auto l = load(s);
        CHECK(l.enc->hparams().ffn_act == Activation::GeluQuick);  // neither use_gelu nor use_silu
        CHECK(l.enc->n_output_tokens(8, 8) == 16);                 // the class token is dropped
        const std::vector<float> img = randn(8 * 8 * 3, 9);
        CHECK(l.enc->encode(img.data(), 8, 8).size() == 16 * 8);
        CHECK(status_of([&] { l.enc->n_output_tokens(8, 10); }) == MUSE_ERR_INVALID_ARGUMENT);
    }
    SECTION("idefics3 with padding") {
        MiniSpec s;
        s.projector = "idefics3";
        s.image_size = 10;  // 5 x 5 patches, padded to 6 x 6 for the 2 x 2 shuffle
        s.extra_keys = [](gguf::Writer &w) { w.set_bool("clip.use_gelu", true); };
        auto l = load(s);
        CHECK(l.enc->hparams().ffn_act == Activation::GeluTanh);
        CHECK(l.enc->n_output_tokens(10, 10) == 9);
        const std::vector<float> img = randn(10 * 10 * 3, 10);
        CHECK(l.enc->encode(img.data(), 10, 10).size() == 9 * 8);
        CHECK(status_of([&] { l.enc->n_output_tokens(20, 10); }) == MUSE_ERR_INVALID_ARGUMENT);
    }
}

TEST_CASE("loader errors name what is wrong", "[vision]") {
    SECTION("unsupported projector type") {
        MiniSpec s;
        s.projector = "qwen2vl_merger";
        expect_load_error(s, MUSE_ERR_UNSUPPORTED, "'qwen2vl_merger' is not supported");
    }
    SECTION("not a clip file / no vision encoder") {
        MiniSpec s;
        s.skip = {"general.architecture"};
        expect_load_error(s, MUSE_ERR_FORMAT, "not a multimodal projector");
        s.skip = {"clip.has_vision_encoder"};
        expect_load_error(s, MUSE_ERR_UNSUPPORTED, "has_vision_encoder");
    }
    SECTION("missing keys") {
        for (const char *k : {"clip.vision.embedding_length", "clip.vision.patch_size", "clip.vision.block_count",
                              "clip.vision.attention.layer_norm_epsilon", "clip.vision.image_mean"}) {
            MiniSpec s;
            s.skip = {k};
            expect_load_error(s, MUSE_ERR_FORMAT, k);
        }
        MiniSpec s;
        s.projector = "idefics3";
        s.skip = {"clip.vision.projector.scale_factor"};
        expect_load_error(s, MUSE_ERR_FORMAT, "clip.vision.projector.scale_factor");
    }
    SECTION("bad key values") {
        MiniSpec s;
        s.extra_keys = [](gguf::Writer &w) { w.set_u32("clip.vision.attention.head_count_kv", 3); };
        expect_load_error(s, MUSE_ERR_FORMAT, "head_count_kv");
        s.extra_keys = [](gguf::Writer &w) { w.set_string("clip.vision.spatial_merge_size", "two"); };
        expect_load_error(s, MUSE_ERR_FORMAT, "clip.vision.spatial_merge_size");
        s.extra_keys = [](gguf::Writer &w) {
            w.set_bool("clip.use_gelu", true);
            w.set_bool("clip.use_silu", true);
        };
        expect_load_error(s, MUSE_ERR_FORMAT, "use_gelu");
        MiniSpec m;
        m.projector = "mlp";
        m.extra_keys = [](gguf::Writer &w) { w.set_array_i32("clip.vision.feature_layer", {1, 9}); };
        expect_load_error(m, MUSE_ERR_FORMAT, "feature_layer 9");
        MiniSpec i;
        i.projector = "idefics3";
        i.merge = 1;
        expect_load_error(i, MUSE_ERR_FORMAT, "scale_factor 1");
    }
    SECTION("missing tensors") {
        for (const char *t : {"v.patch_embd.weight", "v.position_embd.weight", "v.blk.1.attn_k.weight",
                              "v.blk.0.ffn_down.weight", "mm.1.weight"}) {
            MiniSpec s;
            s.skip = {t};
            expect_load_error(s, MUSE_ERR_FORMAT, std::string("missing tensor '") + t + "'");
        }
        MiniSpec m;
        m.projector = "mlp";
        m.skip = {"mm.0.bias"};
        expect_load_error(m, MUSE_ERR_FORMAT, "mm.0.bias");
    }
    SECTION("wrong shapes") {
        MiniSpec s;
        s.shape["v.blk.0.attn_q.weight"] = {16, 12};
        expect_load_error(s, MUSE_ERR_FORMAT,
                          "tensor 'v.blk.0.attn_q.weight' has shape [16,12,1,1], expected [16,16,1,1]");
        s.shape = {{"v.patch_embd.weight", {3, 3, 3, 16}}};
        expect_load_error(s, MUSE_ERR_FORMAT, "v.patch_embd.weight");
        s.shape = {{"mm.0.weight", {32, 12}}};  // must be merge² · n_embd = 64 wide
        expect_load_error(s, MUSE_ERR_FORMAT, "mm.0.weight");
        MiniSpec i;
        i.projector = "idefics3";
        i.shape["v.position_embd.weight"] = {16, 20};
        expect_load_error(i, MUSE_ERR_FORMAT, "expected 16 (4x4 patches)");
        MiniSpec m;
        m.projector = "mlp";
        m.class_token = true;
        m.shape["v.position_embd.weight"] = {16, 16};
        expect_load_error(m, MUSE_ERR_FORMAT, "needs 17");
    }
}

TEST_CASE("legacy ffn names: up and down are swapped back by shape (llama.cpp's rule)", "[vision]") {
    // The same weights written under swapped names must encode identically.
    MiniSpec s;
    s.projector = "mlp";
    s.image_size = 4;
    auto normal = load(s);
    const std::vector<float> img = randn(4 * 4 * 3, 12);
    const std::vector<float> a = normal.enc->encode(img.data(), 4, 4);
    // Rewrite the file with ffn_up / ffn_down names exchanged.
    gguf::Writer w;
    const std::vector<uint8_t> bytes = mini_mmproj(s);
    auto f = gguf::File::from_memory(bytes.data(), bytes.size(), gguf::OpenOptions{});
    for (const auto &kv : f->metadata())
        if (kv.key != "general.alignment") w.set_value(kv.key, kv.value);
    for (const auto &t : f->tensors()) {
        std::string name = t.name;
        if (name.find(".ffn_up.") != std::string::npos) name.replace(name.find(".ffn_up."), 8, ".ffn_down.");
        else if (name.find(".ffn_down.") != std::string::npos) name.replace(name.find(".ffn_down."), 10, ".ffn_up.");
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        w.add_tensor(name, t.type, ne, f->tensor_data(t), t.n_bytes);
    }
    const std::vector<uint8_t> swapped = w.to_bytes();
    auto g = gguf::File::from_memory(swapped.data(), swapped.size(), gguf::OpenOptions{});
    auto be = make_backend(MUSE_BACKEND_CPU, 2);
    auto enc = VisionEncoder::load(*g, *be);
    CHECK(enc->encode(img.data(), 4, 4) == a);
}

TEST_CASE("unimplemented ViT tensors and projector variants are refused by name", "[vision]") {
    auto with_extra = [](const std::string &projector, const std::string &tensor) {
        MiniSpec s;
        s.projector = projector;
        std::vector<uint8_t> base = mini_mmproj(s);
        auto f = gguf::File::from_memory(base.data(), base.size(), gguf::OpenOptions{});
        gguf::Writer w;
        for (const auto &kv : f->metadata())
            if (kv.key != "general.alignment") w.set_value(kv.key, kv.value);
        for (const auto &t : f->tensors()) {
            std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
            w.add_tensor(t.name, t.type, ne, f->tensor_data(t), t.n_bytes);
        }
        const std::vector<float> z(16 * 12, 0.0f);
        w.add_tensor_f32(tensor, GgmlType::F32, {16, 12}, z.data());
        return w.to_bytes();
    };
    for (const auto &[projector, tensor, needle] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"muse-glimmer", "v.blk.1.ffn_gate.weight", "v.blk.1.ffn_gate.weight"},
             {"idefics3", "v.blk.0.attn_q_norm.weight", "v.blk.0.attn_q_norm.weight"},
             {"mlp", "mm.3.weight", "mlp_norm"}}) {
        const std::vector<uint8_t> bytes = with_extra(projector, tensor);
        auto f = gguf::File::from_memory(bytes.data(), bytes.size(), gguf::OpenOptions{});
        auto be = make_backend(MUSE_BACKEND_CPU, 1);
        try {
            VisionEncoder::load(*f, *be);
            FAIL("loaded " << tensor);
        } catch (const Error &e) {
            CHECK(e.status() == MUSE_ERR_UNSUPPORTED);
            CHECK_THAT(e.what(), Catch::Contains(needle));
        }
    }
}

// The zoom tool (src/tools/) end to end: its view goes through the image embedder like
// any image part, and what the encoder makes of it is what it makes of the region cut
// out independently, and not what it makes of the whole image or of a neighbouring
// region. (tests/test-tools.cpp checks the preprocessed tensor itself.)
TEST_CASE("zoom's view reaches the encoder as exactly the region", "[vision]") {
    Image img;
    img.width = 64;
    img.height = 48;
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x)
            for (int c = 0; c < 3; ++c) img.rgb.push_back(uint8_t((x * 4 + y * 5 + c * 80 + (x / 16) * 60) % 256));
    auto crop = [&](int x0, int y0, int x1, int y1) {
        Image out;
        out.width = x1 - x0;
        out.height = y1 - y0;
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x)
                for (int c = 0; c < 3; ++c) out.rgb.push_back(img.rgb[(size_t(y) * img.width + x) * 3 + c]);
        return out;
    };
    const std::vector<uint8_t> bytes = mini_mmproj(MiniSpec{});
    auto file = gguf::File::from_memory(bytes.data(), bytes.size(), gguf::OpenOptions{});
    auto backend = make_backend(MUSE_BACKEND_CPU, 2);
    const ImageEmbedder embedder(*file, *backend, 8);

    const tools::Tool zoom = *tools::builtin_tool("zoom");
    const tools::ToolOutcome out =
        zoom.run({{"x0", 16}, {"y0", 8}, {"x1", 48}, {"y1", 40}}, tools::ToolContext{{&img}});
    INFO(out.content);
    REQUIRE_FALSE(out.failed);
    REQUIRE(out.image.has_value());
    auto rows = [&](const Image &im) {
        std::vector<float> all;
        for (const EmbeddedImage::Piece &p : embedder.embed(im).pieces) all.insert(all.end(), p.embd.begin(), p.embd.end());
        return all;
    };
    const std::vector<float> zoomed = rows(*out.image);
    CHECK(embedder.n_rows(*out.image) == 8 * 8);  // 32 x 32 pixels, 4 x 4 per merged token
    CHECK(zoomed.size() == size_t(8 * 8 * 8));
    CHECK(zoomed == rows(crop(16, 8, 48, 40)));
    CHECK(zoomed != rows(crop(20, 8, 52, 40)));
    CHECK(zoomed != rows(img));
}
