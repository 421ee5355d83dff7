list(APPEND MUSE_SOURCES backends/backend.cpp backends/graph.cpp backends/cpu/cpu-backend.cpp backends/cpu/cpu-kernels.cpp
     backends/cpu/thread-pool.cpp)
list(APPEND MUSE_SOURCES backends/cpu/cpu-vision-ops.cpp backends/cpu/cpu-attention.cpp backends/cpu/cpu-int8-matmul.cpp
     backends/cpu/cpu-elementwise.cpp backends/cpu/cpu-bf16-matmul.cpp backends/cpu/cpu-amx-bf16-matmul.cpp
     backends/cpu/cpu-attention-amx.cpp)
# The kernels promise a fixed sequence of float operations per token (batch-invariant
# matmul, dequantization exactly as core/dequant.cpp): no silent FMA contraction.
set_source_files_properties(backends/cpu/cpu-kernels.cpp backends/cpu/cpu-attention.cpp backends/cpu/cpu-int8-matmul.cpp
                            backends/cpu/cpu-elementwise.cpp backends/cpu/cpu-amx-bf16-matmul.cpp
                            backends/cpu/cpu-attention-amx.cpp
                            PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
include(${CMAKE_CURRENT_LIST_DIR}/vulkan/sources.cmake)
