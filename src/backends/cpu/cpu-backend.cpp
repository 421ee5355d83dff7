#include "backends/cpu/cpu-backend.h"

#include "backends/cpu/cpu-attention.h"
#include "backends/cpu/cpu-amx-bf16-matmul.h"
#include "backends/cpu/cpu-amx-tiles.h"
#include "backends/cpu/cpu-bf16-matmul.h"
#include "backends/cpu/cpu-elementwise.h"
#include "backends/cpu/cpu-int8-matmul.h"
#include "backends/cpu/cpu-kernels.h"
#include "backends/cpu/cpu-simd.h"
#include "backends/cpu/cpu-vision-ops.h"
#include "backends/cpu/thread-pool.h"
#include "backends/graph.h"
#include "core/dequant.h"
#include "core/error.h"

#include <oneapi/dnnl/dnnl.h>

#include <atomic>
#include <mutex>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include <unistd.h>

// From the OpenMP runtime oneDNN is built on (declared here: clang has no omp.h without libomp-dev).
extern "C" void omp_set_num_threads(int);

namespace muse {
namespace {

class HostBuffer final : public Buffer {
public:
    // zeroed: false only where the caller writes every byte before anything reads it (the
    // repacked weights: zeroing them first was a single-threaded pass over the whole model
    // at load).
    explicit HostBuffer(size_t bytes, bool zeroed = true) {
        size_ = bytes;
        data_ = static_cast<uint8_t *>(std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64));
        if (!data_) throw std::bad_alloc();
        if (zeroed) std::memset(data_, 0, bytes);
    }
    ~HostBuffer() override { std::free(data_); }
    void *host() override { return data_; }

private:
    uint8_t *data_;
};

using cpu::row_to_f32;

// Q8_0, Q4_0 and Q4_K matrices are repacked for the integer kernels when the CPU has them
// (cpu-int8-matmul.h); every other weight is used in place, mapped from the file. F32 and F16
// matrices are made known to the BF16 matmul, which keeps a BF16 copy of those it multiplies
// until this buffer goes (the shared_ptr: a model may free its backend before its weights).
class CpuWeightBuffer final : public WeightBuffer {
public:
    CpuWeightBuffer(ThreadPool &pool, std::shared_ptr<cpu::Bf16Matmul> bf16) : pool_(pool), bf16_(std::move(bf16)) {}
    ~CpuWeightBuffer() override { bf16_->forget(this); }
    CpuWeightBuffer(const CpuWeightBuffer &) = delete;
    CpuWeightBuffer &operator=(const CpuWeightBuffer &) = delete;

    Tensor add(GgmlType type, const int64_t ne[4], const void *host_data) override {
        Tensor t;
        t.type = type;
        for (int d = 0; d < 4; ++d) t.ne[d] = ne[d];
        t.mapped = host_data;
        if (cpu::int8_packable(type) && ne[2] == 1 && ne[3] == 1 && ne[0] % 32 == 0 &&
            cpu::int8_matmul_available()) {
            auto buf = std::make_unique<HostBuffer>(cpu::int8_packed_bytes(type, ne[0], ne[1]), false);  // int8_pack writes all
            auto *dst = static_cast<uint8_t *>(buf->host());
            const auto *src = static_cast<const uint8_t *>(host_data);
            // In slices of about 16 MB of the file, each handed back once packed (groups are
            // whole rows, so a slice is one contiguous range of the source).
            const int64_t groups = (ne[1] + cpu::kInt8Rows - 1) / cpu::kInt8Rows;
            const size_t group_src_bytes = t.row_bytes() * static_cast<size_t>(cpu::kInt8Rows);
            const int64_t slice = std::max<int64_t>(8, static_cast<int64_t>((size_t(16) << 20) / group_src_bytes));
            for (int64_t s0 = 0; s0 < groups; s0 += slice) {
                const int64_t s1 = std::min(groups, s0 + slice);
                pool_.parallel_for(s1 - s0, [&](int64_t g0, int64_t g1) {
                    cpu::int8_pack(type, src, ne[0], ne[1], s0 + g0, s0 + g1, dst);
                }, 8);
                const size_t end = std::min(static_cast<size_t>(s1) * group_src_bytes, t.n_bytes());
                host_data_done(src + static_cast<size_t>(s0) * group_src_bytes, end - static_cast<size_t>(s0) * group_src_bytes);
            }
            t.mapped = nullptr;
            t.buffer = buf.get();
            t.layout = WeightLayout::rows16;
            packed_.push_back(std::move(buf));
        } else if (t.n_bytes() <= kOwnedSmallBytes) {
            // Norm weights and biases: a few KB between large tensors. Reading them in place at
            // run time faults in the file's (large) page-cache folios around them, megabytes of
            // neighbouring weights that already have their repacked copy (78 MB for the 0.5B Q8_0).
            auto buf = std::make_unique<HostBuffer>(t.n_bytes(), false);
            std::memcpy(buf->host(), host_data, t.n_bytes());
            t.mapped = nullptr;
            t.buffer = buf.get();
            packed_.push_back(std::move(buf));
        } else if (type == GgmlType::F32 || type == GgmlType::F16) {
            bf16_->remember(this, host_data, t.n_bytes());
        }
        return t;
    }

private:
    static constexpr size_t kOwnedSmallBytes = 64 * 1024;

