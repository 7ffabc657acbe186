#!/usr/bin/env bash
# Builds the `callgrid:<tag>` container image FROM scratch out of files we produce: the
# release binary — stripped, its debug info kept apart — plus exactly the shared libraries
# it links (read off `ldd`), a passwd entry for an unprivileged user, and an empty /data. No
# registry is needed (nothing is pulled).
#
#   deploy/image/build.sh [tag]        # default tag: dev
#   CALLGRID_BINARY=path/to/callgrid deploy/image/build.sh   # package a prebuilt binary
#
# The release profile keeps line tables (`debug = 1`, ~400 MB binary). The image gets the
# stripped binary (~20 MB) with a `.gnu_debuglink` to `<name>.debug`; both are written next
# to the unstripped binary in `<dir of binary>/dist/` (or $CALLGRID_DIST) — keep
# `callgrid.debug` with the release to symbolize a core dump or a perf profile
# (`gdb -ex 'set debug-file-directory DIR' callgrid core`).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-dev}"

if [ -n "${CALLGRID_BINARY:-}" ]; then
  # A binary built elsewhere (a release pipeline, another checkout): package it as is.
  binary="$CALLGRID_BINARY"
  [ -x "$binary" ] || { echo "CALLGRID_BINARY=$binary is not an executable file" >&2; exit 1; }
else
  cargo build --release --locked -p callgrid-node --bin callgrid
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  binary="$target_dir/release/callgrid"
fi

dist="${CALLGRID_DIST:-$(dirname "$binary")/dist}"
name="$(basename "$binary")"
mkdir -p "$dist"
# Split only when the binary changed since the last split (CI builds once, packages twice).
if [ ! -f "$dist/$name" ] || [ "$binary" -nt "$dist/$name" ]; then
  objcopy --only-keep-debug "$binary" "$dist/$name.debug.partial"
  objcopy --strip-debug --strip-unneeded "$binary" "$dist/$name.partial"
  (cd "$dist" && mv "$name.debug.partial" "$name.debug" &&
    objcopy --add-gnu-debuglink="$name.debug" "$name.partial" && mv "$name.partial" "$name")
fi
stripped="$dist/$name"
echo "binary: $(stat -c %s "$binary") bytes; stripped $(stat -c %s "$stripped") bytes ($stripped), debug info $(stat -c %s "$dist/$name.debug") bytes"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
umask 022
# The build context holds `rootfs/` (becomes the image's `/`) and `data/` (the volume, owned
# by the unprivileged user through COPY --chown; plain COPY makes everything root's).
rootfs="$context/rootfs"
install -d -m 0755 "$rootfs" "$rootfs/etc" "$rootfs/tmp"
install -d -m 0750 "$context/data"
install -D -m 0755 "$stripped" "$rootfs/usr/local/bin/callgrid"

# Shared libraries (libc, libm, libgcc_s, libstdc++ for RocksDB, the dynamic loader).
ldd "$stripped" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done

echo 'callgrid:x:65532:65532:callgrid:/data:/sbin/nologin' > "$rootfs/etc/passwd"
echo 'callgrid:x:65532:' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

cp deploy/image/Dockerfile "$context/Dockerfile"
docker build -q --no-cache -t "callgrid:$tag" "$context"
size="$(docker image inspect -f '{{.Size}}' "callgrid:$tag")"
echo "built callgrid:$tag: image size $size bytes ($(( size / 1024 / 1024 )) MiB)"
