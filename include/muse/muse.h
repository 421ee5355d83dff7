/*
 * muse.h — the stable C ABI of muse, an embeddable inference library for
 * native multimodal reasoning models (GGUF files, llama.cpp layout).
 *
 * Ten-line tour:
 *
 *     muse_model_params p;
 *     muse_model_params_init(&p);             // defaults; p.struct_size is set
 *     p.vocab_only = true;                    // metadata + tokenizer only
 *     muse_model *m = NULL;
 *     if (muse_model_load("model.gguf", &p, &m) != MUSE_OK) {
 *         fprintf(stderr, "muse: %s\n", muse_last_error());
 *         return 1;
 *     }
 *     printf("%s, %lld layers\n", muse_model_arch(m), (long long)muse_model_n_layer(m));
 *     muse_model_free(m);
 *
 * Conventions (every function follows them):
 *   - Fallible calls return muse_status (0 = MUSE_OK). On failure a thread-local
 *     message is available from muse_last_error() until the next muse call on
 *     that thread. No C++ exception ever crosses this boundary.
 *   - Handles are opaque. muse_x_free(NULL) is a harmless no-op.
 *   - Params structs start with `uint32_t struct_size` and are filled by their
 *     _init() function. A caller built against an older header passes a smaller
 *     size and gets defaults for the newer fields; a larger size is accepted only
 *     if the bytes muse does not know are all zero.
 *   - Strings are UTF-8, NUL-terminated, owned by muse unless a function says the
 *     caller must release them with muse_string_free().
 *   - Enums have explicit values that are only ever appended.
 *
 * Threads: a muse_model is immutable after loading and may be shared by any
 * number of threads. Pointers returned by model getters stay valid until
 * muse_model_free().
 */
#ifndef MUSE_H
#define MUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(MUSE_BUILDING_LIBRARY)
#    define MUSE_API __declspec(dllexport)
#  elif defined(MUSE_SHARED)
#    define MUSE_API __declspec(dllimport)
#  else
#    define MUSE_API
#  endif
#else
#  define MUSE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a function is added or a struct grows. Never decreases. */
#define MUSE_ABI_VERSION 6

/* ---------------------------------------------------------------- status */

typedef enum muse_status {
    MUSE_OK                   = 0,
    MUSE_ERR_INVALID_ARGUMENT = 1,  /* NULL handle, bad struct size, bad value  */
    MUSE_ERR_IO               = 2,  /* file cannot be opened, read or mapped    */
    MUSE_ERR_FORMAT           = 3,  /* the file is malformed (message names the field) */
    MUSE_ERR_UNSUPPORTED      = 4,  /* valid, but muse does not handle it (yet) */
    MUSE_ERR_OUT_OF_MEMORY    = 5,
    MUSE_ERR_NOT_FOUND        = 6,  /* no such key / tensor / index             */
    MUSE_ERR_TYPE_MISMATCH    = 7,  /* the value exists but has another type    */
    MUSE_ERR_OUT_OF_RANGE     = 8,  /* index or value outside the valid range   */
    MUSE_ERR_CANCELLED        = 9,  /* a callback asked to stop                 */
    MUSE_ERR_INTERNAL         = 10  /* a bug in muse; please report it          */
} muse_status;

/* Static English name of a status, e.g. "MUSE_ERR_FORMAT". Never NULL. */
MUSE_API const char *muse_status_name(muse_status status);

/* Thread-local message of the last failed call on this thread ("" if none). */
MUSE_API const char *muse_last_error(void);

/* Library version string ("0.1.0") and the ABI version the library implements. */
MUSE_API const char *muse_version(void);
MUSE_API uint32_t    muse_abi_version(void);

/* What this library runs on this machine, as a JSON object (valid until the next call on
 * this thread): {"cpu_level": "scalar"|"avx2"|"avx512" (the active kernel level, lowered by
 * the MUSE_CPU_LEVEL environment variable), "cpu_level_detected", "int8_matmul": true when
 * Q8_0, Q4_0, Q4_K, Q5_K and Q6_K weights are repacked at load and multiplied with 8-bit activations (AVX-512 VNNI;
 * MUSE_INT8_MATMUL=0 in the environment keeps F32 activations), "amx": true when, in addition,
 * batches of 32 tokens or more run those products on AMX tiles (same results; MUSE_AMX=0 turns
 * it off), "backends": ["cpu", ...], "devices": [{"backend", "name", "kind", "memory_total",
 * "memory_free", "capabilities": [...]}, ...]} (memory in bytes, 0 when unknown). */
MUSE_API const char *muse_system_info(void);

/* Releases a string that a muse function documented as caller-owned. */
MUSE_API void muse_string_free(char *str);

/* ---------------------------------------------------------------- models */

/* A loaded GGUF model (weights are mapped, not copied, where possible).
 * Immutable after loading; share it freely across threads. */
typedef struct muse_model muse_model;

typedef enum muse_backend {
    MUSE_BACKEND_AUTO   = 0,  /* the best available backend */
    MUSE_BACKEND_CPU    = 1,
    MUSE_BACKEND_VULKAN = 2   /* only if built with -DMUSE_VULKAN=ON */
} muse_backend;

/* Load progress in [0, 1]. Return false to cancel the load (MUSE_ERR_CANCELLED). */
typedef bool (*muse_progress_cb)(float progress, void *user_data);

typedef struct muse_model_params {
    uint32_t         struct_size;   /* sizeof(muse_model_params), set by _init */
    muse_backend     backend;       /* default MUSE_BACKEND_AUTO */
    int32_t          n_threads;     /* <= 0: one per physical core (default 0) */
    bool             use_mmap;      /* default true; false reads tensors into memory */
    bool             vocab_only;    /* default false; metadata and tokenizer only */
    const char      *mmproj_path;   /* optional multimodal projector GGUF, NULL if none */
    const char      *tokenizer_path; /* optional sentencepiece .model used instead of the GGUF's
                                        tokenizer metadata, NULL if none */
    muse_progress_cb progress;      /* optional */
    void            *progress_user_data;
} muse_model_params;

MUSE_API void muse_model_params_init(muse_model_params *params);

/* Loads a GGUF file. params may be NULL for defaults. On failure *out_model
 * is set to NULL and muse_last_error() says what is wrong and where. */
MUSE_API muse_status muse_model_load(const char *path, const muse_model_params *params,
                                     muse_model **out_model);
MUSE_API void muse_model_free(muse_model *model);

