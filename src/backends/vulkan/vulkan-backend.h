// The Vulkan compute backend (built with -DMUSE_VULKAN=ON). It runs the ops of graph.h
// that it has shaders for on the device, recorded into one command buffer per stretch of
// the pass, and hands the rest to a CPU backend on the same (host-visible) memory, with a
// notice on stderr naming each op the first time it falls back.
#pragma once

#include "backends/backend.h"

#include <memory>
#include <string>

namespace muse {

// device: an index or a name substring (empty: MUSE_VULKAN_DEVICE, else the first GPU).
// Throws MUSE_ERR_UNSUPPORTED, saying why, when no device can be used.
std::unique_ptr<Backend> make_vulkan_backend(int n_threads, const std::string &device = "");

// Whether a discrete or integrated GPU is there, asked once per process (creating a Vulkan
// instance loads every driver: lavapipe alone costs tens of milliseconds).
bool vulkan_gpu_present();

} // namespace muse
