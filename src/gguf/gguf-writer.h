// GGUF writer (v3): the test suite and tools use it to generate their own small
// models. Produces files in the exact layout llama.cpp's gguf-py writes.
#pragma once

#include "core/ggml-types.h"
#include "gguf/gguf-file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace muse::gguf {

class Writer {
public:
    // Metadata, written in the order added.
    void set_u8(const std::string &key, uint8_t v);
    void set_i8(const std::string &key, int8_t v);
    void set_u16(const std::string &key, uint16_t v);
    void set_i16(const std::string &key, int16_t v);
    void set_u32(const std::string &key, uint32_t v);
    void set_i32(const std::string &key, int32_t v);
    void set_u64(const std::string &key, uint64_t v);
    void set_i64(const std::string &key, int64_t v);
    void set_f32(const std::string &key, float v);
    void set_f64(const std::string &key, double v);
    void set_bool(const std::string &key, bool v);
    void set_string(const std::string &key, const std::string &v);
    void set_array_strings(const std::string &key, const std::vector<std::string> &v);
    void set_array_i32(const std::string &key, const std::vector<int32_t> &v);
    void set_array_u32(const std::string &key, const std::vector<uint32_t> &v);
    void set_array_f32(const std::string &key, const std::vector<float> &v);
    void set_array_bool(const std::string &key, const std::vector<bool> &v);
    // Any value, including nested arrays (built by hand).
    void set_value(const std::string &key, const Value &v);

    // Tensors. `data` must hold exactly the bytes of the type/shape (ggml order).
    void add_tensor(const std::string &name, GgmlType type, const std::vector<int64_t> &ne,
                    const void *data, size_t n_bytes);
    // Convenience: F32 data converted to F32/F16/BF16, or quantized to Q8_0/Q4_0.
    void add_tensor_f32(const std::string &name, GgmlType type, const std::vector<int64_t> &ne,
                        const float *data);

    void set_alignment(uint32_t alignment);  // also writes general.alignment

    std::vector<uint8_t> to_bytes() const;
    void write_file(const std::string &path) const;

private:
    struct PendingTensor {
        std::string name;
        GgmlType type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
    };
    std::vector<KeyValue> kvs_;
    std::vector<PendingTensor> tensors_;
    uint32_t alignment_ = 32;
};

// Reference quantizers used by tests and tools (round-to-nearest, as ggml's
// quantize_row_*_ref). n must be a multiple of 32.
std::vector<uint8_t> quantize_q8_0(const float *x, int64_t n);
std::vector<uint8_t> quantize_q4_0(const float *x, int64_t n);
// Q4_K by a plain min/max fit per 32-element sub-block (not ggml's iterative search, so
// less accurate, but a valid Q4_K): for benchmarks and tests. n must be a multiple of 256.
std::vector<uint8_t> quantize_q4_k(const float *x, int64_t n);

} // namespace muse::gguf
