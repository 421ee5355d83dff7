// The opaque muse_image handle: a decoded RGB8 image (src/image/image.h).
// Immutable after creation, so any number of threads may read it.
#pragma once

#include "image/image.h"

struct muse_image {
    muse::Image impl;
};
