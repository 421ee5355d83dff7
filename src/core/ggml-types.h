// The ggml tensor type table: ids, names and block geometry of every type that
// GGUF files use, plus scalar half-precision conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace muse {

// ggml type ids as stored in GGUF tensor infos. Gaps are ids ggml retired.
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
    IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
    IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

struct TypeTraits {
    const char *name = nullptr;  // nullptr: the id is not a ggml type at all
    int64_t block_size = 0;      // elements per block
    uint64_t type_size = 0;      // bytes per block (0 where muse does not know the layout)
    bool supported = false;      // muse can dequantize (and so compute with) it
};

// Traits of a type id; .name == nullptr for ids ggml never assigned.
const TypeTraits &type_traits(uint32_t type_id);
inline const TypeTraits &type_traits(GgmlType t) { return type_traits(static_cast<uint32_t>(t)); }

// Looks a type up by its ggml name ("Q4_K"); returns false if unknown.
bool type_from_name(std::string_view name, GgmlType *out);

// IEEE half -> float, exact for every input (NaN payloads kept, subnormals exact).
inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal half: normalize
        int e = -1;
        do { mant <<= 1; ++e; } while ((mant & 0x400u) == 0);
        bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FFu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// float -> IEEE half, round to nearest even (as F16C's _cvtss_sh with mode 0).
uint16_t fp32_to_fp16(float f);

inline float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// float -> bfloat16 with round to nearest even; NaN stays a quiet NaN (as ggml).
uint16_t fp32_to_bf16(float f);

} // namespace muse
