// The backend-op table (after ggml's test-backend-ops): every op of Backend, several
// shapes each, every weight type an op accepts, against plain double-precision references
// written here from the op's documented semantics (backend.h). Each op states the
// normalized error it may make and why. Cases only use the Backend interface (alloc,
// upload, download, weights), so another backend can run the same table; on the CPU
// backend the table runs once per dispatch level the machine has (MUSE_CPU_LEVEL caps it).
#include "backends/backend.h"
#include "backends/graph.h"
#include "backends/cpu/cpu-amx-bf16-matmul.h"
#include "backends/cpu/cpu-attention-amx.h"
#include "backends/cpu/cpu-bf16-matmul.h"
#include "backends/cpu/cpu-int8-matmul.h"
#include "backends/cpu/cpu-kernels.h"
#include "core/dequant.h"
#include "core/error.h"
#include "gguf/gguf-writer.h"

#include "muse/muse.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace muse;

namespace {

// ---- tensors through the Backend interface

struct Ctx {
    Backend &be;
    std::mt19937 rng;
    std::vector<std::unique_ptr<Buffer>> buffers;
    std::vector<std::vector<uint8_t>> host;  // weight bytes handed to the weight buffer
    std::vector<std::unique_ptr<WeightBuffer>> weight_buffers;
    Graph g;  // the case's ops, run by the next read()
    std::vector<bool> ran = std::vector<bool>(kOpCount, false);  // the ops this case ran
    std::set<std::string> on_device;  // "op type" of the nodes the device itself ran

    Ctx(Backend &b, uint32_t seed) : be(b), rng(seed), g(b) {}

    // Runs what the case recorded so far.
    void flush() {
        if (g.nodes().empty() && g.inputs().empty()) return;
        for (const OpNode &n : g.nodes()) {
            ran[static_cast<size_t>(n.op)] = true;
            INFO(op_name(n.op));
            CHECK(be.supports_op(n));
            if (be.runs_on_device(n))
                on_device.insert(std::string(op_name(n.op)) + " " + type_traits(n.src[0].type).name);
        }
        be.compute(g);
        g.clear();
    }
    // An I32 tensor (ids, positions, cells, windows) holding v.
    Tensor i32(const std::vector<int32_t> &v) {
        Tensor t = empty(GgmlType::I32, static_cast<int64_t>(v.size()));
        be.upload(t, v.data(), v.size() * 4);
        return t;
    }

    Tensor empty(GgmlType type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1, int64_t ne3 = 1) {
        Tensor t;
        t.type = type;
        t.ne[0] = ne0, t.ne[1] = ne1, t.ne[2] = ne2, t.ne[3] = ne3;
        buffers.push_back(be.alloc(t.n_bytes()));
        t.buffer = buffers.back().get();
        return t;
    }
    Tensor f32(const std::vector<float> &v, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1, int64_t ne3 = 1) {
        Tensor t = empty(GgmlType::F32, ne0, ne1, ne2, ne3);
        REQUIRE(v.size() == static_cast<size_t>(t.n_elements()));
        be.upload(t, v.data(), v.size() * 4);
        return t;
    }
    // A weight tensor from raw bytes of its type, as models load them (its own committed
    // weight buffer: a device backend has no storage for a weight before the commit).
    Tensor weights(GgmlType type, const std::vector<uint8_t> &bytes, int64_t ne0, int64_t ne1 = 1) {
        host.push_back(bytes);
        const int64_t ne[4] = {ne0, ne1, 1, 1};
        weight_buffers.push_back(be.weight_buffer());
        const Tensor t = weight_buffers.back()->add(type, ne, host.back().data());
        weight_buffers.back()->commit();
        return t;
    }
    std::vector<float> read(const Tensor &t) {
        std::vector<float> v(static_cast<size_t>(t.n_elements()));
        flush();
        be.download(t, v.data(), v.size() * 4);
        return v;
    }
    std::vector<float> randn(int64_t n, float sd = 1.0f) {
        std::normal_distribution<float> nd(0.0f, sd);
        std::vector<float> v(static_cast<size_t>(n));
        for (float &x : v) x = nd(rng);
        return v;
    }
};

// ---- weights of every type dequant.cpp reads

std::vector<GgmlType> weight_types() {
    return {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::F64,  GgmlType::I8,   GgmlType::I16,
            GgmlType::I32,  GgmlType::I64,  GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
            GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
            GgmlType::Q6_K, GgmlType::Q8_K};
}

bool is_plain(GgmlType t) { return type_traits(t).block_size == 1; }

void put_f16(uint8_t *p, float v) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

// Random weights of n elements (n a multiple of the block size) in `type`. Plain types
// convert random floats; Q8_0 / Q4_0 quantize them with gguf-writer's reference
// quantizers. The other block formats are random bytes with their scale fields set to
// sane magnitudes: the kernels are checked against core/dequant.cpp's reading of the same
// bytes, and random quants cover every bit pattern of the packed fields.
std::vector<uint8_t> random_weights(Ctx &c, GgmlType type, int64_t n) {
    std::vector<float> f = c.randn(n, 0.5f);
    const size_t bytes = type_row_bytes(type, n);
    std::vector<uint8_t> out(bytes);
    auto plain = [&](auto tag) {
        using T = decltype(tag);
        for (int64_t i = 0; i < n; ++i) {
            const T v = std::is_integral_v<T> ? static_cast<T>(std::lround(f[i] * 8)) : static_cast<T>(f[i]);
            std::memcpy(out.data() + i * static_cast<int64_t>(sizeof(T)), &v, sizeof(T));
        }
    };
    switch (type) {
    case GgmlType::F32: std::memcpy(out.data(), f.data(), bytes); return out;
    case GgmlType::F16:
        for (int64_t i = 0; i < n; ++i) put_f16(out.data() + 2 * i, f[i]);
        return out;
    case GgmlType::BF16:
        for (int64_t i = 0; i < n; ++i) {
            const uint16_t h = fp32_to_bf16(f[i]);
            std::memcpy(out.data() + 2 * i, &h, 2);
        }
        return out;
    case GgmlType::F64: plain(double{}); return out;
    case GgmlType::I8: plain(int8_t{}); return out;
    case GgmlType::I16: plain(int16_t{}); return out;
    case GgmlType::I32: plain(int32_t{}); return out;
    case GgmlType::I64: plain(int64_t{}); return out;
    case GgmlType::Q8_0: return gguf::quantize_q8_0(f.data(), n);
    case GgmlType::Q4_0: return gguf::quantize_q4_0(f.data(), n);
    default: break;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    for (uint8_t &b : out) b = static_cast<uint8_t>(byte(c.rng));
    std::uniform_real_distribution<float> scale(0.005f, 0.05f);
    const TypeTraits &tt = type_traits(type);
    for (int64_t blk = 0; blk < n / tt.block_size; ++blk) {
        uint8_t *b = out.data() + blk * static_cast<int64_t>(tt.type_size);
        switch (type) {
        case GgmlType::Q4_1:
        case GgmlType::Q5_1:
        case GgmlType::Q8_1:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
            put_f16(b, scale(c.rng));
            put_f16(b + 2, -scale(c.rng));  // min / dmin (Q8_1: the cached sum, unread)
            break;
        case GgmlType::Q5_0: put_f16(b, scale(c.rng)); break;
        case GgmlType::Q2_K:
            put_f16(b + 80, scale(c.rng));
            put_f16(b + 82, scale(c.rng));
            break;
        case GgmlType::Q3_K: put_f16(b + 108, scale(c.rng)); break;
        case GgmlType::Q6_K: put_f16(b + 208, scale(c.rng)); break;
        case GgmlType::Q8_K: {
            const float d = scale(c.rng);
            std::memcpy(b, &d, 4);
            break;
        }
        default: FAIL("no random weights for type " << type_traits(type).name);
        }
    }
    return out;
}

std::vector<double> dequant_d(GgmlType type, const std::vector<uint8_t> &bytes, int64_t n) {
    std::vector<float> f(static_cast<size_t>(n));
    dequantize(type, bytes.data(), f.data(), n);
    return {f.begin(), f.end()};
}

// ---- comparison

struct Result {
    double err = 0.0;   // max |got - ref| / max(norm)
    bool finite = true; // no NaN / Inf in the output
};

// norm: per-element magnitude the error is measured against (|ref| when empty).
Result compare(const std::vector<float> &got, const std::vector<double> &ref, const std::vector<double> &norm = {}) {
    REQUIRE(got.size() == ref.size());
    Result r;
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (!std::isfinite(got[i])) r.finite = false;
        diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - ref[i]));
        scale = std::max(scale, norm.empty() ? std::fabs(ref[i]) : norm[i]);
    }
    r.err = scale > 0.0 ? diff / scale : diff;
    return r;
}

struct OpCase {
    std::string name;
    double bound;  // allowed Result::err
    std::function<Result(Ctx &)> run;
};

constexpr double kEps = 1.1920928955078125e-07;  // float epsilon (2^-23)

// ---- the table, op by op

// The integer Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K kernels (backends/cpu/cpu-int8-matmul.h) first round each token's
// activations to 8-bit blocks of 32: amax = max |x|, d = amax / 127, q = x * (1 / d)
// rounded to nearest even, scale F16(d). Its reference applies that rounding, then sums
// d_w * d_x * (q_w . q_x) exactly in double; what is left to bound is the kernel's float
// work, two roundings per block (the scale product and the accumulation), well inside the
// generic K * eps of sum |terms|. The rounding itself is measured by the decoder parity tests.
void int8_reference(const std::vector<double> &wd, const std::vector<float> &xs, int64_t k, int64_t n_out, int64_t n_tok,
                    std::vector<double> &ref, std::vector<double> &norm) {
    std::vector<double> xq(xs.size());
    for (size_t b0 = 0; b0 < xs.size(); b0 += 32) {
        float amax = 0.0f;
        for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xs[b0 + j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const double d16 = fp16_to_fp32(fp32_to_fp16(d));
        for (size_t j = 0; j < 32; ++j) xq[b0 + j] = std::nearbyint(xs[b0 + j] * id) * d16;
    }
    for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t r = 0; r < n_out; ++r) {
            double acc = 0.0, mag = 0.0;
            for (int64_t i = 0; i < k; ++i) {
                const double p = wd[static_cast<size_t>(r * k + i)] * xq[static_cast<size_t>(t * k + i)];
                acc += p;
                mag += std::fabs(p);
            }
            ref.push_back(acc);
            norm.push_back(mag);
        }
}

