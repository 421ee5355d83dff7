// Runs a vision encoder on a raw image, for the Python tests and the benchmark.
//   vision-encode MMPROJ.gguf --info
//       prints the encoder's hyperparameters as JSON
//   vision-encode MMPROJ.gguf --image IMG.f32 --size WxH --out OUT.f32 [--threads N] [--repeat N]
//                 [--backend cpu|vulkan]
//       IMG.f32: planar float32 RGB (plane c, row y, column x at c*H*W + y*W + x), already
//       normalized; OUT.f32: the projected embeddings, n_tokens x n_embd_out float32 row-major.
//       Prints {"n_tokens", "n_embd_out", "load_ms", "encode_ms": [wall time per repeat],
//       "cpu_ms": [process CPU time per repeat: robust to a machine shared with other jobs],
//       "bf16": whether the backend multiplies in BF16 (docs/PERFORMANCE.md; MUSE_VISION_BF16=0 turns it off)}.
// Errors go to stderr as "error: <message>" with exit status 1 (2 for bad usage).
#include "backends/backend.h"
#include "core/error.h"
#include "gguf/gguf-file.h"
#include "vision/vision-encoder.h"

#include "muse/muse.h"

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace muse;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

const char *act_name(Activation a) {
    switch (a) {
    case Activation::GeluErf: return "gelu_erf";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::GeluQuick: return "gelu_quick";
    case Activation::Silu: return "silu";
    }
    return "?";
}

int usage(const char *argv0) {
    std::fprintf(stderr,
                 "usage: %s MMPROJ.gguf --info\n"
                 "       %s MMPROJ.gguf --image IMG.f32 --size WxH --out OUT.f32 [--threads N] [--repeat N]\n"
                 "                 [--backend cpu|vulkan]\n",
                 argv0, argv0);
    return 2;
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 3) return usage(argv[0]);
    std::string mmproj = argv[1], image, out, backend_name = "cpu";
    int width = 0, height = 0, threads = 0, repeat = 1;
    bool info = false;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--info") info = true;
        else if (a == "--image" && has_value) image = argv[++i];
        else if (a == "--out" && has_value) out = argv[++i];
        else if (a == "--threads" && has_value) threads = std::atoi(argv[++i]);
        else if (a == "--repeat" && has_value) repeat = std::atoi(argv[++i]);
        else if (a == "--backend" && has_value) backend_name = argv[++i];
        else if (a == "--size" && has_value) {
            if (std::sscanf(argv[++i], "%dx%d", &width, &height) != 2) return usage(argv[0]);
        } else return usage(argv[0]);
    }
    if (!info && (image.empty() || out.empty() || repeat < 1)) return usage(argv[0]);
    if (backend_name != "cpu" && backend_name != "vulkan") return usage(argv[0]);
    try {
        const auto t0 = std::chrono::steady_clock::now();
        auto file = gguf::File::open(mmproj, gguf::OpenOptions{});
        auto backend = make_backend(backend_name == "vulkan" ? MUSE_BACKEND_VULKAN : MUSE_BACKEND_CPU, threads);
        auto enc = VisionEncoder::load(*file, *backend);
        const double load_ms = ms_since(t0);
        const VisionHParams &hp = enc->hparams();
        if (info) {
            std::printf("{\"projector\": \"%s\", \"n_embd\": %lld, \"n_head\": %lld, \"n_head_kv\": %lld, "
                        "\"head_dim\": %lld, \"n_ff\": %lld, \"n_layer\": %lld, \"patch_size\": %d, "
                        "\"image_size\": %d, \"n_merge\": %d, \"pos_grid\": %d, \"eps\": %g, \"n_embd_out\": %lld, "
                        "\"ffn_act\": \"%s\", \"image_mean\": [%g, %g, %g], \"image_std\": [%g, %g, %g]}\n",
                        hp.projector.c_str(), (long long)hp.n_embd, (long long)hp.n_head, (long long)hp.n_head_kv,
                        (long long)hp.head_dim, (long long)hp.n_ff, (long long)hp.n_layer, hp.patch_size,
                        hp.image_size, hp.n_merge, hp.pos_grid, hp.eps, (long long)hp.n_embd_out,
                        act_name(hp.ffn_act), hp.image_mean[0], hp.image_mean[1], hp.image_mean[2], hp.image_std[0],
                        hp.image_std[1], hp.image_std[2]);
            return 0;
        }
        if (width <= 0 || height <= 0) fail(MUSE_ERR_INVALID_ARGUMENT, "--size must be WxH with positive sides");
        const size_t n_values = size_t(width) * size_t(height) * 3;
        std::vector<float> pixels(n_values);
        std::ifstream in(image, std::ios::binary | std::ios::ate);
        if (!in) fail(MUSE_ERR_IO, "cannot open ", image);
        if (static_cast<size_t>(in.tellg()) != n_values * 4)
            fail(MUSE_ERR_INVALID_ARGUMENT, image, " has ", static_cast<long long>(in.tellg()), " bytes, a ", width,
                 "x", height, " planar RGB float32 image has ", n_values * 4);
        in.seekg(0);
        in.read(reinterpret_cast<char *>(pixels.data()), static_cast<std::streamsize>(n_values * 4));

        std::vector<float> emb;
        std::vector<double> times, cpu;
        for (int r = 0; r < repeat; ++r) {
            const auto t1 = std::chrono::steady_clock::now();
            const double c1 = cpu_ms();
            emb = enc->encode(pixels.data(), width, height);
            times.push_back(ms_since(t1));
            cpu.push_back(cpu_ms() - c1);
        }
        std::ofstream o(out, std::ios::binary);
        o.write(reinterpret_cast<const char *>(emb.data()), static_cast<std::streamsize>(emb.size() * 4));
        if (!o) fail(MUSE_ERR_IO, "cannot write ", out);
        std::printf("{\"n_tokens\": %lld, \"n_embd_out\": %lld, \"load_ms\": %.3f, \"encode_ms\": [",
                    (long long)enc->n_output_tokens(width, height), (long long)hp.n_embd_out, load_ms);
        for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.3f", i ? ", " : "", times[i]);
        std::printf("], \"cpu_ms\": [");
        for (size_t i = 0; i < cpu.size(); ++i) std::printf("%s%.3f", i ? ", " : "", cpu[i]);
        bool bf16 = false;
        for (const std::string &c : backend->device().capabilities) bf16 = bf16 || c == "bf16";
        std::printf("], \"bf16\": %s}\n", bf16 ? "true" : "false");
    } catch (const Error &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