    ThreadPool &pool_;
    std::shared_ptr<cpu::Bf16Matmul> bf16_;
    std::vector<std::unique_ptr<HostBuffer>> packed_;  // repacked matrices and copied small tensors
};

// The processor's marketing name (/proc/cpuinfo "model name"), or "cpu" where there is none.
std::string cpu_model_name() {
    std::FILE *f = std::fopen("/proc/cpuinfo", "r");
    if (!f) return "cpu";
    char line[512];
    std::string name = "cpu";
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, "model name", 10) != 0) continue;
        const char *colon = std::strchr(line, ':');
        if (!colon) break;
        name = colon + 1;
        while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.erase(name.begin());
        while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
        break;
    }
    std::fclose(f);
    return name.empty() ? "cpu" : name;
}

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int n_threads)
        : pool_(n_threads > 0 ? n_threads : default_thread_count()), bf16_(std::make_shared<cpu::Bf16Matmul>()) {}

    std::string name() const override { return "cpu"; }

    DeviceInfo device() const override {
        DeviceInfo d;
        d.kind = DeviceInfo::Kind::cpu;
        d.capabilities.push_back(cpu::to_string(cpu::cpu_level()));
        if (cpu::int8_matmul_available()) d.capabilities.push_back("int8-dot");
        if (cpu::int8_amx_available()) d.capabilities.push_back("amx");
        if (cpu::bf16_matmul_available()) d.capabilities.push_back("bf16");
        d.name = cpu_model_name();
        // Host memory: what the OS reports (the CPU backend's buffers and mapped weights live there).
        const long page = sysconf(_SC_PAGESIZE), total = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
        if (page > 0 && total > 0) d.memory_total = static_cast<size_t>(page) * static_cast<size_t>(total);
        if (page > 0 && avail > 0) d.memory_free = static_cast<size_t>(page) * static_cast<size_t>(avail);
        return d;
    }

    std::unique_ptr<Buffer> alloc(size_t bytes) override { return std::make_unique<HostBuffer>(bytes); }
    std::unique_ptr<Buffer> alloc_scratch(size_t bytes) override { return std::make_unique<HostBuffer>(bytes, false); }
    std::unique_ptr<WeightBuffer> weight_buffer() override { return std::make_unique<CpuWeightBuffer>(pool_, bf16_); }

    void upload(const Tensor &dst, const void *src, size_t bytes) override {
        std::memcpy(static_cast<uint8_t *>(dst.buffer->host()) + dst.offset, src, bytes);
    }
    void download(const Tensor &src, void *dst, size_t bytes) override { std::memcpy(dst, src.raw(), bytes); }

    // Every op of graph.h, on host tensors of any type the dequantizer reads; integer
    // operands must be I32.
    bool supports_op(const OpNode &n) const override {
        const auto host = [](const Tensor &t) { return !t.valid() || t.buffer == nullptr || t.buffer->host(); };
        for (const Tensor &t : n.src)
            if (!host(t)) return false;
        if (!host(n.dst)) return false;
        switch (n.op) {
        case Op::GetRows: return n.src[1].type == GgmlType::I32;
        case Op::Rope: return n.src[1].type == GgmlType::I32;
        case Op::SetColumns:
            return n.src[1].type == GgmlType::I32 && (n.dst.type == GgmlType::F32 || n.dst.type == GgmlType::F16);
        case Op::Attention:
            return n.src[3].type == GgmlType::I32 && n.src[4].type == GgmlType::I32 && n.src[5].type == GgmlType::I32 &&
                   (!n.src[6].valid() || n.src[6].type == GgmlType::I32);
        case Op::Rope2d: return n.src[1].type == GgmlType::I32 && n.src[2].type == GgmlType::I32;
        case Op::AttentionWindows: return n.src[3].type == GgmlType::I32;
        default: return true;
        }
    }

    void compute(const Graph &graph) override {
        for (const GraphInput &in : graph.inputs()) upload(in.dst, graph.staged(in), in.bytes);
        const std::vector<OpNode> &nodes = graph.nodes();
        for (size_t i = 0; i < nodes.size();) {
            if (!supports_op(nodes[i]))
                fail(MUSE_ERR_INTERNAL, "the cpu backend cannot run ", op_name(nodes[i].op), " on these operands");
            // Matmuls recorded back to back on one activation (Q/K/V, gate/up) run as one job.
            size_t j = i + 1;
            while (j < nodes.size() && joins_matmul_group(nodes, i, j)) ++j;
            if (j - i > 1) matmul_group(&nodes[i], j - i);
            else run(nodes[i]);
            i = j;
        }
    }

