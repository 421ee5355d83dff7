// GGUF reader: parses and validates a GGUF (v2/v3) file's header, metadata and
// tensor table, then exposes tensor bytes (mapped or read into memory).
//
// Every count, length, offset, dimension product and alignment is checked
// against the file size before anything is allocated, so a hostile file gets a
// muse::Error naming the field, never a crash or a huge allocation.
#pragma once

#include "core/byte-source.h"
#include "core/ggml-types.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace muse::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

const char *value_type_name(ValueType t);
bool is_integer_type(ValueType t);  // the eight integer types and BOOL
bool is_float_type(ValueType t);
// Bytes of one element of a fixed-size type, 0 for STRING/ARRAY.
size_t value_type_size(ValueType t);

// One metadata value. Scalars keep their exact value; arrays of fixed-size
// elements keep the packed little-endian bytes; nested arrays are Values.
struct Value {
    ValueType type = ValueType::UINT8;
    // Scalars: integers (and BOOL) in `i` and `u` (same bits; which one is exact
    // depends on signedness), floats in `f`, strings in `str`.
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0.0;
    std::string str;
    // Arrays.
    ValueType elem_type = ValueType::UINT8;
    uint64_t length = 0;
    std::vector<uint8_t> raw;          // fixed-size elements, packed
    std::vector<std::string> strings;  // STRING elements
    std::vector<Value> arrays;         // ARRAY elements

    // Element i of a fixed-size array as a scalar Value.
    Value element(uint64_t index) const;
};

struct KeyValue {
    std::string key;
    Value value;
};

struct TensorInfo {
    std::string name;
    GgmlType type = GgmlType::F32;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ggml order: ne[0] is contiguous
    int64_t n_elements = 0;
    uint64_t n_bytes = 0;
    uint64_t offset = 0;  // relative to the start of the data section
};

struct OpenOptions {
    bool use_mmap = true;
    // false: parse and validate everything, but never touch tensor bytes
    // (vocab-only loads of huge files stay cheap).
    bool load_tensor_data = true;
    // Called with a fraction in [0, 1]; return false to cancel (MUSE_ERR_CANCELLED).
    std::function<bool(float)> progress;
};

class File {
public:
    static std::unique_ptr<File> open(const std::string &path, const OpenOptions &options);
    // Parses a caller buffer, which must outlive the File.
    static std::unique_ptr<File> from_memory(const void *data, size_t size, const OpenOptions &options);

    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
    uint64_t file_size() const { return source_->size(); }
    const std::string &description() const { return source_->description(); }

    const std::vector<KeyValue> &metadata() const { return kvs_; }
    const Value *find(std::string_view key) const;

    // Typed lookups for model code; they throw MUSE_ERR_FORMAT naming the key
    // when the value has the wrong type. get_* without a default throw if absent.
    std::optional<std::string> get_string(std::string_view key) const;
    std::optional<int64_t> get_int(std::string_view key) const;
    std::optional<double> get_float(std::string_view key) const;
    std::optional<bool> get_bool(std::string_view key) const;

    const std::vector<TensorInfo> &tensors() const { return tensors_; }
    const TensorInfo *find_tensor(std::string_view name) const;
    bool has_tensor_data() const { return data_ != nullptr; }
    // Bytes of a tensor; throws if the file was opened without tensor data.
    const uint8_t *tensor_data(const TensorInfo &t) const;
    // The backend keeps its own copy of this tensor (e.g. repacked): a mapped file lets the
    // tensor's pages go (tensor_data stays valid; the pages come back from the file if read).
    void release_tensor_data(const TensorInfo &t) const;
    // The same for any byte range of tensor data (whole pages inside it); others are ignored.
    void release_data(const void *data, size_t n) const;

    File(const File &) = delete;
    File &operator=(const File &) = delete;
    ~File();

private:
    File() = default;
    void parse(const OpenOptions &options);
    void load_data(const OpenOptions &options);

    std::unique_ptr<ByteSource> source_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<KeyValue> kvs_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
    const uint8_t *data_ = nullptr;  // start of the data section (mapped or owned_)
    std::unique_ptr<uint8_t[], void (*)(uint8_t *)> owned_{nullptr, nullptr};
};

// Limits that keep hostile files cheap to reject. Real files are far below them.
constexpr uint64_t kMaxKeyLength = 65535;      // GGUF spec
constexpr uint64_t kMaxTensorNameLength = 64;  // GGUF spec (llama.cpp: GGML_MAX_NAME)
constexpr int kMaxArrayNesting = 8;
constexpr uint64_t kMaxNestedArrayElements = 1 << 16;  // arrays whose elements are arrays

} // namespace muse::gguf
