// Library-wide entry points: versions, status names, thread-local errors.
#include "api/api-guard.h"
#include "backends/backend.h"
#include "backends/cpu/cpu-int8-matmul.h"
#include "backends/cpu/cpu-kernels.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>

#ifndef MUSE_VERSION_STRING
#define MUSE_VERSION_STRING "0.0.0"
#endif

namespace muse::api {
namespace {
thread_local std::string g_last_error;
}

muse_status set_error(muse_status status, const char *message) noexcept {
    try {
        g_last_error = message ? message : "";
    } catch (...) {
        g_last_error.clear();  // out of memory while reporting: keep the status at least
    }
    return status;
}

void clear_error() noexcept { g_last_error.clear(); }

const char *last_error() noexcept { return g_last_error.c_str(); }

} // namespace muse::api

extern "C" {

MUSE_API const char *muse_status_name(muse_status status) {
    switch (status) {
    case MUSE_OK: return "MUSE_OK";
    case MUSE_ERR_INVALID_ARGUMENT: return "MUSE_ERR_INVALID_ARGUMENT";
    case MUSE_ERR_IO: return "MUSE_ERR_IO";
    case MUSE_ERR_FORMAT: return "MUSE_ERR_FORMAT";
    case MUSE_ERR_UNSUPPORTED: return "MUSE_ERR_UNSUPPORTED";
    case MUSE_ERR_OUT_OF_MEMORY: return "MUSE_ERR_OUT_OF_MEMORY";
    case MUSE_ERR_NOT_FOUND: return "MUSE_ERR_NOT_FOUND";
    case MUSE_ERR_TYPE_MISMATCH: return "MUSE_ERR_TYPE_MISMATCH";
    case MUSE_ERR_OUT_OF_RANGE: return "MUSE_ERR_OUT_OF_RANGE";
    case MUSE_ERR_CANCELLED: return "MUSE_ERR_CANCELLED";
    case MUSE_ERR_INTERNAL: return "MUSE_ERR_INTERNAL";
    }
    return "MUSE_ERR_UNKNOWN_STATUS";
}

MUSE_API const char *muse_last_error(void) { return muse::api::last_error(); }

MUSE_API const char *muse_version(void) { return MUSE_VERSION_STRING; }

MUSE_API uint32_t muse_abi_version(void) { return MUSE_ABI_VERSION; }

MUSE_API const char *muse_system_info(void) {
    thread_local std::string info;
    try {
        nlohmann::ordered_json j;
        j["cpu_level"] = muse::cpu::to_string(muse::cpu::cpu_level());
        j["cpu_level_detected"] = muse::cpu::to_string(muse::cpu::detected_cpu_level());
        j["int8_matmul"] = muse::cpu::int8_matmul_available();
        j["amx"] = muse::cpu::int8_amx_available();
        j["backends"] = nlohmann::ordered_json::array({"cpu"});
#ifdef MUSE_HAVE_VULKAN
        j["backends"].push_back("vulkan");
#endif
        // The devices the built backends see (a one-thread CPU backend answers for the CPU).
        nlohmann::ordered_json devices = nlohmann::ordered_json::array();
        const muse::DeviceInfo d = muse::make_backend(MUSE_BACKEND_CPU, 1)->device();
        devices.push_back({{"backend", "cpu"},
                           {"name", d.name},
                           {"kind", "cpu"},
                           {"memory_total", d.memory_total},
                           {"memory_free", d.memory_free},
                           {"capabilities", d.capabilities}});
        j["devices"] = devices;
        info = j.dump();
    } catch (...) {
        info = "{}";  // out of memory: an empty answer rather than an exception through C
    }
    return info.c_str();
}

MUSE_API void muse_string_free(char *str) { std::free(str); }

} // extern "C"
