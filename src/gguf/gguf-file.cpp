#include "gguf/gguf-file.h"

#include "core/error.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace muse::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr size_t kWindow = 1 << 20;      // pread buffer for unmapped sources

// Sequential, bounds-checked reader over a ByteSource. Every read names what it
// reads, so a truncated file's error says which field ran past the end.
class Cursor {
public:
    explicit Cursor(const ByteSource &src) : src_(src), mapped_(src.data()) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return src_.size() - pos_; }

    void read(void *dst, uint64_t n, const char *what) {
        if (n > remaining())
            fail(MUSE_ERR_FORMAT, "unexpected end of file at offset ", pos_, " while reading ", what,
                 " (", n, " bytes needed, ", remaining(), " left)");
        if (n == 0) return;  // dst may be null for empty strings/arrays
        if (mapped_) {
            std::memcpy(dst, mapped_ + pos_, n);
        } else {
            auto *out = static_cast<uint8_t *>(dst);
            uint64_t left = n;
            while (left > 0) {
                if (pos_ < win_start_ || pos_ >= win_start_ + win_.size()) refill();
                const uint64_t off = pos_ - win_start_;
                const uint64_t take = std::min<uint64_t>(left, win_.size() - off);
                std::memcpy(out, win_.data() + off, take);
                out += take;
                pos_ += take;
                left -= take;
            }
            return;
        }
        pos_ += n;
    }

    template <class T>
    T read_pod(const char *what) {
        T v;
        read(&v, sizeof(T), what);
        return v;
    }

    std::string read_string(uint64_t max_len, const char *what) {
        const uint64_t len = read_pod<uint64_t>(what);
        if (len > remaining())
            fail(MUSE_ERR_FORMAT, what, " at offset ", pos_ - 8, " claims ", len, " bytes but only ",
                 remaining(), " remain in the file");
        if (len > max_len) fail(MUSE_ERR_FORMAT, what, " at offset ", pos_ - 8, " is ", len,
                                " bytes long (limit ", max_len, ")");
        std::string s(static_cast<size_t>(len), '\0');
        read(s.data(), len, what);
        return s;
    }

private:
    void refill() {
        win_start_ = pos_;
        win_.resize(static_cast<size_t>(std::min<uint64_t>(kWindow, remaining())));
        src_.read(win_start_, win_.data(), win_.size());
    }

    const ByteSource &src_;
    const uint8_t *mapped_;
    uint64_t pos_ = 0;
    std::vector<uint8_t> win_;
    uint64_t win_start_ = 0;
};

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

// The fewest bytes one element of type t can occupy in a file; bounds counts.
uint64_t min_encoded_size(ValueType t) {
    if (t == ValueType::STRING) return 8;
    if (t == ValueType::ARRAY) return 12;
    return value_type_size(t);
}

void read_scalar(Cursor &c, ValueType t, Value &v, const std::string &key) {
    v.type = t;
    switch (t) {
    case ValueType::UINT8: v.u = c.read_pod<uint8_t>("a u8 value"); v.i = static_cast<int64_t>(v.u); break;
    case ValueType::INT8: v.i = c.read_pod<int8_t>("an i8 value"); v.u = static_cast<uint64_t>(v.i); break;
    case ValueType::UINT16: v.u = c.read_pod<uint16_t>("a u16 value"); v.i = static_cast<int64_t>(v.u); break;
    case ValueType::INT16: v.i = c.read_pod<int16_t>("an i16 value"); v.u = static_cast<uint64_t>(v.i); break;
    case ValueType::UINT32: v.u = c.read_pod<uint32_t>("a u32 value"); v.i = static_cast<int64_t>(v.u); break;
    case ValueType::INT32: v.i = c.read_pod<int32_t>("an i32 value"); v.u = static_cast<uint64_t>(v.i); break;
    case ValueType::UINT64: v.u = c.read_pod<uint64_t>("a u64 value"); v.i = static_cast<int64_t>(v.u); break;
    case ValueType::INT64: v.i = c.read_pod<int64_t>("an i64 value"); v.u = static_cast<uint64_t>(v.i); break;
    case ValueType::FLOAT32: v.f = c.read_pod<float>("an f32 value"); break;
    case ValueType::FLOAT64: v.f = c.read_pod<double>("an f64 value"); break;
    case ValueType::BOOL: {
        const uint8_t b = c.read_pod<uint8_t>("a bool value");
        if (b > 1) fail(MUSE_ERR_FORMAT, "metadata '", key, "': bool value ", int(b), " is neither 0 nor 1");
        v.u = b;
        v.i = b;
        break;
    }
    case ValueType::STRING: v.str = c.read_string(std::numeric_limits<uint64_t>::max(), "a string value"); break;
    case ValueType::ARRAY: break;  // handled by read_value
    }
}