// A random weight matrix of `type` (k x n_out), its values in double, random F32 inputs
// (k x n_tok) and an F32 output, as tensors of the context's graph.
struct MatmulOperands {
    std::vector<uint8_t> wb;
    std::vector<double> wd;
    std::vector<float> xs;
    Tensor w, x, y;
    MatmulOperands(Ctx &c, GgmlType type, int64_t k, int64_t n_out, int64_t n_tok)
        : wb(random_weights(c, type, k * n_out)), wd(dequant_d(type, wb, k * n_out)), xs(c.randn(k * n_tok)),
          w(c.weights(type, wb, k, n_out)), x(c.f32(xs, k, n_tok)), y(c.empty(GgmlType::F32, n_out, n_tok)) {}
};

// The operands of an attention case: a KV pool of n_cells cells in the cache type (K and V,
// with their exact values), queries, and the cells of positions 0.. in a shuffled order of the
// pool, so that no kernel can get away with reading cells in order.
struct AttentionOperands {
    std::vector<uint8_t> kb, vb;
    std::vector<double> kd, vd;
    std::vector<float> qs;
    std::vector<int32_t> cells;
    Tensor q, k, v;
    AttentionOperands(Ctx &c, GgmlType cache, int64_t hd, int64_t n_head, int64_t n_head_kv, int64_t n_tok,
                      int64_t n_cells)
        : kb(random_weights(c, cache, hd * n_head_kv * n_cells)), vb(random_weights(c, cache, hd * n_head_kv * n_cells)),
          kd(dequant_d(cache, kb, hd * n_head_kv * n_cells)), vd(dequant_d(cache, vb, hd * n_head_kv * n_cells)),
          qs(c.randn(hd * n_head * n_tok, 0.6f)), cells(static_cast<size_t>(n_cells)) {
        std::iota(cells.begin(), cells.end(), 0);
        std::shuffle(cells.begin(), cells.end(), c.rng);
        q = c.f32(qs, hd, n_head, n_tok);
        k = c.weights(cache, kb, hd * n_head_kv, n_cells);
        v = c.weights(cache, vb, hd * n_head_kv, n_cells);
    }
};

void add_matmul(std::vector<OpCase> &cases) {
    // matmul: F32 dot of length K, each product exact in double but the float sums
    // round K times: K * eps of sum |w x|. (The Vulkan shaders dequantize to core/dequant.cpp's
    // values exactly, so the same bound holds there.)
    struct Shape {
        int64_t k, n_out, n_tok;
    };
    for (GgmlType type : weight_types()) {
        const int64_t blk = type_traits(type).block_size;
        std::vector<Shape> shapes = {{256, 37, 1}, {512, 16, 3}, {256, 40, 8}, {768, 19, 16}, {256, 33, 17}, {512, 8, 40}};
        if (blk == 1) shapes.push_back({100, 21, 5});  // rows that are not whole 32-element steps
        for (const Shape &s : shapes) {
            const double bound = static_cast<double>(s.k) * kEps;
            cases.push_back({"matmul " + std::string(type_traits(type).name) + " k" + std::to_string(s.k) + " out" +
                                 std::to_string(s.n_out) + " tok" + std::to_string(s.n_tok),
                             bound, [=](Ctx &c) {
                                 const MatmulOperands m(c, type, s.k, s.n_out, s.n_tok);
                                 const auto &[wb, wd, xs, w, x, y] = m;
                                 c.g.matmul(w, x, y);
                                 std::vector<double> ref, norm;
                                 if (w.layout == WeightLayout::rows16) {  // 8-bit activations
                                     int8_reference(wd, xs, s.k, s.n_out, s.n_tok, ref, norm);
                                     return compare(c.read(y), ref, norm);
                                 }
                                 for (int64_t t = 0; t < s.n_tok; ++t)
                                     for (int64_t r = 0; r < s.n_out; ++r) {
                                         double acc = 0.0, mag = 0.0;
                                         for (int64_t i = 0; i < s.k; ++i) {
                                             const double p = wd[static_cast<size_t>(r * s.k + i)] * xs[static_cast<size_t>(t * s.k + i)];
                                             acc += p;
                                             mag += std::fabs(p);
                                         }
                                         ref.push_back(acc);
                                         norm.push_back(mag);
                                     }
                                 return compare(c.read(y), ref, norm);
                             }});
        }
    }
}

// x rounded to BF16 (nearest even), as the BF16 paths round their operands.
double bf16_round(double x) {
    uint16_t h;
    const float f = static_cast<float>(x);
    cpu::f32_to_bf16(&f, &h, 1);
    return static_cast<double>(cpu::bf16_to_f32(h));
}

// References of y = w x with the operands exact and with both rounded to BF16, each with its
// sum of |terms| (double sums; w k x n_out, x k x n_tok, token-major results).
struct Bf16References {
    std::vector<double> exact, norm_e, rounded, norm_r;
    Bf16References(const std::vector<double> &wd, const std::vector<float> &xs, int64_t k, int64_t n_out, int64_t n_tok) {
        for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t r = 0; r < n_out; ++r) {
                double ae = 0.0, me = 0.0, ar = 0.0, mr = 0.0;
                for (int64_t i = 0; i < k; ++i) {
                    const double wv = wd[static_cast<size_t>(r * k + i)];
                    const double xv = xs[static_cast<size_t>(t * k + i)];
                    ae += wv * xv;
                    me += std::fabs(wv * xv);
                    const double p = bf16_round(wv) * bf16_round(xv);
                    ar += p;
                    mr += std::fabs(p);
                }
                exact.push_back(ae);
                norm_e.push_back(me);
                rounded.push_back(ar);
                norm_r.push_back(mr);
            }
    }
};

// Matmuls recorded with Graph::allow_bf16 (the vision towers'): where the CPU backend honours
// the hint (cpu-bf16-matmul.h) both operands are rounded to BF16 and summed in F32. The
// reference applies that rounding and sums the products exactly in double; a product of two
// BF16 values is exact in F32 (8 + 8 significant bits), so what is left is the F32 sums,
// K * eps of sum |terms| as for the F32 matmul, in any order (AMX tiles, AVX-512 pairs).
// That bound is ~10x below the BF16 rounding itself, so it also shows the BF16 path ran where
// it should, and the F32 path (the exact reference) everywhere else. Another backend may
// honour the hint or not: there the better of the two references must hold.
void add_matmul_bf16(std::vector<OpCase> &cases) {
    struct Shape {
        int64_t k, n_out, n_tok;
    };
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
        for (const Shape s : {Shape{256, 33, 17}, Shape{512, 40, 40}, Shape{100, 21, 20}, Shape{768, 70, 33},
                              Shape{256, 24, 8}}) {
            cases.push_back({"matmul bf16-allowed " + std::string(type_traits(type).name) + " k" + std::to_string(s.k) +
                                 " out" + std::to_string(s.n_out) + " tok" + std::to_string(s.n_tok),
                             static_cast<double>(s.k) * kEps, [=](Ctx &c) {
                                 const MatmulOperands m(c, type, s.k, s.n_out, s.n_tok);
                                 const auto &[wb, wd, xs, w, x, y] = m;
                                 c.g.allow_bf16(true);
                                 c.g.matmul(w, x, y);
                                 c.g.allow_bf16(false);
                                 const Bf16References refs(wd, xs, s.k, s.n_out, s.n_tok);
                                 const auto &[exact, norm_e, rounded, norm_r] = refs;
                                 const std::vector<float> got = c.read(y);
                                 const Result re = compare(got, exact, norm_e), rr = compare(got, rounded, norm_r);
                                 // Decode-sized batches (up to 16 tokens) keep the F32 kernels.
                                 const bool bf16 = s.n_tok > 16 && cpu::bf16_matmul_available();
                                 if (c.be.name() == "cpu") return bf16 ? rr : re;
                                 return rr.err < re.err ? rr : re;
                             }});
        }
}

