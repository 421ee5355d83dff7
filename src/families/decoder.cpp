#include "families/decoder.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>

namespace muse {

void Workspace::reset(size_t bytes_needed) {
    if (!buffer_ || buffer_->size() < bytes_needed) buffer_ = backend_.alloc_scratch(bytes_needed);
    used_ = 0;
}

Tensor Workspace::f32(int64_t ne0, int64_t ne1, int64_t ne2) {
    const size_t bytes = static_cast<size_t>(ne0 * ne1 * ne2) * 4;
    const size_t aligned = (bytes + 63) / 64 * 64;
    if (!buffer_ || used_ + aligned > buffer_->size())
        fail(MUSE_ERR_INTERNAL, "decoder workspace too small (", used_ + aligned, " > ", buffer_ ? buffer_->size() : 0, ")");
    Tensor t;
    t.type = GgmlType::F32;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = ne2;
    t.buffer = buffer_.get();
    t.offset = used_;
    used_ += aligned;
    return t;
}

size_t Decoder::workspace_bytes(int64_t n, int64_t n_out) const {
    // Generous upper bound: a dozen activations of the widest layer row per token, then the
    // output rows (normed hidden state and logits) of the tokens that want logits.
    const int64_t widest = std::max({hp_.n_embd, hp_.n_ff, hp_.n_embd_q()});
    return static_cast<size_t>(16 * widest * n + (hp_.n_embd + hp_.n_vocab) * n_out) * 4 + 64 * 32;
}

void Decoder::load_common_hparams() {
    const std::string a = hp_.arch + ".";
    auto req_int = [&](const char *k) {
        auto v = file_.get_int(a + k);
        if (!v) fail(MUSE_ERR_FORMAT, "missing required metadata '", a + k, "'");
        if (*v <= 0) fail(MUSE_ERR_FORMAT, "metadata '", a + k, "' must be positive (got ", *v, ")");
        return *v;
    };
    // head_count and feed_forward_length may be per-layer arrays; muse needs them uniform.
    auto uniform = [&](const char *k, bool required) -> int64_t {
        const gguf::Value *v = file_.find(a + k);
        if (!v) {
            if (required) fail(MUSE_ERR_FORMAT, "missing required metadata '", a + k, "'");
            return 0;
        }
        if (v->type != gguf::ValueType::ARRAY) return req_int(k);
        if (v->length == 0 || gguf::value_type_size(v->elem_type) == 0)
            fail(MUSE_ERR_FORMAT, "metadata '", a + k, "' must be an integer or an integer array");
        const int64_t first = v->element(0).i;
        for (uint64_t i = 1; i < v->length; ++i)
            if (v->element(i).i != first)
                fail(MUSE_ERR_UNSUPPORTED, "metadata '", a + k, "' varies per layer, which muse does not support yet");
        return first;
    };
    hp_.n_embd = req_int("embedding_length");
    hp_.n_layer = req_int("block_count");
    hp_.n_ctx_train = file_.get_int(a + "context_length").value_or(0);
    hp_.n_head = uniform("attention.head_count", true);
    hp_.n_head_kv = uniform("attention.head_count_kv", false);
    if (hp_.n_head_kv == 0) hp_.n_head_kv = hp_.n_head;
    hp_.n_ff = uniform("feed_forward_length", true);
    if (hp_.n_head <= 0 || hp_.n_head_kv <= 0 || hp_.n_head % hp_.n_head_kv != 0)
        fail(MUSE_ERR_FORMAT, "head_count ", hp_.n_head, " is not a positive multiple of head_count_kv ", hp_.n_head_kv);
    hp_.head_dim = file_.get_int(a + "attention.key_length").value_or(hp_.n_embd / hp_.n_head);
    const int64_t v_len = file_.get_int(a + "attention.value_length").value_or(hp_.head_dim);
    if (v_len != hp_.head_dim) fail(MUSE_ERR_UNSUPPORTED, "key_length != value_length is not supported");
    if (hp_.head_dim <= 0 || hp_.head_dim % 2 != 0) fail(MUSE_ERR_FORMAT, "head dimension ", hp_.head_dim, " must be even and positive");
    hp_.eps = static_cast<float>(file_.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5));
    hp_.rope.freq_base = static_cast<float>(file_.get_float(a + "rope.freq_base").value_or(10000.0));
    const double factor = file_.get_float(a + "rope.scaling.factor").value_or(0.0);
    hp_.rope.freq_scale = factor > 0 ? static_cast<float>(1.0 / factor) : 1.0f;
    hp_.rope.n_rot = static_cast<int>(file_.get_int(a + "rope.dimension_count").value_or(hp_.head_dim));
    if (hp_.rope.n_rot <= 0 || hp_.rope.n_rot > hp_.head_dim || hp_.rope.n_rot % 2)
        fail(MUSE_ERR_FORMAT, "rope.dimension_count ", hp_.rope.n_rot, " is invalid for head dim ", hp_.head_dim);
    hp_.rope_swa = hp_.rope;
    hp_.is_swa.assign(static_cast<size_t>(hp_.n_layer), false);

