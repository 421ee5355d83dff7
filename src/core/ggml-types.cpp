#include "core/ggml-types.h"

#include <array>

namespace muse {
namespace {

constexpr int64_t QK_K = 256;

std::array<TypeTraits, 64> make_table() {
    std::array<TypeTraits, 64> t{};
    auto set = [&](GgmlType id, const char *name, int64_t bs, uint64_t ts, bool ok) {
        t[static_cast<uint32_t>(id)] = TypeTraits{name, bs, ts, ok};
    };
    set(GgmlType::F32, "F32", 1, 4, true);
    set(GgmlType::F16, "F16", 1, 2, true);
    set(GgmlType::BF16, "BF16", 1, 2, true);
    set(GgmlType::F64, "F64", 1, 8, true);
    set(GgmlType::I8, "I8", 1, 1, true);
    set(GgmlType::I16, "I16", 1, 2, true);
    set(GgmlType::I32, "I32", 1, 4, true);
    set(GgmlType::I64, "I64", 1, 8, true);
    set(GgmlType::Q4_0, "Q4_0", 32, 2 + 16, true);
    set(GgmlType::Q4_1, "Q4_1", 32, 2 + 2 + 16, true);
    set(GgmlType::Q5_0, "Q5_0", 32, 2 + 4 + 16, true);
    set(GgmlType::Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16, true);
    set(GgmlType::Q8_0, "Q8_0", 32, 2 + 32, true);
    set(GgmlType::Q8_1, "Q8_1", 32, 2 + 2 + 32, true);
    set(GgmlType::Q2_K, "Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2, true);
    set(GgmlType::Q3_K, "Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2, true);
    set(GgmlType::Q4_K, "Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2, true);
    set(GgmlType::Q5_K, "Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, true);
    set(GgmlType::Q6_K, "Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true);
    set(GgmlType::Q8_K, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, true);
    // Recognised so that the error names them; muse does not compute with them.
    set(GgmlType::IQ2_XXS, "IQ2_XXS", QK_K, 66, false);
    set(GgmlType::IQ2_XS, "IQ2_XS", QK_K, 74, false);
    set(GgmlType::IQ3_XXS, "IQ3_XXS", QK_K, 98, false);
    set(GgmlType::IQ1_S, "IQ1_S", QK_K, 50, false);
    set(GgmlType::IQ4_NL, "IQ4_NL", 32, 18, false);
    set(GgmlType::IQ3_S, "IQ3_S", QK_K, 110, false);
    set(GgmlType::IQ2_S, "IQ2_S", QK_K, 82, false);
    set(GgmlType::IQ4_XS, "IQ4_XS", QK_K, 136, false);
    set(GgmlType::IQ1_M, "IQ1_M", QK_K, 56, false);
    set(GgmlType::TQ1_0, "TQ1_0", QK_K, 54, false);
    set(GgmlType::TQ2_0, "TQ2_0", QK_K, 66, false);
    set(GgmlType::MXFP4, "MXFP4", 32, 17, false);
    set(GgmlType::NVFP4, "NVFP4", 0, 0, false);
    set(GgmlType::Q1_0, "Q1_0", 0, 0, false);
    // Retired ids (Q4_0_4_4 and friends) are named so their error is specific.
    t[31] = TypeTraits{"Q4_0_4_4 (retired)", 0, 0, false};
    t[32] = TypeTraits{"Q4_0_4_8 (retired)", 0, 0, false};
    t[33] = TypeTraits{"Q4_0_8_8 (retired)", 0, 0, false};
    t[36] = TypeTraits{"IQ4_NL_4_4 (retired)", 0, 0, false};
    t[37] = TypeTraits{"IQ4_NL_4_8 (retired)", 0, 0, false};
    t[38] = TypeTraits{"IQ4_NL_8_8 (retired)", 0, 0, false};
    t[4] = TypeTraits{"Q4_2 (retired)", 0, 0, false};
    t[5] = TypeTraits{"Q4_3 (retired)", 0, 0, false};
    return t;
}

const std::array<TypeTraits, 64> kTable = make_table();
const TypeTraits kUnknown{};

} // namespace

const TypeTraits &type_traits(uint32_t type_id) {
    return type_id < kTable.size() ? kTable[type_id] : kUnknown;
}

bool type_from_name(std::string_view name, GgmlType *out) {
    for (uint32_t i = 0; i < kTable.size(); ++i) {
        if (kTable[i].name && kTable[i].block_size > 0 && name == kTable[i].name) {
            *out = static_cast<GgmlType>(i);
            return true;
        }
    }
    return false;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t absx = x & 0x7FFFFFFFu;
    if (absx > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((absx >> 13) & 0x3FFu));  // NaN
    if (absx >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to inf
    if (absx < 0x38800000u) {  // result is subnormal or zero
        if (absx < 0x33000000u) return static_cast<uint16_t>(sign);  // below half of the smallest subnormal
        const uint32_t e = absx >> 23;
        const uint32_t mant = (absx & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126u - e;  // 14..24
        uint32_t r = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) ++r;
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t r = ((absx >> 13) - (112u << 10));
    const uint32_t rem = absx & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 64u);  // quiet NaN
    return static_cast<uint16_t>((x + (0x7FFFu + ((x >> 16) & 1u))) >> 16);
}

} // namespace muse
