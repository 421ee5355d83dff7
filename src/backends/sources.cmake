list(APPEND MUSE_SOURCES backends/backend.cpp backends/cpu/cpu-backend.cpp backends/cpu/cpu-kernels.cpp
     backends/cpu/thread-pool.cpp)
list(APPEND MUSE_SOURCES backends/cpu/cpu-vision-ops.cpp)