void read_value(Cursor &c, ValueType t, Value &v, const std::string &key, int depth) {
    if (t != ValueType::ARRAY) {
        read_scalar(c, t, v, key);
        return;
    }
    if (depth >= kMaxArrayNesting)
        fail(MUSE_ERR_FORMAT, "metadata '", key, "': arrays nested deeper than ", kMaxArrayNesting);
    v.type = ValueType::ARRAY;
    const uint32_t et = c.read_pod<uint32_t>("an array element type");
    if (!valid_value_type(et))
        fail(MUSE_ERR_FORMAT, "metadata '", key, "': unknown array element type ", et);
    v.elem_type = static_cast<ValueType>(et);
    v.length = c.read_pod<uint64_t>("an array length");
    const uint64_t min_size = min_encoded_size(v.elem_type);
    if (v.length > c.remaining() / min_size)
        fail(MUSE_ERR_FORMAT, "metadata '", key, "': array length ", v.length, " of ",
             value_type_name(v.elem_type), " cannot fit in the ", c.remaining(),
             " bytes left in the file");
    if (v.elem_type == ValueType::STRING) {
        v.strings.resize(static_cast<size_t>(v.length));
        for (auto &s : v.strings) s = c.read_string(std::numeric_limits<uint64_t>::max(), "an array string");
    } else if (v.elem_type == ValueType::ARRAY) {
        // A nested array element costs a whole Value (~200 bytes) for 12 file bytes: cap
        // them so a hostile file cannot turn its size into 16x as much memory.
        if (v.length > kMaxNestedArrayElements)
            fail(MUSE_ERR_FORMAT, "metadata '", key, "': ", v.length, " nested arrays (limit ", kMaxNestedArrayElements, ")");
        v.arrays.resize(static_cast<size_t>(v.length));
        for (auto &e : v.arrays) read_value(c, ValueType::ARRAY, e, key, depth + 1);
    } else {
        v.raw.resize(static_cast<size_t>(v.length * min_size));
        c.read(v.raw.data(), v.raw.size(), "array elements");
        if (v.elem_type == ValueType::BOOL)
            for (uint8_t b : v.raw)
                if (b > 1) fail(MUSE_ERR_FORMAT, "metadata '", key, "': bool array element ", int(b),
                                " is neither 0 nor 1");
    }
}

bool checked_mul(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

} // namespace

const char *value_type_name(ValueType t) {
    switch (t) {
    case ValueType::UINT8: return "u8";
    case ValueType::INT8: return "i8";
    case ValueType::UINT16: return "u16";
    case ValueType::INT16: return "i16";
    case ValueType::UINT32: return "u32";
    case ValueType::INT32: return "i32";
    case ValueType::FLOAT32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "u64";
    case ValueType::INT64: return "i64";
    case ValueType::FLOAT64: return "f64";
    }
    return "?";
}

bool is_integer_type(ValueType t) {
    switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
    case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
    case ValueType::BOOL: return true;
    default: return false;
    }
}

bool is_float_type(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

size_t value_type_size(ValueType t) {
    switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    default: return 0;
    }
}

