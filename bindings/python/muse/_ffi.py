"""ctypes declarations of every C function in include/muse/muse.h.

Each declaration sits next to its C prototype so the two are easy to compare.
The library is found through, in order: the MUSE_LIBRARY environment variable,
the copy bundled inside this package by `pip install` (muse/lib/libmuse.so.N), a build
tree of the repository this package sits in (build*/src/libmuse.so), then the system's
library search path.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_uint64_p = ctypes.POINTER(ctypes.c_uint64)
c_double_p = ctypes.POINTER(ctypes.c_double)
c_size_t_p = ctypes.POINTER(ctypes.c_size_t)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)
c_void_pp = ctypes.POINTER(ctypes.c_void_p)

MAX_DIMS = 4

# muse_progress_cb: bool (*)(float progress, void *user_data)
PROGRESS_CB = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_float, ctypes.c_void_p)


class ModelParams(ctypes.Structure):
    """struct muse_model_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_int),
        ("n_threads", ctypes.c_int32),
        ("use_mmap", ctypes.c_bool),
        ("vocab_only", ctypes.c_bool),
        ("mmproj_path", ctypes.c_char_p),
        ("tokenizer_path", ctypes.c_char_p),
        ("progress", PROGRESS_CB),
        ("progress_user_data", ctypes.c_void_p),
    ]


