#!/usr/bin/env bash
# Build the patched FFmpeg VVC decoder (static, minimal) and the `vvc-dump` tool.
#
#   codec/build.sh [patched|reference|asan]     (default: patched)
#
#   patched   : FFmpeg 7.1.5 + vvc_patches/*.patch -> codec/build/patched/bin/vvc-dump
#   reference : FFmpeg 7.1.5 unpatched          -> codec/build/reference/bin/vvc-dump (pixels-only baseline)
#   asan      : patched, built with -fsanitize=address -> codec/build/asan/bin/vvc-dump
#
# Idempotent: a stamp holding the hash of the inputs (source version, patches, dump tool, flags) skips the
# rebuild when nothing changed. Needs: a C compiler, make, nasm (apt-get install nasm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
variant=${1:-patched}
build="$here/build"
jobs=${JOBS:-$(nproc)}

case "$variant" in
  patched|reference) cflags="-O2 -g"; toolchain=() ;;
  asan) cflags="-O1 -g -fno-omit-frame-pointer"; toolchain=(--toolchain=gcc-asan) ;;
  *) echo "usage: codec/build.sh [patched|reference|asan]" >&2; exit 2 ;;
esac
command -v nasm >/dev/null || { echo "error: nasm not found; run: apt-get install -y nasm" >&2; exit 1; }

patches=()
[ "$variant" = reference ] || patches=("$root"/vvc_patches/*.patch)
stamp_hash=$( { echo "$variant $cflags"; cat "$here/build.sh" "$here/vvc_dump.c" "$here/fetch_source.sh";
                [ ${#patches[@]} -eq 0 ] || cat "${patches[@]}"; } | sha256sum | cut -c1-16)
out="$build/$variant"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp_hash" ] && [ -x "$out/bin/vvc-dump" ]; then
  echo "codec ($variant) up to date: $out/bin/vvc-dump"; exit 0
fi

bash "$here/fetch_source.sh" "$build/src"
src="$out/src"
rm -rf "$src" && mkdir -p "$out" && cp -a "$build/src" "$src"
for p in "${patches[@]}"; do
  echo "applying $(basename "$p")"
  patch -s -p1 -d "$src" --no-backup-if-mismatch < "$p"
done

prefix="$out/prefix"
(cd "$src" && ./configure --prefix="$prefix" "${toolchain[@]}" --optflags="$cflags" \
   --disable-everything --disable-programs --disable-doc --disable-avdevice --disable-swresample \
   --disable-swscale --disable-avfilter --disable-network --disable-autodetect \
   --enable-static --disable-shared --enable-pthreads \
   --enable-decoder=vvc --enable-parser=vvc --enable-demuxer=vvc --enable-protocol=file >/dev/null)
make -s -C "$src" -j"$jobs" >/dev/null
make -s -C "$src" install >/dev/null

mkdir -p "$out/bin"
san=(); [ "$variant" = asan ] && san=(-fsanitize=address -fno-omit-frame-pointer)
def=(); [ "$variant" = reference ] && def=(-DVVC_DUMP_NO_EXPORT)
cc -O2 -g -Wall -Wextra "${san[@]}" "${def[@]}" -I"$prefix/include" "$here/vvc_dump.c" -o "$out/bin/vvc-dump" \
   "$prefix/lib/libavformat.a" "$prefix/lib/libavcodec.a" "$prefix/lib/libavutil.a" -lpthread -lm
{ [ ${#patches[@]} -eq 0 ] || cat "${patches[@]}"; } | sha256sum | cut -d' ' -f1 > "$out/patch.sha256"
echo "$stamp_hash" > "$out/.stamp"
echo "codec ($variant) built: $out/bin/vvc-dump"