// Matmuls whose columns Graph::bf16_columns marks (a decoder's bulk prompt rows). Where the CPU
// backend honours the marks (cpu-amx-bf16-matmul.h: repacked weights, AMX-BF16), a marked
// column's weights are core/dequant.cpp's values rounded to BF16 and its activations rounded
// to BF16; the products are exact in F32 and the tiles sum them in F32, so the reference
// applies both roundings, sums exactly in double, and K * eps of sum |terms| bounds the rest.
// Unmarked columns keep the integer kernels (int8_reference, the same bound). Marks come in
// runs (every third column unmarked) so that both classes share a call. A backend that does
// not honour the marks computes as usual: there the better reference must hold.
void add_matmul_bf16_columns(std::vector<OpCase> &cases) {
    struct Shape {
        int64_t k, n_out, n_tok;
    };
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
        // k2304: three slices of K in the AMX-BF16 kernel (32 + 32 + 8 blocks), so partial sums
        // go back to y and are reloaded between slices, and the last slice is a short one.
        for (const Shape s : {Shape{256, 33, 17}, Shape{512, 40, 40}, Shape{768, 70, 5}, Shape{1024, 16, 33},
                              Shape{2304, 48, 20}}) {
            cases.push_back({"matmul bf16-columns " + std::string(type_traits(type).name) + " k" + std::to_string(s.k) +
                                 " out" + std::to_string(s.n_out) + " tok" + std::to_string(s.n_tok),
                             static_cast<double>(s.k) * kEps, [=](Ctx &c) {
                                 const MatmulOperands m(c, type, s.k, s.n_out, s.n_tok);
                                 const auto &[wb, wd, xs, w, x, y] = m;
                                 std::vector<int32_t> marks(static_cast<size_t>(s.n_tok));
                                 for (int64_t t = 0; t < s.n_tok; ++t) marks[static_cast<size_t>(t)] = t % 3 != 2;
                                 c.g.bf16_columns(c.i32(marks));
                                 c.g.matmul(w, x, y);
                                 c.g.bf16_columns(Tensor());
                                 const Bf16References refs(wd, xs, s.k, s.n_out, s.n_tok);
                                 const auto &[exact, norm_e, rounded, norm_r] = refs;
                                 std::vector<double> q8, norm_q;
                                 int8_reference(wd, xs, s.k, s.n_out, s.n_tok, q8, norm_q);
                                 const std::vector<float> got = c.read(y);
                                 // Each column against the reference of the path it should take.
                                 const bool packed = w.layout == WeightLayout::rows16;
                                 Result worst;
                                 worst.err = 0.0;
                                 for (int64_t t = 0; t < s.n_tok; ++t) {
                                     const auto col = [&](const std::vector<double> &v) {
                                         return std::vector<double>(v.begin() + t * s.n_out, v.begin() + (t + 1) * s.n_out);
                                     };
                                     const std::vector<float> g(got.begin() + t * s.n_out, got.begin() + (t + 1) * s.n_out);
                                     Result r;
                                     if (c.be.name() == "cpu" && packed)
                                         r = marks[static_cast<size_t>(t)] && cpu::amx_bf16_available()
                                                 ? compare(g, col(rounded), col(norm_r))
                                                 : compare(g, col(q8), col(norm_q));
                                     else if (c.be.name() == "cpu")
                                         r = compare(g, col(exact), col(norm_e));
                                     else {
                                         const Result re = compare(g, col(exact), col(norm_e)),
                                                      rr = compare(g, col(rounded), col(norm_r));
                                         r = rr.err < re.err ? rr : re;
                                     }
                                     worst.finite = worst.finite && r.finite;
                                     worst.err = std::max(worst.err, r.err);
                                 }
                                 return worst;
                             }});
        }
}

void add_rows_ops(std::vector<OpCase> &cases) {
    for (GgmlType type : weight_types()) {
        const std::string tn = type_traits(type).name;
        const int64_t ne0 = 256;
        // get_rows: dequantization is one float product per element, as the reference: exact.
        cases.push_back({"get_rows " + tn, 0.0, [=](Ctx &c) {
                             const auto wb = random_weights(c, type, ne0 * 10);
                             const auto wd = dequant_d(type, wb, ne0 * 10);
                             const int32_t ids[] = {3, 0, 9, 3, 7};
                             const Tensor w = c.weights(type, wb, ne0, 10);
                             const Tensor out = c.empty(GgmlType::F32, ne0, 5);
                             c.g.get_rows(w, c.i32({ids, ids + 5}), out);
                             std::vector<double> ref;
                             for (int32_t id : ids)
                                 ref.insert(ref.end(), wd.begin() + id * ne0, wd.begin() + (id + 1) * ne0);
                             return compare(c.read(out), ref);
                         }});
        // add (bias row of any type): one float rounding of each sum: eps/2 of |ref|.
        cases.push_back({"add bias " + tn, kEps, [=](Ctx &c) {
                             const auto xs = c.randn(ne0 * 3);
                             const auto bb = random_weights(c, type, ne0);
                             const auto bd = dequant_d(type, bb, ne0);
                             const Tensor x = c.f32(xs, ne0, 3);
                             c.g.add(x, c.weights(type, bb, ne0));
                             std::vector<double> ref;
                             for (int64_t i = 0; i < ne0 * 3; ++i) ref.push_back(double(xs[i]) + bd[i % ne0]);
                             return compare(c.read(x), ref);
                         }});
        // mul_row: one float rounding of each product.
        cases.push_back({"mul_row " + tn, kEps, [=](Ctx &c) {
                             const auto xs = c.randn(ne0 * 4);
                             const auto wb = random_weights(c, type, ne0);
                             const auto wd = dequant_d(type, wb, ne0);
                             const Tensor x = c.f32(xs, ne0, 2, 2);
                             c.g.mul_row(x, c.weights(type, wb, ne0));
                             std::vector<double> ref;
                             for (int64_t i = 0; i < ne0 * 4; ++i) ref.push_back(double(xs[i]) * wd[i % ne0]);
                             return compare(c.read(x), ref);
                         }});
    }
    // add (same shape): one rounding per sum.
    cases.push_back({"add same shape", kEps, [](Ctx &c) {
                         const auto a = c.randn(96 * 5), b = c.randn(96 * 5);
                         const Tensor x = c.f32(a, 96, 5), y = c.f32(b, 96, 5);
                         c.g.add(x, y);
                         std::vector<double> ref;
                         for (size_t i = 0; i < a.size(); ++i) ref.push_back(double(a[i]) + b[i]);
                         return compare(c.read(x), ref);
                     }});
    // scale: one rounding per product.
    cases.push_back({"scale", kEps, [](Ctx &c) {
                         const auto a = c.randn(333);
                         const Tensor x = c.f32(a, 333);
                         c.g.scale(x, -0.37f);
                         std::vector<double> ref;
                         for (float v : a) ref.push_back(double(v) * -0.37f);
                         return compare(c.read(x), ref);
                     }});
}

void add_norms(std::vector<OpCase> &cases) {
    // rms_norm / layer_norm: a handful of float roundings per element after a double
    // (or long float) reduction: 16 eps. The Vulkan shaders reduce in float (tree or subgroup
    // sums: each partial rounds at most log2(n) + n/128 times, a relative error of the sum
    // below 16 eps that the square root halves); measured at most 1.2 eps on lavapipe.
    for (int64_t ne0 : {64, 896, 100}) {
        for (int wmode = 0; wmode < 3; ++wmode) {  // no weight, F32 weight, F16 weight
            const std::string name = "rms_norm n" + std::to_string(ne0) + (wmode == 0 ? " no w" : wmode == 1 ? " w F32" : " w F16");
            cases.push_back({name, 16 * kEps, [=](Ctx &c) {
                                 const auto xs = c.randn(ne0 * 3, 2.0f);
                                 const GgmlType wt = wmode == 2 ? GgmlType::F16 : GgmlType::F32;
                                 const auto wb = random_weights(c, wt, ne0);
                                 const auto wd = dequant_d(wt, wb, ne0);
                                 const Tensor x = c.f32(xs, ne0, 3);
                                 const Tensor w = wmode ? c.weights(wt, wb, ne0) : Tensor{};
                                 c.g.rms_norm(x, w, 1e-5f, x);  // in place
                                 std::vector<double> ref;
                                 for (int64_t r = 0; r < 3; ++r) {
                                     double ss = 0.0;
                                     for (int64_t i = 0; i < ne0; ++i) ss += double(xs[r * ne0 + i]) * xs[r * ne0 + i];
                                     const double inv = 1.0 / std::sqrt(ss / ne0 + 1e-5f);
                                     for (int64_t i = 0; i < ne0; ++i) ref.push_back(xs[r * ne0 + i] * inv * (wmode ? wd[i] : 1.0));
                                 }
                                 return compare(c.read(x), ref);
                             }});
            const std::string lname = "layer_norm n" + std::to_string(ne0) + (wmode == 0 ? " plain" : wmode == 1 ? " w" : " w+b");
            cases.push_back({lname, 16 * kEps, [=](Ctx &c) {
                                 auto xs = c.randn(ne0 * 3, 2.0f);
                                 std::vector<float> ws = c.randn(ne0), bs = c.randn(ne0);
                                 for (float &v : xs) v += 0.5f;  // a mean to remove
                                 const Tensor x = c.f32(xs, ne0, 3), y = c.empty(GgmlType::F32, ne0, 3);
                                 const Tensor w = wmode >= 1 ? c.f32(ws, ne0) : Tensor{};
                                 const Tensor b = wmode == 2 ? c.f32(bs, ne0) : Tensor{};
                                 c.g.layer_norm(x, w, b, 1e-6f, y);
                                 std::vector<double> ref;
                                 for (int64_t r = 0; r < 3; ++r) {
                                     double mean = 0.0, var = 0.0;
                                     for (int64_t i = 0; i < ne0; ++i) mean += xs[r * ne0 + i];
                                     mean /= ne0;
                                     for (int64_t i = 0; i < ne0; ++i) var += (xs[r * ne0 + i] - mean) * (xs[r * ne0 + i] - mean);
                                     const double inv = 1.0 / std::sqrt(var / ne0 + 1e-6f);
                                     for (int64_t i = 0; i < ne0; ++i) {
                                         double v = (xs[r * ne0 + i] - mean) * inv;
                                         if (wmode >= 1) v *= ws[i];
                                         if (wmode == 2) v += bs[i];
                                         ref.push_back(v);
                                     }
                                 }
                                 return compare(c.read(y), ref);
                             }});
        }
    }
}