/* Hyperparameters. Getters on a NULL model return NULL / -1. */
MUSE_API const char *muse_model_arch(const muse_model *model);  /* general.architecture */
MUSE_API const char *muse_model_name(const muse_model *model);  /* general.name or "" */
MUSE_API int64_t muse_model_n_vocab(const muse_model *model);
MUSE_API int64_t muse_model_n_ctx_train(const muse_model *model);
MUSE_API int64_t muse_model_n_embd(const muse_model *model);
MUSE_API int64_t muse_model_n_layer(const muse_model *model);
MUSE_API uint32_t muse_model_gguf_version(const muse_model *model);
MUSE_API uint64_t muse_model_file_size(const muse_model *model);
/* The backend and device the model's decoder runs on, e.g. "cpu: cpu (avx512, vnni, amx)" or
 * "vulkan: NVIDIA H200" (what MUSE_BACKEND_AUTO chose). Builds the decoder if it was not yet
 * (loading its weights), so it fails as the first decode would, or for a vocab-only model.
 * *out_device stays valid until this thread's next call. */
MUSE_API muse_status muse_model_device(const muse_model *model, const char **out_device);

/* ------------------------------------------------------------ metadata */

/* GGUF value types (the ids of the GGUF format itself). */
typedef enum muse_meta_type {
    MUSE_META_UINT8   = 0,
    MUSE_META_INT8    = 1,
    MUSE_META_UINT16  = 2,
    MUSE_META_INT16   = 3,
    MUSE_META_UINT32  = 4,
    MUSE_META_INT32   = 5,
    MUSE_META_FLOAT32 = 6,
    MUSE_META_BOOL    = 7,
    MUSE_META_STRING  = 8,
    MUSE_META_ARRAY   = 9,
    MUSE_META_UINT64  = 10,
    MUSE_META_INT64   = 11,
    MUSE_META_FLOAT64 = 12
} muse_meta_type;

/* Number of key/value pairs and the key at an index (in file order). */
MUSE_API int64_t muse_model_meta_count(const muse_model *model);
MUSE_API muse_status muse_model_meta_key(const muse_model *model, int64_t index,
                                         const char **out_key);

/* Type of a value; for arrays also the element type and length (else 0). */
MUSE_API muse_status muse_model_meta_type(const muse_model *model, const char *key,
                                          muse_meta_type *out_type);
MUSE_API muse_status muse_model_meta_array_info(const muse_model *model, const char *key,
                                                muse_meta_type *out_elem_type,
                                                uint64_t *out_length);

/* Scalars. get_int accepts every integer type and bool (UINT64 above INT64_MAX
 * is MUSE_ERR_OUT_OF_RANGE: use get_uint); get_float accepts float and integer
 * types; get_string returns a pointer owned by the model (len may be NULL). */
MUSE_API muse_status muse_model_meta_get_int(const muse_model *model, const char *key,
                                             int64_t *out_value);
MUSE_API muse_status muse_model_meta_get_uint(const muse_model *model, const char *key,
                                              uint64_t *out_value);
MUSE_API muse_status muse_model_meta_get_float(const muse_model *model, const char *key,
                                               double *out_value);
MUSE_API muse_status muse_model_meta_get_string(const muse_model *model, const char *key,
                                                const char **out_str, size_t *out_len);

/* Elements of a (non-nested) array, same conversion rules as the scalars. */
MUSE_API muse_status muse_model_meta_array_get_int(const muse_model *model, const char *key,
                                                   uint64_t index, int64_t *out_value);
MUSE_API muse_status muse_model_meta_array_get_float(const muse_model *model, const char *key,
                                                     uint64_t index, double *out_value);
MUSE_API muse_status muse_model_meta_array_get_string(const muse_model *model, const char *key,
                                                      uint64_t index, const char **out_str,
                                                      size_t *out_len);

/* Any value, nested arrays included, as JSON text (strings escaped, floats with
 * round-trip precision, non-finite floats as null). Release with muse_string_free(). */
MUSE_API muse_status muse_model_meta_to_json(const muse_model *model, const char *key,
                                             char **out_json);

/* ------------------------------------------------------------- tensors */

#define MUSE_MAX_DIMS 4

typedef struct muse_tensor_info {
    uint32_t    struct_size;          /* set by the caller: sizeof(muse_tensor_info) */
    const char *name;                 /* owned by the model */
    uint32_t    type;                 /* ggml type id (0 = F32, 1 = F16, 8 = Q8_0 ...) */
    const char *type_name;            /* "F32", "Q4_K" ... */
    uint32_t    n_dims;
    int64_t     dims[MUSE_MAX_DIMS];  /* ggml order: dims[0] is the contiguous one; unused = 1 */
    int64_t     n_elements;
    uint64_t    n_bytes;
    uint64_t    offset;               /* from the start of the file */
} muse_tensor_info;

MUSE_API int64_t muse_model_tensor_count(const muse_model *model);
MUSE_API muse_status muse_model_tensor_info(const muse_model *model, int64_t index,
                                            muse_tensor_info *out_info);
MUSE_API muse_status muse_model_tensor_find(const muse_model *model, const char *name,
                                            int64_t *out_index);

/* Dequantizes a whole tensor to float32 (dst must hold n_elements floats;
 * capacity is dst's size in floats). Not available on vocab_only models. */
MUSE_API muse_status muse_model_tensor_read_f32(const muse_model *model, int64_t index,
                                                float *dst, size_t capacity);

/* ------------------------------------------------------------ tokenizer */

/* Text -> token ids. add_special: add BOS/EOS as the model's metadata says;
 * parse_special: texts of control tokens in the input become those tokens.
 * Writes at most capacity ids; *out_n_tokens always receives the full count
 * (MUSE_ERR_OUT_OF_RANGE when capacity was too small: call again with a bigger
 * buffer, or first with capacity 0 to size it). Invalid UTF-8 is encoded byte-wise. */
MUSE_API muse_status muse_tokenize(const muse_model *model, const char *text, size_t text_len, bool add_special,
                                   bool parse_special, int32_t *out_tokens, size_t capacity, size_t *out_n_tokens);

/* Token ids -> text, released with muse_string_free(). render_special: include
 * the text of control tokens. out_len may be NULL. */
MUSE_API muse_status muse_detokenize(const muse_model *model, const int32_t *tokens, size_t n_tokens,
                                     bool render_special, char **out_text, size_t *out_len);

/* ------------------------------------------------------------ chat templates */

/* A parsed Jinja chat template (e.g. a model's tokenizer.chat_template), rendered
 * exactly as Hugging Face transformers renders it with Python's jinja2.
 * Immutable: render from any number of threads. */
