// Definitions of the opaque C handles (one place, shared by the c-api-*.cpp files).
#pragma once

#include "engine/session.h"
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
