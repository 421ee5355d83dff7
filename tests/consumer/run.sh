#!/usr/bin/env bash
# Installs the built muse into a scratch prefix, then builds two tiny consumer
# programs against it: one with find_package(muse), one with pkg-config.
set -euo pipefail
build="$1"; work="$2"; model="$3"
here="$(cd "$(dirname "$0")" && pwd)"
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer" "$model"
libdir=$(ls -d "$work/prefix"/lib*/ | head -1)
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists muse
cc -std=c99 "$here/consumer.c" -o "$work/consumer-pc" \
   $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs muse) -Wl,-rpath,"$libdir"
"$work/consumer-pc" "$model"
echo "consumer OK"