class TensorInfo(ctypes.Structure):
    """struct muse_tensor_info"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("type", ctypes.c_uint32),
        ("type_name", ctypes.c_char_p),
        ("n_dims", ctypes.c_uint32),
        ("dims", ctypes.c_int64 * MAX_DIMS),
        ("n_elements", ctypes.c_int64),
        ("n_bytes", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
    ]


def _candidates():
    env = os.environ.get("MUSE_LIBRARY")
    if env:
        yield env
        return
    here = Path(__file__).resolve()
    # An installed package carries the library it was built with; it comes before any build
    # tree so that an installed muse never picks up an unrelated checkout's library.
    yield from (str(p) for p in sorted((here.parent / "lib").glob("libmuse.so*")))
    root = here.parents[3] if len(here.parents) > 3 else here.parent  # bindings/python/muse/_ffi.py -> root
    if (root / "bindings" / "python" / "muse" / "_ffi.py").is_file():  # only from a checkout
        for build in sorted(root.glob("build*")):
            for name in ("libmuse.so", "libmuse.dylib"):
                p = build / "src" / name
                if p.exists():
                    yield str(p)
    found = ctypes.util.find_library("muse")
    if found:
        yield found


def _load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:  # try the next candidate
            errors.append(f"{path}: {e}")
    raise OSError("cannot load libmuse (set MUSE_LIBRARY to its path); tried: " + "; ".join(errors or ["nothing found"]))


lib = _load()


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


ST = ctypes.c_int  # muse_status
M = ctypes.c_void_p  # muse_model *

# const char *muse_status_name(muse_status status);
_declare("muse_status_name", ctypes.c_char_p, ST)
# const char *muse_last_error(void);
_declare("muse_last_error", ctypes.c_char_p)
# const char *muse_version(void);
_declare("muse_version", ctypes.c_char_p)
# uint32_t muse_abi_version(void);
_declare("muse_abi_version", ctypes.c_uint32)
# const char *muse_system_info(void);
_declare("muse_system_info", ctypes.c_char_p)
# void muse_string_free(char *str);
_declare("muse_string_free", None, ctypes.c_void_p)

# void muse_model_params_init(muse_model_params *params);
_declare("muse_model_params_init", None, ctypes.POINTER(ModelParams))
# muse_status muse_model_load(const char *path, const muse_model_params *params, muse_model **out_model);
_declare("muse_model_load", ST, ctypes.c_char_p, ctypes.POINTER(ModelParams), c_void_pp)
# void muse_model_free(muse_model *model);
_declare("muse_model_free", None, M)
# const char *muse_model_arch(const muse_model *model);
_declare("muse_model_arch", ctypes.c_char_p, M)
# const char *muse_model_name(const muse_model *model);
_declare("muse_model_name", ctypes.c_char_p, M)
# muse_status muse_model_device(const muse_model *model, const char **out_device);
_declare("muse_model_device", ST, M, c_char_pp)
# int64_t muse_model_n_vocab / n_ctx_train / n_embd / n_layer(const muse_model *model);
_declare("muse_model_n_vocab", ctypes.c_int64, M)
_declare("muse_model_n_ctx_train", ctypes.c_int64, M)
_declare("muse_model_n_embd", ctypes.c_int64, M)
_declare("muse_model_n_layer", ctypes.c_int64, M)
# uint32_t muse_model_gguf_version(const muse_model *model);
_declare("muse_model_gguf_version", ctypes.c_uint32, M)
# uint64_t muse_model_file_size(const muse_model *model);
_declare("muse_model_file_size", ctypes.c_uint64, M)

# int64_t muse_model_meta_count(const muse_model *model);
_declare("muse_model_meta_count", ctypes.c_int64, M)
# muse_status muse_model_meta_key(const muse_model *model, int64_t index, const char **out_key);
_declare("muse_model_meta_key", ST, M, ctypes.c_int64, c_char_pp)
# muse_status muse_model_meta_type(const muse_model *model, const char *key, muse_meta_type *out_type);
_declare("muse_model_meta_type", ST, M, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int))
# muse_status muse_model_meta_array_info(const muse_model *, const char *key, muse_meta_type *out_elem_type, uint64_t *out_length);
_declare("muse_model_meta_array_info", ST, M, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), c_uint64_p)
# muse_status muse_model_meta_get_int(const muse_model *, const char *key, int64_t *out_value);
_declare("muse_model_meta_get_int", ST, M, ctypes.c_char_p, c_int64_p)
# muse_status muse_model_meta_get_uint(const muse_model *, const char *key, uint64_t *out_value);
_declare("muse_model_meta_get_uint", ST, M, ctypes.c_char_p, c_uint64_p)
# muse_status muse_model_meta_get_float(const muse_model *, const char *key, double *out_value);
_declare("muse_model_meta_get_float", ST, M, ctypes.c_char_p, c_double_p)
# muse_status muse_model_meta_get_string(const muse_model *, const char *key, const char **out_str, size_t *out_len);
_declare("muse_model_meta_get_string", ST, M, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), c_size_t_p)
# muse_status muse_model_meta_array_get_int(const muse_model *, const char *key, uint64_t index, int64_t *out_value);
_declare("muse_model_meta_array_get_int", ST, M, ctypes.c_char_p, ctypes.c_uint64, c_int64_p)
# muse_status muse_model_meta_array_get_float(const muse_model *, const char *key, uint64_t index, double *out_value);
_declare("muse_model_meta_array_get_float", ST, M, ctypes.c_char_p, ctypes.c_uint64, c_double_p)
# muse_status muse_model_meta_array_get_string(const muse_model *, const char *key, uint64_t index, const char **out_str, size_t *out_len);
_declare("muse_model_meta_array_get_string", ST, M, ctypes.c_char_p, ctypes.c_uint64,
         ctypes.POINTER(ctypes.c_void_p), c_size_t_p)
# muse_status muse_model_meta_to_json(const muse_model *, const char *key, char **out_json);
_declare("muse_model_meta_to_json", ST, M, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))

# int64_t muse_model_tensor_count(const muse_model *model);
_declare("muse_model_tensor_count", ctypes.c_int64, M)
# muse_status muse_model_tensor_info(const muse_model *, int64_t index, muse_tensor_info *out_info);
_declare("muse_model_tensor_info", ST, M, ctypes.c_int64, ctypes.POINTER(TensorInfo))
# muse_status muse_model_tensor_find(const muse_model *, const char *name, int64_t *out_index);
_declare("muse_model_tensor_find", ST, M, ctypes.c_char_p, c_int64_p)
# muse_status muse_model_tensor_read_f32(const muse_model *, int64_t index, float *dst, size_t capacity);
_declare("muse_model_tensor_read_f32", ST, M, ctypes.c_int64, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t)


# ---- grammars (ABI 5)
G = ctypes.c_void_p  # muse_grammar *
# muse_status muse_grammar_from_gbnf(const char *text, const char *root, muse_grammar **out_grammar);
_declare("muse_grammar_from_gbnf", ST, ctypes.c_char_p, ctypes.c_char_p, c_void_pp)
# muse_status muse_grammar_from_regex(const char *pattern, muse_grammar **out_grammar);
_declare("muse_grammar_from_regex", ST, ctypes.c_char_p, c_void_pp)
# muse_status muse_grammar_from_json_schema(const char *schema_json, uint32_t flags, muse_grammar **out_grammar);
_declare("muse_grammar_from_json_schema", ST, ctypes.c_char_p, ctypes.c_uint32, c_void_pp)
# void muse_grammar_free(muse_grammar *grammar);
_declare("muse_grammar_free", None, G)
# muse_status muse_grammar_matches(const muse_grammar *grammar, const char *text, size_t len, bool *out_match);
_declare("muse_grammar_matches", ST, G, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_bool))
# muse_status muse_grammar_to_gbnf(const muse_grammar *grammar, char **out_gbnf);
_declare("muse_grammar_to_gbnf", ST, G, ctypes.POINTER(ctypes.c_void_p))


class SessionParams(ctypes.Structure):
    """struct muse_session_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_ctx", ctypes.c_int32),
        ("n_seq_max", ctypes.c_int32),
        ("n_batch", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("kv_type", ctypes.c_int),
        ("swa_full", ctypes.c_int32),
    ]