Value Value::element(uint64_t index) const {
    if (type != ValueType::ARRAY || index >= length)
        fail(MUSE_ERR_OUT_OF_RANGE, "array index ", index, " out of range (length ", length, ")");
    if (elem_type == ValueType::STRING) {
        Value v;
        v.type = ValueType::STRING;
        v.str = strings[static_cast<size_t>(index)];
        return v;
    }
    if (elem_type == ValueType::ARRAY) return arrays[static_cast<size_t>(index)];
    const size_t sz = value_type_size(elem_type);
    Value v;
    const uint8_t *p = raw.data() + index * sz;
    v.type = elem_type;
    switch (elem_type) {
    case ValueType::UINT8: v.u = *p; v.i = static_cast<int64_t>(v.u); break;
    case ValueType::BOOL: v.u = *p; v.i = static_cast<int64_t>(v.u); break;
    case ValueType::INT8: { int8_t x; std::memcpy(&x, p, 1); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case ValueType::UINT16: { uint16_t x; std::memcpy(&x, p, 2); v.u = x; v.i = x; break; }
    case ValueType::INT16: { int16_t x; std::memcpy(&x, p, 2); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case ValueType::UINT32: { uint32_t x; std::memcpy(&x, p, 4); v.u = x; v.i = x; break; }
    case ValueType::INT32: { int32_t x; std::memcpy(&x, p, 4); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case ValueType::UINT64: { uint64_t x; std::memcpy(&x, p, 8); v.u = x; v.i = static_cast<int64_t>(x); break; }
    case ValueType::INT64: { int64_t x; std::memcpy(&x, p, 8); v.i = x; v.u = static_cast<uint64_t>(x); break; }
    case ValueType::FLOAT32: { float x; std::memcpy(&x, p, 4); v.f = x; break; }
    case ValueType::FLOAT64: { double x; std::memcpy(&x, p, 8); v.f = x; break; }
    default: break;
    }
    return v;
}

File::~File() = default;

std::unique_ptr<File> File::open(const std::string &path, const OpenOptions &options) {
    std::unique_ptr<File> f(new File());
    f->source_ = open_file_source(path, options.use_mmap);
    f->parse(options);
    return f;
}

std::unique_ptr<File> File::from_memory(const void *data, size_t size, const OpenOptions &options) {
    std::unique_ptr<File> f(new File());
    f->source_ = memory_source(data, size, "<memory>");
    f->parse(options);
    return f;
}

void File::parse(const OpenOptions &options) {
    Cursor c(*source_);
    const std::string &where = source_->description();
    if (source_->size() < 4) fail(MUSE_ERR_FORMAT, where, ": file is too small to be GGUF (", source_->size(), " bytes)");
    const uint32_t magic = c.read_pod<uint32_t>("the magic");
    if (magic != kMagic) {
        char m[5] = {};
        std::memcpy(m, &magic, 4);
        for (char &ch : m) if (ch && (ch < 32 || ch > 126)) ch = '?';
        fail(MUSE_ERR_FORMAT, where, ": not a GGUF file (magic '", m, "', expected 'GGUF')");
    }
    version_ = c.read_pod<uint32_t>("the version");
    if (version_ == 0 || version_ > 0xFFFF) {
        if (__builtin_bswap32(version_) >= 1 && __builtin_bswap32(version_) <= 3)
            fail(MUSE_ERR_UNSUPPORTED, where, ": big-endian GGUF files are not supported (version field reads ",
                 __builtin_bswap32(version_), " byte-swapped); convert it to little-endian");
        fail(MUSE_ERR_FORMAT, where, ": invalid GGUF version ", version_);
    }
    if (version_ == 1) fail(MUSE_ERR_UNSUPPORTED, where, ": GGUF version 1 is obsolete; re-convert the model (v2 or v3 needed)");
    if (version_ > 3) fail(MUSE_ERR_UNSUPPORTED, where, ": GGUF version ", version_, " is newer than muse understands (2 or 3)");

    const uint64_t n_tensors = c.read_pod<uint64_t>("the tensor count");
    const uint64_t n_kv = c.read_pod<uint64_t>("the metadata count");
    // The smallest key/value is 13 bytes (8 length + 1 char... + 4 type); the smallest
    // tensor info 24 bytes. Counts that cannot fit in the file are rejected up front.
    if (n_kv > c.remaining() / 13)
        fail(MUSE_ERR_FORMAT, where, ": metadata count ", n_kv, " cannot fit in a ", source_->size(), "-byte file");
    if (n_tensors > c.remaining() / 24)
        fail(MUSE_ERR_FORMAT, where, ": tensor count ", n_tensors, " cannot fit in a ", source_->size(), "-byte file");

    kvs_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        KeyValue kv;
        kv.key = c.read_string(kMaxKeyLength, "a metadata key");
        if (kv.key.empty()) fail(MUSE_ERR_FORMAT, where, ": metadata key #", k, " is empty");
        if (kv.key.find('\0') != std::string::npos)
            fail(MUSE_ERR_FORMAT, where, ": metadata key #", k, " contains a NUL byte");
        const uint32_t t = c.read_pod<uint32_t>("a metadata value type");
        if (!valid_value_type(t)) fail(MUSE_ERR_FORMAT, where, ": metadata '", kv.key, "' has unknown value type ", t);
        read_value(c, static_cast<ValueType>(t), kv.value, kv.key, 0);
        kvs_.push_back(std::move(kv));
    }
    for (size_t k = 0; k < kvs_.size(); ++k) {
        if (!kv_index_.emplace(kvs_[k].key, k).second)
            fail(MUSE_ERR_FORMAT, where, ": duplicate metadata key '", kvs_[k].key, "'");
    }

    if (const Value *a = find("general.alignment")) {
        if (a->type != ValueType::UINT32)
            fail(MUSE_ERR_FORMAT, where, ": general.alignment must be u32, found ", value_type_name(a->type));
        if (a->u == 0 || (a->u & (a->u - 1)) != 0)
            fail(MUSE_ERR_FORMAT, where, ": general.alignment ", a->u, " is not a power of two");
        alignment_ = a->u;
    }

    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        TensorInfo t;
        t.name = c.read_string(kMaxTensorNameLength, "a tensor name");
        if (t.name.empty() || t.name.find('\0') != std::string::npos)
            fail(MUSE_ERR_FORMAT, where, ": tensor #", k, " has an empty name or a NUL byte in it");
        t.n_dims = c.read_pod<uint32_t>("a tensor dimension count");
        if (t.n_dims > 4)
            fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' has ", t.n_dims, " dimensions (at most 4)");
        int64_t n = 1;
        for (uint32_t d = 0; d < t.n_dims; ++d) {
            const int64_t ne = c.read_pod<int64_t>("a tensor dimension");
            if (ne < 0) fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' dimension ", d, " is negative (", ne, ")");
            t.ne[d] = ne;
            if (!checked_mul(n, ne, &n))
                fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' has too many elements (dimension product overflows)");
        }
        t.n_elements = n;
        const uint32_t type_id = c.read_pod<uint32_t>("a tensor type");
        const TypeTraits &tt = type_traits(type_id);
        if (!tt.name) fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' has unknown type id ", type_id);
        if (!tt.supported)
            fail(MUSE_ERR_UNSUPPORTED, where, ": tensor '", t.name, "' has type ", tt.name,
                 ", which muse does not support (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 "
                 "Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K and the integer types)");
        t.type = static_cast<GgmlType>(type_id);
        if (t.ne[0] % tt.block_size != 0)
            fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' row length ", t.ne[0],
                 " is not a multiple of the ", tt.name, " block size ", tt.block_size);
        int64_t bytes = 0;
        if (!checked_mul(n / tt.block_size, static_cast<int64_t>(tt.type_size), &bytes))
            fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' byte size overflows");
        t.n_bytes = static_cast<uint64_t>(bytes);
        t.offset = c.read_pod<uint64_t>("a tensor data offset");
        if (t.offset % alignment_ != 0)
            fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' offset ", t.offset,
                 " is not a multiple of the alignment ", alignment_);
        tensors_.push_back(std::move(t));
    }
    for (size_t k = 0; k < tensors_.size(); ++k) {
        if (!tensor_index_.emplace(tensors_[k].name, k).second)
            fail(MUSE_ERR_FORMAT, where, ": duplicate tensor name '", tensors_[k].name, "'");
    }

    // Data section: starts at the next multiple of the alignment after the header.
    const uint64_t header_end = c.pos();
    const uint64_t pad = (alignment_ - header_end % alignment_) % alignment_;
    data_offset_ = header_end + pad;
    const uint64_t data_size = data_offset_ <= source_->size() ? source_->size() - data_offset_ : 0;
    if (!tensors_.empty() && data_offset_ > source_->size())
        fail(MUSE_ERR_FORMAT, where, ": the tensor data section (offset ", data_offset_, ") starts past the end of the file");
    std::vector<const TensorInfo *> by_offset;
    by_offset.reserve(tensors_.size());
    for (const auto &t : tensors_) {
        if (t.offset > data_size || t.n_bytes > data_size - t.offset)
            fail(MUSE_ERR_FORMAT, where, ": tensor '", t.name, "' data (offset ", t.offset, ", ", t.n_bytes,
                 " bytes) extends past the end of the file (data section holds ", data_size, " bytes)");
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo *a, const TensorInfo *b) { return a->offset < b->offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
        const TensorInfo &prev = *by_offset[k - 1];
        if (by_offset[k]->offset < prev.offset + prev.n_bytes)
            fail(MUSE_ERR_FORMAT, where, ": tensors '", prev.name, "' and '", by_offset[k]->name, "' overlap");
    }

    if (options.progress && !options.progress(options.load_tensor_data ? 0.05f : 1.0f))
        fail(MUSE_ERR_CANCELLED, "load cancelled by the progress callback");
    if (options.load_tensor_data) load_data(options);
}

