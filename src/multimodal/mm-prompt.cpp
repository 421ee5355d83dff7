#include "multimodal/mm-prompt.h"

#include "core/error.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"

#include <cstring>

namespace muse {

size_t count_media_markers(std::string_view text) {
    size_t n = 0;
    for (size_t at = text.find(kMediaMarker); at != std::string_view::npos;
         at = text.find(kMediaMarker, at + std::strlen(kMediaMarker)))
        ++n;
    return n;
}

MultimodalPrompt build_multimodal_prompt(const Tokenizer &tok, std::string_view text, bool add_bos,
                                         std::vector<std::shared_ptr<const EmbeddedImage>> images) {
    const size_t markers = count_media_markers(text);
    if (markers != images.size())
        fail(MUSE_ERR_INVALID_ARGUMENT, "the prompt has ", markers, " ", kMediaMarker, " marker(s) but ", images.size(),
             " image(s) were given");
    MultimodalPrompt p;
    p.images = std::move(images);
    auto add_text = [&](std::string_view s, bool bos) {
        const std::vector<int32_t> ids = tok.tokenize(s, bos, true);
        p.ids.insert(p.ids.end(), ids.begin(), ids.end());
    };
    const size_t marker_len = std::strlen(kMediaMarker);
    size_t at = 0;
    for (size_t i = 0; i <= p.images.size(); ++i) {
        const size_t next = i < p.images.size() ? text.find(kMediaMarker, at) : text.size();
        add_text(text.substr(at, next - at), add_bos && i == 0);
        if (i == p.images.size()) break;
        const EmbeddedImage &img = *p.images[i];
        for (const EmbeddedImage::Piece &piece : img.pieces) {
            if (piece.n_rows == 0) {
                add_text(piece.text, false);
                continue;
            }
            MultimodalPrompt::ImageRun run;
            run.begin = p.ids.size();
            run.n_rows = piece.n_rows;
            run.embd = piece.embd.data();
            for (int64_t r = 0; r < piece.n_rows; ++r)
                p.ids.push_back(-1 - static_cast<int32_t>((img.hash + static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull) %
                                                          0x3FFFFFFFull));
            p.runs.push_back(run);
        }
        at = next + marker_len;
    }
    return p;
}

void eval_multimodal_prompt(Session &session, const MultimodalPrompt &p, size_t from, int seq) {
    if (from >= p.ids.size()) fail(MUSE_ERR_INTERNAL, "nothing of the prompt left to evaluate");
    const int64_t n_embd = session.hparams().n_embd;
    size_t at = from;
    for (const MultimodalPrompt::ImageRun &run : p.runs) {
        const size_t end = run.begin + static_cast<size_t>(run.n_rows);
        if (end <= at) continue;
        if (run.begin > at) {
            session.eval(std::vector<int32_t>(p.ids.begin() + static_cast<long>(at), p.ids.begin() + static_cast<long>(run.begin)),
                         seq);
            at = run.begin;
        }
        const int64_t skip = static_cast<int64_t>(at - run.begin);  // a run may be partly cached
        session.eval_embeddings(run.embd + skip * n_embd, run.n_rows - skip,
                                std::vector<int32_t>(p.ids.begin() + static_cast<long>(at), p.ids.begin() + static_cast<long>(end)),
                                seq);
        at = end;
    }
    if (at < p.ids.size())
        session.eval(std::vector<int32_t>(p.ids.begin() + static_cast<long>(at), p.ids.end()), seq);
}

} // namespace muse
