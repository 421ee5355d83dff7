// GGUF reader and writer: round trips, every value type, and each rejection rule.
#include "core/dequant.h"
#include "core/error.h"
#include "gguf/gguf-file.h"
#include "gguf/gguf-writer.h"
#include "test-helpers.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <unistd.h>

using namespace muse;
using namespace muse::gguf;

namespace {

std::unique_ptr<File> parse(const std::vector<uint8_t> &bytes, bool data = true) {
    OpenOptions o;
    o.load_tensor_data = data;
    return File::from_memory(bytes.data(), bytes.size(), o);
}

// Expects parsing to fail with `status` and a message containing `needle`.
void expect_error(const std::vector<uint8_t> &bytes, muse_status status, const std::string &needle) {
    try {
        parse(bytes);
        FAIL("parse succeeded, expected an error mentioning: " << needle);
    } catch (const Error &e) {
        INFO("message: " << e.what());
        CHECK(e.status() == status);
        CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
}

template <class T>
void poke(std::vector<uint8_t> &b, size_t at, T v) {
    std::memcpy(b.data() + at, &v, sizeof(T));
}

std::string temp_path(const char *tag) {
    return "/tmp/muse-test-" + std::to_string(::getpid()) + "-" + tag + ".gguf";
}

} // namespace

TEST_CASE("writer output parses back with every value type intact", "[gguf]") {
    const auto bytes = test::tiny_model_bytes();
    auto f = parse(bytes);
    CHECK(f->version() == 3);
    CHECK(f->get_string("general.architecture") == "llama");
    CHECK(f->get_int("llama.block_count") == 2);
    CHECK(f->get_float("llama.attention.layer_norm_rms_epsilon").value() == Approx(1e-5));
    CHECK(f->get_int("test.i64") == -1234567890123LL);
    CHECK(f->find("test.u64_big")->u == 0xF000000000000000ull);
    CHECK(f->get_float("test.f64") == 3.25);
    CHECK(f->get_int("test.i8") == -7);
    CHECK(f->get_int("test.u16") == 65535);
    CHECK(f->get_int("test.i16") == -32768);
    CHECK(f->get_int("test.u8") == 200);
    CHECK(f->get_bool("tokenizer.ggml.add_bos_token") == true);
    const Value *tokens = f->find("tokenizer.ggml.tokens");
    REQUIRE(tokens);
    CHECK(tokens->elem_type == ValueType::STRING);
    CHECK(tokens->length == 16);
    CHECK(tokens->strings[5] == "tok5");
    CHECK(f->find("tokenizer.ggml.scores")->element(3).f == Approx(-1.5));
    CHECK(f->find("tokenizer.ggml.token_type")->element(15).i == 1);
    REQUIRE(f->tensors().size() == 3);
    const TensorInfo *emb = f->find_tensor("token_embd.weight");
    REQUIRE(emb);
    CHECK(emb->type == GgmlType::F16);
    CHECK(emb->ne[0] == 64);
    CHECK(emb->ne[1] == 16);
    CHECK(emb->n_bytes == 64 * 16 * 2);
    CHECK(f->find_tensor("blk.0.attn_q.weight")->n_bytes == 4 * 2 * 34);
    CHECK(f->data_offset() % 32 == 0);
}

TEST_CASE("wrong-typed lookups name the key", "[gguf]") {
    auto f = parse(test::tiny_model_bytes());
    CHECK_THROWS_WITH(f->get_string("llama.block_count"), Catch::Contains("llama.block_count"));
    CHECK_THROWS_WITH(f->get_int("general.name"), Catch::Contains("general.name"));
    CHECK_FALSE(f->get_int("no.such.key").has_value());
}

TEST_CASE("nested arrays round-trip", "[gguf]") {
    Writer w;
    w.set_string("general.architecture", "test");
    Value inner1;
    inner1.type = ValueType::ARRAY;
    inner1.elem_type = ValueType::INT32;
    inner1.length = 2;
    inner1.raw = {1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF};
    Value inner2;
    inner2.type = ValueType::ARRAY;
    inner2.elem_type = ValueType::STRING;
    inner2.length = 1;
    inner2.strings = {"x"};
    Value outer;
    outer.type = ValueType::ARRAY;
    outer.elem_type = ValueType::ARRAY;
    outer.length = 2;
    outer.arrays = {inner1, inner2};
    w.set_value("test.nested", outer);
    auto f = parse(w.to_bytes());
    const Value *v = f->find("test.nested");
    REQUIRE(v);
    REQUIRE(v->arrays.size() == 2);
    CHECK(v->arrays[0].element(1).i == -2);
    CHECK(v->arrays[1].strings[0] == "x");
}

TEST_CASE("alignment key is honoured and validated", "[gguf]") {
    auto w = test::tiny_model_writer();
    w.set_alignment(64);
    auto f = parse(w.to_bytes());
    CHECK(f->alignment() == 64);
    CHECK(f->data_offset() % 64 == 0);
    for (const auto &t : f->tensors()) CHECK(t.offset % 64 == 0);

    auto bad = test::tiny_model_writer();
    bad.set_u32("general.alignment", 48);
    expect_error(bad.to_bytes(), MUSE_ERR_FORMAT, "not a power of two");
    auto zero = test::tiny_model_writer();
    zero.set_u32("general.alignment", 0);
    expect_error(zero.to_bytes(), MUSE_ERR_FORMAT, "general.alignment");
    auto typed = test::tiny_model_writer();
    typed.set_u64("general.alignment", 32);
    expect_error(typed.to_bytes(), MUSE_ERR_FORMAT, "must be u32");
}

TEST_CASE("header rules: magic, versions, endianness", "[gguf]") {
    auto bytes = test::tiny_model_bytes();
    SECTION("bad magic") {
        bytes[0] = 'X';
        expect_error(bytes, MUSE_ERR_FORMAT, "not a GGUF file");
    }
    SECTION("version 2 is read") {
        poke<uint32_t>(bytes, 4, 2);
        CHECK(parse(bytes)->version() == 2);
    }
    SECTION("version 1 refused") {
        poke<uint32_t>(bytes, 4, 1);
        expect_error(bytes, MUSE_ERR_UNSUPPORTED, "version 1");
    }
    SECTION("future version refused") {
        poke<uint32_t>(bytes, 4, 4);
        expect_error(bytes, MUSE_ERR_UNSUPPORTED, "newer");
    }
    SECTION("big-endian refused clearly") {
        poke<uint32_t>(bytes, 4, __builtin_bswap32(3u));
        expect_error(bytes, MUSE_ERR_UNSUPPORTED, "big-endian");
    }
    SECTION("tiny files") {
        expect_error({}, MUSE_ERR_FORMAT, "too small");
        expect_error({'G', 'G', 'U', 'F', 3, 0}, MUSE_ERR_FORMAT, "end of file");
    }
}

TEST_CASE("absurd counts are refused before allocating", "[gguf]") {
    auto bytes = test::tiny_model_bytes();
    SECTION("2^60 metadata pairs") {
        poke<uint64_t>(bytes, 16, 1ull << 60);
        expect_error(bytes, MUSE_ERR_FORMAT, "metadata count");
    }
    SECTION("2^60 tensors") {
        poke<uint64_t>(bytes, 8, 1ull << 60);
        expect_error(bytes, MUSE_ERR_FORMAT, "tensor count");
    }
    SECTION("huge key length") {
        poke<uint64_t>(bytes, 24, 1ull << 62);
        expect_error(bytes, MUSE_ERR_FORMAT, "metadata key");
    }
}

TEST_CASE("tensor rules", "[gguf]") {
    SECTION("duplicate tensor names") {
        Writer w;
        w.set_string("general.architecture", "t");
        float x[32] = {};
        w.add_tensor_f32("a", GgmlType::F32, {32}, x);
        w.add_tensor_f32("a", GgmlType::F32, {32}, x);
        expect_error(w.to_bytes(), MUSE_ERR_FORMAT, "duplicate tensor name 'a'");
    }
    SECTION("duplicate keys") {
        auto bytes = test::tiny_model_bytes();
        // Rename the second key ("general.name") to the first ("general.architecture" has
        // another length, so build one by hand instead).
        Writer w;
        w.set_string("k.aa", "1");
        w.set_string("k.bb", "2");
        auto b = w.to_bytes();
        const std::string s(b.begin(), b.end());
        const size_t at = s.find("k.bb");
        b[at + 2] = 'a';
        b[at + 3] = 'a';
        expect_error(b, MUSE_ERR_FORMAT, "duplicate metadata key 'k.aa'");
    }
    // Locate the type / offset fields of the last tensor by rebuilding its header.
    Writer w;
    w.set_string("general.architecture", "t");
    float x[64] = {};
    w.add_tensor_f32("first", GgmlType::F32, {32}, x);
    w.add_tensor_f32("second", GgmlType::F32, {64}, x);
    auto bytes = w.to_bytes();
    const std::string s(bytes.begin(), bytes.end());
    const size_t name_at = s.find("second");
    const size_t dims_at = name_at + 6 + 4;  // after name and n_dims
    const size_t type_at = dims_at + 8;
    const size_t off_at = type_at + 4;
    SECTION("unknown type id") {
        poke<uint32_t>(bytes, type_at, 99);
        expect_error(bytes, MUSE_ERR_FORMAT, "unknown type id 99");
    }
    SECTION("recognised but unsupported types are named") {
        poke<uint32_t>(bytes, type_at, 16);
        expect_error(bytes, MUSE_ERR_UNSUPPORTED, "IQ2_XXS");
        poke<uint32_t>(bytes, type_at, 39);
        expect_error(bytes, MUSE_ERR_UNSUPPORTED, "MXFP4");
        poke<uint32_t>(bytes, type_at, 35);
        expect_error(bytes, MUSE_ERR_UNSUPPORTED, "TQ2_0");
    }
    SECTION("row not a block multiple") {
        poke<uint32_t>(bytes, type_at, 8);  // Q8_0 needs 32 | ne0: 64 is fine, so make ne0 = 48
        poke<int64_t>(bytes, dims_at, 48);
        expect_error(bytes, MUSE_ERR_FORMAT, "block size");
    }
    SECTION("misaligned offset") {
        poke<uint64_t>(bytes, off_at, 160 + 4);
        expect_error(bytes, MUSE_ERR_FORMAT, "alignment");
    }
    SECTION("overlapping tensors") {
        poke<uint64_t>(bytes, off_at, 96);  // first occupies [0, 128)
        expect_error(bytes, MUSE_ERR_FORMAT, "overlap");
    }
    SECTION("data past the end of the file") {
        poke<uint64_t>(bytes, off_at, 1ull << 40);
        expect_error(bytes, MUSE_ERR_FORMAT, "past the end");
        auto truncated = w.to_bytes();
        truncated.resize(truncated.size() - 1);
        expect_error(truncated, MUSE_ERR_FORMAT, "'second'");
    }
    SECTION("negative and overflowing dims") {
        poke<int64_t>(bytes, dims_at, -64);
        expect_error(bytes, MUSE_ERR_FORMAT, "negative");
        poke<int64_t>(bytes, dims_at, INT64_MAX);
        expect_error(bytes, MUSE_ERR_FORMAT, "overflows");
    }
    SECTION("too many dims") {
        poke<uint32_t>(bytes, name_at + 6, 5);
        expect_error(bytes, MUSE_ERR_FORMAT, "5 dimensions");
    }
}

TEST_CASE("mmap, pread and memory sources agree", "[gguf]") {
    const auto bytes = test::tiny_model_bytes(7);
    const std::string path = temp_path("sources");
    auto w = test::tiny_model_writer(7);
    w.write_file(path);
    OpenOptions mm, rd;
    rd.use_mmap = false;
    auto a = File::open(path, mm);
    auto b = File::open(path, rd);
    auto c = parse(bytes);
    for (const auto *f : {a.get(), b.get()}) {
        REQUIRE(f->tensors().size() == c->tensors().size());
        for (const auto &t : c->tensors()) {
            const TensorInfo *u = f->find_tensor(t.name);
            REQUIRE(u);
            CHECK(std::memcmp(f->tensor_data(*u), c->tensor_data(t), t.n_bytes) == 0);
        }
    }
    std::remove(path.c_str());
}

TEST_CASE("missing files and directories give IO errors", "[gguf]") {
    CHECK_THROWS_WITH(File::open("/nonexistent/model.gguf", {}), Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(File::open("/tmp", {}), Catch::Contains("not a regular file"));
}

TEST_CASE("vocab-only parse never touches tensor data", "[gguf]") {
    auto f = parse(test::tiny_model_bytes(), false);
    CHECK_FALSE(f->has_tensor_data());
    CHECK_THROWS_WITH(f->tensor_data(f->tensors()[0]), Catch::Contains("not loaded"));
}

TEST_CASE("progress callback is called and can cancel", "[gguf]") {
    const auto bytes = test::tiny_model_bytes();
    std::vector<float> seen;
    OpenOptions o;
    o.progress = [&](float p) {
        seen.push_back(p);
        return true;
    };
    File::from_memory(bytes.data(), bytes.size(), o);
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back() == 1.0f);
    o.progress = [](float) { return false; };
    try {
        File::from_memory(bytes.data(), bytes.size(), o);
        FAIL("expected cancellation");
    } catch (const Error &e) {
        CHECK(e.status() == MUSE_ERR_CANCELLED);
    }
}

TEST_CASE("writer's quantizers dequantize close to their input", "[gguf]") {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(256), y(256);
    for (auto &v : x) v = nd(rng);
    const auto q8 = quantize_q8_0(x.data(), 256);
    dequantize(GgmlType::Q8_0, q8.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) CHECK(std::fabs(x[i] - y[i]) < 0.03f);
    const auto q4 = quantize_q4_0(x.data(), 256);
    dequantize(GgmlType::Q4_0, q4.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) CHECK(std::fabs(x[i] - y[i]) < 0.4f);
    // Q4_K: half a step of its sub-block (range / 15 <= ~0.5 here) plus the 6-bit rounding of
    // the sub-block scales and mins (the 12-byte packing read back by core/dequant.cpp).
    const auto qk = quantize_q4_k(x.data(), 256);
    REQUIRE(qk.size() == 144);
    dequantize(GgmlType::Q4_K, qk.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) CHECK(std::fabs(x[i] - y[i]) < 0.4f);
}
