// The real chat templates of ../shared/templates for the C++ tests that render them.
// Tests that need them skip with a message when the folder is absent (a clone of the
// project alone); MUSE_SHARED_DIR points elsewhere.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace muse::test {

// ../shared/templates beside the checkout, or $MUSE_SHARED_DIR/templates; empty when neither exists.
inline std::filesystem::path templates_dir() {
    namespace fs = std::filesystem;
    if (const char *env = std::getenv("MUSE_SHARED_DIR"); env && *env) {
        fs::path p = fs::path(env) / "templates";
        if (fs::is_directory(p)) return p;
    }
#ifdef MUSE_TEST_SHARED_DIR
    fs::path p = fs::path(MUSE_TEST_SHARED_DIR) / "templates";
    if (fs::is_directory(p)) return p;
#endif
    return {};
}

inline std::string read_file(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE(in.good());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace muse::test

// Declares `dir` (the templates folder) or skips the test case with a message.
#define REQUIRE_TEMPLATES()                                                                                            \
    const std::filesystem::path dir = muse::test::templates_dir();                                                     \
    if (dir.empty()) {                                                                                                 \
        WARN("SKIPPED: ../shared/templates not found (set MUSE_SHARED_DIR to the shared/ folder)");                    \
        return;                                                                                                        \
    }