void add_elementwise(std::vector<OpCase> &cases) {
    // rope: cos / sin rounded to float, then two products and a sum: 4 eps of |ref|.
    struct RopeShape {
        int64_t hd, n_head, n_tok;
        int n_rot;
        RopeMode mode;
        float scale;
    };
    for (const RopeShape &s : {RopeShape{64, 4, 3, 64, RopeMode::Norm, 1.0f}, RopeShape{64, 2, 5, 64, RopeMode::Neox, 1.0f},
                               RopeShape{128, 3, 2, 64, RopeMode::Neox, 0.25f}, RopeShape{80, 2, 4, 32, RopeMode::Norm, 1.0f}}) {
        const std::string name = std::string("rope ") + (s.mode == RopeMode::Norm ? "norm" : "neox") + " hd" +
                                 std::to_string(s.hd) + " rot" + std::to_string(s.n_rot);
        cases.push_back({name, 4 * kEps, [=](Ctx &c) {
                             const auto xs = c.randn(s.hd * s.n_head * s.n_tok);
                             std::vector<int32_t> pos = {0, 1, 17, 4095, 70000};
                             const Tensor x = c.f32(xs, s.hd, s.n_head, s.n_tok);
                             RopeParams p;
                             p.n_rot = s.n_rot;
                             p.mode = s.mode;
                             p.freq_scale = s.scale;
                             p.freq_base = 10000.0f;
                             c.g.rope(x, c.i32(pos), p);
                             std::vector<double> ref(xs.begin(), xs.end());
                             for (int64_t t = 0; t < s.n_tok; ++t)
                                 for (int64_t h = 0; h < s.n_head; ++h)
                                     for (int i = 0; i < s.n_rot / 2; ++i) {
                                         const double th = pos[static_cast<size_t>(t)] * double(s.scale) * std::pow(10000.0, -2.0 * i / s.n_rot);
                                         const int64_t a = s.mode == RopeMode::Norm ? 2 * i : i;
                                         const int64_t b = s.mode == RopeMode::Norm ? 2 * i + 1 : i + s.n_rot / 2;
                                         const size_t o = static_cast<size_t>((t * s.n_head + h) * s.hd);
                                         const double x0 = xs[o + a], x1 = xs[o + b];
                                         ref[o + a] = x0 * std::cos(th) - x1 * std::sin(th);
                                         ref[o + b] = x0 * std::sin(th) + x1 * std::cos(th);
                                     }
                             return compare(c.read(x), ref);
                         }});
    }
    // swiglu / sigmoid_mul / softcap: float exp or tanh (a few ulp) and two roundings: 8 eps.
    cases.push_back({"swiglu", 8 * kEps, [](Ctx &c) {
                         const auto g = c.randn(500, 3.0f), u = c.randn(500);
                         const Tensor tg = c.f32(g, 250, 2), tu = c.f32(u, 250, 2);
                         c.g.swiglu(tg, tu);
                         std::vector<double> ref;
                         for (size_t i = 0; i < g.size(); ++i) ref.push_back(g[i] / (1.0 + std::exp(-double(g[i]))) * u[i]);
                         return compare(c.read(tg), ref);
                     }});
    cases.push_back({"sigmoid_mul", 8 * kEps, [](Ctx &c) {
                         const auto x = c.randn(300), g = c.randn(300, 3.0f);
                         const Tensor tx = c.f32(x, 300), tg = c.f32(g, 300);
                         c.g.sigmoid_mul(tx, tg);
                         std::vector<double> ref;
                         for (size_t i = 0; i < x.size(); ++i) ref.push_back(x[i] / (1.0 + std::exp(-double(g[i]))));
                         return compare(c.read(tx), ref);
                     }});
    cases.push_back({"softcap", 8 * kEps, [](Ctx &c) {
                         const auto x = c.randn(300, 40.0f);
                         const Tensor tx = c.f32(x, 100, 3);
                         c.g.softcap(tx, 30.0f);
                         std::vector<double> ref;
                         for (float v : x) ref.push_back(30.0 * std::tanh(v / 30.0));
                         return compare(c.read(tx), ref);
                     }});
    // set_columns: a copy (F32) or the F16 rounding every backend must do the same way
    // (round to nearest even): exact against core's fp32_to_fp16.
    for (GgmlType dt : {GgmlType::F32, GgmlType::F16}) {
        cases.push_back({std::string("set_columns dst ") + type_traits(dt).name, 0.0, [=](Ctx &c) {
                             const int64_t ne0 = 48, n_cells = 10;
                             const auto src = c.randn(ne0 * 4);
                             const int32_t cells[] = {7, 2, 9, 0};
                             const Tensor dst = c.empty(dt, ne0, n_cells), s = c.f32(src, ne0, 4);
                             c.g.set_columns(dst, s, c.i32({cells, cells + 4}));
                             std::vector<uint8_t> raw(dst.n_bytes());
                             c.flush();
                             c.be.download(dst, raw.data(), raw.size());
                             std::vector<float> got(static_cast<size_t>(ne0 * n_cells));
                             dequantize(dt, raw.data(), got.data(), ne0 * n_cells);
                             std::vector<double> ref(got.size(), 0.0);
                             for (int j = 0; j < 4; ++j)
                                 for (int64_t i = 0; i < ne0; ++i) {
                                     const float v = src[static_cast<size_t>(j * ne0 + i)];
                                     ref[static_cast<size_t>(cells[j] * ne0 + i)] = dt == GgmlType::F16 ? fp16_to_fp32(fp32_to_fp16(v)) : v;
                                 }
                             return compare(got, ref);
                         }});
    }
}

// Reference attention of one query vector over key/value rows (double; the softmax in
// position order). Writes hd values.
void ref_attend(const float *q, const std::vector<const double *> &ks, const std::vector<const double *> &vs, int64_t hd,
                double scale, double *out) {
    std::fill(out, out + hd, 0.0);
    if (ks.empty()) return;
    std::vector<double> s(ks.size());
    double mx = -INFINITY;
    for (size_t c = 0; c < ks.size(); ++c) {
        double d = 0.0;
        for (int64_t i = 0; i < hd; ++i) d += double(q[i]) * ks[c][i];
        s[c] = d * scale;
        mx = std::max(mx, s[c]);
    }
    double sum = 0.0;
    for (double &v : s) sum += v = std::exp(v - mx);
    for (size_t c = 0; c < ks.size(); ++c)
        for (int64_t i = 0; i < hd; ++i) out[i] += s[c] / sum * vs[c][i];
}

// Attention rows marked by Graph::bf16_columns (bulk prompt rows): where the CPU backend honours
// the marks (cpu-attention-amx.h) q scale, K and V are rounded to BF16, which the reference
// applies (then exact in double); what it cannot apply is the rounding of each softmax weight to
// BF16 for P V, 2^-9 relative per weight: at most 2^-9 of sum_c p_c |v_c| per output, the norm
// each element is measured against. Unmarked rows (every other one) keep the F32 kernels, inside
// the same bound. Elsewhere the marks are a hint and the F32 result meets it too.
void add_attention_bf16_rows(std::vector<OpCase> &cases) {
    struct Shape {
        const char *what;
        int64_t hd, n_head, n_head_kv, n_tok, n_cells;
        bool window;  // a sliding window of 20: the rows' first cells differ
    };
    const Shape shapes[] = {{"prompt gqa", 64, 6, 2, 40, 40, false},     {"prompt after a prefix", 128, 4, 2, 21, 90, false},
                            {"prompt windowed", 64, 4, 1, 33, 60, false}, {"hd 80 (F32 kernels)", 80, 2, 1, 18, 30, false},
                            {"sliding window", 64, 4, 2, 30, 50, true}};
    for (const Shape &s : shapes)
        for (GgmlType ct : {GgmlType::F32, GgmlType::F16}) {
            cases.push_back({std::string("attention bf16-rows ") + s.what + " cache " + type_traits(ct).name,
                             1.0 / 512 + 1e-5, [=](Ctx &c) {
                                 const int64_t kvw = s.hd * s.n_head_kv, group = s.n_head / s.n_head_kv;
                                 const AttentionOperands ops(c, ct, s.hd, s.n_head, s.n_head_kv, s.n_tok, s.n_cells);
                                 const auto &[kb, vb, kd, vd, qs, cells, q, k, v] = ops;
                                 std::vector<int32_t> begin(static_cast<size_t>(s.n_tok)), end(begin.size()), marks(begin.size());
                                 for (int64_t t = 0; t < s.n_tok; ++t) {
                                     end[t] = static_cast<int32_t>(s.n_cells - s.n_tok + t + 1);
                                     begin[t] = s.window ? std::max(0, end[t] - 20) : 0;
                                     marks[t] = t % 2 == 0 || t > s.n_tok / 2;
                                 }
                                 const KvRanges kv{c.i32(cells), c.i32(begin), c.i32(end)};
                                 const Tensor out = c.empty(GgmlType::F32, s.hd * s.n_head, s.n_tok);
                                 const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
                                 c.g.bf16_columns(c.i32(marks));
                                 c.g.attention(q, k, v, kv, static_cast<int>(s.n_head_kv), scale, out);
                                 c.g.bf16_columns(Tensor());
                                 const bool bf16 = c.be.name() == "cpu" && cpu::amx_attention_takes(s.hd) &&
                                                   cpu::cpu_level() == cpu::CpuLevel::avx512;
                                 std::vector<double> ref(static_cast<size_t>(s.hd * s.n_head * s.n_tok)), norm(ref.size());
                                 for (int64_t t = 0; t < s.n_tok; ++t)
                                     for (int64_t h = 0; h < s.n_head; ++h) {
                                         const bool r = bf16 && marks[static_cast<size_t>(t)];
                                         const int64_t hk = h / group;
                                         std::vector<double> sc;
                                         double mx = -INFINITY;
                                         for (int32_t i = begin[t]; i < end[t]; ++i) {
                                             double d = 0.0;
                                             for (int64_t e = 0; e < s.hd; ++e) {
                                                 const double qv = qs[static_cast<size_t>((t * s.n_head + h) * s.hd + e)];
                                                 const double kv_ = kd[static_cast<size_t>(cells[i] * kvw + hk * s.hd + e)];
                                                 d += r ? bf16_round(qv * scale) * bf16_round(kv_) : qv * kv_ * scale;
                                             }
                                             sc.push_back(d);
                                             mx = std::max(mx, d);
                                         }
                                         double sum = 0.0;
                                         for (double &x : sc) sum += x = std::exp(x - mx);
                                         for (int64_t e = 0; e < s.hd; ++e) {
                                             double acc = 0.0, mag = 0.0;
                                             for (int32_t i = begin[t]; i < end[t]; ++i) {
                                                 const double vv = vd[static_cast<size_t>(cells[i] * kvw + hk * s.hd + e)];
                                                 const double w = sc[static_cast<size_t>(i - begin[t])] / sum;
                                                 acc += w * (r ? bf16_round(vv) : vv);
                                                 mag += w * std::fabs(vv);
                                             }
                                             ref[static_cast<size_t>((t * s.n_head + h) * s.hd + e)] = acc;
                                             norm[static_cast<size_t>((t * s.n_head + h) * s.hd + e)] = mag;
                                         }
                                     }
                                 return compare(c.read(out), ref, norm);
                             }});
        }
}

