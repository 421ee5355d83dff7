#!/usr/bin/env bash
# README command 2 (and CI's .ci/run): install what is missing, then run the
# whole test suite: ASan+UBSan build and tests, the concurrency tests under TSan,
# the fuzzers (corpus replay plus a bounded fresh run), and finally the normal
# build's full ctest suite, whose summary is the last line printed.
#   MUSE_FUZZ_SECONDS=30   seconds of fresh fuzzing per target (0 skips it)
#   MUSE_TEST_QUICK=1      only the normal build's suite
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/install-deps.sh"
jobs="${MUSE_JOBS:-$(nproc)}"
fuzz_seconds="${MUSE_FUZZ_SECONDS:-30}"
start=$SECONDS
stage() { echo "== $1 (at $((SECONDS - start)) s) =="; }

if [ "${MUSE_TEST_QUICK:-0}" != "1" ]; then
  stage "ASan + UBSan build and tests"
  "$root/scripts/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DMUSE_SANITIZE=address,undefined \
      -DMUSE_BUILD_BENCHMARKS=OFF
  (cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest -j "$jobs" --output-on-failure)

  stage "ThreadSanitizer: thread pool and concurrent sessions"
  # Only the libraries, the tiny test model and test-threads: the rest of the suite has
  # no threads of its own, and a full TSan build would double the CI time.
  tsan_start=$SECONDS
  cmake -S "$root" -B "$root/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMUSE_SANITIZE=thread \
      -DMUSE_BUILD_EXAMPLES=OFF -DMUSE_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$root/build-tsan" -j "$jobs" --target test-threads make-test-model test-models
  (cd "$root/build-tsan" && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp" \
      ctest -R '^test-threads' --output-on-failure)
  echo "ThreadSanitizer stage: $((SECONDS - tsan_start)) s"

  stage "libFuzzer targets (clang): corpus replay + ${fuzz_seconds}s of fuzzing"
  CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMUSE_FUZZ=ON -DMUSE_SANITIZE=address,undefined -DMUSE_BUILD_EXAMPLES=OFF -DMUSE_BUILD_SHARED=OFF \
      -DMUSE_BUILD_STATIC=ON -DMUSE_BUILD_BENCHMARKS=OFF -DMUSE_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
  cmake --build "$root/build-fuzz" -j "$jobs" --target fuzz-gguf fuzz-image fuzz-channels fuzz-grammar fuzz-jinja fuzz-tools \
      fuzz-server-request
  if [ "$fuzz_seconds" -gt 0 ]; then
    (cd "$root/build-fuzz" && ctest -j "$jobs" -R '^fuzz-' --output-on-failure)
  else
    (cd "$root/build-fuzz" && ctest -R 'corpus' --output-on-failure)
  fi
fi

stage "Release build (with the Vulkan backend): full test suite"
# The Release tree also builds the Vulkan backend, whose tests run on Mesa's lavapipe (a
# CPU-type device, admitted by name); the sanitizer trees keep the CPU-only build.
vulkan=OFF
if command -v glslc >/dev/null 2>&1 && [ -f /usr/include/vulkan/vulkan.h ]; then
  vulkan=ON
else
  echo "muse: glslc or the Vulkan headers are missing: the Release tree is built without the Vulkan backend"
fi
"$root/scripts/build.sh" "$root/build" -DMUSE_VULKAN=$vulkan
cd "$root/build" && MUSE_VULKAN_DEVICE="${MUSE_VULKAN_DEVICE:-llvmpipe}" ctest -j "$jobs" --output-on-failure