typedef struct muse_chat_template muse_chat_template;

/* Parses a template; syntax errors name the line (MUSE_ERR_FORMAT), constructs
 * muse does not implement give MUSE_ERR_UNSUPPORTED. */
MUSE_API muse_status muse_chat_template_create(const char *source, muse_chat_template **out_template);
/* The model's own template (tokenizer.chat_template); MUSE_ERR_NOT_FOUND if it has none. */
MUSE_API muse_status muse_model_chat_template(const muse_model *model, muse_chat_template **out_template);
MUSE_API void muse_chat_template_free(muse_chat_template *tmpl);

/* Renders messages (a JSON array in the OpenAI chat format) with options (a JSON
 * object of template variables, may be NULL): e.g. {"add_generation_prompt": true,
 * "tools": [...], "bos_token": "<s>", "enable_thinking": false}. Render errors,
 * raise_exception included, are MUSE_ERR_INVALID_ARGUMENT naming the line.
 * Release *out_text with muse_string_free(). */
MUSE_API muse_status muse_chat_template_render(const muse_chat_template *tmpl, const char *messages_json,
                                               const char *options_json, char **out_text);

/* ------------------------------------------------------------ images */

/* A decoded image: RGB, 8 bits per channel, row-major, alpha composited on
 * white (Pillow's alpha_composite over white). Decodes PNG, JPEG, BMP, GIF
 * (first frame), TGA, PNM (binary P5/P6), PSD and Radiance HDR (tone-mapped to
 * 8 bits with gamma 1/2.2, as stb_image and llama.cpp do). Immutable after
 * creation: share it across threads. */
typedef struct muse_image muse_image;

typedef struct muse_image_params {
    uint32_t struct_size;  /* sizeof(muse_image_params), set by _init */
    uint64_t max_pixels;   /* width * height limit, checked from the file header before
                              anything is decoded (default 64 Mpx = 67108864; must be > 0).
                              No side may exceed 65536 pixels in any case. */
} muse_image_params;

MUSE_API void muse_image_params_init(muse_image_params *params);

/* Decode a file / an encoded image in memory (data is not retained). params
 * may be NULL for defaults. Errors: MUSE_ERR_IO (cannot read the file),
 * MUSE_ERR_FORMAT (not an image, corrupt or truncated), MUSE_ERR_OUT_OF_RANGE
 * (over max_pixels or the side limit). On failure *out_image is NULL. */
MUSE_API muse_status muse_image_load_file(const char *path, const muse_image_params *params,
                                          muse_image **out_image);
MUSE_API muse_status muse_image_load_memory(const void *data, size_t size, const muse_image_params *params,
                                            muse_image **out_image);

/* Copies caller pixels: channels 1 (gray), 2 (gray + alpha), 3 (RGB) or 4
 * (RGBA), 8 bits each, rows stride_bytes apart (0: width * channels). pixels
 * must hold (height - 1) * stride + width * channels bytes. */
MUSE_API muse_status muse_image_from_pixels(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                                            int32_t stride_bytes, muse_image **out_image);
MUSE_API void muse_image_free(muse_image *image);

/* Size in pixels (-1 on a NULL image) and the RGB bytes (width * height * 3,
 * valid until muse_image_free; NULL on a NULL image). */
MUSE_API int32_t muse_image_width(const muse_image *image);
MUSE_API int32_t muse_image_height(const muse_image *image);
MUSE_API const uint8_t *muse_image_pixels(const muse_image *image);

/* ------------------------------------------------------------ grammars
 *
 * Constrained decoding: a grammar compiled from GBNF, a regex or a JSON Schema, used to
 * check text (muse_grammar_matches) or to constrain a generation's answer
 * (muse_generate_params.grammar, muse_chat_params.response_format_json). Immutable after
 * creation: share one grammar across threads and generations (its automaton, cached
 * states and token masks are shared under a lock). ABI 5.
 *
 *     muse_grammar *g = NULL;
 *     if (muse_grammar_from_json_schema("{\"type\": \"integer\"}", MUSE_JSON_SCHEMA_COMPACT, &g) != MUSE_OK)
 *         fprintf(stderr, "muse: %s\n", muse_last_error());
 *     bool ok = false;
 *     muse_grammar_matches(g, "42", 2, &ok);      // ok == true
 *     muse_grammar_free(g);
 *
 * Errors: MUSE_ERR_INVALID_ARGUMENT for malformed input (GBNF errors name the line and
 * column, bad JSON names the position), MUSE_ERR_UNSUPPORTED for schema keywords muse cannot
 * compile exactly (the message names the keyword and its JSON path, e.g. "/properties/a"). */
typedef struct muse_grammar muse_grammar;

/* Flags of muse_grammar_from_json_schema (OR them; 0 = draft 2020-12 defaults, flexible whitespace). */
typedef enum muse_json_schema_flags {
    MUSE_JSON_SCHEMA_COMPACT        = 1,  /* no whitespace between JSON tokens: what a model should
                                             generate (without it any JSON whitespace is accepted) */
    MUSE_JSON_SCHEMA_CLOSED_OBJECTS = 2,  /* objects without additionalProperties accept only the
                                             listed properties (draft 2020-12 allows any others) */
    MUSE_JSON_SCHEMA_EXACT_ONE_OF   = 4   /* refuse a oneOf unless its branches are provably disjoint
                                             (by default it compiles to an alternation, like anyOf) */
} muse_json_schema_flags;

/* GBNF text (llama.cpp's grammar format). root: the start rule, NULL for "root". */
MUSE_API muse_status muse_grammar_from_gbnf(const char *text, const char *root, muse_grammar **out_grammar);
/* A regex subset: literals, ., classes [a-z] [^...], \d \w \s (and negations), * + ? {m,n},
 * groups, alternation; the whole text must match (^ and $ are implied, allowed only at the
 * ends). Backreferences, lookaround and flags are MUSE_ERR_UNSUPPORTED. */
MUSE_API muse_status muse_grammar_from_regex(const char *pattern, muse_grammar **out_grammar);
/* A JSON Schema (JSON text, draft 2020-12; $defs/$ref, anyOf, enum/const, formats ...);
 * flags: muse_json_schema_flags. See docs/GRAMMAR.md for what compiles exactly. */
MUSE_API muse_status muse_grammar_from_json_schema(const char *schema_json, uint32_t flags,
                                                   muse_grammar **out_grammar);
