#include "gguf/gguf-writer.h"

#include "core/dequant.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace muse::gguf {
namespace {

template <class T>
void put(std::vector<uint8_t> &out, T v) {
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t> &out, const std::string &s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

void put_value_body(std::vector<uint8_t> &out, const Value &v) {
    switch (v.type) {
    case ValueType::UINT8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case ValueType::INT8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case ValueType::UINT16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case ValueType::INT16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case ValueType::UINT32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case ValueType::INT32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case ValueType::UINT64: put<uint64_t>(out, v.u); break;
    case ValueType::INT64: put<int64_t>(out, v.i); break;
    case ValueType::FLOAT32: put<float>(out, static_cast<float>(v.f)); break;
    case ValueType::FLOAT64: put<double>(out, v.f); break;
    case ValueType::BOOL: put<uint8_t>(out, v.u ? 1 : 0); break;
    case ValueType::STRING: put_string(out, v.str); break;
    case ValueType::ARRAY:
        put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
        put<uint64_t>(out, v.length);
        if (v.elem_type == ValueType::STRING) {
            for (const auto &s : v.strings) put_string(out, s);
        } else if (v.elem_type == ValueType::ARRAY) {
            for (const auto &a : v.arrays) {
                put_value_body(out, a);
            }
        } else {
            out.insert(out.end(), v.raw.begin(), v.raw.end());
        }
        break;
    }
}

Value scalar_u(ValueType t, uint64_t u) {
    Value v;
    v.type = t;
    v.u = u;
    v.i = static_cast<int64_t>(u);
    return v;
}

Value scalar_i(ValueType t, int64_t i) {
    Value v;
    v.type = t;
    v.i = i;
    v.u = static_cast<uint64_t>(i);
    return v;
}

template <class T>
Value packed_array(ValueType elem, const std::vector<T> &xs) {
    Value v;
    v.type = ValueType::ARRAY;
    v.elem_type = elem;
    v.length = xs.size();
    v.raw.resize(xs.size() * sizeof(T));
    if (!xs.empty()) std::memcpy(v.raw.data(), xs.data(), v.raw.size());
    return v;
}

} // namespace

void Writer::set_value(const std::string &key, const Value &v) {
    for (auto &kv : kvs_) {
        if (kv.key == key) {
            kv.value = v;
            return;
        }
    }
    kvs_.push_back(KeyValue{key, v});
}

void Writer::set_u8(const std::string &k, uint8_t v) { set_value(k, scalar_u(ValueType::UINT8, v)); }
void Writer::set_i8(const std::string &k, int8_t v) { set_value(k, scalar_i(ValueType::INT8, v)); }
void Writer::set_u16(const std::string &k, uint16_t v) { set_value(k, scalar_u(ValueType::UINT16, v)); }
void Writer::set_i16(const std::string &k, int16_t v) { set_value(k, scalar_i(ValueType::INT16, v)); }
void Writer::set_u32(const std::string &k, uint32_t v) { set_value(k, scalar_u(ValueType::UINT32, v)); }
void Writer::set_i32(const std::string &k, int32_t v) { set_value(k, scalar_i(ValueType::INT32, v)); }
void Writer::set_u64(const std::string &k, uint64_t v) { set_value(k, scalar_u(ValueType::UINT64, v)); }
void Writer::set_i64(const std::string &k, int64_t v) { set_value(k, scalar_i(ValueType::INT64, v)); }
void Writer::set_bool(const std::string &k, bool v) { set_value(k, scalar_u(ValueType::BOOL, v ? 1 : 0)); }

void Writer::set_f32(const std::string &k, float f) {
    Value v;
    v.type = ValueType::FLOAT32;
    v.f = f;
    set_value(k, v);
}

void Writer::set_f64(const std::string &k, double f) {
    Value v;
    v.type = ValueType::FLOAT64;
    v.f = f;
    set_value(k, v);
}

void Writer::set_string(const std::string &k, const std::string &s) {
    Value v;
    v.type = ValueType::STRING;
    v.str = s;
    set_value(k, v);
}

void Writer::set_array_strings(const std::string &k, const std::vector<std::string> &xs) {
    Value v;
    v.type = ValueType::ARRAY;
    v.elem_type = ValueType::STRING;
    v.length = xs.size();
    v.strings = xs;
    set_value(k, v);
}

void Writer::set_array_i32(const std::string &k, const std::vector<int32_t> &xs) { set_value(k, packed_array(ValueType::INT32, xs)); }
void Writer::set_array_u32(const std::string &k, const std::vector<uint32_t> &xs) { set_value(k, packed_array(ValueType::UINT32, xs)); }
void Writer::set_array_f32(const std::string &k, const std::vector<float> &xs) { set_value(k, packed_array(ValueType::FLOAT32, xs)); }

void Writer::set_array_bool(const std::string &k, const std::vector<bool> &xs) {
    std::vector<uint8_t> bytes(xs.begin(), xs.end());
    set_value(k, packed_array(ValueType::BOOL, bytes));
}

void Writer::set_alignment(uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        fail(MUSE_ERR_INVALID_ARGUMENT, "alignment must be a power of two");
    alignment_ = alignment;
    set_u32("general.alignment", alignment);
}

void Writer::add_tensor(const std::string &name, GgmlType type, const std::vector<int64_t> &ne,
                        const void *data, size_t n_bytes) {
    const TypeTraits &tt = type_traits(type);
    if (!tt.supported) fail(MUSE_ERR_UNSUPPORTED, "writer: unsupported tensor type");
    if (ne.empty() || ne.size() > 4) fail(MUSE_ERR_INVALID_ARGUMENT, "writer: tensor '", name, "' needs 1..4 dims");
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    if (ne[0] % tt.block_size != 0) fail(MUSE_ERR_INVALID_ARGUMENT, "writer: '", name, "' row not a block multiple");
    if (type_row_bytes(type, n) != n_bytes)
        fail(MUSE_ERR_INVALID_ARGUMENT, "writer: tensor '", name, "' has ", n_bytes, " bytes, expected ", type_row_bytes(type, n));
    PendingTensor t{name, type, ne, std::vector<uint8_t>(n_bytes)};
    if (n_bytes) std::memcpy(t.data.data(), data, n_bytes);
    tensors_.push_back(std::move(t));
}

void Writer::add_tensor_f32(const std::string &name, GgmlType type, const std::vector<int64_t> &ne,
                            const float *x) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    std::vector<uint8_t> bytes;
    switch (type) {
    case GgmlType::F32:
        bytes.resize(static_cast<size_t>(n) * 4);
        std::memcpy(bytes.data(), x, bytes.size());
        break;
    case GgmlType::F16:
    case GgmlType::BF16:
        bytes.resize(static_cast<size_t>(n) * 2);
        for (int64_t i = 0; i < n; ++i) {
            const uint16_t h = type == GgmlType::F16 ? fp32_to_fp16(x[i]) : fp32_to_bf16(x[i]);
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
        break;
    case GgmlType::Q8_0: bytes = quantize_q8_0(x, n); break;
    case GgmlType::Q4_0: bytes = quantize_q4_0(x, n); break;
    case GgmlType::Q4_K: bytes = quantize_q4_k(x, n); break;
    default: fail(MUSE_ERR_UNSUPPORTED, "writer: no quantizer for this type");
    }
    add_tensor(name, type, ne, bytes.data(), bytes.size());
}

std::vector<uint8_t> Writer::to_bytes() const {
    std::vector<uint8_t> out;
    put<uint32_t>(out, 0x46554747);
    put<uint32_t>(out, 3);
    put<uint64_t>(out, tensors_.size());
    put<uint64_t>(out, kvs_.size());
    for (const auto &kv : kvs_) {
        put_string(out, kv.key);
        put<uint32_t>(out, static_cast<uint32_t>(kv.value.type));
        put_value_body(out, kv.value);
    }
    uint64_t offset = 0;
    for (const auto &t : tensors_) {
        put_string(out, t.name);
        put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) put<int64_t>(out, d);
        put<uint32_t>(out, static_cast<uint32_t>(t.type));
        put<uint64_t>(out, offset);
        offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
    }
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, 0);
    for (const auto &t : tensors_) {
        out.insert(out.end(), t.data.begin(), t.data.end());
        out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, 0);
    }
    return out;
}