S = ctypes.c_void_p  # muse_session *
c_float_pp = ctypes.POINTER(ctypes.POINTER(ctypes.c_float))

# void muse_session_params_init(muse_session_params *params);
_declare("muse_session_params_init", None, ctypes.POINTER(SessionParams))
# muse_status muse_session_create(const muse_model *, const muse_session_params *, muse_session **out_session);
_declare("muse_session_create", ST, M, ctypes.POINTER(SessionParams), c_void_pp)
# void muse_session_free(muse_session *session);
_declare("muse_session_free", None, S)
# muse_status muse_session_eval(muse_session *, int32_t seq_id, const int32_t *tokens, size_t n_tokens, const float **out_logits);
_declare("muse_session_eval", ST, S, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, c_float_pp)
# int64_t muse_session_seq_length(const muse_session *, int32_t seq_id);
_declare("muse_session_seq_length", ctypes.c_int64, S, ctypes.c_int32)
# muse_status muse_session_seq_remove(muse_session *, int32_t seq_id, int32_t p0, int32_t p1);
_declare("muse_session_seq_remove", ST, S, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)
# muse_status muse_session_seq_copy(muse_session *, int32_t src_seq, int32_t dst_seq, int32_t p0, int32_t p1);
_declare("muse_session_seq_copy", ST, S, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)


class SamplingParams(ctypes.Structure):
    """struct muse_sampling_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("presence_penalty", ctypes.c_float),
        ("frequency_penalty", ctypes.c_float),
        ("penalty_last_n", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("logit_bias_tokens", ctypes.POINTER(ctypes.c_int32)),
        ("logit_bias_values", ctypes.POINTER(ctypes.c_float)),
        ("n_logit_bias", ctypes.c_size_t),
    ]


# void muse_sampling_params_init(muse_sampling_params *params);
_declare("muse_sampling_params_init", None, ctypes.POINTER(SamplingParams))
# muse_status muse_session_generate_tokens(muse_session *, int32_t seq_id, const int32_t *prompt, size_t n_prompt,
#     const muse_sampling_params *params, size_t max_tokens, int32_t *out_tokens, size_t *out_n_tokens);
_declare("muse_session_generate_tokens", ST, S, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
         ctypes.POINTER(SamplingParams), ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32), c_size_t_p)
# void muse_session_cancel(muse_session *session);
_declare("muse_session_cancel", None, S)

# muse_status muse_tokenize(const muse_model *, const char *text, size_t text_len, bool add_special,
#     bool parse_special, int32_t *out_tokens, size_t capacity, size_t *out_n_tokens);
_declare("muse_tokenize", ST, M, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_bool, ctypes.c_bool,
         ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, c_size_t_p)
# muse_status muse_detokenize(const muse_model *, const int32_t *tokens, size_t n_tokens, bool render_special,
#     char **out_text, size_t *out_len);
_declare("muse_detokenize", ST, M, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.c_bool,
         ctypes.POINTER(ctypes.c_void_p), c_size_t_p)



class TokenEvent(ctypes.Structure):
    """struct muse_token_event"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("token", ctypes.c_int32),
        ("piece", ctypes.POINTER(ctypes.c_char)),
        ("piece_len", ctypes.c_size_t),
        ("logprob", ctypes.c_float),
        ("n_top", ctypes.c_int32),
        ("top_tokens", ctypes.POINTER(ctypes.c_int32)),
        ("top_logprobs", ctypes.POINTER(ctypes.c_float)),
        ("channel", ctypes.c_int32),
        ("forced", ctypes.c_int32),
        ("tool_name", ctypes.c_char_p),
        ("tool_arguments", ctypes.c_char_p),
        ("agent", ctypes.c_int32),
        # ABI 5: tool rounds
        ("tool_failed", ctypes.c_int32),
        ("artefact_data", ctypes.c_void_p),
        ("artefact_size", ctypes.c_size_t),
        ("artefact_mime", ctypes.c_char_p),
        ("artefact_kind", ctypes.c_char_p),
    ]


