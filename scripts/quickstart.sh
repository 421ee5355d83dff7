#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
echo
echo "== the main job: muse-glimmer-nano looks at an image, thinks, answers =="
echo "   (models/muse-glimmer-nano*.gguf: trained by tools/nano on its shapes world; see docs/NANO.md)"
echo "\$ muse-cli chat -m models/muse-glimmer-nano.gguf --mmproj models/muse-glimmer-nano-mmproj.gguf \\"
echo "    --image examples/images/shapes-1.png -p \"How many purple shapes are there?\" --think on --show-thinking"
"$root/build/examples/muse-cli" chat -m "$root/models/muse-glimmer-nano.gguf" \
    --mmproj "$root/models/muse-glimmer-nano-mmproj.gguf" --image "$root/examples/images/shapes-1.png" \
    -p "How many purple shapes are there?" --think on --show-thinking
