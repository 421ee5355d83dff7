# The Vulkan backend (-DMUSE_VULKAN=ON): Debian's libvulkan-dev and glslc. Each shader
# variant is one glslc command (with its depfile), and the SPIR-V is embedded into the
# library by embed-spirv.cmake; no SPIR-V is committed.
if(MUSE_VULKAN)
  find_package(Vulkan REQUIRED)
  find_program(MUSE_GLSLC glslc REQUIRED)
  set(vk_src ${CMAKE_CURRENT_LIST_DIR})
  set(vk_bin ${CMAKE_CURRENT_BINARY_DIR}/vulkan-shaders)
  file(MAKE_DIRECTORY ${vk_bin})
  # NAME|SHADER|DEFINES (comma-separated). The *_sg variants use subgroup arithmetic; the
  # backend builds them only where the device has it.
  set(vk_variants
    "matmul_f32|matmul|-DWEIGHT_F32" "matmul_f16|matmul|-DWEIGHT_F16" "matmul_q8_0|matmul|-DWEIGHT_Q8_0"
    "matmul_q4_0|matmul|-DWEIGHT_Q4_0" "matmul_q4_k|matmul|-DWEIGHT_Q4_K" "matmul_q5_k|matmul|-DWEIGHT_Q5_K"
    "matmul_q6_k|matmul|-DWEIGHT_Q6_K" "elementwise|elementwise|" "rms_norm|rms_norm|" "layer_norm|layer_norm|"
    "get_rows|get_rows|" "rope|rope|" "set_columns|set_columns|" "attention_f32|attention|"
    "attention_f16|attention|-DKV_F16" "patches|patches|" "transpose|transpose|" "resize_bilinear|resize_bilinear|"
    "rms_norm_sg|rms_norm|-DUSE_SUBGROUPS" "layer_norm_sg|layer_norm|-DUSE_SUBGROUPS")
  foreach(t f32 f16 q8_0 q4_0 q4_k q5_k q6_k)
    string(TOUPPER ${t} T)
    list(APPEND vk_variants "matmul_${t}_sg|matmul|-DWEIGHT_${T},-DUSE_SUBGROUPS")
  endforeach()
  foreach(t q8_0 q4_0 q4_k q5_k q6_k)
    string(TOUPPER ${t} T)
    list(APPEND vk_variants "get_rows_${t}|get_rows|-DWEIGHT_${T}")
  endforeach()
  set(vk_spv)
  set(vk_spv_files)
  foreach(v ${vk_variants})
    string(REPLACE "|" ";" parts "${v}")
    list(GET parts 0 name)
    list(GET parts 1 shader)
    list(GET parts 2 defines)
    string(REPLACE "," ";" defines "${defines}")
    set(out ${vk_bin}/${name}.spv)
    add_custom_command(OUTPUT ${out}
      COMMAND ${MUSE_GLSLC} --target-env=vulkan1.1 -O ${defines} -MD -MF ${out}.d -o ${out} ${vk_src}/shaders/${shader}.comp
      DEPENDS ${vk_src}/shaders/${shader}.comp DEPFILE ${out}.d
      COMMENT "glslc ${name}" VERBATIM)
    list(APPEND vk_spv "${name}=${out}")
    list(APPEND vk_spv_files ${out})
  endforeach()
  set(vk_embedded ${vk_bin}/vulkan-shaders.cpp)
  add_custom_command(OUTPUT ${vk_embedded}
    COMMAND ${CMAKE_COMMAND} -DOUT=${vk_embedded} "-DSPV=${vk_spv}" -P ${vk_src}/embed-spirv.cmake
    DEPENDS ${vk_spv_files} ${vk_src}/embed-spirv.cmake VERBATIM)
  list(APPEND MUSE_SOURCES backends/vulkan/vulkan-context.cpp backends/vulkan/vulkan-backend.cpp ${vk_embedded})
  list(APPEND MUSE_EXTRA_LIBS Vulkan::Vulkan)
endif()
