#include "model/model-weights.h"

#include "core/error.h"

#include <sstream>

namespace muse {

ModelWeights::ModelWeights(const gguf::File &file, Backend &backend, std::string what)
    : file_(file), buffer_(backend.weight_buffer()), what_(std::move(what)) {
    // A backend that repacks hands each part of the file back as soon as it is copied, so the
    // largest tensor (a 150 MB embedding table) is not resident twice at the load's peak.
    buffer_->on_host_data_done([this](const void *data, size_t n) { file_.release_data(data, n); });
}

Tensor ModelWeights::get(const std::string &name, const std::vector<int64_t> &ne, bool required) {
    const gguf::TensorInfo *t = file_.find_tensor(name);
    if (!t) {
        if (required) fail(MUSE_ERR_FORMAT, what_, ": missing tensor '", name, "'");
        return Tensor{};
    }
    for (size_t d = 0; d < 4; ++d) {
        const int64_t want = d < ne.size() ? ne[d] : 1;
        if (want < 0 || t->ne[d] == want) continue;
        std::ostringstream got, expected;
        for (size_t k = 0; k < 4; ++k) {
            got << (k ? "," : "") << t->ne[k];
            expected << (k ? "," : "");
            if (k >= ne.size()) expected << 1;
            else if (ne[k] < 0) expected << "*";
            else expected << ne[k];
        }
        fail(MUSE_ERR_FORMAT, what_, ": tensor '", name, "' has shape [", got.str(), "], expected [", expected.str(),
             "]");
    }
    Tensor w = buffer_->add(t->type, t->ne, file_.tensor_data(*t));
    // The backend made its own copy: its file pages go at commit (a device backend uploads
    // from them until then).
    if (!w.mapped) copied_.push_back(t);
    return w;
}

void ModelWeights::commit() {
    buffer_->commit();
    for (const gguf::TensorInfo *t : copied_) file_.release_tensor_data(*t);
}

} // namespace muse