void add_attention(std::vector<OpCase> &cases) {
    // attention: dots of length hd in float, the exp polynomial (2e-7 relative) and sums of
    // a few thousand weights in chunks: the 1e-5 of max |ref| every backend must meet.
    struct AttnShape {
        const char *what;
        int64_t hd, n_head, n_head_kv, n_tok, n_cells;
        int mode;  // 0 causal prefix, 1 sliding window of 5, 2 empty ranges mixed in, 3 one long shared range,
                   // 4 as 3 with the first token's range empty
    };
    const AttnShape shapes[] = {
        {"decode gqa", 64, 8, 2, 1, 300, 0},    {"decode long 1 kv head", 64, 7, 1, 1, 3000, 3},
        {"decode batch", 128, 4, 4, 4, 700, 3}, {"prefill causal gqa", 64, 6, 2, 20, 40, 0},
        {"windows", 32, 4, 2, 12, 30, 1},       {"empty ranges", 64, 4, 1, 6, 50, 2},
        {"hd 80", 80, 2, 1, 3, 1200, 3},        {"hd 40", 40, 6, 3, 5, 90, 0},  // not whole 16-vectors
        {"hd 36", 36, 2, 1, 2, 150, 0},  // not whole 8-vectors either: the generic path at every level
        {"long ranges, one empty", 64, 4, 1, 2, 1500, 4},  // split across threads (with 3+ threads)
    };
    for (const AttnShape &s : shapes) {
        for (GgmlType ct : {GgmlType::F32, GgmlType::F16}) {
            cases.push_back({std::string("attention ") + s.what + " cache " + type_traits(ct).name, 1e-5, [=](Ctx &c) {
                                 const int64_t kvw = s.hd * s.n_head_kv, group = s.n_head / s.n_head_kv;
                                 const AttentionOperands ops(c, ct, s.hd, s.n_head, s.n_head_kv, s.n_tok, s.n_cells);
                                 const auto &[kb, vb, kd, vd, qs, cells, q, k, v] = ops;
                                 std::vector<int32_t> begin(static_cast<size_t>(s.n_tok)), end(begin.size());
                                 for (int64_t t = 0; t < s.n_tok; ++t) {
                                     const int32_t last = static_cast<int32_t>(s.n_cells - s.n_tok + t + 1);  // causal
                                     begin[t] = s.mode == 1 ? std::max(0, last - 5) : 0;
                                     end[t] = s.mode == 3 ? static_cast<int32_t>(s.n_cells) : last;
                                     if (s.mode == 2 && t % 2 == 0) end[t] = begin[t] = 3;
                                     if (s.mode == 4 && t == 0) end[t] = begin[t] = 0;
                                 }
                                 const KvRanges kv{c.i32(cells), c.i32(begin), c.i32(end)};
                                 const Tensor out = c.empty(GgmlType::F32, s.hd * s.n_head, s.n_tok);
                                 const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
                                 c.g.attention(q, k, v, kv, static_cast<int>(s.n_head_kv), scale, out);
                                 std::vector<double> ref(static_cast<size_t>(s.hd * s.n_head * s.n_tok));
                                 for (int64_t t = 0; t < s.n_tok; ++t)
                                     for (int64_t h = 0; h < s.n_head; ++h) {
                                         std::vector<const double *> ks, vs;
                                         for (int32_t i = begin[t]; i < end[t]; ++i) {
                                             ks.push_back(kd.data() + cells[i] * kvw + (h / group) * s.hd);
                                             vs.push_back(vd.data() + cells[i] * kvw + (h / group) * s.hd);
                                         }
                                         ref_attend(qs.data() + (t * s.n_head + h) * s.hd, ks, vs, s.hd, scale,
                                                    ref.data() + (t * s.n_head + h) * s.hd);
                                     }
                                 return compare(c.read(out), ref);
                             }});
        }
    }
    // attention_windows: SGEMM products and the exp polynomial, softmax over at most a few
    // hundred tokens: 1e-5 as attention (on Vulkan it is the attention shader itself).
    struct WinShape {
        std::vector<int32_t> windows;
        int64_t hd, n_head, n_head_kv;
    };
    const WinShape wins[] = {{{7}, 32, 2, 2}, {{3, 5, 1}, 64, 4, 2}, {{100, 60}, 16, 3, 1}};
    for (const WinShape &s : wins) {
        std::string name = "attention_windows";
        for (int32_t w : s.windows) name += " " + std::to_string(w);
        name += " heads " + std::to_string(s.n_head) + "/" + std::to_string(s.n_head_kv);
        cases.push_back({name, 1e-5, [=](Ctx &c) {
                             const int64_t n_tok = std::accumulate(s.windows.begin(), s.windows.end(), int64_t(0));
                             const int64_t kvw = s.hd * s.n_head_kv, group = s.n_head / s.n_head_kv;
                             const auto qs = c.randn(s.hd * s.n_head * n_tok, 0.6f);
                             const auto kf = c.randn(kvw * n_tok), vf = c.randn(kvw * n_tok);
                             const Tensor q = c.f32(qs, s.hd, s.n_head, n_tok), k = c.f32(kf, kvw, n_tok), v = c.f32(vf, kvw, n_tok);
                             const Tensor out = c.empty(GgmlType::F32, s.hd * s.n_head, n_tok);
                             const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
                             c.g.attention_windows(q, k, v, c.i32(s.windows), static_cast<int>(s.n_head_kv), scale, out);
                             const std::vector<double> kd(kf.begin(), kf.end()), vd(vf.begin(), vf.end());
                             std::vector<double> ref(static_cast<size_t>(s.hd * s.n_head * n_tok));
                             int64_t start = 0;
                             for (int32_t w : s.windows) {
                                 for (int64_t t = start; t < start + w; ++t)
                                     for (int64_t h = 0; h < s.n_head; ++h) {
                                         std::vector<const double *> ks, vs;
                                         for (int64_t j = start; j < start + w; ++j) {
                                             ks.push_back(kd.data() + j * kvw + (h / group) * s.hd);
                                             vs.push_back(vd.data() + j * kvw + (h / group) * s.hd);
                                         }
                                         ref_attend(qs.data() + (t * s.n_head + h) * s.hd, ks, vs, s.hd, scale,
                                                    ref.data() + (t * s.n_head + h) * s.hd);
                                     }
                                 start += w;
                             }
                             return compare(c.read(out), ref);
                         }});
    }
}