    tok_embd_ = tensor("token_embd.weight", {hp_.n_embd, -1});
    hp_.n_vocab = tok_embd_.ne[1];
    output_norm_ = tensor("output_norm.weight", {hp_.n_embd});
}

void Decoder::attend(ForwardState &st, int layer, const Tensor &q, const Tensor &k, const Tensor &v, KvCache &cache,
                     const Tensor &out) const {
    const KvCache::Pool pool = cache.layer_pool(layer);
    st.graph.set_columns(cache.k(layer), k, st.write_cells[pool]);
    st.graph.set_columns(cache.v(layer), v, st.write_cells[pool]);
    st.graph.attention(q, cache.k(layer), cache.v(layer), st.read_cells[pool], static_cast<int>(hp_.n_head_kv),
                       1.0f / std::sqrt(static_cast<float>(hp_.head_dim)), out);
}

void Decoder::forward(ForwardState &st, KvCache &cache, const Batch &batch, std::vector<float> &logits) const {
    const int64_t n = batch.size();
    const KvSlots slots = cache.claim(batch.pos, batch.seq);
    try {
        Graph &g = st.graph;
        g.clear();
        st.ws.reset(workspace_bytes(n, static_cast<int64_t>(batch.outputs.size())));
        st.pos = g.input_i32(batch.pos);
        for (int p = 0; p < 2; ++p) {
            if (p != KvCache::kFull && !cache.has_swa_pool()) continue;
            const auto pool = static_cast<KvCache::Pool>(p);
            cache.gather(pool, batch.pos, batch.seq, st.gather[p]);
            st.write_cells[p] = g.input_i32(slots.cells[p]);
            st.read_cells[p] = {g.input_i32(st.gather[p].cells), g.input_i32(st.gather[p].begin),
                                g.input_i32(st.gather[p].end)};
        }

        Tensor x = st.ws.f32(hp_.n_embd, n);
        for (int64_t i = 0; i < n;) {  // runs of token rows are looked up together
            if (batch.is_embd(static_cast<size_t>(i))) {
                g.input(x.rows(i, 1), batch.embd[static_cast<size_t>(i)], static_cast<size_t>(hp_.n_embd) * 4);
                ++i;
                continue;
            }
            int64_t j = i;
            while (j < n && !batch.is_embd(static_cast<size_t>(j))) ++j;
            g.get_rows(tok_embd_, g.input_i32(batch.tokens.data() + i, j - i), x.rows(i, j - i));
            i = j;
        }
        prepare_input(g, x);
        // Bulk prompt rows: the layers' matmuls may round their products to BF16.
        if (std::any_of(batch.bulk.begin(), batch.bulk.end(), [](uint8_t b) { return b != 0; })) {
            std::vector<int32_t> flags(batch.bulk.begin(), batch.bulk.end());
            g.bf16_columns(g.input_i32(flags));
        }
        forward_layers(st, x, batch, cache);
        g.bf16_columns(Tensor());

        const int64_t n_out = static_cast<int64_t>(batch.outputs.size());
        logits.resize(static_cast<size_t>(n_out * hp_.n_vocab));
        Tensor out;
        if (n_out > 0) {
            Tensor h = st.ws.f32(hp_.n_embd, n_out);
            g.get_rows(x, g.input_i32(batch.outputs), h);  // the rows whose logits are wanted
            g.rms_norm(h, output_norm_, hp_.eps, h);
            out = st.ws.f32(hp_.n_vocab, n_out);
            g.matmul(output_.valid() ? output_ : tok_embd_, h, out);
            if (hp_.logit_scale != 1.0f) g.scale(out, hp_.logit_scale);
            if (hp_.final_softcap != 0.0f) g.softcap(out, hp_.final_softcap);
        }
        backend_.compute(g);
        if (n_out > 0) backend_.download(out, logits.data(), logits.size() * 4);
    } catch (...) {
        cache.release(slots);
        throw;
    }
}

std::unique_ptr<Decoder> make_decoder(const gguf::File &file, Backend &backend) {
    const std::string arch = file.get_string("general.architecture").value_or("");
    std::string names;
    for (const auto &f : decoder_families()) {
        if (arch == f.arch) {
            auto decoder = f.create(file, backend);
            decoder->commit_weights();
            return decoder;
        }
        names += std::string(names.empty() ? "" : ", ") + f.arch;
    }
    fail(MUSE_ERR_UNSUPPORTED, "architecture '", arch, "' has no decoder in muse (supported: ", names, ")");
}

} // namespace muse