private:
    static bool overlaps(const Tensor &a, const Tensor &b) {
        if (a.buffer != b.buffer || a.mapped != b.mapped) return false;
        return a.offset < b.offset + b.n_bytes() && b.offset < a.offset + a.n_bytes();
    }

    // Whether nodes[j] can run in one job with the matmuls nodes[first..j): the same input x
    // and kernel family, and no output of the group overlapping x (the group reads x only
    // once, before any of its outputs is written).
    static bool joins_matmul_group(const std::vector<OpNode> &nodes, size_t first, size_t j) {
        const OpNode &a = nodes[first], &b = nodes[j];
        if (a.op != Op::MatMul || b.op != Op::MatMul) return false;
        const Tensor &x = a.src[1], &xb = b.src[1];
        if (xb.buffer != x.buffer || xb.offset != x.offset || xb.ne[0] != x.ne[0] || xb.n_rows() != x.n_rows())
            return false;
        if (!x.buffer || x.type != GgmlType::F32) return false;
        const Tensor &fa = a.src[2], &fb = b.src[2];  // the same BF16 column flags, or none
        if (fa.valid() != fb.valid() || (fa.valid() && (fa.buffer != fb.buffer || fa.offset != fb.offset))) return false;
        const bool packed = a.src[0].layout == WeightLayout::rows16;
        if ((b.src[0].layout == WeightLayout::rows16) != packed) return false;
        if (!packed && x.n_rows() >= kGemmMinTokens) return false;  // SGEMM panels: one weight at a time
        for (size_t k = first; k <= j; ++k)
            if (overlaps(nodes[k].dst, x)) return false;
        return true;
    }

    // One pool job for several matmuls of one input: each part is a weight's rows (row
    // groups when repacked), concatenated; the activation is quantized once for all.
    void matmul_group(const OpNode *group, size_t count) {
        for (size_t k = 0; k < count; ++k) check_matmul(group[k].src[0], group[k].src[1], group[k].dst);
        if (group[0].src[0].layout == WeightLayout::rows16) {
            packed_matmuls(group, count);
            return;
        }
        const Tensor &x = group[0].src[1];
        const float *xs = x.f32();
        const int64_t n_tok = x.n_rows();
        const Parts parts(group, count, false);
        pool_.parallel_for(parts.total(), [&](int64_t a, int64_t b) {
            parts.split(a, b, [&](size_t k, int64_t r0, int64_t r1) {
                decode_rows(group[k].src[0], xs, n_tok, group[k].dst.f32(), r0, r1);
            });
        }, 16);
    }

    // The work items of a group of matmuls (a weight's rows, or its row groups when
    // repacked), concatenated.
    struct Parts {
        std::vector<int64_t> start;  // prefix sums of the parts' work items
        Parts(const OpNode *group, size_t count, bool packed) : start(count + 1, 0) {
            for (size_t k = 0; k < count; ++k) {
                const int64_t rows = group[k].src[0].ne[1];
                start[k + 1] = start[k] + (packed ? (rows + cpu::kInt8Rows - 1) / cpu::kInt8Rows : rows);
            }
        }
        int64_t total() const { return start.back(); }
        // Calls fn(part, begin, end) for the parts of [a, b) in order.
        template <class F>
        void split(int64_t a, int64_t b, F &&fn) const {
            for (size_t k = 0; k + 1 < start.size() && a < b; ++k) {
                const int64_t lo = std::max(a, start[k]), hi = std::min(b, start[k + 1]);
                if (lo < hi) fn(k, lo - start[k], hi - start[k]);
            }
        }
    };

    // Repacked weights of one input: its columns in runs of one numerics class. Columns that
    // the graph marks (Graph::bf16_columns) take AMX-BF16 tiles where the CPU has them, the
    // others the integer kernels; a column's class depends on its own flag only.
    void packed_matmuls(const OpNode *group, size_t count) {
        const int64_t n_tok = group[0].src[1].n_rows();
        const Tensor &marks = group[0].src[2];
        const int32_t *flags = marks.valid() && marks.ne[0] == n_tok && cpu::amx_bf16_available() ? marks.i32() : nullptr;
        for (int64_t c0 = 0; c0 < n_tok;) {
            const bool bf16 = flags && flags[c0] != 0;
            int64_t c1 = c0 + 1;
            while (c1 < n_tok && (flags && flags[c1] != 0) == bf16) ++c1;
            packed_columns(group, count, c0, c1, bf16);
            c0 = c1;
        }
    }

    // Columns [c0, c1) of repacked matmuls of one input: the activations are converted once
    // (8-bit blocks, or BF16 tiles), then each thread takes a share of the row groups.
    void packed_columns(const OpNode *group, size_t count, int64_t c0, int64_t c1, bool bf16) {
        const Tensor &x = group[0].src[1];
        const int64_t n_in = x.ne[0], n_tok = c1 - c0;
        const float *xs = x.f32() + c0 * n_in;
        const Parts parts(group, count, true);
        auto each = [&](auto &&kernel) {
            pool_.parallel_for(parts.total(), [&](int64_t a, int64_t b) {
                parts.split(a, b, [&](size_t k, int64_t g0, int64_t g1) {
                    const Tensor &w = group[k].src[0];
                    kernel(w, static_cast<const uint8_t *>(w.raw()), g0, g1, group[k].dst.f32() + c0 * w.ne[1]);
                });
            }, 1);
        };
        if (bf16) {
            const uint16_t *a = bf16_activations(xs, n_in, n_tok);
            each([&](const Tensor &w, const uint8_t *packed, int64_t g0, int64_t g1, float *y) {
                cpu::amx_bf16_matmul(w.type, packed, w.ne[0], w.ne[1], g0, g1, a, n_tok, y, w.ne[1]);
            });
            return;
        }
        const cpu::Int8Activations qx = quantize_activations(xs, n_in, n_tok);
        each([&](const Tensor &w, const uint8_t *packed, int64_t g0, int64_t g1, float *y) {
            cpu::int8_matmul(w.type, packed, w.ne[0], w.ne[1], g0, g1, qx, y, w.ne[1]);
        });
    }

    void run(const OpNode &n) {
        const Tensor *s = n.src;
        switch (n.op) {
        case Op::GetRows: get_rows(s[0], s[1], n.dst); return;
        case Op::MatMul: matmul(n); return;
        // Row-wise ops: implemented in cpu-elementwise.cpp.
        case Op::Add: cpu::add(pool_, n.dst, s[1]); return;
        case Op::MulRow: cpu::mul_row(pool_, n.dst, s[1]); return;
        case Op::Scale: cpu::scale(pool_, n.dst, n.f); return;
        case Op::RmsNorm: cpu::rms_norm(pool_, s[0], s[1], n.f, n.dst); return;
        case Op::LayerNorm: cpu::layer_norm(pool_, s[0], s[1], s[2], n.f, n.dst); return;
        case Op::Rope: cpu::rope(pool_, n.dst, s[1].i32(), n.rope); return;
        case Op::Swiglu: cpu::swiglu(pool_, n.dst, s[1]); return;
        case Op::SigmoidMul: cpu::sigmoid_mul(pool_, n.dst, s[1]); return;
        case Op::Softcap: cpu::softcap(pool_, n.dst, n.f); return;
        case Op::SetColumns: set_columns(n.dst, s[0], s[1]); return;
        case Op::Attention:
            cpu::attention(pool_, s[0], s[1], s[2], cpu::KvRangesHost{s[3].i32(), s[4].i32(), s[5].i32()}, n.i, n.f,
                           n.dst, s[6].valid() ? s[6].i32() : nullptr);
            return;
        // Vision ops: implemented in cpu-vision-ops.cpp.
        case Op::Patches: cpu::patches(pool_, s[0], n.i, n.dst); return;
        case Op::ResizeBilinear: cpu::resize_bilinear(pool_, s[0], n.dst); return;
        case Op::Rope2d: cpu::rope_2d(pool_, n.dst, s[1].i32(), s[2].i32(), n.f); return;
        case Op::Activation: cpu::activation(pool_, n.dst, n.act); return;
        case Op::Transpose: cpu::transpose(pool_, s[0], n.dst); return;
        case Op::AttentionWindows:
            cpu::attention_windows(pool_, s[0], s[1], s[2], s[3].i32(), s[3].ne[0], n.i, n.f, n.dst,
                                   n.bf16_ok && cpu::bf16_matmul_available() ? bf16_.get() : nullptr);
            return;
        }
        fail(MUSE_ERR_INTERNAL, "unknown op ", static_cast<int>(n.op));
    }

    void get_rows(const Tensor &w, const Tensor &ids_t, const Tensor &out) {
        const int32_t *ids = ids_t.i32();
        const int64_t n = ids_t.ne[0];
        if (out.ne[0] != w.ne[0] || out.n_rows() != n) fail(MUSE_ERR_INTERNAL, "get_rows: output shape mismatch");
        float *o = out.f32();
        for (int64_t i = 0; i < n; ++i) {
            if (ids[i] < 0 || ids[i] >= w.n_rows()) fail(MUSE_ERR_OUT_OF_RANGE, "row id ", ids[i], " out of range");
            row_to_f32(w, ids[i], o + i * w.ne[0]);
        }
    }

    static void check_matmul(const Tensor &w, const Tensor &x, const Tensor &y) {
        const int64_t n_in = w.ne[0], n_out = w.ne[1], n_tok = x.n_rows();
        if (x.ne[0] != n_in || y.ne[0] != n_out || y.n_rows() != n_tok)
            fail(MUSE_ERR_INTERNAL, "matmul shape mismatch: w [", n_in, ",", n_out, "] x [", x.ne[0], ",", n_tok,
                 "] y [", y.ne[0], ",", y.n_rows(), "]");
    }

    // Where a matmul may use BF16 products (OpNode::bf16_ok): plain float weights, enough tokens
    // for a GEMM, and a CPU with fast BF16 (cpu-bf16-matmul.h).
    static bool use_bf16(const Tensor &w, int64_t n_tok) {
        return n_tok >= kGemmMinTokens && w.layout == WeightLayout::ggml &&
               (w.type == GgmlType::F32 || w.type == GgmlType::F16 || w.type == GgmlType::BF16) &&
               cpu::bf16_matmul_available();
    }

    void matmul(const OpNode &n) {
        const Tensor &w = n.src[0], &x = n.src[1], &y = n.dst;
        check_matmul(w, x, y);
        const int64_t n_tok = x.n_rows();
        const float *xs = x.f32();
        float *ys = y.f32();
        if (w.layout == WeightLayout::rows16) {
            packed_matmuls(&n, 1);
            return;
        }
        if (n.bf16_ok && use_bf16(w, n_tok)) {
            bf16_->matmul(pool_, w, xs, n_tok, ys);
            return;
        }
        if (n_tok >= kGemmMinTokens) {
            gemm(w, xs, n_tok, ys);
            return;
        }
        decode_matmul(w, xs, n_tok, ys);
    }

    void set_columns(const Tensor &dst, const Tensor &src, const Tensor &cells_t) {
        const int32_t *cells = cells_t.i32();
        const float *s = static_cast<const float *>(src.raw());
        const int64_t n0 = src.ne[0];
        if (cells_t.ne[0] != src.n_rows() || dst.ne[0] != n0) fail(MUSE_ERR_INTERNAL, "set_columns: shape mismatch");
        auto *d = static_cast<uint8_t *>(dst.buffer->host()) + dst.offset;
        for (int64_t c = 0; c < src.n_rows(); ++c) {
            if (cells[c] < 0 || cells[c] >= dst.n_rows()) fail(MUSE_ERR_INTERNAL, "set_columns: cell out of range");
            if (dst.type == GgmlType::F32) {
                std::memcpy(d + static_cast<size_t>(cells[c]) * n0 * 4, s + c * n0, static_cast<size_t>(n0) * 4);
            } else {
                auto *h = reinterpret_cast<uint16_t *>(d) + static_cast<size_t>(cells[c]) * n0;
                cpu::fp32_to_fp16_row(s + c * n0, h, n0);
            }
        }
    }

    // Batches of more than 16 tokens (prefill, vision) go through oneDNN's SGEMM. Each pool thread takes
    // a share of the output rows, dequantizes them a panel at a time into F32 and
    // computes Y[:, panel] = X · panelᵀ with a single-threaded SGEMM: oneDNN's own
    // OpenMP team would spin against this pool (measured: half the time in libgomp).
    static constexpr int64_t kGemmMinTokens = 17;  // up to 16: decode batches, bit-identical per column

    // A weight row in F32 for a GEMM panel: F16 by the hardware conversion (exact, as the
    // reference dequantizer), anything else by the reference.
    static void panel_row(GgmlType type, const uint8_t *src, float *dst, int64_t n) {
#if defined(MUSE_HAVE_AVX512)
        if (type == GgmlType::F16 && cpu::cpu_level() == cpu::CpuLevel::avx512) {
            int64_t i = 0;
            for (; i + 16 <= n; i += 16)
                _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + 2 * i))));
            if (i < n) dequantize(type, src + 2 * i, dst + i, n - i);
            return;
        }
