#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
echo
echo "== muse-cli info on the model the build generated =="
"$root/build/examples/muse-cli" info "$root/build/models/tiny-llama-f16.gguf"
