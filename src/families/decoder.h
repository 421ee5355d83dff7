// The token decoder: hyperparameters every family shares, the batch a forward
// pass consumes, and the Decoder base class that each family in src/families/
// specializes (one file per family, registered in families/registry.cpp).
#pragma once

#include "backends/backend.h"
#include "backends/graph.h"
#include "engine/kv-cache.h"
#include "gguf/gguf-file.h"
#include "model/model-weights.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace muse {

struct DecoderHParams {
    std::string arch;
    int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
    int64_t n_vocab = 0, n_ctx_train = 0;
    float eps = 1e-5f;
    RopeParams rope;           // full-attention layers (or all layers for plain families)
    RopeParams rope_swa;       // sliding-window layers
    int32_t n_swa = 0;         // window size of SWA layers (0: none)
    std::vector<bool> is_swa;  // per layer
    float logit_scale = 1.0f;
    float final_softcap = 0.0f;  // 0: off

    int64_t n_embd_q() const { return head_dim * n_head; }
    int64_t n_embd_kv() const { return head_dim * n_head_kv; }
};

// Rows a request evaluates at once from which on they count as a bulk prompt (Batch::bulk).
constexpr int64_t kBulkPromptRows = 32;

// One forward pass: rows of any sequences (tokens, or input embeddings for image
// rows) with their positions, and which rows need logits.
struct Batch {
    std::vector<int32_t> tokens;      // n: token ids; image rows carry their record id (< 0)
    std::vector<const float *> embd;  // empty, or n: the row's input embedding [n_embd] (nullptr: a token row)
    std::vector<int32_t> pos, seq;    // n each
    std::vector<int32_t> outputs;     // rows whose logits are returned, in this order
    // Empty, or n: 1 where the row belongs to a bulk prompt -- a request that evaluates at
    // least kBulkPromptRows rows at once (a generation's prompt, the rows of one sequence in a
    // Session::decode call). Their matmuls may take BF16 products where the backend has a fast
    // path for them (Graph::bf16_columns; on CPUs with AMX-BF16, several times the integer
    // kernels' rate). The flag is a property of the request, never of the batch the row rides
    // in or how its prompt is chunked, so batches stay invariant; decoded rows never carry it.
    std::vector<uint8_t> bulk;

    int64_t size() const { return static_cast<int64_t>(tokens.size()); }
    bool is_embd(size_t i) const { return !embd.empty() && embd[i]; }
    bool is_bulk(size_t i) const { return !bulk.empty() && bulk[i]; }
};

// Bump allocator of F32 activation tensors, reset at every forward pass.
class Workspace {
public:
    explicit Workspace(Backend &backend) : backend_(backend) {}
    void reset(size_t bytes_needed);
    Tensor f32(int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1);

private:
    Backend &backend_;
    std::unique_ptr<Buffer> buffer_;
    size_t used_ = 0;
};

// Per-session scratch state of forward passes, so one immutable Decoder can
// serve many sessions: the activations, the recorded pass, and the integer inputs of
// the pass being recorded (positions, the KV cells each token writes and reads).
struct ForwardState {
    explicit ForwardState(Backend &backend) : ws(backend), graph(backend) {}
    Workspace ws;
    Graph graph;
    KvGatherLists gather[2];  // per KV pool (full, sliding-window): the cells each token reads
    Tensor pos;               // I32 [n]: the batch positions
    Tensor write_cells[2];    // per pool, I32 [n]: the cell each token's K/V goes to
    KvRanges read_cells[2];   // per pool: the cells each token attends
};

class Decoder {
public:
    virtual ~Decoder() = default;
    const DecoderHParams &hparams() const { return hp_; }

    // Runs a batch, writes logits [n_vocab] for every batch.outputs row into logits
    // (row-major, outputs order). The batch must already be validated.
    // On failure the batch's cells are released again, so the cache is unchanged.
    void forward(ForwardState &st, KvCache &cache, const Batch &batch, std::vector<float> &logits) const;
    Backend &backend() const { return backend_; }
    // Ends loading (make_decoder calls it once the family has looked up its tensors).
    void commit_weights() { weights_.commit(); }

    // Bytes of activations a batch of n tokens with n_out logits rows needs (Workspace sizing).
    virtual size_t workspace_bytes(int64_t n_tokens, int64_t n_out) const;

protected:
    Decoder(const gguf::File &file, Backend &backend) : file_(file), backend_(backend), weights_(file, backend, "model") {}

    // Family hook: records, into st.graph, every layer run on the input embeddings x
    // [n_embd, n] (already looked up), leaving the final hidden states in x.
    virtual void forward_layers(ForwardState &st, const Tensor &x, const Batch &batch, KvCache &cache) const = 0;
    // Family hook: records a transform of the input embeddings before the first layer (default: none).
    virtual void prepare_input(Graph &g, const Tensor &x) const {}

    // Reads the generic hyperparameters of llama.cpp's loader for hp_.arch.
    void load_common_hparams();
    // Tensor lookup with shape checks (ggml order); optional ones return an invalid Tensor.
    Tensor tensor(const std::string &name, const std::vector<int64_t> &ne, bool required = true) const {
        return weights_.get(name, ne, required);
    }
    // Standard attention with the KV cache: q [hd, n_head, n], k/v [hd*n_head_kv, n]
    // already projected (and roped); stores k/v in the layer's cells (its pool:
    // full or sliding-window), writes out [hd*n_head, n].
    void attend(ForwardState &st, int layer, const Tensor &q, const Tensor &k, const Tensor &v, KvCache &cache,
                const Tensor &out) const;

    const gguf::File &file_;
    Backend &backend_;
    mutable ModelWeights weights_;  // every tensor() of the model, committed once loaded (tensor() is const)
    DecoderHParams hp_;
    Tensor tok_embd_, output_norm_, output_;
};

// Creates the decoder for the model's architecture (throws MUSE_ERR_UNSUPPORTED
// naming the architecture and the supported list).
std::unique_ptr<Decoder> make_decoder(const gguf::File &file, Backend &backend);

// Registry entry of a family (families/registry.cpp lists them).
struct DecoderFamily {
    const char *arch;
    std::function<std::unique_ptr<Decoder>(const gguf::File &, Backend &)> create;
};
const std::vector<DecoderFamily> &decoder_families();

} // namespace muse
