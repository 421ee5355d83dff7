#!/usr/bin/env bash
# Fails if libmuse exports anything but the committed list of muse_* symbols.
# A deliberate ABI change updates tests/abi/exported-symbols.txt in the same commit.
set -euo pipefail
lib="$1"
expected="$2"
actual=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
bad=$(grep -v '^muse_' <<<"$actual" || true)
if [ -n "$bad" ]; then
  echo "exported symbols without the muse_ prefix:"; echo "$bad"; exit 1
fi
if ! diff -u <(grep -v '^#' "$expected" | sed '/^$/d' | sort -u) <(echo "$actual"); then
  echo "the exported symbol list differs from $expected (- expected, + actual)"; exit 1
fi
echo "exports OK: $(wc -l <<<"$actual") muse_* symbols"
