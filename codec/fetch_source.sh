#!/usr/bin/env bash
# Obtain pristine FFmpeg 7.1.5 source into $1 (default codec/build/src).
#
# Two ways, tried in this order:
#   1. FFMPEG_TARBALL_URL (+ FFMPEG_TARBALL_SHA256): a release tarball, for users with internet.
#   2. Debian's source package ffmpeg 7:7.1.5-0+deb13u1 (plain upstream, no Debian patches applied
#      by us), fetched with `apt-get source` through a *private* apt configuration whose URIs are
#      copied from this machine's own /etc/apt/sources.list.d/*.sources. /etc/apt is never edited.
set -euo pipefail
dest=${1:-codec/build/src}
version=7.1.5
deb_version=7:7.1.5-0+deb13u1
# sha256 of Debian's ffmpeg_7.1.5.orig.tar.xz (the upstream release tarball as Debian ships it)
orig_sha256=${FFMPEG_ORIG_SHA256:-de668509caf9e35e3cd162473441fdb29538c6d96ed080292b3cf9e6fc5d558f}
[ -f "$dest/VERSION" ] && grep -qx "$version" "$dest/VERSION" && { echo "ffmpeg $version source already at $dest"; exit 0; }
work=$(mktemp -d "${TMPDIR:-/tmp}/cpgd-ffmpeg-src.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${FFMPEG_TARBALL_URL:-}" ]; then
  : "${FFMPEG_TARBALL_SHA256:?set FFMPEG_TARBALL_SHA256 with FFMPEG_TARBALL_URL}"
  curl -fsSL "$FFMPEG_TARBALL_URL" -o "$work/ffmpeg.tar.xz"
  echo "$FFMPEG_TARBALL_SHA256  $work/ffmpeg.tar.xz" | sha256sum -c -
  mkdir -p "$work/x" && tar -xf "$work/ffmpeg.tar.xz" -C "$work/x" --strip-components=1
  src="$work/x"
else
  uris=$(awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -n1)
  [ -n "$uris" ] || uris=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$uris" ] || { echo "error: no Debian mirror found in /etc/apt; set FFMPEG_TARBALL_URL and FFMPEG_TARBALL_SHA256" >&2; exit 1; }
  apt="$work/apt"; mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/archives/partial"
  cat > "$apt/sources.list.d/trixie-src.sources" <<SRC
Types: deb-src
URIs: $uris
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources.list.d"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" source --download-only -qq "ffmpeg=$deb_version")
  orig=$(ls "$work"/ffmpeg_*.orig.tar.xz)
  echo "$orig_sha256  $orig" | sha256sum -c --quiet - || { echo "error: $orig: sha256 mismatch" >&2; exit 1; }
  # The upstream (orig) tarball only: Debian's packaging and patches are not used.
  mkdir -p "$work/x" && tar -xf "$orig" -C "$work/x" --strip-components=1
  src="$work/x"
fi
grep -qx "$version" "$src/VERSION" || { echo "error: expected FFmpeg $version, got $(cat "$src/VERSION")" >&2; exit 1; }
mkdir -p "$(dirname "$dest")" && rm -rf "$dest" && mv "$src" "$dest"
echo "ffmpeg $version source ready at $dest"