MUSE_API void muse_grammar_free(muse_grammar *grammar);
/* *out_match: the whole of text[0, len) is a complete match (embedded NULs are bytes). */
MUSE_API muse_status muse_grammar_matches(const muse_grammar *grammar, const char *text, size_t len,
                                          bool *out_match);
/* The GBNF the grammar was compiled from (a regex's or schema's translation); release with
 * muse_string_free(). */
MUSE_API muse_status muse_grammar_to_gbnf(const muse_grammar *grammar, char **out_gbnf);

/* ------------------------------------------------------------ sessions */

/* A session: a KV cache with one or more sequences over a model, plus the
 * logits of its last evaluation. Use it from one thread at a time; several
 * sessions may share one model and run at the same time on different threads
 * (each forward pass takes its share of the model's thread pool). */
typedef struct muse_session muse_session;

typedef enum muse_kv_type {
    MUSE_KV_F16 = 0,  /* default, as llama.cpp */
    MUSE_KV_F32 = 1   /* exact: for reference comparisons */
} muse_kv_type;

typedef struct muse_session_params {
    uint32_t     struct_size;  /* sizeof(muse_session_params), set by _init */
    int32_t      n_ctx;        /* KV cache cells shared by all sequences (default 4096) */
    int32_t      n_seq_max;    /* sequences (1..64, default 1) */
    int32_t      n_batch;      /* tokens per forward pass for long prompts (default 512) */
    uint64_t     seed;         /* sampling seed (default 0) */
    muse_kv_type kv_type;      /* default MUSE_KV_F16 */
    int32_t      swa_full;     /* nonzero: sliding-window layers keep every position (n_ctx cells)
                                  instead of about n_seq_max * window, so sequences can be cut
                                  back anywhere (default 0, as llama.cpp) */
} muse_session_params;

MUSE_API void muse_session_params_init(muse_session_params *params);
/* params may be NULL for defaults. Fails on vocab-only models. */
MUSE_API muse_status muse_session_create(const muse_model *model, const muse_session_params *params,
                                         muse_session **out_session);
MUSE_API void muse_session_free(muse_session *session);

/* Appends tokens to sequence seq_id (at its next positions) and computes the
 * logits of the last token. *out_logits (n_vocab floats) stays valid until the
 * next call on this session; it may be NULL. On error the session is unchanged. */
MUSE_API muse_status muse_session_eval(muse_session *session, int32_t seq_id, const int32_t *tokens,
                                       size_t n_tokens, const float **out_logits);

/* Evaluates a text prompt with images on sequence seq_id: the text is tokenized with special
 * tokens parsed (BOS first when add_bos is 1, or when it is -1 and the model's metadata asks
 * for it), and each "<__media__>" marker is replaced by the next image, encoded by the model's
 * vision projector (load the model with mmproj_path) and wrapped as its family does
 * (muse-glimmer: <|image_start|> ... <|image_end|>). The marker count must equal n_images.
 * Encodings are cached per session by image content. Continue with muse_session_generate
 * (n_prompt 0). *out_n_positions (may be NULL) receives the positions added. */
MUSE_API muse_status muse_session_eval_prompt(muse_session *session, int32_t seq_id, const char *text,
                                              const muse_image *const *images, size_t n_images, int32_t add_bos,
                                              const float **out_logits, size_t *out_n_positions);

/* Embedding rows an image becomes for this model (its mmproj; cheap, no encoding). */
MUSE_API muse_status muse_model_image_tokens(const muse_model *model, const muse_image *image, int64_t *out_n_rows);
/* Encodes an image with the model's vision projector into out ([n_rows, n_embd] row-major,
 * capacity in floats; MUSE_ERR_OUT_OF_RANGE when too small), the embeddings the decoder
 * receives (wrapper tokens not included; idefics3: tiles then the global image). */
MUSE_API muse_status muse_model_encode_image(const muse_model *model, const muse_image *image, float *out,
                                             size_t capacity, int64_t *out_n_rows, int64_t *out_n_embd);

/* Number of tokens in a sequence (-1 on error). */
MUSE_API int64_t muse_session_seq_length(const muse_session *session, int32_t seq_id);
/* Removes positions [p0, p1) of a sequence (p1 < 0: to the end; seq_id < 0: all sequences).
 * Models with sliding-window layers drop positions that no future token can see once
 * their cache runs short; cutting a sequence back so far that its next token would need
 * them fails with MUSE_ERR_INVALID_ARGUMENT (unless the session has swa_full), and
 * nothing changes. Removing a whole sequence always works. seq_copy follows the same rule. */
MUSE_API muse_status muse_session_seq_remove(muse_session *session, int32_t seq_id, int32_t p0, int32_t p1);
/* Makes positions [p0, p1) of src also part of dst, sharing the cached keys/values (a fork). */
MUSE_API muse_status muse_session_seq_copy(muse_session *session, int32_t src_seq, int32_t dst_seq, int32_t p0,
                                           int32_t p1);

/* ------------------------------------------------------------ generation */

typedef struct muse_sampling_params {
    uint32_t struct_size;        /* sizeof(muse_sampling_params), set by _init */
    float    temperature;        /* <= 0: greedy (default 0) */
    int32_t  top_k;              /* 0: off (default) */
    float    top_p;              /* 1: off (default) */
    float    min_p;              /* 0: off (default) */
    float    repeat_penalty;     /* 1: off (default) */
    float    presence_penalty;   /* 0: off (default) */
    float    frequency_penalty;  /* 0: off (default) */
    int32_t  penalty_last_n;     /* tokens the penalties look back over (default 64) */
    uint64_t seed;               /* sampling seed (default 0) */
    const int32_t *logit_bias_tokens;  /* added to the logits before sampling, may be NULL */
    const float   *logit_bias_values;  /* -INFINITY bans a token */
    size_t         n_logit_bias;
} muse_sampling_params;

MUSE_API void muse_sampling_params_init(muse_sampling_params *params);

/* Evaluates prompt on sequence seq_id (n_prompt may be 0 to continue from the
 * last evaluation), then samples up to max_tokens tokens into out_tokens, stopping
 * after an end-of-generation token of the model (eos/eot, included in the output)
 * or when muse_session_cancel() is called. *out_n_tokens receives the count.
 * params may be NULL (greedy). */
MUSE_API muse_status muse_session_generate_tokens(muse_session *session, int32_t seq_id, const int32_t *prompt,
                                                  size_t n_prompt, const muse_sampling_params *params,
                                                  size_t max_tokens, int32_t *out_tokens, size_t *out_n_tokens);