void File::load_data(const OpenOptions &options) {
    if (tensors_.empty()) {
        if (options.progress && !options.progress(1.0f)) fail(MUSE_ERR_CANCELLED, "load cancelled by the progress callback");
        return;
    }
    if (const uint8_t *mapped = source_->data()) {
        data_ = mapped + data_offset_;
        if (options.progress && !options.progress(1.0f)) fail(MUSE_ERR_CANCELLED, "load cancelled by the progress callback");
        return;
    }
    uint64_t end = 0;
    for (const auto &t : tensors_) end = std::max(end, t.offset + t.n_bytes);
    // 64-byte alignment so SIMD kernels can use aligned loads on tensors aligned in the file.
    const size_t bytes = static_cast<size_t>((end + 63) / 64 * 64);
    auto *buf = static_cast<uint8_t *>(std::aligned_alloc(64, std::max<size_t>(bytes, 64)));
    if (!buf) fail(MUSE_ERR_OUT_OF_MEMORY, "cannot allocate ", end, " bytes for tensor data");
    owned_ = std::unique_ptr<uint8_t[], void (*)(uint8_t *)>(buf, [](uint8_t *p) { std::free(p); });
    constexpr uint64_t kChunk = 64ull << 20;
    for (uint64_t off = 0; off < end; off += kChunk) {
        const uint64_t n = std::min(kChunk, end - off);
        source_->read(data_offset_ + off, buf + off, static_cast<size_t>(n));
        if (options.progress && !options.progress(0.05f + 0.95f * static_cast<float>(off + n) / static_cast<float>(end)))
            fail(MUSE_ERR_CANCELLED, "load cancelled by the progress callback");
    }
    data_ = buf;
}