# typedef bool (*muse_token_cb)(const muse_token_event *event, void *user_data);
TOKEN_CB = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.POINTER(TokenEvent), ctypes.c_void_p)


class ThinkingParams(ctypes.Structure):
    """struct muse_thinking_params"""
    _fields_ = [
        ("mode", ctypes.c_int32),
        ("budget", ctypes.c_int32),
        ("min_tokens", ctypes.c_int32),
        ("effort", ctypes.c_int32),
        ("wrap_up", ctypes.c_char_p),
        ("continue_cue", ctypes.c_char_p),
        ("early_exit", ctypes.c_int32),
        ("early_exit_interval", ctypes.c_int32),
        ("early_exit_stable", ctypes.c_int32),
        ("early_exit_probe_tokens", ctypes.c_int32),
        ("early_exit_min_prob", ctypes.c_float),
    ]


# typedef int32_t (*muse_normalize_cb)(const char *answer, char *out, size_t capacity, void *user_data);
NORMALIZE_CB = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                ctypes.c_void_p)


class ContemplateParams(ctypes.Structure):
    """struct muse_contemplate_params"""
    _fields_ = [
        ("n_agents", ctypes.c_int32),
        ("aggregate", ctypes.c_int32),
        ("temperature_spread", ctypes.c_float),
        ("confidence_window", ctypes.c_int32),
        ("confidence_top_k", ctypes.c_int32),
        ("trace_score", ctypes.c_int32),
        ("tail_tokens", ctypes.c_int32),
        ("keep_top", ctypes.c_float),
        ("stop_threshold", ctypes.c_float),
        ("warmup_agents", ctypes.c_int32),
        ("stop_percentile", ctypes.c_float),
        ("synthesize_reasoning", ctypes.c_int32),
        ("agent_temperatures", ctypes.POINTER(ctypes.c_float)),
        ("agent_budgets", ctypes.POINTER(ctypes.c_int32)),
        ("agent_seeds", ctypes.POINTER(ctypes.c_uint64)),
        ("normalize", NORMALIZE_CB),
        ("normalize_user_data", ctypes.c_void_p),
    ]


class GenerateParams(ctypes.Structure):
    """struct muse_generate_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("max_tokens", ctypes.c_size_t),
        ("sampling", ctypes.POINTER(SamplingParams)),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("n_stop", ctypes.c_size_t),
        ("n_logprobs", ctypes.c_int32),
        ("thinking", ThinkingParams),
        ("contemplate", ContemplateParams),
        ("grammar", ctypes.c_void_p),  # ABI 5: const muse_grammar *
        ("contemplate_seqs", ctypes.POINTER(ctypes.c_int32)),  # ABI 6
        ("n_contemplate_seqs", ctypes.c_size_t),
    ]


class ChatParams(ctypes.Structure):
    """struct muse_chat_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("tools_json", ctypes.c_char_p),
        ("variables_json", ctypes.c_char_p),
        ("template_source", ctypes.c_char_p),
        ("reuse_prefix", ctypes.c_int32),
        ("images", ctypes.POINTER(ctypes.c_void_p)),
        ("n_images", ctypes.c_size_t),
        ("response_format_json", ctypes.c_char_p),  # ABI 5
        # ABI 5: tool calling (muse.tools)
        ("host_tools", ctypes.c_void_p),
        ("n_host_tools", ctypes.c_size_t),
        ("tool_choice", ctypes.c_char_p),
        ("parallel_tool_calls", ctypes.c_int32),
        ("max_tool_rounds", ctypes.c_int32),
        ("builtin_tools", ctypes.POINTER(ctypes.c_char_p)),
        ("n_builtin_tools", ctypes.c_size_t),
    ]