/* Output channels (with thinking enabled, text is split by the model's reasoning format). */
typedef enum muse_channel {
    MUSE_CHANNEL_ANSWER    = 0,  /* the answer (and all text when thinking is not enabled) */
    MUSE_CHANNEL_REASONING = 1,  /* the model's reasoning ("thinking") */
    MUSE_CHANNEL_TOOL_CALL = 2,  /* a complete tool call: tool_name + tool_arguments (JSON) */
    /* ABI 5: tool rounds (muse_chat_params host_tools / builtin_tools) */
    MUSE_CHANNEL_TOOL_RESULT = 3, /* a call the library ran: piece is its result, tool_failed says if it failed */
    MUSE_CHANNEL_ARTEFACT    = 4  /* a file a tool produced for the host only: artefact_* (tool_name: the tool) */
} muse_channel;

/* One generated token, as the streaming callback sees it. */
typedef struct muse_token_event {
    uint32_t       struct_size;   /* sizeof(muse_token_event) of the library */
    int32_t        token;         /* -1 for the final event that flushes held-back text */
    const char    *piece;         /* text this token completes: UTF-8 safe (a partial character is
                                     held back until complete) and stop-string safe; may be empty */
    size_t         piece_len;
    float          logprob;       /* log-softmax of the raw logits at this token (0 for token -1) */
    int32_t        n_top;         /* entries in top_tokens / top_logprobs (n_logprobs asked) */
    const int32_t *top_tokens;    /* best first */
    const float   *top_logprobs;
    /* ABI 3: read only when struct_size says these exist. */
    int32_t        channel;       /* muse_channel of piece (thinking enabled; else ANSWER) */
    int32_t        forced;        /* nonzero: the thinking controller forced this token */
    const char    *tool_name;     /* TOOL_CALL events: the function name, else NULL */
    const char    *tool_arguments;/* TOOL_CALL events: the arguments as a JSON object, else NULL */
    /* ABI 4 */
    int32_t        agent;         /* contemplating mode: the agent (-1: the aggregate answer); else 0 */
    /* ABI 5: tool rounds */
    int32_t        tool_failed;   /* TOOL_RESULT: nonzero when the tool failed (piece is its error) */
    const void    *artefact_data; /* ARTEFACT: the file's bytes (e.g. a PNG), else NULL */
    size_t         artefact_size;
    const char    *artefact_mime; /* ARTEFACT: e.g. "image/png", else NULL */
    const char    *artefact_kind; /* ARTEFACT: e.g. "annotation", else NULL */
} muse_token_event;

/* Return false to stop generating. Pointers in the event live until the callback returns. */
typedef bool (*muse_token_cb)(const muse_token_event *event, void *user_data);

typedef enum muse_thinking_mode {
    MUSE_THINKING_NONE = 0,  /* no controller: raw text in one channel (muse_session_generate's default) */
    MUSE_THINKING_AUTO = 1,  /* the model decides whether to reason (muse_session_chat's default) */
    MUSE_THINKING_ON   = 2,  /* reasoning is opened if the model would skip it */
    MUSE_THINKING_OFF  = 3   /* the answer is opened at once: no reasoning tokens at all */
} muse_thinking_mode;

typedef enum muse_effort {
    MUSE_EFFORT_DEFAULT = 0,  /* the template's own default; no default budget */
    MUSE_EFFORT_LOW     = 1,  /* template effort "low", default budget 256 reasoning tokens */
    MUSE_EFFORT_MEDIUM  = 2,  /* "medium", 1024 */
    MUSE_EFFORT_HIGH    = 3   /* "high", unlimited */
} muse_effort;

/* The thinking-budget controller. Delimiters come from the model's chat format
 * (its template, architecture and vocabulary), never from token ids. */
typedef struct muse_thinking_params {
    int32_t     mode;          /* muse_thinking_mode */
    int32_t     budget;        /* reasoning tokens; when spent the current character is finished, then
                                  wrap_up and the format's end-of-reasoning framing are forced, so an
                                  answer always follows. < 0: unlimited (or the effort's default) */
    int32_t     min_tokens;    /* reasoning may not end before this many tokens: an attempt is replaced
                                  by continue_cue (s1 budget forcing) */
    int32_t     effort;        /* muse_effort */
    const char *wrap_up;       /* forced before the answer when the budget runs out; NULL: default */
    const char *continue_cue;  /* NULL: "Wait" */
    /* Adaptive early exit: every early_exit_interval reasoning tokens (default 16) the sequence
     * is forked (needs a free sequence: n_seq_max >= 2), the answer forced open on the fork and
     * early_exit_probe_tokens (default 4) answer tokens decoded greedily; reasoning ends once the
     * probed answer was identical early_exit_stable times in a row (default 2) with every token's
     * probability >= early_exit_min_prob (0: default 0.5). */
    int32_t     early_exit;    /* nonzero: enabled */
    int32_t     early_exit_interval;
    int32_t     early_exit_stable;
    int32_t     early_exit_probe_tokens;
    float       early_exit_min_prob;
} muse_thinking_params;

/* Contemplating mode: how several agents' answers become one. */
typedef enum muse_aggregate {
    MUSE_AGGREGATE_VOTE       = 0,  /* majority over normalized final answers */
    MUSE_AGGREGATE_WEIGHTED   = 1,  /* DeepConf: votes weighted by trace confidence, top keep_top only */
    MUSE_AGGREGATE_EARLY_STOP = 2,  /* DeepConf online: low-confidence agents are stopped, then weighted */
    MUSE_AGGREGATE_SYNTHESIZE = 3,  /* a final pass on the shared prompt reads the answers and writes one */
    MUSE_AGGREGATE_ALL        = 4   /* every agent's answer goes to the host (the vote is reported too) */
} muse_aggregate;

/* Normalizes an agent's final answer for voting: writes a NUL-terminated canonical form into
 * out (capacity bytes) and returns its length, or a negative value to use muse's own rule
 * (numbers with units, case and whitespace, choice letters, yes/no, \boxed{}). */
typedef int32_t (*muse_normalize_cb)(const char *answer, char *out, size_t capacity, void *user_data);

/* Contemplating mode: n_agents reasoning agents answer in parallel, in one batched forward pass
 * per step; the prompt is evaluated once and forked to every agent (no recomputation). Needs a
 * session with n_seq_max >= n_agents (+ 1 for SYNTHESIZE). Token confidence is DeepConf's:
 * minus the mean logprob of the step's top confidence_top_k candidates; group confidence its
 * mean over confidence_window tokens; a trace's score its lowest group confidence (trace_score
 * 0), its tail confidence over tail_tokens (1) or its mean (2). Zero fields take the defaults. */
