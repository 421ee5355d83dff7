// Half and bfloat16 conversions checked against the CPU's own F16C instructions
// (an independent hardware reference) over every half value and many floats.
#include "core/ggml-types.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <immintrin.h>
#include <random>

using namespace muse;

namespace {
uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
} // namespace

#if defined(__F16C__)
TEST_CASE("fp16_to_fp32 equals F16C for all 65536 halves", "[types]") {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float hw = _cvtsh_ss(static_cast<unsigned short>(h));
        const float sw = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(hw)) {
            CHECK(std::isnan(sw));
        } else if (bits(hw) != bits(sw)) {
            FAIL("half 0x" << std::hex << h << ": hw " << bits(hw) << " sw " << bits(sw));
        }
    }
}

TEST_CASE("fp32_to_fp16 equals F16C round-to-nearest-even", "[types]") {
    std::mt19937 rng(5);
    size_t mismatches = 0;
    for (int i = 0; i < 2000000; ++i) {
        const float f = from_bits(static_cast<uint32_t>(rng()));
        if (std::isnan(f)) continue;
        const uint16_t hw = _cvtss_sh(f, 0);
        if (hw != fp32_to_fp16(f)) ++mismatches;
    }
    for (uint32_t h = 0; h < 65536; ++h) {  // exact halves and midpoints between neighbours
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(f)) continue;
        if (_cvtss_sh(f, 0) != fp32_to_fp16(f)) ++mismatches;
        const float mid = from_bits(bits(f) + 0x1000u);
        if (!std::isnan(mid) && _cvtss_sh(mid, 0) != fp32_to_fp16(mid)) ++mismatches;
    }
    CHECK(mismatches == 0);
}
#endif

TEST_CASE("bf16 conversions", "[types]") {
    CHECK(bf16_to_fp32(0x3F80) == 1.0f);
    CHECK(fp32_to_bf16(1.0f) == 0x3F80);
    CHECK(fp32_to_bf16(from_bits(0x3F808000u)) == 0x3F80);  // tie -> even
    CHECK(fp32_to_bf16(from_bits(0x3F818000u)) == 0x3F82);  // tie -> even (up)
    CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(std::nanf("")))));
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = bf16_to_fp32(static_cast<uint16_t>(h));
        if (!std::isnan(f)) CHECK(fp32_to_bf16(f) == h);
    }
}

TEST_CASE("type table geometry", "[types]") {
    CHECK(type_traits(GgmlType::Q4_K).type_size == 144);
    CHECK(type_traits(GgmlType::Q6_K).type_size == 210);
    CHECK(type_traits(GgmlType::Q2_K).type_size == 84);
    CHECK(type_traits(GgmlType::Q3_K).type_size == 110);
    CHECK(type_traits(GgmlType::Q5_K).type_size == 176);
    CHECK(type_traits(GgmlType::Q8_K).type_size == 292);
    CHECK(type_traits(GgmlType::Q5_1).type_size == 24);
    CHECK_FALSE(type_traits(GgmlType::IQ2_XXS).supported);
    CHECK(type_traits(1000).name == nullptr);
    GgmlType t;
    REQUIRE(type_from_name("Q5_K", &t));
    CHECK(t == GgmlType::Q5_K);
}