#endif
        dequantize(type, src, dst, n);
    }

    void gemm(const Tensor &w, const float *xs, int64_t n_tok, float *ys) {
        const int64_t n_in = w.ne[0], n_out = w.ne[1];
        const int64_t panel_rows = std::clamp<int64_t>((int64_t(1) << 20) / n_in, 16, 1024);  // ~4 MiB panels
        const auto *wbase = static_cast<const uint8_t *>(w.raw());
        const size_t row_bytes = w.row_bytes();
        std::atomic<int> failed{0};
        pool_.parallel_for(n_out, [&](int64_t a, int64_t b) {
            static thread_local bool single = (omp_set_num_threads(1), true);
            (void)single;
            thread_local std::vector<float> panel;
            for (int64_t r0 = a; r0 < b; r0 += panel_rows) {
                const int64_t rows = std::min(panel_rows, b - r0);
                const float *p;
                if (w.type == GgmlType::F32) {
                    p = reinterpret_cast<const float *>(wbase + row_bytes * static_cast<size_t>(r0));
                } else {
                    panel.resize(static_cast<size_t>(rows * n_in));
                    for (int64_t r = 0; r < rows; ++r)
                        panel_row(w.type, wbase + row_bytes * static_cast<size_t>(r0 + r), panel.data() + r * n_in, n_in);
                    p = panel.data();
                }
                if (dnnl_sgemm('N', 'T', n_tok, rows, n_in, 1.0f, xs, n_in, p, n_in, 0.0f, ys + r0, n_out) != dnnl_success)
                    failed.store(1);
            }
        }, 64);
        if (failed.load()) fail(MUSE_ERR_INTERNAL, "oneDNN sgemm failed");
    }

    // Decode batches (up to 16 tokens): every weight row is read once per call. The rows of a
    // thread's share go by in blocks of kRowBlock, and each block is walked in chunks of
    // kChunkSteps steps, so that the chunk of every token's x stays in L1 while the block's
    // rows use it; the per-token accumulators wait in `state` between chunks (exactly).
    // Types without a fused kernel have the block's rows dequantized to F32 first. A token's
    // result is the same sequence of float operations whatever n_tok: bit-identical columns.
    static constexpr int64_t kRowBlock = 8, kChunkSteps = 8;  // x chunk: 16 tokens x 1 KiB

    void decode_matmul(const Tensor &w, const float *xs, int64_t n_tok, float *ys) {
        pool_.parallel_for(w.ne[1], [&](int64_t r0, int64_t r1) { decode_rows(w, xs, n_tok, ys, r0, r1); }, 16);
    }

    // Output rows [r0, r1) of a decode matmul (one thread's share).
    static void decode_rows(const Tensor &w, const float *xs, int64_t n_tok, float *ys, int64_t r0, int64_t r1) {
        const int64_t n_in = w.ne[0], n_out = w.ne[1];
        const cpu::RowDotKernel k = cpu::row_dot_kernel(w.type);
        const int64_t steps = n_in / cpu::kStep;
        // One token gains nothing from chunks: one sequential pass over each row.
        const int64_t chunk = n_tok == 1 ? std::max<int64_t>(steps, 1) : kChunkSteps;
        const auto *wbase = static_cast<const uint8_t *>(w.raw());
        const size_t row_bytes = w.row_bytes();
        const GgmlType type = w.type;
        const int nt = static_cast<int>(n_tok);
        thread_local std::vector<float> state, rows;
        state.resize(static_cast<size_t>(kRowBlock * cpu::kMaxDotTokens * cpu::kMaxDotState));
        const size_t per_row = static_cast<size_t>(n_tok * k.state);
        for (int64_t b0 = r0; b0 < r1; b0 += kRowBlock) {
            const int nb = static_cast<int>(std::min(kRowBlock, r1 - b0));
            const void *row0 = wbase + row_bytes * static_cast<size_t>(b0);
            size_t stride = row_bytes;
            if (!k.fused) {
                rows.resize(static_cast<size_t>(kRowBlock * n_in));
                for (int r = 0; r < nb; ++r)
                    dequantize(type, wbase + row_bytes * static_cast<size_t>(b0 + r), rows.data() + r * n_in, n_in);
                row0 = rows.data();
                stride = static_cast<size_t>(n_in) * 4;
            }
            std::fill(state.begin(), state.begin() + static_cast<std::ptrdiff_t>(per_row * static_cast<size_t>(nb)), 0.0f);
            for (int64_t s0 = 0; s0 < steps; s0 += chunk)
                k.accumulate(row0, stride, nb, s0, std::min(chunk, steps - s0), xs, n_in, nt, state.data());
            k.finish(row0, stride, nb, n_in, xs, n_in, nt, state.data(), ys + b0, n_out);
        }
    }

    // Activations quantized to 8-bit blocks for the integer kernels, in the layout they read
    // fastest (per-thread storage, valid until this thread quantizes again).
    cpu::Int8Activations quantize_activations(const float *xs, int64_t n_in, int64_t n_tok) {
        const int64_t nb = n_in / 32;
        const cpu::Int8Layout layout = cpu::int8_layout(n_tok);
        const int64_t n_pad = cpu::int8_padded_tokens(layout, n_tok);
        thread_local std::vector<cpu::CacheLine> q, d, s;
        int8_t *qp = cpu::cache_lines_for<int8_t>(q, static_cast<size_t>(n_pad * n_in));
        float *dp = cpu::cache_lines_for<float>(d, static_cast<size_t>(n_pad * nb));
        int32_t *sp = cpu::cache_lines_for<int32_t>(s, static_cast<size_t>(n_pad * nb));
        if (n_tok >= 8)  // prompts: in parallel over tokens
            pool_.parallel_for(n_pad, [&](int64_t t0, int64_t t1) {
                cpu::int8_quantize_rows(xs, n_in, n_tok, t0, t1, layout, qp, dp, sp);
            }, 4);
        else
            cpu::int8_quantize_rows(xs, n_in, n_tok, 0, n_pad, layout, qp, dp, sp);
        return {qp, dp, sp, n_tok, layout};
    }

    // Activations as AMX-BF16 tiles (per-thread storage, valid until this thread converts again).
    const uint16_t *bf16_activations(const float *xs, int64_t n_in, int64_t n_tok) {
        thread_local std::vector<cpu::CacheLine> a;
        uint16_t *ap = cpu::cache_lines_for<uint16_t>(a, static_cast<size_t>(cpu::amx_bf16_panel_elements(n_in, n_tok)));
        const int64_t n_pad = (n_tok + 15) / 16 * 16;
        pool_.parallel_for(n_pad, [&](int64_t t0, int64_t t1) { cpu::amx_bf16_convert(xs, n_in, n_tok, t0, t1, ap); }, 16);
        return ap;
    }

    ThreadPool pool_;
    std::shared_ptr<cpu::Bf16Matmul> bf16_;
};

} // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

} // namespace muse