typedef struct muse_contemplate_params {
    int32_t           n_agents;            /* <= 1: one agent, no contemplation (default 0) */
    int32_t           aggregate;           /* muse_aggregate (default VOTE) */
    float             temperature_spread;  /* agent temperatures spread evenly over T +- spread/2 */
    int32_t           confidence_window;   /* default 16 */
    int32_t           confidence_top_k;    /* default 10 */
    int32_t           trace_score;         /* 0 lowest group (default), 1 tail, 2 mean */
    int32_t           tail_tokens;         /* default 32 */
    float             keep_top;            /* WEIGHTED/EARLY_STOP: fraction of traces that vote (default 1) */
    float             stop_threshold;      /* EARLY_STOP: > 0 a fixed group-confidence threshold; 0: calibrated */
    int32_t           warmup_agents;       /* EARLY_STOP: agents finished before calibrating (default 2) */
    float             stop_percentile;     /* EARLY_STOP: percentile of their scores (default 10) */
    int32_t           synthesize_reasoning;/* SYNTHESIZE: nonzero shows the synthesis each agent's reasoning tail */
    const float      *agent_temperatures;  /* per-agent overrides, n_agents entries each, may be NULL */
    const int32_t    *agent_budgets;       /*   thinking budgets (< -1: the request's) */
    const uint64_t   *agent_seeds;         /*   default: the request's seed + agent index */
    muse_normalize_cb normalize;           /* optional */
    void             *normalize_user_data;
} muse_contemplate_params;

typedef struct muse_generate_params {
    uint32_t                    struct_size;  /* sizeof(muse_generate_params), set by _init */
    size_t                      max_tokens;   /* default 256 */
    const muse_sampling_params *sampling;     /* NULL: greedy */
    const char *const          *stop;         /* stop strings (generation ends before them; with thinking
                                                 they apply to the answer text), may be NULL */
    size_t                      n_stop;
    int32_t                     n_logprobs;   /* top-n logprobs per token in the events, 0..64 (default 0) */
    muse_thinking_params        thinking;     /* ABI 3; all zero = MUSE_THINKING_NONE */
    muse_contemplate_params     contemplate;  /* ABI 4; all zero = one agent */
    /* ABI 5: constrained output. Only tokens the grammar allows are sampled in the answer, and
     * the end of generation only where the answer is a complete match. Reasoning is never
     * constrained: with thinking enabled (and in every chat turn) the grammar starts where the
     * answer channel opens, and text the thinking controller forces is not checked. With think
     * tags the <think> opener stays allowed next to the grammar's first tokens, so the model
     * may still reason in MUSE_THINKING_AUTO; with ATEM the answer header is forced once
     * reasoning ends. NULL: none. The caller may free the grammar once the call that takes
     * these params has returned (a generation keeps its own reference). */
    const muse_grammar         *grammar;
    /* ABI 6: the sequences of a contemplating request. NULL: agents 1..n_agents-1 (and the
     * synthesis) take empty sequences of the session without a generation, lowest id first.
     * Else n_contemplate_seqs = n_agents - 1 (+ 1 for SYNTHESIZE) distinct ids, in that order,
     * each empty when its agent (or the synthesis) starts: a host that hands sequences out
     * itself (a server's scheduler) names exactly the ones the request may use. */
    const int32_t              *contemplate_seqs;
    size_t                      n_contemplate_seqs;
} muse_generate_params;

MUSE_API void muse_generate_params_init(muse_generate_params *params);

/* Evaluates prompt (may be empty to continue) on sequence seq_id, then generates,
 * calling on_token (required) for every token, until an end-of-generation token
 * (reported, its text not rendered), a stop string, max_tokens, a false return or
 * muse_session_cancel(). *out_n_tokens (may be NULL) receives the token count.
 * Needs the model's tokenizer. Runs on the session's batched engine (a generation driven
 * to its end): stop strings, logprobs and thinking apply together. */
MUSE_API muse_status muse_session_generate(muse_session *session, int32_t seq_id, const int32_t *prompt,
                                           size_t n_prompt, const muse_generate_params *params,
                                           muse_token_cb on_token, void *user_data, size_t *out_n_tokens);

/* ----------------------------------------------------------- tools (ABI 5)
 *
 * A chat turn may offer tools. Declarations (OpenAI "tools" JSON) render through the
 * model's chat template; the model's calls are parsed as they stream (muse-glimmer ATEM,
 * Hermes/Qwen <tool_call>, Llama 3 JSON) and constrained by a grammar built from the
 * declared parameter schemas from the family's call trigger on (tool_choice "auto"), or
 * from the start of the answer ("required" / a named function).
 *
 * Tools with a function (host_tools with fn, built-in tools) are called by the library:
 * the turn goes on with their results in the conversation, up to max_tool_rounds rounds,
 * until the model answers. A call of a tool declared without a function ends the turn
 * with "tool_calls" in the result, for the host to answer in the next request.
 *
 *     static muse_status weather(const char *name, const char *args, void *user, muse_tool_result *r) {
 *         return muse_tool_result_set_content(r, "{\"temp_c\": 21}", (size_t)-1);
 *     }
 *     muse_tool tool = {"{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", ...}}", weather, NULL};
 *     chat.host_tools = &tool;  chat.n_host_tools = 1;
 */
typedef struct muse_tool_result {
    uint32_t          struct_size;  /* sizeof(muse_tool_result) of the library */
    const char       *content;      /* the text the model reads (set through the setters, owned by the library) */
    size_t            content_len;
    int32_t           failed;       /* nonzero: content reports an error (the model is told the tool failed) */
    const muse_image *image;        /* an image appended to the conversation as an image part, or NULL */
    void             *impl;         /* library-owned */
} muse_tool_result;

/* Called for each call of the tool. Fill result with the setters; a status other than
 * MUSE_OK makes the call a failure whose message (the content set, else the status name)
 * the model reads. Runs on the thread that steps the session. */
typedef muse_status (*muse_tool_fn)(const char *name, const char *arguments_json, void *user_data,
                                    muse_tool_result *result);

/* The declaration is copied when the turn starts; fn and user_data must stay valid until the
 * turn ends (muse_generation_start_chat: until the generation is done or freed). */
typedef struct muse_tool {
    const char  *declaration_json;  /* {"type": "function", "function": {"name", "description", "parameters"}} */
    muse_tool_fn fn;                /* NULL: declared only, its calls are returned to the host */
    void        *user_data;
} muse_tool;

