// The compute shaders of the Vulkan backend (shaders/*.comp), compiled by glslc at build
// time and embedded as SPIR-V (embed-spirv.cmake writes the table); one module per shader
// and define variant, named like "matmul_f16".
#pragma once

#include <cstddef>
#include <vector>

namespace muse::vk {

struct SpirvModule {
    const char *name;
    const unsigned char *code;  // 4-byte aligned
    size_t size;
};

const std::vector<SpirvModule> &spirv_modules();

} // namespace muse::vk
