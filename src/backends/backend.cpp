#include "backends/backend.h"

#include "backends/cpu/cpu-backend.h"
#include "backends/cpu/cpu-int8-matmul.h"
#ifdef MUSE_HAVE_VULKAN
#include "backends/vulkan/vulkan-backend.h"
#endif
#include "core/dequant.h"
#include "core/error.h"

#include "muse/muse.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace muse {

size_t Tensor::row_bytes() const {
    const TypeTraits &tt = type_traits(type);
    return static_cast<size_t>(ne[0] / tt.block_size) * tt.type_size;
}

float *Tensor::f32() const {
    if (type != GgmlType::F32 || !buffer) fail(MUSE_ERR_INTERNAL, "tensor is not a writable F32 host tensor");
    return reinterpret_cast<float *>(static_cast<uint8_t *>(buffer->host()) + offset);
}

const int32_t *Tensor::i32() const {
    if (type != GgmlType::I32) fail(MUSE_ERR_INTERNAL, "tensor is not an I32 tensor");
    return static_cast<const int32_t *>(raw());
}

const void *Tensor::raw() const {
    if (mapped) return static_cast<const uint8_t *>(mapped) + offset;
    if (buffer && buffer->host()) return static_cast<const uint8_t *>(buffer->host()) + offset;
    fail(MUSE_ERR_INTERNAL, "tensor has no host storage");
}

Tensor Tensor::rows(int64_t row0, int64_t n) const {
    // A packed group interleaves 16 rows: a view must keep whole groups (row0 + n may be the
    // last row).
    if (layout == WeightLayout::rows16 && (row0 % 16 != 0 || (n % 16 != 0 && row0 + n != ne[1])))
        fail(MUSE_ERR_INTERNAL, "a view of a repacked weight must keep whole 16-row groups (rows ", row0, "+", n, ")");
    Tensor t = *this;
    t.offset += layout == WeightLayout::rows16 ? cpu::int8_packed_bytes(type, ne[0], row0)
                                               : row_bytes() * static_cast<size_t>(row0);
    t.ne[1] = n;
    t.ne[2] = t.ne[3] = 1;
    return t;
}

Tensor Tensor::reshape(int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3) const {
    if (ne0 * ne1 * ne2 * ne3 != n_elements()) fail(MUSE_ERR_INTERNAL, "reshape changes the element count");
    if (layout != WeightLayout::ggml && ne0 != ne[0]) fail(MUSE_ERR_INTERNAL, "a repacked weight keeps its row length");
    Tensor t = *this;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = ne2;
    t.ne[3] = ne3;
    return t;
}

namespace {

void notice_once(const char *text) {
    static std::once_flag once;
    std::call_once(once, [&] { std::fprintf(stderr, "muse: %s\n", text); });
}

// MUSE_BACKEND_AUTO: the MUSE_BACKEND environment variable ("cpu", "vulkan") when set, else
// Vulkan where a build has it and a discrete or integrated GPU is there, else the CPU, with a
// notice when a GPU was asked for or could have been used.
int resolve_auto() {
    if (const char *env = std::getenv("MUSE_BACKEND")) {
        if (std::strcmp(env, "cpu") == 0) return MUSE_BACKEND_CPU;
        if (std::strcmp(env, "vulkan") == 0) return MUSE_BACKEND_VULKAN;
        if (std::strcmp(env, "auto") != 0 && env[0] != '\0')
            fail(MUSE_ERR_INVALID_ARGUMENT, "MUSE_BACKEND must be cpu, vulkan or auto, not '", env, "'");
    }
#ifdef MUSE_HAVE_VULKAN
    if (vulkan_gpu_present()) return MUSE_BACKEND_VULKAN;
    notice_once("no Vulkan GPU here (CPU-type devices such as lavapipe are used only when asked for: "
                "MUSE_BACKEND=vulkan with MUSE_VULKAN_DEVICE); models run on the CPU backend");
#else
    if (std::getenv("MUSE_VULKAN_DEVICE"))
        notice_once("MUSE_VULKAN_DEVICE is set but this muse was built without Vulkan (-DMUSE_VULKAN=ON); "
                    "models run on the CPU backend");
#endif
    return MUSE_BACKEND_CPU;
}

} // namespace

std::unique_ptr<Backend> make_backend(int backend_id, int n_threads) {
    if (backend_id == MUSE_BACKEND_AUTO) backend_id = resolve_auto();
    switch (backend_id) {
    case MUSE_BACKEND_CPU: return make_cpu_backend(n_threads);
#ifdef MUSE_HAVE_VULKAN
    case MUSE_BACKEND_VULKAN: return make_vulkan_backend(n_threads);
#endif
    default: fail(MUSE_ERR_UNSUPPORTED, "backend ", backend_id, " is not available in this build");
    }
}

} // namespace muse
