#!/usr/bin/env bash
# Build the patched FFmpeg VVC, HEVC and H.264 decoders (static, minimal) and the `prior-dump` tool.
#
#   build.sh patched|reference|asan BUILD_DIR PATCH_DIR     (run by `cpgd-bench codec build`)
#
#   patched   : FFmpeg 7.1.5 + PATCH_DIR/*.patch (applied in name order: 0001, 0002, ...)
#                                               -> BUILD_DIR/patched/bin/prior-dump
#   reference : FFmpeg 7.1.5 unpatched          -> BUILD_DIR/reference/bin/prior-dump (pixels-only baseline)
#   asan      : patched, built with -fsanitize=address -> BUILD_DIR/asan/bin/prior-dump
#
# Idempotent: the FFmpeg libraries are rebuilt only when the source, the patches or the flags change (a stamp
# holds their hash); the dump tool when its source is newer. Needs: a C compiler, make, nasm.
set -euo pipefail
usage="usage: build.sh patched|reference|asan BUILD_DIR PATCH_DIR"
here=$(cd "$(dirname "$0")" && pwd)
variant=${1:?$usage}
build=${2:?$usage}
patch_dir=${3:?$usage}
jobs=${JOBS:-$(nproc)}

case "$variant" in
  patched|reference) optflags=(); toolchain=() ;;
  asan) optflags=(--optflags="-O1 -g -fno-omit-frame-pointer"); toolchain=(--toolchain=gcc-asan) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
command -v nasm >/dev/null || { echo "error: nasm not found; run: apt-get install -y nasm" >&2; exit 1; }

config=(--disable-everything --disable-programs --disable-doc --disable-avdevice --disable-swresample
        --disable-swscale --disable-avfilter --disable-network --disable-autodetect
        --enable-static --disable-shared --enable-pthreads
        --enable-decoder=vvc,hevc,h264 --enable-parser=vvc,hevc,h264 --enable-demuxer=vvc,hevc,h264
        --enable-protocol=file)
patches=()
[ "$variant" = reference ] || mapfile -t patches < <(LC_ALL=C ls "$patch_dir"/*.patch | LC_ALL=C sort)
out="$build/$variant"
prefix="$out/prefix"
log="$out/build.log"
mkdir -p "$out/bin"
# one build per variant at a time: a second `codec build` waits for the first, then finds its work done
exec 9>"$out/.lock"
flock -n 9 || { echo "waiting for another build of $variant in $out" >&2; flock 9; }

# 1. libavcodec/libavformat/libavutil (minutes): rebuilt only when the source, patches or flags change.
lib_hash=$( { echo "$variant ${optflags[*]:-} ${config[*]}"; cat "$here/fetch_source.sh";
              [ ${#patches[@]} -eq 0 ] || cat "${patches[@]}"; } | sha256sum | cut -c1-16)
if [ "$(cat "$out/.lib-stamp" 2>/dev/null)" != "$lib_hash" ] || [ ! -f "$prefix/lib/libavcodec.a" ]; then
  bash "$here/fetch_source.sh" "$build/src"
  src="$out/src"
  rm -rf "$src" "$prefix" && cp -a "$build/src" "$src"
  for p in "${patches[@]}"; do
    echo "applying $(basename "$p")"
    patch -s -p1 -d "$src" --no-backup-if-mismatch < "$p" ||
      { echo "error: $(basename "$p") does not apply on FFmpeg 7.1.5 + the patches before it" >&2; exit 1; }
  done
  echo "building FFmpeg 7.1.5 ($variant, vvc, hevc and h264 decoders only); log: $log"
  if ! { (cd "$src" && ./configure --prefix="$prefix" "${toolchain[@]}" "${optflags[@]}" "${config[@]}") &&
         make -C "$src" -j"$jobs" && make -C "$src" install; } > "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "error: FFmpeg build failed ($variant); full log: $log" >&2
    exit 1
  fi
  echo "$lib_hash" > "$out/.lib-stamp"
  rm -rf "$src"  # the installed libraries are all the dump tool needs
fi

# 2. the dump tool (a second): rebuilt when its source is newer than the binary.
tool="$out/bin/prior-dump"
if [ ! -x "$tool" ] || [ "$here/prior_dump.c" -nt "$tool" ] || [ "$prefix/lib/libavcodec.a" -nt "$tool" ]; then
  san=(); [ "$variant" = asan ] && san=(-fsanitize=address -fno-omit-frame-pointer)
  def=(); [ "$variant" = reference ] && def=(-DPRIOR_DUMP_NO_EXPORT)
  cc -O3 -g -ffp-contract=off -Wall -Wextra -Werror "${san[@]}" "${def[@]}" -I"$prefix/include" "$here/prior_dump.c" -o "$tool" \
     "$prefix/lib/libavformat.a" "$prefix/lib/libavcodec.a" "$prefix/lib/libavutil.a" -lpthread -lm
fi
