#!/usr/bin/env bash
# Installs the Debian 12 packages muse needs, only those missing (idempotent),
# and creates the project's Python virtual environment (.venv) for tests/tools.
#   scripts/install-deps.sh            build + test dependencies
#   MUSE_SKIP_APT=1 scripts/install-deps.sh   only the Python venv
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev libdnnl-dev libstb-dev libsentencepiece-dev sentencepiece
  catch2 nlohmann-json3-dev libcpp-httplib-dev   # httplib: muse-server
  python3 python3-venv
  clang libclang-rt-14-dev   # libFuzzer and sanitizer runtimes for the fuzz targets
  libvulkan-dev glslc mesa-vulkan-drivers   # the Vulkan backend; lavapipe runs its tests
)
# node + npm run llama.cpp (../shared/peers/llamacpp) as a reference; any install will do
# (a machine may already have them from elsewhere, which Debian's npm would conflict with).
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

if [ "${MUSE_SKIP_APT:-0}" != "1" ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "muse: installing Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# Python: one virtual environment for the binding's tests and the tools. It is
# made from the first python3 on PATH (Debian's /usr/bin/python3 on a fresh machine).
if [ ! -x "$root/.venv/bin/python3" ]; then
  echo "muse: creating $root/.venv"
  python3 -m venv "$root/.venv"
fi
if ! cmp -s "$root/tests/requirements.txt" "$root/.venv/.muse-requirements" 2>/dev/null; then
  echo "muse: installing Python test requirements into .venv"
  "$root/.venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$root/tests/requirements.txt"
  cp "$root/tests/requirements.txt" "$root/.venv/.muse-requirements"
fi

# llama.cpp as the reference peer (tests compare against it): installed from the npm
# registry into .peers/ when the project's shared/ folder is present.
peer="$root/../shared/peers/llamacpp/install.sh"
if [ -f "$peer" ] && command -v npm >/dev/null 2>&1 && [ ! -d "$root/.peers/llamacpp/node_modules/node-llama-cpp" ]; then
  echo "muse: installing the llama.cpp reference peer into .peers/llamacpp"
  bash "$peer" "$root/.peers/llamacpp" >/dev/null || echo "muse: could not install the llama.cpp peer; its tests will skip"
fi
