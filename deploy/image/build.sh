#!/usr/bin/env bash
# Builds the `callgrid:<tag>` container image FROM scratch out of files we produce: the
# release binary plus exactly the shared libraries it links (read off `ldd`), a passwd entry
# for an unprivileged user, and an empty /data. No registry is needed (nothing is pulled).
#
#   deploy/image/build.sh [tag]        # default tag: dev
#   CALLGRID_BINARY=path/to/callgrid deploy/image/build.sh   # package a prebuilt binary
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

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
umask 022
# The build context holds `rootfs/` (becomes the image's `/`) and `data/` (the volume, owned
# by the unprivileged user through COPY --chown; plain COPY makes everything root's).
rootfs="$context/rootfs"
install -d -m 0755 "$rootfs" "$rootfs/etc" "$rootfs/tmp"
install -d -m 0750 "$context/data"
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/callgrid"

# Shared libraries (libc, libm, libgcc_s, libstdc++ for RocksDB, the dynamic loader).
ldd "$binary" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done

echo 'callgrid:x:65532:65532:callgrid:/data:/sbin/nologin' > "$rootfs/etc/passwd"
echo 'callgrid:x:65532:' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

cp deploy/image/Dockerfile "$context/Dockerfile"
docker build -q --no-cache -t "callgrid:$tag" "$context"
echo "built callgrid:$tag ($(docker image inspect -f '{{.Size}}' "callgrid:$tag") bytes)"