# ---- tools (ABI 5)
class ToolResult(ctypes.Structure):
    """struct muse_tool_result"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("content", ctypes.c_char_p),
        ("content_len", ctypes.c_size_t),
        ("failed", ctypes.c_int32),
        ("image", ctypes.c_void_p),
        ("impl", ctypes.c_void_p),
    ]


# typedef muse_status (*muse_tool_fn)(const char *name, const char *arguments_json, void *user_data,
#     muse_tool_result *result);
TOOL_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                           ctypes.POINTER(ToolResult))


class Tool(ctypes.Structure):
    """struct muse_tool"""
    _fields_ = [
        ("declaration_json", ctypes.c_char_p),
        ("fn", TOOL_FN),
        ("user_data", ctypes.c_void_p),
    ]


# void muse_generate_params_init(muse_generate_params *params);
_declare("muse_generate_params_init", None, ctypes.POINTER(GenerateParams))
# muse_status muse_session_generate(muse_session *, int32_t seq_id, const int32_t *prompt, size_t n_prompt,
#     const muse_generate_params *params, muse_token_cb on_token, void *user_data, size_t *out_n_tokens);
_declare("muse_session_generate", ST, S, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
         ctypes.POINTER(GenerateParams), TOKEN_CB, ctypes.c_void_p, c_size_t_p)

# muse_status muse_session_eval_prompt(muse_session *, int32_t seq_id, const char *text,
#     const muse_image *const *images, size_t n_images, int32_t add_bos, const float **out_logits,
#     size_t *out_n_positions);
_declare("muse_session_eval_prompt", ST, S, ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
         ctypes.c_size_t, ctypes.c_int32, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)), c_size_t_p)
# muse_status muse_model_image_tokens(const muse_model *, const muse_image *, int64_t *out_n_rows);
_declare("muse_model_image_tokens", ST, M, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64))
# muse_status muse_model_encode_image(const muse_model *, const muse_image *, float *out, size_t capacity,
#     int64_t *out_n_rows, int64_t *out_n_embd);
_declare("muse_model_encode_image", ST, M, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
         ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64))

_declare("muse_tool_result_set_content", ST, ctypes.POINTER(ToolResult), ctypes.c_char_p, ctypes.c_size_t)
_declare("muse_tool_result_set_error", ST, ctypes.POINTER(ToolResult), ctypes.c_char_p)
_declare("muse_tool_result_set_image", ST, ctypes.POINTER(ToolResult), ctypes.c_void_p)

# void muse_chat_params_init(muse_chat_params *params);
_declare("muse_chat_params_init", None, ctypes.POINTER(ChatParams))
# muse_status muse_session_chat(muse_session *, int32_t seq_id, const char *messages_json,
#     const muse_chat_params *chat, const muse_generate_params *params, muse_token_cb on_token,
#     void *user_data, char **out_result_json);
_declare("muse_session_chat", ST, S, ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ChatParams),
         ctypes.POINTER(GenerateParams), TOKEN_CB, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
# muse_status muse_model_chat_prompt(const muse_model *, const char *messages_json, const muse_chat_params *chat,
#     const muse_generate_params *params, char **out_prompt);
_declare("muse_model_chat_prompt", ST, M, ctypes.c_char_p, ctypes.POINTER(ChatParams),
         ctypes.POINTER(GenerateParams), ctypes.POINTER(ctypes.c_void_p))

# muse_status muse_chat_template_create(const char *source, muse_chat_template **out_template);
_declare("muse_chat_template_create", ST, ctypes.c_char_p, c_void_pp)
# muse_status muse_model_chat_template(const muse_model *model, muse_chat_template **out_template);
_declare("muse_model_chat_template", ST, M, c_void_pp)
# void muse_chat_template_free(muse_chat_template *tmpl);
_declare("muse_chat_template_free", None, ctypes.c_void_p)
# muse_status muse_chat_template_render(const muse_chat_template *, const char *messages_json,
#     const char *options_json, char **out_text);
_declare("muse_chat_template_render", ST, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(ctypes.c_void_p))


class ImageParams(ctypes.Structure):
    """struct muse_image_params"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("max_pixels", ctypes.c_uint64),
    ]


IMG = ctypes.c_void_p  # muse_image *

# void muse_image_params_init(muse_image_params *params);
_declare("muse_image_params_init", None, ctypes.POINTER(ImageParams))
# muse_status muse_image_load_file(const char *path, const muse_image_params *params, muse_image **out_image);
_declare("muse_image_load_file", ST, ctypes.c_char_p, ctypes.POINTER(ImageParams), c_void_pp)
# muse_status muse_image_load_memory(const void *data, size_t size, const muse_image_params *params,
#     muse_image **out_image);
_declare("muse_image_load_memory", ST, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ImageParams), c_void_pp)
# muse_status muse_image_from_pixels(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
#     int32_t stride_bytes, muse_image **out_image);
_declare("muse_image_from_pixels", ST, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
         ctypes.c_int32, c_void_pp)