/* Sets the result's text (copied; len (size_t)-1: NUL-terminated). */
MUSE_API muse_status muse_tool_result_set_content(muse_tool_result *result, const char *text, size_t len);
/* Marks the call failed with this message (copied). */
MUSE_API muse_status muse_tool_result_set_error(muse_tool_result *result, const char *message);
/* Attaches an image (copied) the model will see after the result; needs the model's mmproj
 * (without one the model reads a note instead). */
MUSE_API muse_status muse_tool_result_set_image(muse_tool_result *result, const muse_image *image);
/* Adds a file for the host only (an ARTEFACT event), e.g. kind "annotation", mime "image/png". */
MUSE_API muse_status muse_tool_result_add_artefact(muse_tool_result *result, const char *kind, const char *mime,
                                                   const void *data, size_t size);

/* ------------------------------------------------------------------ chat */

struct muse_tool;

typedef struct muse_chat_params {
    uint32_t    struct_size;      /* sizeof(muse_chat_params), set by _init */
    const char *tools_json;       /* OpenAI-style tools array, or NULL */
    const char *variables_json;   /* extra template variables (a JSON object), or NULL */
    const char *template_source;  /* a Jinja chat template; NULL: the model's tokenizer.chat_template */
    int32_t     reuse_prefix;     /* nonzero (default): keep what the sequence already holds of the prompt */
    const muse_image *const *images;  /* one per image content part of the messages ({"type": "image"},
                                         "image_url" or "input_image"), in order; needs the mmproj */
    size_t      n_images;
    /* ABI 5: constrained output, OpenAI's `response_format` as JSON text (NULL: none):
     *   {"type": "text"}         no constraint;
     *   {"type": "json_object"}  the answer is one JSON object (any);
     *   {"type": "json_schema", "json_schema": {"name": "...", "schema": {...}, "strict": true}}
     *                            the answer is JSON valid against the schema (compact whitespace;
     *                            strict: objects without additionalProperties are closed).
     * Anything else (unknown type, missing schema, a schema muse cannot compile) fails the call
     * with a message naming the problem. Giving both this and muse_generate_params.grammar is
     * MUSE_ERR_INVALID_ARGUMENT (the answer cannot follow two grammars). */
    const char *response_format_json;
    /* ---- ABI 5: tool calling (see "tools" below) */
    const struct muse_tool *host_tools;  /* tools the library calls between rounds, or NULL */
    size_t      n_host_tools;
    const char *tool_choice;          /* "auto" (NULL), "none", "required", or a function name */
    int32_t     parallel_tool_calls;  /* nonzero (default): several calls per response; 0: at most one */
    int32_t     max_tool_rounds;      /* tool rounds after the first response (default 4; 0: return calls) */
    const char *const *builtin_tools; /* names of built-in tools to offer ("zoom", "annotate", "calculator") */
    size_t      n_builtin_tools;
} muse_chat_params;

MUSE_API void muse_chat_params_init(muse_chat_params *params);

/* One assistant turn: renders the conversation (messages_json, OpenAI chat format) with
 * the chat template, evaluates it on sequence seq_id (reusing the cached common prefix),
 * and generates under params->thinking (mode NONE counts as AUTO here). on_token (may be
 * NULL) streams the text by channel. *out_result_json (may be NULL; free with
 * muse_string_free) receives {"reasoning", "answer", "tool_calls": [{"name", "arguments",
 * "recipient"}], "finish_reason", "malformed", "usage": {"prompt_tokens", "cached_tokens",
 * "prompt_tokens_evaluated" (prompt rows the backend actually ran), "reasoning_tokens",
 * "answer_tokens", "forced_tokens", "cues", "reasoning_end"}, "tokens", "logprobs"}.
 * With params->contemplate.n_agents > 1 the turn runs in contemplating mode: events carry their
 * agent, "answer"/"reasoning" are the aggregate's, and the JSON adds "agents": [{"agent",
 * "answer", "reasoning", "confidence", "finish_reason", "temperature", "seed", "voted", "usage"}],
 * "aggregate": {"method", "agreement", "tally": [[answer, weight], ...]} and usage
 * "completion_tokens".
 * With tools (ABI 5) the JSON adds "tool_results": [{"name", "arguments", "content", "failed",
 * "image", "round"}] (the calls the library ran) and "tool_rounds"; "tool_calls" are the calls
 * the turn ends with (declared without a function, or max_tool_rounds reached). */
MUSE_API muse_status muse_session_chat(muse_session *session, int32_t seq_id, const char *messages_json,
                                       const muse_chat_params *chat, const muse_generate_params *params,
                                       muse_token_cb on_token, void *user_data, char **out_result_json);

/* Renders the prompt muse_session_chat would evaluate (for inspection). */
MUSE_API muse_status muse_model_chat_prompt(const muse_model *model, const char *messages_json,
                                            const muse_chat_params *chat, const muse_generate_params *params,
                                            char **out_prompt);

/* Asks every generation running on this session to stop after its current token
 * (finish_reason "cancelled"); a generation started later is not affected. Callable from
 * any thread (with muse_generation_cancel, the only session calls that are). */
MUSE_API void muse_session_cancel(muse_session *session);

/* ------------------------------------------------- batched decoding (host loop)
 *
 * The low-level step, as llama_decode: a batch holds any mix of tokens of any
 * sequences (prompt chunks and next tokens together); one forward pass computes
 * them all and keeps the logits of the rows that ask for them.
 *
 *     muse_batch *b;  muse_batch_create(64, &b);
 *     muse_batch_add(b, tok_a, -1, 0, true);      // next token of sequence 0
 *     muse_batch_add(b, tok_b, -1, 1, true);      // and of sequence 1, in the same pass
 *     muse_session_decode(s, b);
 *     muse_session_logits(s, 1, &logits);          // batch row 1: sequence 1's next-token logits
 */
typedef struct muse_batch muse_batch;

/* A batch of at most capacity rows (1..65536). */
MUSE_API muse_status muse_batch_create(size_t capacity, muse_batch **out_batch);
MUSE_API void muse_batch_free(muse_batch *batch);
MUSE_API void muse_batch_clear(muse_batch *batch);
/* Number of rows (-1 on a NULL batch). */
MUSE_API int64_t muse_batch_size(const muse_batch *batch);
/* Appends a row: token at position pos of sequence seq_id (pos < 0: the next position of
 * that sequence, counting rows already in this batch). logits: keep this row's logits.
 * MUSE_ERR_OUT_OF_RANGE when the batch is full. */
MUSE_API muse_status muse_batch_add(muse_batch *batch, int32_t token, int32_t pos, int32_t seq_id, bool logits);