void add_vision(std::vector<OpCase> &cases) {
    // patches / transpose: copies: exact.
    for (auto shape : {std::tuple<int64_t, int64_t, int64_t, int>{8, 6, 3, 2}, {28, 14, 3, 14}, {9, 9, 1, 3}}) {
        // Plain locals, not a structured binding: clang before 16 cannot capture those.
        const int64_t W = std::get<0>(shape), H = std::get<1>(shape), C = std::get<2>(shape);
        const int P = std::get<3>(shape);
        cases.push_back({"patches " + std::to_string(W) + "x" + std::to_string(H) + "x" + std::to_string(C) + " p" + std::to_string(P), 0.0,
                         [=](Ctx &c) {
                             const auto img = c.randn(W * H * C);
                             const int64_t gw = W / P, gh = H / P, rows = int64_t(P) * P * C;
                             const Tensor ti = c.f32(img, W, H, C), out = c.empty(GgmlType::F32, rows, gw * gh);
                             c.g.patches(ti, P, out);
                             std::vector<double> ref;
                             for (int64_t py = 0; py < gh; ++py)
                                 for (int64_t px = 0; px < gw; ++px)
                                     for (int64_t ch = 0; ch < C; ++ch)
                                         for (int64_t ky = 0; ky < P; ++ky)
                                             for (int64_t kx = 0; kx < P; ++kx)
                                                 ref.push_back(img[static_cast<size_t>(ch * W * H + (py * P + ky) * W + px * P + kx)]);
                             return compare(c.read(out), ref);
                         }});
    }
    for (auto [a, b, n] : {std::tuple<int64_t, int64_t, int64_t>{5, 7, 1}, {64, 33, 3}}) {
        cases.push_back({"transpose " + std::to_string(a) + "x" + std::to_string(b) + "x" + std::to_string(n), 0.0, [a = a, b = b, n = n](Ctx &c) {
                             const auto xs = c.randn(a * b * n);
                             const Tensor src = c.f32(xs, a, b, n), dst = c.empty(GgmlType::F32, b, a, n);
                             c.g.transpose(src, dst);
                             std::vector<double> ref;
                             for (int64_t k = 0; k < n; ++k)
                                 for (int64_t i = 0; i < a; ++i)
                                     for (int64_t j = 0; j < b; ++j) ref.push_back(xs[static_cast<size_t>((k * b + j) * a + i)]);
                             return compare(c.read(dst), ref);
                         }});
    }
    // resize_bilinear: two lerps of float values: 8 eps of max |ref| (the Vulkan shader gets
    // the CPU's taps and weights from the host and lerps in the same order).
    for (auto [C, wi, hi, wo, ho] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{3, 4, 4, 8, 6}, {16, 9, 7, 4, 3}, {1, 5, 5, 5, 5}}) {
        cases.push_back({"resize_bilinear " + std::to_string(wi) + "x" + std::to_string(hi) + "->" + std::to_string(wo) + "x" + std::to_string(ho),
                         8 * kEps, [C = C, wi = wi, hi = hi, wo = wo, ho = ho](Ctx &c) {
                             const auto xs = c.randn(C * wi * hi);
                             const Tensor src = c.f32(xs, C, wi, hi), dst = c.empty(GgmlType::F32, C, wo, ho);
                             c.g.resize_bilinear(src, dst);
                             auto tap = [](int64_t d, int64_t in, int64_t out, int64_t &i0, int64_t &i1) {
                                 const double s = (d + 0.5) * double(in) / double(out) - 0.5, fl = std::floor(s);
                                 i0 = std::clamp<int64_t>(static_cast<int64_t>(fl), 0, in - 1);
                                 i1 = std::clamp<int64_t>(static_cast<int64_t>(fl) + 1, 0, in - 1);
                                 return std::clamp(s - fl, 0.0, 1.0);
                             };
                             std::vector<double> ref;
                             for (int64_t y = 0; y < ho; ++y)
                                 for (int64_t x = 0; x < wo; ++x) {
                                     int64_t x0, x1, y0, y1;
                                     const double fx = tap(x, wi, wo, x0, x1), fy = tap(y, hi, ho, y0, y1);
                                     for (int64_t k = 0; k < C; ++k) {
                                         auto at = [&](int64_t yy, int64_t xx) { return double(xs[static_cast<size_t>((yy * wi + xx) * C + k)]); };
                                         const double top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
                                         const double bot = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
                                         ref.push_back(top + (bot - top) * fy);
                                     }
                                 }
                             return compare(c.read(dst), ref);
                         }});
    }
    // rope_2d: as rope: 4 eps (on Vulkan: two rope dispatches over host-computed tables).
    for (int64_t hd : {16, 64}) {
        cases.push_back({"rope_2d hd" + std::to_string(hd), 4 * kEps, [=](Ctx &c) {
                             const int64_t n_head = 3, n_tok = 4, half = hd / 2;
                             const auto xs = c.randn(hd * n_head * n_tok);
                             const int32_t pa[] = {0, 3, 17, 200}, pb[] = {5, 0, 9, 31};
                             const Tensor x = c.f32(xs, hd, n_head, n_tok);
                             c.g.rope_2d(x, c.i32({pa, pa + 4}), c.i32({pb, pb + 4}), 100.0f);
                             std::vector<double> ref(xs.begin(), xs.end());
                             for (int64_t t = 0; t < n_tok; ++t)
                                 for (int64_t h = 0; h < n_head; ++h)
                                     for (int part = 0; part < 2; ++part)
                                         for (int64_t i = 0; i < half / 2; ++i) {
                                             const double th = (part ? pb[t] : pa[t]) * std::pow(100.0, -2.0 * i / half);
                                             const size_t o = static_cast<size_t>((t * n_head + h) * hd + part * half + 2 * i);
                                             const double x0 = xs[o], x1 = xs[o + 1];
                                             ref[o] = x0 * std::cos(th) - x1 * std::sin(th);
                                             ref[o + 1] = x0 * std::sin(th) + x1 * std::cos(th);
                                         }
                             return compare(c.read(x), ref);
                         }});
    }
    // activation: float libm functions (a few ulp); GeluErf uses a polynomial erf with
    // 1.5e-7 absolute error: 16 eps of max |ref| covers all four. The Vulkan shader uses the
    // same erf polynomial and the driver's exp / tanh (tanh's argument clamped to +-10, where
    // tanh is 1.0 in float). Vulkan allows exp (3 + 2|x|) ulp, large only where exp(-x) is
    // large and the activation small against max |ref|; measured at most 0.7 eps on lavapipe.
    const std::pair<Activation, const char *> acts[] = {
        {Activation::GeluErf, "gelu_erf"}, {Activation::GeluTanh, "gelu_tanh"}, {Activation::GeluQuick, "gelu_quick"}, {Activation::Silu, "silu"}};
    for (auto [f, fname] : acts) {
        cases.push_back({std::string("activation ") + fname, 16 * kEps, [f = f](Ctx &c) {
                             const auto xs = c.randn(1000, 2.5f);
                             const Tensor x = c.f32(xs, 1000);
                             c.g.activation(x, f);
                             std::vector<double> ref;
                             for (float fv : xs) {
                                 const double v = fv;
                                 switch (f) {
                                 case Activation::GeluErf: ref.push_back(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)))); break;
                                 case Activation::GeluTanh:
                                     ref.push_back(0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
                                     break;
                                 case Activation::GeluQuick: ref.push_back(v / (1.0 + std::exp(-1.702 * v))); break;
                                 case Activation::Silu: ref.push_back(v / (1.0 + std::exp(-v))); break;
                                 }
                             }
                             return compare(c.read(x), ref);
                         }});
    }
}

// Every case of the table. A backend runs the same list (run_table below).
std::vector<OpCase> op_table() {
    std::vector<OpCase> cases;
    add_matmul(cases);
    add_matmul_bf16(cases);
    add_matmul_bf16_columns(cases);
    add_rows_ops(cases);
    add_norms(cases);
    add_elementwise(cases);
    add_attention(cases);
    add_attention_bf16_rows(cases);
    add_vision(cases);
    return cases;
}

// Runs the cases `only` accepts (all by default; then every op must be covered).
std::set<std::string> run_table(Backend &be, const std::string &label,
                                const std::function<bool(const std::string &)> &only = nullptr) {
    uint32_t seed = 1;
    std::vector<bool> covered(kOpCount, false);
    std::set<std::string> on_device;
    for (const OpCase &oc : op_table()) {
        const uint32_t case_seed = seed++;  // a case's seed does not depend on the filter
        if (only && !only(oc.name)) continue;
        Ctx c(be, case_seed);
        const Result r = oc.run(c);
        for (int op = 0; op < kOpCount; ++op)
            if (c.ran[static_cast<size_t>(op)]) covered[static_cast<size_t>(op)] = true;
        on_device.insert(c.on_device.begin(), c.on_device.end());
        if (std::getenv("MUSE_TEST_OPS_VERBOSE"))  // the measured errors, to review the bounds
            std::printf("%-12s %-50s error %.3g  bound %.3g\n", label.c_str(), oc.name.c_str(), r.err, oc.bound);
        INFO(label << ": " << oc.name << ": error " << r.err << ", bound " << oc.bound);
        CHECK(r.finite);
        CHECK(r.err <= oc.bound);
    }
    for (int op = 0; op < kOpCount && !only; ++op) {  // the table covers every op of graph.h
        INFO(label << ": no case runs " << op_name(static_cast<Op>(op)));
        CHECK(covered[static_cast<size_t>(op)]);
    }
    return on_device;
}

// The CPU dispatch levels to test: all this machine has, capped by MUSE_CPU_LEVEL.
std::vector<cpu::CpuLevel> levels() {
    static const cpu::CpuLevel start = cpu::cpu_level();  // MUSE_CPU_LEVEL, before any test changes it
    std::vector<cpu::CpuLevel> out;
    for (cpu::CpuLevel l : {cpu::CpuLevel::scalar, cpu::CpuLevel::avx2, cpu::CpuLevel::avx512})
        if (static_cast<int>(l) <= static_cast<int>(start)) out.push_back(l);
    return out;
}

struct LevelGuard {
    cpu::CpuLevel saved = cpu::cpu_level();
    ~LevelGuard() { cpu::set_cpu_level(saved); }
};

} // namespace

TEST_CASE("every backend op matches its reference, at every CPU dispatch level") {
    LevelGuard guard;
    for (cpu::CpuLevel level : levels()) {
        cpu::set_cpu_level(level);
        REQUIRE(cpu::cpu_level() == level);
        auto be = make_backend(MUSE_BACKEND_CPU, 2);
        run_table(*be, std::string("cpu/") + cpu::to_string(level));
    }
    // An odd thread count: uneven shares, and attention's cell-range splits with their merge.
    auto be = make_backend(MUSE_BACKEND_CPU, 5);
    run_table(*be, std::string("cpu/") + cpu::to_string(cpu::cpu_level()) + "/5 threads");
}

TEST_CASE("every backend op matches its reference on the Vulkan backend") {
    // Built with -DMUSE_VULKAN=ON and a device (MUSE_VULKAN_DEVICE=llvmpipe admits lavapipe):
    // the same table, the device's shaders where it has them, its CPU fallback elsewhere.
    std::unique_ptr<Backend> be;
    try {
        be = make_backend(MUSE_BACKEND_VULKAN, 2);
    } catch (const Error &e) {
        WARN("Vulkan backend not available: " << e.what());
        return;
    }
    INFO(be->device().name);
    const std::set<std::string> shaders = run_table(*be, "vulkan/" + be->device().name);
    // The ops the backend has shaders for ran on the device (the rest went to its CPU fallback).
    for (const char *want : {"matmul F32", "matmul F16", "matmul Q8_0", "matmul Q4_0", "matmul Q4_K", "matmul Q5_K",
                             "matmul Q6_K", "add F32", "mul_row F32", "scale F32", "rms_norm F32", "layer_norm F32",
                             "swiglu F32", "sigmoid_mul F32", "softcap F32", "get_rows F32", "get_rows F16", "get_rows Q8_0",
                             "get_rows Q4_0", "get_rows Q4_K", "get_rows Q5_K", "get_rows Q6_K", "rope F32",
                             "set_columns F32", "attention F32", "patches F32", "resize_bilinear F32", "rope_2d F32",
                             "activation F32", "transpose F32", "attention_windows F32"}) {
        INFO(want);
        CHECK(shaders.count(want) == 1);
    }
    std::string list;
    for (const auto &s : shaders) list += (list.empty() ? "" : ", ") + s;
    std::printf("vulkan (%s) ran on the device: %s\n", be->device().name.c_str(), list.c_str());
    // lavapipe has subgroup arithmetic, so the table above ran the subgroup reductions there.
    const auto &caps = be->device().capabilities;
    const bool subgroups = std::find(caps.begin(), caps.end(), "subgroups") != caps.end();
    if (be->device().name.find("llvmpipe") != std::string::npos && !std::getenv("MUSE_VULKAN_SUBGROUPS"))
        CHECK(subgroups);
}