# void muse_image_free(muse_image *image);
_declare("muse_image_free", None, IMG)
# int32_t muse_image_width(const muse_image *image);
_declare("muse_image_width", ctypes.c_int32, IMG)
# int32_t muse_image_height(const muse_image *image);
_declare("muse_image_height", ctypes.c_int32, IMG)
# const uint8_t *muse_image_pixels(const muse_image *image);
_declare("muse_image_pixels", ctypes.c_void_p, IMG)

# ------------------------------------------------- batched decoding (host loop)
B = ctypes.c_void_p  # muse_batch *

# muse_status muse_batch_create(size_t capacity, muse_batch **out_batch);
_declare("muse_batch_create", ST, ctypes.c_size_t, c_void_pp)
# void muse_batch_free(muse_batch *batch);
_declare("muse_batch_free", None, B)
# void muse_batch_clear(muse_batch *batch);
_declare("muse_batch_clear", None, B)
# int64_t muse_batch_size(const muse_batch *batch);
_declare("muse_batch_size", ctypes.c_int64, B)
# muse_status muse_batch_add(muse_batch *batch, int32_t token, int32_t pos, int32_t seq_id, bool logits);
_declare("muse_batch_add", ST, B, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_bool)
# muse_status muse_session_decode(muse_session *session, const muse_batch *batch);
_declare("muse_session_decode", ST, S, B)
# muse_status muse_session_logits(muse_session *session, int32_t row, const float **out_logits);
_declare("muse_session_logits", ST, S, ctypes.c_int32, c_float_pp)

# ------------------------------------------------------ generations (pull API)
G = ctypes.c_void_p  # muse_generation *

# muse_event_kind
EVENT_TOKEN, EVENT_ANSWER, EVENT_REASONING, EVENT_TOOL_CALL, EVENT_DONE, EVENT_ERROR, EVENT_AGENT_DONE = range(7)
EVENT_TOOL_RESULT, EVENT_ARTEFACT = 7, 8  # ABI 5


class Event(ctypes.Structure):
    """struct muse_event"""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kind", ctypes.c_int32),
        ("seq_id", ctypes.c_int32),
        ("agent", ctypes.c_int32),
        ("token", ctypes.c_int32),
        ("forced", ctypes.c_int32),
        ("text", ctypes.POINTER(ctypes.c_char)),
        ("text_len", ctypes.c_size_t),
        ("logprob", ctypes.c_float),
        ("n_top", ctypes.c_int32),
        ("top_tokens", ctypes.POINTER(ctypes.c_int32)),
        ("top_logprobs", ctypes.POINTER(ctypes.c_float)),
        ("tool_name", ctypes.c_char_p),
        ("tool_arguments", ctypes.c_char_p),
        ("finish_reason", ctypes.c_char_p),
        # ABI 5: tool rounds
        ("tool_failed", ctypes.c_int32),
        ("artefact_data", ctypes.c_void_p),
        ("artefact_size", ctypes.c_size_t),
        ("artefact_mime", ctypes.c_char_p),
        ("artefact_kind", ctypes.c_char_p),
    ]


# muse_status muse_generation_start(muse_session *, int32_t seq_id, const int32_t *prompt, size_t n_prompt,
#     const muse_generate_params *params, muse_generation **out_generation);
_declare("muse_generation_start", ST, S, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
         ctypes.POINTER(GenerateParams), c_void_pp)
# muse_status muse_generation_start_chat(muse_session *, int32_t seq_id, const char *messages_json,
#     const muse_chat_params *chat, const muse_generate_params *params, muse_generation **out_generation);
_declare("muse_generation_start_chat", ST, S, ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ChatParams),
         ctypes.POINTER(GenerateParams), c_void_pp)
# muse_status muse_generation_next(muse_generation *generation, muse_event *out_event);
_declare("muse_generation_next", ST, G, ctypes.POINTER(Event))
# muse_status muse_session_step(muse_session *session, int32_t *out_n_live);
_declare("muse_session_step", ST, S, ctypes.POINTER(ctypes.c_int32))
# void muse_generation_cancel(muse_generation *generation);
_declare("muse_generation_cancel", None, G)
# bool muse_generation_done(const muse_generation *generation);
_declare("muse_generation_done", ctypes.c_bool, G)
# muse_status muse_generation_result(const muse_generation *generation, char **out_json);
_declare("muse_generation_result", ST, G, ctypes.POINTER(ctypes.c_void_p))
# void muse_generation_free(muse_generation *generation);
_declare("muse_generation_free", None, G)