/* Runs one forward pass over the batch (rows of one sequence must have increasing positions
 * at or after the sequence's next position). Batches larger than the session's n_batch are
 * split. On error (bad id, full context) the session is unchanged. */
MUSE_API muse_status muse_session_decode(muse_session *session, const muse_batch *batch);
/* The logits (n_vocab floats) of a row of the last decoded batch (its index in the batch,
 * counting every row, as llama_get_logits_ith); the row must have asked for them
 * (MUSE_ERR_OUT_OF_RANGE otherwise). Valid until the next decode or step on this session. */
MUSE_API muse_status muse_session_logits(muse_session *session, int32_t row, const float **out_logits);

/* ------------------------------------------------------ generations (pull API)
 *
 * A generation is one response being produced on one sequence: its sampler chain,
 * stop strings, logprobs, thinking controller and channel parser. Any number of
 * generations (one per sequence) may be live on a session; each step of the session
 * decodes all of them in one batched forward pass (prompt chunks included).
 *
 *     muse_generation *g;
 *     muse_generation_start(s, 0, prompt, n, &params, &g);
 *     muse_event ev;  ev.struct_size = sizeof ev;
 *     while (muse_generation_next(g, &ev) == MUSE_OK && ev.kind != MUSE_EVENT_DONE)
 *         fwrite(ev.text, 1, ev.text_len, stdout);
 *     muse_generation_free(g);
 */
typedef struct muse_generation muse_generation;

typedef enum muse_event_kind {
    MUSE_EVENT_TOKEN     = 0,  /* a token that released no text (held back, or end of generation) */
    MUSE_EVENT_ANSWER    = 1,  /* answer text (all text when thinking is not enabled) */
    MUSE_EVENT_REASONING = 2,  /* reasoning text */
    MUSE_EVENT_TOOL_CALL = 3,  /* a complete tool call: tool_name + tool_arguments */
    MUSE_EVENT_DONE      = 4,  /* the generation ended: finish_reason */
    MUSE_EVENT_ERROR     = 5,  /* the generation failed: text is the message; the session stays usable */
    MUSE_EVENT_AGENT_DONE = 6, /* contemplating mode: one agent ended (finish_reason); the request goes on */
    /* ABI 5: tool rounds */
    MUSE_EVENT_TOOL_RESULT = 7, /* a call the library ran: tool_name, tool_arguments; text is the result */
    MUSE_EVENT_ARTEFACT    = 8  /* a file a tool made for the host: artefact_*; tool_name is the tool */
} muse_event_kind;

typedef struct muse_event {
    uint32_t       struct_size;   /* set by the caller: sizeof(muse_event) */
    int32_t        kind;          /* muse_event_kind */
    int32_t        seq_id;        /* the generation's sequence */
    int32_t        agent;         /* contemplating mode: the agent (n_agents: the synthesis; -1: the
                                     aggregate answer and the final DONE); else 0 */
    int32_t        token;         /* the token this event comes from, -1 for none (end-of-stream text) */
    int32_t        forced;        /* nonzero: the thinking controller forced the token */
    const char    *text;          /* UTF-8 text (never NULL; "" when none) */
    size_t         text_len;
    float          logprob;       /* log-softmax of the raw logits at token: with n_logprobs > 0 (else 0) */
    int32_t        n_top;         /* entries in top_tokens / top_logprobs (n_logprobs asked) */
    const int32_t *top_tokens;    /* best first */
    const float   *top_logprobs;
    const char    *tool_name;     /* TOOL_CALL: the function name, else NULL */
    const char    *tool_arguments;/* TOOL_CALL: the arguments (JSON text), else NULL */
    const char    *finish_reason; /* DONE / AGENT_DONE: "stop", "length", "cancelled", "low_confidence" or
                                     "error"; else NULL */
    /* ABI 5: tool rounds (read only when struct_size covers them) */
    int32_t        tool_failed;   /* TOOL_RESULT: nonzero when the tool failed (text is its error) */
    const void    *artefact_data; /* ARTEFACT: the file's bytes, else NULL */
    size_t         artefact_size;
    const char    *artefact_mime;
    const char    *artefact_kind;
} muse_event;

/* Starts a raw generation on sequence seq_id: prompt (may be empty to continue what the
 * sequence holds) is evaluated by the following steps, then tokens are sampled as params
 * say (params->thinking mode NONE: raw text; otherwise the model's reasoning format splits
 * it into channels). Nothing runs until the first step. The generation must be freed
 * before its session. Fails when the sequence already has a live generation. */
MUSE_API muse_status muse_generation_start(muse_session *session, int32_t seq_id, const int32_t *prompt,
                                           size_t n_prompt, const muse_generate_params *params,
                                           muse_generation **out_generation);
/* Starts a chat turn (as muse_session_chat) as a generation. */
MUSE_API muse_status muse_generation_start_chat(muse_session *session, int32_t seq_id, const char *messages_json,
                                                const muse_chat_params *chat, const muse_generate_params *params,
                                                muse_generation **out_generation);
/* The next event of this generation: a queued one, or else the session is stepped (all its
 * live generations advance together) until this one has an event. After DONE every call
 * returns the DONE event again. Pointers in the event live until the next call on this
 * generation or its free. Errors of a step end the generations of that step with an ERROR
 * event followed by DONE ("error"). */
MUSE_API muse_status muse_generation_next(muse_generation *generation, muse_event *out_event);
/* Advances every live generation of the session by one batched forward pass; their events
 * queue up for muse_generation_next. *out_n_live (may be NULL) receives the generations
 * still live afterwards. */
MUSE_API muse_status muse_session_step(muse_session *session, int32_t *out_n_live);
/* Asks the generation to stop (finish_reason "cancelled") at its next step; callable from any
 * thread at any time. */
MUSE_API void muse_generation_cancel(muse_generation *generation);
/* Whether the generation has ended (all its events may not have been read yet). */
MUSE_API bool muse_generation_done(const muse_generation *generation);
/* The result so far, as muse_session_chat's JSON plus "tokens" (the generated ids) and, with
 * n_logprobs, "logprobs": [{"token", "logprob", "top": [[token, logprob], ...]}, ...].
 * Release with muse_string_free(). */
MUSE_API muse_status muse_generation_result(const muse_generation *generation, char **out_json);
/* Frees a generation; a live one is cancelled and its sequence keeps what was evaluated. */
MUSE_API void muse_generation_free(muse_generation *generation);

#ifdef __cplusplus
}
#endif

#endif /* MUSE_H */