TEST_CASE("the Vulkan reductions without subgroups (the portable path) match their references") {
    // MUSE_VULKAN_SUBGROUPS=0 keeps the shared-memory tree sums that every device runs; the
    // cases of the shaders that have a subgroup variant (matmul, rms_norm, layer_norm).
    setenv("MUSE_VULKAN_SUBGROUPS", "0", 1);
    std::unique_ptr<Backend> be;
    try {
        be = make_backend(MUSE_BACKEND_VULKAN, 2);
    } catch (const Error &e) {
        unsetenv("MUSE_VULKAN_SUBGROUPS");
        WARN("Vulkan backend not available: " << e.what());
        return;
    }
    unsetenv("MUSE_VULKAN_SUBGROUPS");
    const auto &caps = be->device().capabilities;
    CHECK(std::find(caps.begin(), caps.end(), "subgroups") == caps.end());
    const std::set<std::string> shaders = run_table(*be, "vulkan/" + be->device().name + "/no subgroups", [](const std::string &n) {
        for (const char *p : {"matmul F32 ", "matmul F16 ", "matmul Q8_0 ", "matmul Q4_0 ", "matmul Q4_K ", "matmul Q5_K ",
                              "matmul Q6_K ", "rms_norm ", "layer_norm "})
            if (n.rfind(p, 0) == 0) return true;
        return false;
    });
    for (const char *want : {"matmul F32", "matmul Q4_K", "matmul Q6_K", "rms_norm F32", "layer_norm F32"}) {
        INFO(want);
        CHECK(shaders.count(want) == 1);
    }
}

TEST_CASE("matmul columns of a decode batch are bit-identical to single-token calls") {
    LevelGuard guard;
    for (cpu::CpuLevel level : levels()) {
        cpu::set_cpu_level(level);
        auto be = make_backend(MUSE_BACKEND_CPU, 2);
        for (GgmlType type : weight_types()) {
            // 200 rows: 13 groups, so each of the two threads streams several at once (one
            // token's kernel reads four groups block by block, and the rest one at a time).
            for (const auto [k, n_out] : {std::pair<int64_t, int64_t>{256, 45}, {512, 45}, {512, 200}}) {
                Ctx c(*be, 7);
                const int64_t n_tok = 16;
                const auto wb = random_weights(c, type, k * n_out);
                const auto xs = c.randn(k * n_tok);
                const Tensor w = c.weights(type, wb, k, n_out);
                const Tensor x = c.f32(xs, k, n_tok), y = c.empty(GgmlType::F32, n_out, n_tok);
                c.g.matmul(w, x, y);
                const std::vector<float> batch = c.read(y);
                for (int64_t nt : {1, 3, 8, 9}) {  // also every smaller batch: columns are independent of it
                    const Tensor xb = c.f32(std::vector<float>(xs.begin(), xs.begin() + k * nt), k, nt);
                    const Tensor yb = c.empty(GgmlType::F32, n_out, nt);
                    c.g.matmul(w, xb, yb);
                    const std::vector<float> part = c.read(yb);
                    INFO(cpu::to_string(level) << " " << type_traits(type).name << " k " << k << " batch " << nt);
                    CHECK(std::memcmp(part.data(), batch.data(), part.size() * 4) == 0);
                }
                // The fused loaders produce exactly core/dequant.cpp's values, so a row of any type
                // gives the bits of its dequantized F32 row (Q8_0 / Q4_0 factor the block scale
                // out of the products instead, and repacked weights use 8-bit activations:
                // close, not identical).
                if (type != GgmlType::Q8_0 && type != GgmlType::Q4_0 && w.layout != WeightLayout::rows16) {
                    std::vector<float> deq(static_cast<size_t>(k * n_out));
                    dequantize(type, wb.data(), deq.data(), k * n_out);
                    std::vector<uint8_t> fb(deq.size() * 4);
                    std::memcpy(fb.data(), deq.data(), fb.size());
                    const Tensor yf = c.empty(GgmlType::F32, n_out, n_tok);
                    c.g.matmul(c.weights(GgmlType::F32, fb, k, n_out), x, yf);
                    const std::vector<float> via_f32 = c.read(yf);
                    INFO(cpu::to_string(level) << " " << type_traits(type).name << " k " << k << " against F32 rows");
                    CHECK(std::memcmp(via_f32.data(), batch.data(), batch.size() * 4) == 0);
                }
                for (int64_t t = 0; t < n_tok; ++t) {
                    const Tensor x1 = c.f32(std::vector<float>(xs.begin() + t * k, xs.begin() + (t + 1) * k), k, 1);
                    const Tensor y1 = c.empty(GgmlType::F32, n_out, 1);
                    c.g.matmul(w, x1, y1);
                    const std::vector<float> one = c.read(y1);
                    INFO(cpu::to_string(level) << " " << type_traits(type).name << " k " << k << " token " << t);
                    CHECK(std::memcmp(one.data(), batch.data() + t * n_out, one.size() * 4) == 0);
                }
            }
        }
    }
}

TEST_CASE("CPU dispatch levels: detection, clamping and names") {
    LevelGuard guard;
    const cpu::CpuLevel detected = cpu::detected_cpu_level();
    cpu::set_cpu_level(cpu::CpuLevel::avx512);
    CHECK(cpu::cpu_level() == detected);  // never above what the CPU and the build have
    cpu::set_cpu_level(cpu::CpuLevel::scalar);
    CHECK(cpu::cpu_level() == cpu::CpuLevel::scalar);
    CHECK(std::string(cpu::to_string(cpu::CpuLevel::avx2)) == "avx2");
    for (cpu::CpuLevel l : levels()) CHECK(static_cast<int>(l) <= static_cast<int>(detected));
    // The SIMD levels have fused loaders for the common weight types (so the table above
    // exercises them, not the dequantize-first path).
    for (cpu::CpuLevel l : levels()) {
        if (l == cpu::CpuLevel::scalar) continue;
        for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                           GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
            INFO(cpu::to_string(l) << " " << type_traits(t).name);
            CHECK(cpu::row_dot_kernel(t, l).fused);
        }
    }
}

TEST_CASE("F32 -> F16 rows (the KV cache writes) give fp32_to_fp16's bits at every level") {
    LevelGuard guard;
    // A sweep over the float bit patterns (every sign and exponent, many mantissas: ties,
    // subnormal results, overflow to infinity, NaNs) plus odd lengths for the tails.
    std::vector<float> x;
    for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4093) {
        const auto b = static_cast<uint32_t>(bits);
        float f;
        std::memcpy(&f, &b, 4);
        x.push_back(f);
    }
    for (float f : {65504.0f, 65520.0f, 65519.99f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 1.0009766f})
        x.push_back(f), x.push_back(-f);
    for (cpu::CpuLevel l : levels()) {
        cpu::set_cpu_level(l);
        INFO(cpu::to_string(l));
        for (const int64_t n : {int64_t(x.size()), int64_t(7), int64_t(13)}) {
            std::vector<uint16_t> y(static_cast<size_t>(n));
            cpu::fp32_to_fp16_row(x.data(), y.data(), n);
            size_t differ = 0;
            for (int64_t i = 0; i < n; ++i) differ += y[static_cast<size_t>(i)] != fp32_to_fp16(x[static_cast<size_t>(i)]);
            CHECK(differ == 0);
        }
    }
}

// Timing, not a check (hidden: run with `test-backend-ops "[.bench]"`): decode attention over
// a long cache at every level, the shapes of a 0.5B llama (14 heads, 2 kv heads) and of a
// single-kv-head model (cells split across threads).
TEST_CASE("attention decode timing", "[.bench]") {
    LevelGuard guard;
    struct Shape {
        int64_t n_head, n_head_kv, hd, n_tok, n_cells;
    };
    for (cpu::CpuLevel level : levels()) {
        cpu::set_cpu_level(level);
        auto be = make_backend(MUSE_BACKEND_CPU, 2);
        for (const Shape s : {Shape{14, 2, 64, 1, 4096}, Shape{8, 1, 128, 1, 4096}, Shape{14, 2, 64, 8, 4096},
                              Shape{14, 2, 64, 256, 256}}) {
            Ctx c(*be, 3);
            const int64_t kvw = s.hd * s.n_head_kv;
            const auto kb = random_weights(c, GgmlType::F16, kvw * s.n_cells);
            const auto vb = random_weights(c, GgmlType::F16, kvw * s.n_cells);
            std::vector<int32_t> cells(static_cast<size_t>(s.n_cells)), begin(static_cast<size_t>(s.n_tok), 0),
                end(static_cast<size_t>(s.n_tok));
            std::iota(cells.begin(), cells.end(), 0);
            for (int64_t t = 0; t < s.n_tok; ++t) end[t] = static_cast<int32_t>(s.n_cells - s.n_tok + t + 1);
            const Tensor q = c.f32(c.randn(s.hd * s.n_head * s.n_tok), s.hd, s.n_head, s.n_tok);
            const Tensor k = c.weights(GgmlType::F16, kb, kvw, s.n_cells), v = c.weights(GgmlType::F16, vb, kvw, s.n_cells);
            const Tensor out = c.empty(GgmlType::F32, s.hd * s.n_head, s.n_tok);
            const KvRanges kv{c.i32(cells), c.i32(begin), c.i32(end)};
            double best = 1e30;
            for (int rep = 0; rep < 20; ++rep) {
                timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                c.g.attention(q, k, v, kv, static_cast<int>(s.n_head_kv), 0.125f, out);
                c.flush();
                clock_gettime(CLOCK_MONOTONIC, &t1);
                best = std::min(best, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6);
            }
            std::printf("%-7s heads %2lld/%lld hd %3lld tokens %3lld cells %5lld: %.3f ms\n", cpu::to_string(level),
                        (long long)s.n_head, (long long)s.n_head_kv, (long long)s.hd, (long long)s.n_tok,
                        (long long)s.n_cells, best);
        }
    }
}

