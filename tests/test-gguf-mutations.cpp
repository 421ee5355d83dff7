// Mutates valid GGUF files in well over 10,000 ways (truncation at every offset
// band, bit flips, huge counts/lengths/dims, bad alignment, overlapping tensors)
// and checks that every load either succeeds or fails with a status and a
// message: no crash, no sanitizer report (the suite also runs under ASan/UBSan),
// and no single allocation above 1 GiB (operator new is instrumented below).
#include "api/api-guard.h"
#include "core/dequant.h"
#include "model/model.h"
#include "test-helpers.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {
std::atomic<size_t> g_largest_allocation{0};

void note(size_t n) {
    size_t prev = g_largest_allocation.load();
    while (n > prev && !g_largest_allocation.compare_exchange_weak(prev, n)) {
    }
}
} // namespace

// Count every C++ allocation of the process; the reader only allocates through new.
void *operator new(size_t n) {
    note(n);
    if (n > (size_t(1) << 30)) throw std::bad_alloc();  // would be a test failure anyway
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }
void *operator new(size_t n, const std::nothrow_t &) noexcept {
    try {
        return operator new(n);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void *p, const std::nothrow_t &) noexcept { std::free(p); }
void *operator new[](size_t n, const std::nothrow_t &t) noexcept { return operator new(n, t); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { std::free(p); }
void *operator new[](size_t n) { return operator new(n); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete[](void *p, size_t) noexcept { std::free(p); }

using namespace muse;

namespace {

struct Outcome {
    size_t ok = 0, errors = 0;
};

// Loads bytes through the same path as muse_model_load, converting exceptions
// exactly like the C API boundary, and reads every tensor back.
void load_once(const std::vector<uint8_t> &bytes, Outcome &out) {
    ModelLoadOptions o;
    const muse_status st = api::guard([&] {
        auto m = Model::load_from_memory(bytes.data(), bytes.size(), o);
        for (const auto &t : m->file().tensors()) {
            std::vector<float> buf(static_cast<size_t>(t.n_elements));
            dequantize(t.type, m->file().tensor_data(t), buf.data(), t.n_elements);
        }
    });
    if (st == MUSE_OK) {
        ++out.ok;
    } else {
        ++out.errors;
        const std::string msg = muse_last_error();
        if (msg.empty()) FAIL("error status " << muse_status_name(st) << " without a message");
        if (st == MUSE_ERR_INTERNAL) FAIL("internal error: " << msg);
    }
}

template <class T>
void poke(std::vector<uint8_t> &b, size_t at, T v) {
    if (at + sizeof(T) <= b.size()) std::memcpy(b.data() + at, &v, sizeof(T));
}

std::vector<std::vector<uint8_t>> seeds() {
    std::vector<std::vector<uint8_t>> s;
    s.push_back(test::tiny_model_bytes(1));
    auto w = test::tiny_model_writer(2);
    w.set_alignment(64);
    s.push_back(w.to_bytes());
    return s;
}

} // namespace

TEST_CASE("10,000+ mutated GGUF files load or fail cleanly", "[gguf][hostile]") {
    Outcome out;
    std::mt19937_64 rng(12345);
    size_t n_cases = 0;
    for (const auto &seed : seeds()) {
        // 1. Truncation: every length in the header, then bands through the data.
        for (size_t len = 0; len < seed.size(); len += (len < 1024 ? 1 : 97)) {
            load_once(std::vector<uint8_t>(seed.begin(), seed.begin() + static_cast<long>(len)), out);
            ++n_cases;
        }
        // 2. Single bit flips across the header and the start of the data.
        const size_t header_span = std::min<size_t>(seed.size(), 1200);
        for (size_t i = 0; i < 2500; ++i) {
            auto b = seed;
            const size_t at = rng() % header_span;
            b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
            load_once(b, out);
            ++n_cases;
        }
        // 3. Huge values written over every 8-byte-aligned and odd offset of the header:
        //    counts, string lengths, dims, types, offsets all get hit somewhere.
        const uint64_t huge[] = {1ull << 60, ~0ull, 1ull << 31, 0x7FFFFFFFFFFFFFFFull, 0x100000000ull,
                                 static_cast<uint64_t>(-64), 1ull << 40};
        for (size_t at = 0; at + 8 <= header_span; ++at) {
            auto b = seed;
            poke<uint64_t>(b, at, huge[at % std::size(huge)]);
            load_once(b, out);
            ++n_cases;
        }
        // 4. 32-bit fields: value types and tensor types set to every small id.
        for (size_t i = 0; i < 1500; ++i) {
            auto b = seed;
            poke<uint32_t>(b, rng() % header_span, static_cast<uint32_t>(rng() % 48));
            load_once(b, out);
            ++n_cases;
        }
        // 5. Random multi-byte garbage.
        for (size_t i = 0; i < 1000; ++i) {
            auto b = seed;
            const size_t n = 1 + rng() % 16;
            for (size_t k = 0; k < n; ++k) b[rng() % header_span] = static_cast<uint8_t>(rng());
            load_once(b, out);
            ++n_cases;
        }
    }
    // 6. Structural mutations built through the writer.
    for (uint32_t align : {0u, 3u, 48u, 1u << 31}) {
        auto w = test::tiny_model_writer();
        w.set_u32("general.alignment", align);
        load_once(w.to_bytes(), out);
        ++n_cases;
    }
    {
        gguf::Writer w;
        w.set_string("general.architecture", "llama");
        float x[64] = {};
        w.add_tensor_f32("a", GgmlType::F32, {64}, x);
        w.add_tensor_f32("b", GgmlType::F32, {64}, x);
        auto bytes = w.to_bytes();
        const std::string s(bytes.begin(), bytes.end());
        const size_t off_at = s.find('b', s.find("general.architecture") + 30) + 1 + 4 + 8 + 4;
        for (uint64_t off = 0; off < 512; off += 32) {  // overlapping and out-of-range offsets
            auto b = bytes;
            poke<uint64_t>(b, off_at, off);
            load_once(b, out);
            ++n_cases;
        }
    }

    INFO("cases " << n_cases << ", loaded " << out.ok << ", rejected " << out.errors);
    CHECK(n_cases >= 10000);
    CHECK(out.errors > out.ok);  // most mutations must be caught, not silently accepted
    CHECK(g_largest_allocation.load() <= (size_t(1) << 30));
}
