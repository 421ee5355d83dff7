// C entry points for models: loading, hyperparameters, metadata, tensors.
#include "api/api-guard.h"
#include "core/dequant.h"
#include "api/handles.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <limits>

namespace muse::api {
namespace {

// Sizes of every released muse_model_params / muse_tensor_info (ABI v1).
constexpr size_t kModelParamsSizes[] = {sizeof(muse_model_params)};
constexpr size_t kTensorInfoV1Size = sizeof(muse_tensor_info);

const Model &model_of(const muse_model *m) {
    if (!m || !m->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "model handle is NULL");
    return *m->impl;
}

const gguf::Value &meta_value(const muse_model *m, const char *key) {
    const Model &model = model_of(m);
    require(key, "key");
    const gguf::Value *v = model.file().find(key);
    if (!v) fail(MUSE_ERR_NOT_FOUND, "no metadata key '", key, "'");
    return *v;
}

int64_t value_to_int(const gguf::Value &v, const std::string &what) {
    if (!gguf::is_integer_type(v.type))
        fail(MUSE_ERR_TYPE_MISMATCH, what, " is ", gguf::value_type_name(v.type), ", not an integer");
    if (v.type == gguf::ValueType::UINT64 && v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(MUSE_ERR_OUT_OF_RANGE, what, " (", v.u, ") does not fit in int64; use the uint getter");
    return v.i;
}

double value_to_float(const gguf::Value &v, const std::string &what) {
    if (gguf::is_float_type(v.type)) return v.f;
    if (gguf::is_integer_type(v.type))
        return v.type == gguf::ValueType::UINT64 ? static_cast<double>(v.u) : static_cast<double>(v.i);
    fail(MUSE_ERR_TYPE_MISMATCH, what, " is ", gguf::value_type_name(v.type), ", not a number");
}

const gguf::Value &array_value(const muse_model *m, const char *key) {
    const gguf::Value &v = meta_value(m, key);
    if (v.type != gguf::ValueType::ARRAY)
        fail(MUSE_ERR_TYPE_MISMATCH, "metadata '", key, "' is ", gguf::value_type_name(v.type), ", not an array");
    return v;
}

void check_index(const gguf::Value &arr, uint64_t index, const char *key) {
    if (index >= arr.length)
        fail(MUSE_ERR_OUT_OF_RANGE, "index ", index, " out of range for metadata '", key, "' (length ", arr.length, ")");
}

nlohmann::json to_json(const gguf::Value &v) {
    using gguf::ValueType;
    switch (v.type) {
    case ValueType::BOOL: return v.u != 0;
    case ValueType::UINT8: case ValueType::UINT16: case ValueType::UINT32: case ValueType::UINT64: return v.u;
    case ValueType::INT8: case ValueType::INT16: case ValueType::INT32: case ValueType::INT64: return v.i;
    case ValueType::FLOAT32: case ValueType::FLOAT64: return v.f;
    case ValueType::STRING: return v.str;
    case ValueType::ARRAY: {
        nlohmann::json arr = nlohmann::json::array();
        if (v.elem_type == ValueType::STRING) {
            for (const auto &s : v.strings) arr.push_back(s);
        } else if (v.elem_type == ValueType::ARRAY) {
            for (const auto &a : v.arrays) arr.push_back(to_json(a));
        } else {
            for (uint64_t i = 0; i < v.length; ++i) arr.push_back(to_json(v.element(i)));
        }
        return arr;
    }
    }
    return nullptr;
}


} // namespace
} // namespace muse::api

using namespace muse;
using namespace muse::api;

extern "C" {

MUSE_API void muse_model_params_init(muse_model_params *p) {
    if (!p) return;
    std::memset(static_cast<void *>(p), 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->backend = MUSE_BACKEND_AUTO;
    p->n_threads = 0;
    p->use_mmap = true;
    p->vocab_only = false;
}

MUSE_API muse_status muse_model_load(const char *path, const muse_model_params *params, muse_model **out_model) {
    if (out_model) *out_model = nullptr;
    return guard([&] {
        require(path, "path");
        require(out_model, "out_model");
        const muse_model_params p = read_params(params, muse_model_params_init, kModelParamsSizes, "muse_model_params");
        ModelLoadOptions o;
        o.backend = enum_value(p.backend);
        o.n_threads = p.n_threads;
        o.use_mmap = p.use_mmap;
        o.vocab_only = p.vocab_only;
        if (p.mmproj_path) o.mmproj_path = p.mmproj_path;
        if (p.tokenizer_path) o.tokenizer_path = p.tokenizer_path;
        if (p.progress) {
            const muse_progress_cb cb = p.progress;
            void *user = p.progress_user_data;
            o.progress = [cb, user](float f) { return cb(f, user); };
        }
        auto handle = std::make_unique<muse_model>();
        handle->impl = Model::load(path, o);
        *out_model = handle.release();
    });
}

MUSE_API void muse_model_free(muse_model *model) { delete model; }

MUSE_API const char *muse_model_arch(const muse_model *m) {
    return guard_value<const char *>(nullptr, [&] { return model_of(m).arch().c_str(); });
}
MUSE_API const char *muse_model_name(const muse_model *m) {
    return guard_value<const char *>(nullptr, [&] { return model_of(m).name().c_str(); });
}
MUSE_API muse_status muse_model_device(const muse_model *m, const char **out_device) {
    if (out_device) *out_device = nullptr;
    return guard([&] {
        require(out_device, "out_device");
        thread_local std::string text;  // valid until this thread's next call
        text = model_of(m).device_description();
        *out_device = text.c_str();
    });
}
MUSE_API int64_t muse_model_n_vocab(const muse_model *m) {
    return guard_value<int64_t>(-1, [&] { return model_of(m).n_vocab(); });
}
MUSE_API int64_t muse_model_n_ctx_train(const muse_model *m) {
    return guard_value<int64_t>(-1, [&] { return model_of(m).n_ctx_train(); });
}
MUSE_API int64_t muse_model_n_embd(const muse_model *m) {
    return guard_value<int64_t>(-1, [&] { return model_of(m).n_embd(); });
}
MUSE_API int64_t muse_model_n_layer(const muse_model *m) {
    return guard_value<int64_t>(-1, [&] { return model_of(m).n_layer(); });
}
MUSE_API uint32_t muse_model_gguf_version(const muse_model *m) {
    return guard_value<uint32_t>(0, [&] { return model_of(m).file().version(); });
}
MUSE_API uint64_t muse_model_file_size(const muse_model *m) {
    return guard_value<uint64_t>(0, [&] { return model_of(m).file().file_size(); });
}

MUSE_API int64_t muse_model_meta_count(const muse_model *m) {
    return guard_value<int64_t>(-1, [&] { return static_cast<int64_t>(model_of(m).file().metadata().size()); });
}

MUSE_API muse_status muse_model_meta_key(const muse_model *m, int64_t index, const char **out_key) {
    if (out_key) *out_key = nullptr;
    return guard([&] {
        const auto &kvs = model_of(m).file().metadata();
        require(out_key, "out_key");
        if (index < 0 || static_cast<uint64_t>(index) >= kvs.size())
            fail(MUSE_ERR_OUT_OF_RANGE, "metadata index ", index, " out of range (", kvs.size(), " keys)");
        *out_key = kvs[static_cast<size_t>(index)].key.c_str();
    });
}

MUSE_API muse_status muse_model_meta_type(const muse_model *m, const char *key, muse_meta_type *out_type) {
    return guard([&] {
        const gguf::Value &v = meta_value(m, key);
        *require(out_type, "out_type") = static_cast<muse_meta_type>(v.type);
    });
}

MUSE_API muse_status muse_model_meta_array_info(const muse_model *m, const char *key, muse_meta_type *out_elem_type,
                                                uint64_t *out_length) {
    return guard([&] {
        const gguf::Value &v = array_value(m, key);
        if (out_elem_type) *out_elem_type = static_cast<muse_meta_type>(v.elem_type);
        if (out_length) *out_length = v.length;
    });
}

MUSE_API muse_status muse_model_meta_get_int(const muse_model *m, const char *key, int64_t *out) {
    return guard([&] {
        const gguf::Value &v = meta_value(m, key);
        *require(out, "out_value") = value_to_int(v, str_cat("metadata '", key, "'"));
    });
}

MUSE_API muse_status muse_model_meta_get_uint(const muse_model *m, const char *key, uint64_t *out) {
    return guard([&] {
        const gguf::Value &v = meta_value(m, key);
        require(out, "out_value");
        if (!gguf::is_integer_type(v.type))
            fail(MUSE_ERR_TYPE_MISMATCH, "metadata '", key, "' is ", gguf::value_type_name(v.type), ", not an integer");
        const bool is_signed = v.type == gguf::ValueType::INT8 || v.type == gguf::ValueType::INT16 ||
                               v.type == gguf::ValueType::INT32 || v.type == gguf::ValueType::INT64;
        if (is_signed && v.i < 0) fail(MUSE_ERR_OUT_OF_RANGE, "metadata '", key, "' is negative (", v.i, ")");
        *out = v.u;
    });
}

MUSE_API muse_status muse_model_meta_get_float(const muse_model *m, const char *key, double *out) {
    return guard([&] {
        const gguf::Value &v = meta_value(m, key);
        *require(out, "out_value") = value_to_float(v, str_cat("metadata '", key, "'"));
    });
}

MUSE_API muse_status muse_model_meta_get_string(const muse_model *m, const char *key, const char **out_str,
                                                size_t *out_len) {
    if (out_str) *out_str = nullptr;
    return guard([&] {
        const gguf::Value &v = meta_value(m, key);
        require(out_str, "out_str");
        if (v.type != gguf::ValueType::STRING)
            fail(MUSE_ERR_TYPE_MISMATCH, "metadata '", key, "' is ", gguf::value_type_name(v.type), ", not a string");
        *out_str = v.str.c_str();
        if (out_len) *out_len = v.str.size();
    });
}

MUSE_API muse_status muse_model_meta_array_get_int(const muse_model *m, const char *key, uint64_t index,
                                                   int64_t *out) {
    return guard([&] {
        const gguf::Value &arr = array_value(m, key);
        check_index(arr, index, key);
        require(out, "out_value");
        if (arr.elem_type == gguf::ValueType::STRING || arr.elem_type == gguf::ValueType::ARRAY)
            fail(MUSE_ERR_TYPE_MISMATCH, "metadata '", key, "' holds ", gguf::value_type_name(arr.elem_type), " elements, not integers");
        *out = value_to_int(arr.element(index), str_cat("metadata '", key, "'[", index, "]"));
    });
}

MUSE_API muse_status muse_model_meta_array_get_float(const muse_model *m, const char *key, uint64_t index,
                                                     double *out) {
    return guard([&] {
        const gguf::Value &arr = array_value(m, key);
        check_index(arr, index, key);
        require(out, "out_value");
        if (arr.elem_type == gguf::ValueType::STRING || arr.elem_type == gguf::ValueType::ARRAY)
            fail(MUSE_ERR_TYPE_MISMATCH, "metadata '", key, "' holds ", gguf::value_type_name(arr.elem_type), " elements, not numbers");
        *out = value_to_float(arr.element(index), str_cat("metadata '", key, "'[", index, "]"));
    });
}

MUSE_API muse_status muse_model_meta_array_get_string(const muse_model *m, const char *key, uint64_t index,
                                                      const char **out_str, size_t *out_len) {
    if (out_str) *out_str = nullptr;
    return guard([&] {
        const gguf::Value &arr = array_value(m, key);
        check_index(arr, index, key);
        require(out_str, "out_str");
        if (arr.elem_type != gguf::ValueType::STRING)
            fail(MUSE_ERR_TYPE_MISMATCH, "metadata '", key, "' holds ", gguf::value_type_name(arr.elem_type), " elements, not strings");
        const std::string &s = arr.strings[static_cast<size_t>(index)];
        *out_str = s.c_str();
        if (out_len) *out_len = s.size();
    });
}

MUSE_API muse_status muse_model_meta_to_json(const muse_model *m, const char *key, char **out_json) {
    if (out_json) *out_json = nullptr;
    return guard([&] {
        const gguf::Value &v = meta_value(m, key);
        require(out_json, "out_json");
        const std::string text = to_json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        *out_json = dup_string(text);
    });
}

MUSE_API int64_t muse_model_tensor_count(const muse_model *m) {
    return guard_value<int64_t>(-1, [&] { return static_cast<int64_t>(model_of(m).file().tensors().size()); });
}

MUSE_API muse_status muse_model_tensor_info(const muse_model *m, int64_t index, muse_tensor_info *out) {
    return guard([&] {
        const auto &tensors = model_of(m).file().tensors();
        require(out, "out_info");
        if (out->struct_size < kTensorInfoV1Size)
            fail(MUSE_ERR_INVALID_ARGUMENT, "muse_tensor_info.struct_size is ", out->struct_size,
                 "; set it to sizeof(muse_tensor_info)");
        if (index < 0 || static_cast<uint64_t>(index) >= tensors.size())
            fail(MUSE_ERR_OUT_OF_RANGE, "tensor index ", index, " out of range (", tensors.size(), " tensors)");
        const gguf::TensorInfo &t = tensors[static_cast<size_t>(index)];
        muse_tensor_info info{};
        info.struct_size = sizeof(info);
        info.name = t.name.c_str();
        info.type = static_cast<uint32_t>(t.type);
        info.type_name = type_traits(t.type).name;
        info.n_dims = t.n_dims;
        for (int d = 0; d < MUSE_MAX_DIMS; ++d) info.dims[d] = t.ne[d];
        info.n_elements = t.n_elements;
        info.n_bytes = t.n_bytes;
        info.offset = model_of(m).file().data_offset() + t.offset;
        const uint32_t caller_size = out->struct_size;
        std::memcpy(static_cast<void *>(out), &info, caller_size < sizeof(info) ? caller_size : sizeof(info));
        out->struct_size = caller_size;
    });
}

MUSE_API muse_status muse_model_tensor_find(const muse_model *m, const char *name, int64_t *out_index) {
    return guard([&] {
        const gguf::File &f = model_of(m).file();
        require(name, "name");
        require(out_index, "out_index");
        const gguf::TensorInfo *t = f.find_tensor(name);
        if (!t) fail(MUSE_ERR_NOT_FOUND, "no tensor named '", name, "'");
        *out_index = t - f.tensors().data();
    });
}

MUSE_API muse_status muse_model_tensor_read_f32(const muse_model *m, int64_t index, float *dst, size_t capacity) {
    return guard([&] {
        const gguf::File &f = model_of(m).file();
        require(dst, "dst");
        if (index < 0 || static_cast<uint64_t>(index) >= f.tensors().size())
            fail(MUSE_ERR_OUT_OF_RANGE, "tensor index ", index, " out of range (", f.tensors().size(), " tensors)");
        const gguf::TensorInfo &t = f.tensors()[static_cast<size_t>(index)];
        if (capacity < static_cast<uint64_t>(t.n_elements))
            fail(MUSE_ERR_INVALID_ARGUMENT, "destination holds ", capacity, " floats but tensor '", t.name, "' has ",
                 t.n_elements);
        dequantize(t.type, f.tensor_data(t), dst, t.n_elements);
    });
}

MUSE_API muse_status muse_tokenize(const muse_model *m, const char *text, size_t text_len, bool add_special,
                                   bool parse_special, int32_t *out_tokens, size_t capacity, size_t *out_n) {
    if (out_n) *out_n = 0;
    return guard([&] {
        const Tokenizer &t = model_of(m).require_tokenizer();
        if (text_len > 0) require(text, "text");
        require(out_n, "out_n_tokens");
        if (capacity > 0) require(out_tokens, "out_tokens");
        const std::vector<int32_t> ids = t.tokenize(std::string_view(text ? text : "", text_len), add_special, parse_special);
        *out_n = ids.size();
        if (ids.size() > capacity)
            fail(MUSE_ERR_OUT_OF_RANGE, "the text has ", ids.size(), " tokens but the buffer holds ", capacity);
        std::copy(ids.begin(), ids.end(), out_tokens);
    });
}

MUSE_API muse_status muse_detokenize(const muse_model *m, const int32_t *tokens, size_t n_tokens, bool render_special,
                                     char **out_text, size_t *out_len) {
    if (out_text) *out_text = nullptr;
    return guard([&] {
        const Tokenizer &t = model_of(m).require_tokenizer();
        if (n_tokens > 0) require(tokens, "tokens");
        require(out_text, "out_text");
        const std::string text = t.detokenize(std::vector<int32_t>(tokens, tokens + n_tokens), render_special);
        *out_text = dup_string(text);
        if (out_len) *out_len = text.size();
    });
}

} // extern "C"
