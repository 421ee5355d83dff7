#include "multimodal/image-embedder.h"

#include "core/error.h"

namespace muse {

int64_t EmbeddedImage::n_rows() const {
    int64_t n = 0;
    for (const Piece &p : pieces) n += p.n_rows;
    return n;
}

uint64_t image_hash(const Image &img) {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint8_t b) {
        h ^= b;
        h *= 1099511628211ull;
    };
    for (int v : {img.width, img.height})
        for (int i = 0; i < 4; ++i) mix(static_cast<uint8_t>(static_cast<uint32_t>(v) >> (8 * i)));
    for (uint8_t b : img.rgb) mix(b);
    return h;
}

ImageEmbedder::ImageEmbedder(const gguf::File &mmproj, Backend &backend, int64_t n_embd_text)
    : encoder_(VisionEncoder::load(mmproj, backend)) {
    const VisionHParams &hp = encoder_->hparams();
    if (hp.n_embd_out != n_embd_text)
        fail(MUSE_ERR_FORMAT, "the mmproj projects to ", hp.n_embd_out, " dimensions but the text model's n_embd is ",
             n_embd_text, " (a projector for another model?)");
    params_.patch_size = hp.patch_size;
    params_.merge = hp.n_merge;
    params_.image_size = hp.image_size;
    for (int c = 0; c < 3; ++c) {
        params_.mean[c] = hp.image_mean[c];
        params_.std[c] = hp.image_std[c];
    }
    if (hp.projector == "idefics3") {
        // HF's size["longest_edge"]; llama.cpp's converter writes it as preproc_image_size.
        params_.longest_edge =
            static_cast<int>(mmproj.get_int("clip.vision.preproc_image_size").value_or(hp.image_size));
    }
}

int64_t ImageEmbedder::n_rows(const Image &img) const {
    const VisionHParams &hp = hparams();
    if (hp.projector == "muse-glimmer") {
        const GlimmerGrid g = glimmer_grid_size(img.width, img.height, params_.patch_size, params_.merge,
                                                params_.max_tokens);
        return int64_t(g.nw) * g.nh;
    }
    const int64_t per = encoder_->n_output_tokens(hp.image_size, hp.image_size);
    if (hp.projector == "idefics3") {
        int rw, rh, tw, th;
        idefics3_sizes(img.width, img.height, params_.longest_edge, params_.image_size, &rw, &rh, &tw, &th);
        const int64_t tiles = tw > params_.image_size || th > params_.image_size
                                  ? int64_t(tw / params_.image_size) * (th / params_.image_size)
                                  : 0;
        return per * (tiles + 1);
    }
    return per;
}

EmbeddedImage ImageEmbedder::embed(const Image &img) const {
    const VisionHParams &hp = hparams();
    EmbeddedImage out;
    out.hash = image_hash(img);
    out.n_embd = hp.n_embd_out;
    auto rows = [&](const ImageTensor &t) {
        EmbeddedImage::Piece p;
        p.embd = encoder_->encode(t.data.data(), t.width, t.height);
        p.n_rows = static_cast<int64_t>(p.embd.size()) / hp.n_embd_out;
        return p;
    };
    auto text = [&](std::string s) {
        EmbeddedImage::Piece p;
        p.text = std::move(s);
        out.pieces.push_back(std::move(p));
    };
    if (hp.projector == "muse-glimmer") {
        const GlimmerInput in = preprocess_muse_glimmer(img, params_);
        text("<|image_start|>");
        out.pieces.push_back(rows(in.image));
        text("<|image_end|>");
    } else if (hp.projector == "idefics3") {
        const Idefics3Input in = preprocess_idefics3(img, params_);
        for (int r = 0; r < in.rows; ++r) {
            for (int c = 0; c < in.cols; ++c) {
                text(str_cat("<fake_token_around_image><row_", r + 1, "_col_", c + 1, ">"));
                out.pieces.push_back(rows(in.tiles[static_cast<size_t>(r * in.cols + c)]));
            }
            text("\n");
        }
        text(in.rows > 0 ? "\n<fake_token_around_image><global-img>" : "<fake_token_around_image><global-img>");
        out.pieces.push_back(rows(in.global));
        text("<fake_token_around_image>");
    } else {
        out.pieces.push_back(rows(preprocess_clip(img, params_)));
    }
    return out;
}

std::shared_ptr<const EmbeddedImage> ImageCache::get(const ImageEmbedder &embedder, const Image &img) {
    const uint64_t h = image_hash(img);
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = entries_.find(h);
        if (it != entries_.end()) {
            it->second.used = ++tick_;
            ++hits_;
            return it->second.image;
        }
    }
    auto made = std::make_shared<const EmbeddedImage>(embedder.embed(img));  // outside the lock: slow
    std::lock_guard<std::mutex> lock(mu_);
    if (max_ == 0) return made;
    while (entries_.size() >= max_) {
        auto oldest = entries_.begin();
        for (auto it = entries_.begin(); it != entries_.end(); ++it)
            if (it->second.used < oldest->second.used) oldest = it;
        entries_.erase(oldest);
    }
    entries_[h] = Entry{made, ++tick_};
    return made;
}

size_t ImageCache::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
}

} // namespace muse