TEST_CASE("repacked Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K weights give the same bits at every dispatch level") {
    LevelGuard guard;
    cpu::set_cpu_level(cpu::CpuLevel::avx512);
    if (!cpu::int8_matmul_available()) {
        SUCCEED("no AVX-512 VNNI here: Q8_0 / Q4_0 weights stay in the file's layout");
        return;
    }
    auto be = make_backend(MUSE_BACKEND_CPU, 2);
    // A partial last group, and batch sizes that take each AMX path where the CPU has it:
    // 8 and 13 tokens (one padded tile read from the packed Q8_0 weights; VNNI for the other
    // types), 45 (two full 16-token tiles and a padded third: packed Q8_0 tiles, spread
    // tiles for the others), 100 (six tiles, spread for every type, a 4-token VNNI tail).
    for (const int64_t n_tok : {8, 13, 45, 100})
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
        INFO(type_traits(type).name << ", " << n_tok << " tokens");
        Ctx c(*be, 11);
        const int64_t k = 512, n_out = 45;
        const auto wb = random_weights(c, type, k * n_out);
        const auto xs = c.randn(k * n_tok);
        const Tensor w = c.weights(type, wb, k, n_out);
        REQUIRE(w.layout == WeightLayout::rows16);
        const Tensor x = c.f32(xs, k, n_tok), y = c.empty(GgmlType::F32, n_out, n_tok);
        c.g.matmul(w, x, y);
        const std::vector<float> vnni = c.read(y);
        // AMX (16-token tiles, where the CPU has it) against VNNI alone: the same bits.
        if (cpu::int8_amx_available()) {
            cpu::int8_set_amx_enabled(false);
            const Tensor y_vnni = c.empty(GgmlType::F32, n_out, n_tok);
            c.g.matmul(w, x, y_vnni);
            c.flush();  // runs now, while AMX is off
            cpu::int8_set_amx_enabled(true);
            const std::vector<float> got = c.read(y_vnni);
            CHECK(std::memcmp(got.data(), vnni.data(), got.size() * 4) == 0);
        }
        for (cpu::CpuLevel level : levels()) {
            cpu::set_cpu_level(level);  // the packed tensor stays; lower levels run the scalar kernel
            const Tensor y2 = c.empty(GgmlType::F32, n_out, n_tok);
            c.g.matmul(w, x, y2);
            const std::vector<float> got = c.read(y2);
            INFO(cpu::to_string(level));
            CHECK(std::memcmp(got.data(), vnni.data(), got.size() * 4) == 0);
        }
        // Views of whole groups (a fused QKV weight split by rows) read the right rows.
        cpu::set_cpu_level(cpu::CpuLevel::avx512);
        const Tensor tail = w.rows(32, 13), y3 = c.empty(GgmlType::F32, 13, n_tok);
        c.g.matmul(tail, x, y3);
        const std::vector<float> part = c.read(y3);
        for (int64_t t = 0; t < n_tok; ++t)
            CHECK(std::memcmp(part.data() + t * 13, vnni.data() + t * n_out + 32, 13 * 4) == 0);
        CHECK_THROWS(w.rows(8, 16));
    }
}

TEST_CASE("BF16-marked matmul columns give the same bits alone, in any batch and beside unmarked ones") {
    // A marked column (a bulk prompt row) takes AMX-BF16 tiles whatever else rides in its call:
    // its bits must not depend on the call's size, the runs of marks around it or the thread
    // split; unmarked columns keep the integer kernels' bits.
    if (!cpu::amx_bf16_available()) {
        SUCCEED("no AMX-BF16 here: marked columns take the integer kernels like the others");
        return;
    }
    auto be = make_backend(MUSE_BACKEND_CPU, 2);
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
        for (const int64_t n_tok : {1, 13, 45, 100}) {
            INFO(type_traits(type).name << ", " << n_tok << " tokens");
            Ctx c(*be, 23);
            const int64_t k = 512, n_out = 45;
            const auto wb = random_weights(c, type, k * n_out);
            const auto xs = c.randn(k * n_tok);
            const Tensor w = c.weights(type, wb, k, n_out);
            REQUIRE(w.layout == WeightLayout::rows16);
            const Tensor x = c.f32(xs, k, n_tok);
            auto run = [&](const std::vector<int32_t> &marks) {
                const Tensor y = c.empty(GgmlType::F32, n_out, n_tok);
                c.g.bf16_columns(c.i32(marks));
                c.g.matmul(w, x, y);
                c.g.bf16_columns(Tensor());
                return c.read(y);
            };
            const std::vector<float> all = run(std::vector<int32_t>(static_cast<size_t>(n_tok), 1));
            const std::vector<float> none = run(std::vector<int32_t>(static_cast<size_t>(n_tok), 0));
            std::vector<int32_t> mixed(static_cast<size_t>(n_tok));
            for (int64_t t = 0; t < n_tok; ++t) mixed[static_cast<size_t>(t)] = (t / 5) % 2 == 0;
            const std::vector<float> both = run(mixed);
            for (int64_t t = 0; t < n_tok; ++t) {
                INFO("column " << t);
                const float *want = (mixed[static_cast<size_t>(t)] ? all : none).data() + t * n_out;
                CHECK(std::memcmp(both.data() + t * n_out, want, static_cast<size_t>(n_out) * 4) == 0);
            }
            // Marked columns alone (one-token calls) against the whole batch.
            for (int64_t t = 0; t < n_tok; t += std::max<int64_t>(1, n_tok / 4)) {
                const Tensor x1 = c.f32(std::vector<float>(xs.begin() + t * k, xs.begin() + (t + 1) * k), k, 1);
                const Tensor y1 = c.empty(GgmlType::F32, n_out, 1);
                c.g.bf16_columns(c.i32({1}));
                c.g.matmul(w, x1, y1);
                c.g.bf16_columns(Tensor());
                const std::vector<float> one = c.read(y1);
                INFO("column " << t << " alone");
                CHECK(std::memcmp(one.data(), all.data() + t * n_out, static_cast<size_t>(n_out) * 4) == 0);
            }
            // And they differ from the integer kernels' (the marks were honoured).
            CHECK(std::memcmp(all.data(), none.data(), all.size() * 4) != 0);
        }
}

TEST_CASE("BF16-marked attention rows give the same bits whatever rows share their tiles") {
    if (!cpu::amx_attention_takes(64)) {
        SUCCEED("no AMX-BF16 here: marked attention rows take the F32 kernels like the others");
        return;
    }
    auto be = make_backend(MUSE_BACKEND_CPU, 2);
    Ctx c(*be, 31);
    const int64_t hd = 64, n_head = 4, n_head_kv = 2, n_cells = 90, n_tok = 40, kvw = hd * n_head_kv;
    const Tensor k = c.f32(c.randn(kvw * n_cells), kvw, n_cells), v = c.f32(c.randn(kvw * n_cells), kvw, n_cells);
    const std::vector<float> qs = c.randn(hd * n_head * n_tok, 0.6f);
    std::vector<int32_t> cells(static_cast<size_t>(n_cells));
    std::iota(cells.begin(), cells.end(), 0);
    std::shuffle(cells.begin(), cells.end(), c.rng);
    // Tokens [t0, t1) of the prompt (the last 40 positions of the 90), marked or not.
    auto run = [&](int64_t t0, int64_t t1, bool marked) {
        std::vector<int32_t> begin, end;
        for (int64_t t = t0; t < t1; ++t) {
            begin.push_back(0);
            end.push_back(static_cast<int32_t>(n_cells - n_tok + t + 1));
        }
        const int64_t n = t1 - t0;
        const Tensor q = c.f32(std::vector<float>(qs.begin() + t0 * hd * n_head, qs.begin() + t1 * hd * n_head), hd, n_head, n);
        const Tensor out = c.empty(GgmlType::F32, hd * n_head, n);
        if (marked) c.g.bf16_columns(c.i32(std::vector<int32_t>(static_cast<size_t>(n), 1)));
        c.g.attention(q, k, v, KvRanges{c.i32(cells), c.i32(begin), c.i32(end)}, static_cast<int>(n_head_kv), 0.125f, out);
        c.g.bf16_columns(Tensor());
        return c.read(out);
    };
    const std::vector<float> all = run(0, n_tok, true), plain = run(0, n_tok, false);
    CHECK(std::memcmp(all.data(), plain.data(), all.size() * 4) != 0);  // the marks were honoured
    for (const auto &[t0, t1] : {std::pair<int64_t, int64_t>{5, 20}, {17, 18}, {33, 40}}) {
        INFO("tokens " << t0 << ".." << t1);
        const std::vector<float> part = run(t0, t1, true);
        CHECK(std::memcmp(part.data(), all.data() + t0 * hd * n_head, part.size() * 4) == 0);
    }
}

TEST_CASE("matmuls that share an input run as one job and give the bits of separate runs") {
    // The CPU backend fuses matmuls recorded back to back on one activation (Q/K/V,
    // gate/up). Mixed weight types in one group (Q4_K_M files mix Q4_K and Q6_K), decode
    // and prompt batch sizes, repacked and plain weights.
    auto be = make_backend(MUSE_BACKEND_CPU, 3);
    const std::vector<std::vector<GgmlType>> groups = {
        {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_K}, {GgmlType::Q8_0, GgmlType::Q4_0}, {GgmlType::F16, GgmlType::BF16, GgmlType::F32}};
    for (const auto &types : groups) {
        for (int64_t n_tok : {1, 5, 40}) {
            Ctx c(*be, 11);
            const int64_t k = 512;
            const Tensor x = c.f32(c.randn(k * n_tok), k, n_tok);
            std::vector<Tensor> ws, fused, alone;
            for (size_t i = 0; i < types.size(); ++i) {
                const int64_t n_out = 48 + 16 * static_cast<int64_t>(i) + (i == 1 ? 3 : 0);  // one ragged last group
                ws.push_back(c.weights(types[i], random_weights(c, types[i], k * n_out), k, n_out));
                fused.push_back(c.empty(GgmlType::F32, n_out, n_tok));
                alone.push_back(c.empty(GgmlType::F32, n_out, n_tok));
            }
            for (size_t i = 0; i < ws.size(); ++i) c.g.matmul(ws[i], x, fused[i]);
            c.flush();
            for (size_t i = 0; i < ws.size(); ++i) {
                c.g.matmul(ws[i], x, alone[i]);
                c.g.scale(x, 1.0f);  // an op in between: no group
            }
            for (size_t i = 0; i < ws.size(); ++i) {
                INFO(type_traits(types[i]).name << " n_tok " << n_tok);
                const auto a = c.read(fused[i]), b = c.read(alone[i]);
                CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
            }
        }
    }
}
