// Definitions of the opaque C handles (one place, shared by the c-api-*.cpp files).
#pragma once

#include "engine/contemplation.h"
#include "engine/session.h"

#include <string>
#include <vector>
#include "model/model.h"
#include "multimodal/image-embedder.h"

#include <memory>

struct muse_model {
    std::unique_ptr<muse::Model> impl;
};

struct muse_session {
    std::unique_ptr<muse::Session> impl;
    const muse::Model *model = nullptr;  // the model outlives its sessions (documented rule)
    muse::ImageCache images;             // encoded images by content, reused across turns
};

struct muse_batch {
    muse::Batch impl;  // pos < 0: resolved to the sequence's next position at decode time
    size_t capacity = 0;
};

struct muse_generation {
    std::unique_ptr<muse::Generation> impl;       // one generation, or
    std::unique_ptr<muse::Contemplation> group;   // a contemplating request (several agents)
    int current_agent = 0;
    muse_session *session = nullptr;
    std::string prompt;             // chat generations: the rendered prompt (for the result)
    muse::GenerationEvent current;  // the event handed out last (its strings back the C event)
    std::vector<int32_t> top_tokens;
    std::vector<float> top_logprobs;
    bool done_delivered = false;
};