const Value *File::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

std::optional<std::string> File::get_string(std::string_view key) const {
    const Value *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::STRING)
        fail(MUSE_ERR_FORMAT, "metadata '", key, "' should be a string, found ", value_type_name(v->type));
    return v->str;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
    const Value *v = find(key);
    if (!v) return std::nullopt;
    if (!is_integer_type(v->type) || v->type == ValueType::BOOL)
        fail(MUSE_ERR_FORMAT, "metadata '", key, "' should be an integer, found ", value_type_name(v->type));
    if (v->type == ValueType::UINT64 && v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(MUSE_ERR_FORMAT, "metadata '", key, "' value ", v->u, " is out of range");
    return v->i;
}

std::optional<double> File::get_float(std::string_view key) const {
    const Value *v = find(key);
    if (!v) return std::nullopt;
    if (is_float_type(v->type)) return v->f;
    if (is_integer_type(v->type) && v->type != ValueType::BOOL) return static_cast<double>(v->i);
    fail(MUSE_ERR_FORMAT, "metadata '", key, "' should be a number, found ", value_type_name(v->type));
}

std::optional<bool> File::get_bool(std::string_view key) const {
    const Value *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != ValueType::BOOL)
        fail(MUSE_ERR_FORMAT, "metadata '", key, "' should be a bool, found ", value_type_name(v->type));
    return v->u != 0;
}

const TensorInfo *File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t *File::tensor_data(const TensorInfo &t) const {
    if (!data_) fail(MUSE_ERR_INVALID_ARGUMENT, "tensor data of '", t.name, "' is not loaded (vocab-only model)");
    return data_ + t.offset;
}

void File::release_tensor_data(const TensorInfo &t) const {
    if (data_) release_data(data_ + t.offset, t.n_bytes);
}

void File::release_data(const void *data, size_t n) const {
    const auto *p = static_cast<const uint8_t *>(data);
    if (!data_ || owned_ || !source_->data() || p < data_) return;
    const uint64_t offset = data_offset_ + static_cast<uint64_t>(p - data_);
    if (offset > source_->size() || n > source_->size() - offset) return;  // not this file's bytes
    source_->release(offset, n);
}

} // namespace muse::gguf