void Writer::write_file(const std::string &path) const {
    const std::vector<uint8_t> bytes = to_bytes();
    std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "wb"), std::fclose);
    if (!f) fail(MUSE_ERR_IO, "cannot create '", path, "'");
    if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
        fail(MUSE_ERR_IO, "short write to '", path, "'");
}

std::vector<uint8_t> quantize_q8_0(const float *x, int64_t n) {
    std::vector<uint8_t> out(static_cast<size_t>(n / 32) * 34);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t *ob = out.data() + b * 34;
        const uint16_t dh = fp32_to_fp16(d);
        std::memcpy(ob, &dh, 2);
        for (int j = 0; j < 32; ++j) ob[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(xb[j] * id)));
    }
    return out;
}

std::vector<uint8_t> quantize_q4_0(const float *x, int64_t n) {
    std::vector<uint8_t> out(static_cast<size_t>(n / 32) * 18);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float *xb = x + b * 32;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; ++j) {
            if (std::fabs(xb[j]) > amax) {
                amax = std::fabs(xb[j]);
                max = xb[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t *ob = out.data() + b * 18;
        const uint16_t dh = fp32_to_fp16(d);
        std::memcpy(ob, &dh, 2);
        for (int j = 0; j < 16; ++j) {
            const int q0 = std::min(15, static_cast<int>(xb[j] * id + 8.5f));
            const int q1 = std::min(15, static_cast<int>(xb[j + 16] * id + 8.5f));
            ob[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
    return out;
}

std::vector<uint8_t> quantize_q4_k(const float *x, int64_t n) {
    // Super-block layout (core/dequant.cpp): d, dmin (F16), 12 bytes of 6-bit scales and
    // mins, 128 bytes of nibbles; sub-block j's weight is d * sc[j] * q - dmin * m[j].
    std::vector<uint8_t> out(static_cast<size_t>(n / 256) * 144);
    for (int64_t u = 0; u < n / 256; ++u) {
        const float *xs = x + u * 256;
        float scale[8], min[8];  // per sub-block: x ~ scale * q - min, q in 0..15
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; ++j) {
            float lo = xs[32 * j], hi = lo;
            for (int e = 0; e < 32; ++e) {
                lo = std::min(lo, xs[32 * j + e]);
                hi = std::max(hi, xs[32 * j + e]);
            }
            lo = std::min(lo, 0.0f);  // the min is subtracted: keep it >= 0
            scale[j] = (hi - lo) / 15.0f;
            min[j] = -lo;
            max_scale = std::max(max_scale, scale[j]);
            max_min = std::max(max_min, min[j]);
        }
        const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
        const float dq = fp16_to_fp32(fp32_to_fp16(d)), dminq = fp16_to_fp32(fp32_to_fp16(dmin));
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; ++j) {
            sc[j] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(dq > 0 ? scale[j] / dq : 0.0f)), 0, 63));
            m[j] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(dminq > 0 ? min[j] / dminq : 0.0f)), 0, 63));
        }
        uint8_t *ob = out.data() + u * 144;
        const uint16_t dh = fp32_to_fp16(d), mh = fp32_to_fp16(dmin);
        std::memcpy(ob, &dh, 2);
        std::memcpy(ob + 2, &mh, 2);
        uint8_t *q = ob + 4;  // the 6-bit packing that scale_min_k4 reads back
        for (int j = 0; j < 4; ++j) {
            q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
            q[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
            q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
        }
        for (int j = 0; j < 8; ++j) {
            const float s1 = dq * sc[j], m1 = dminq * m[j];
            for (int e = 0; e < 32; ++e) {
                const int v = s1 > 0 ? std::clamp(static_cast<int>(std::lround((xs[32 * j + e] + m1) / s1)), 0, 15) : 0;
                uint8_t &b = ob[16 + 32 * (j / 2) + e];
                b = static_cast<uint8_t>(j % 2 ? (b | (v << 4)) : v);
            }
        }
    }
    return out;
}

} // namespace muse::gguf
