#!/usr/bin/env bash
# Builds the `callgrid:<tag>` container image FROM scratch out of files we produce: the
# release binary plus exactly the shared libraries it links (read off `ldd`), a passwd entry
# for an unprivileged user, and an empty /data. No registry is needed (nothing is pulled).
#
#   deploy/image/build.sh [tag]        # default tag: dev
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-dev}"

cargo build --release --locked -p callgrid-node --bin callgrid
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
binary="$target_dir/release/callgrid"

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/callgrid"

# Shared libraries (libc, libm, libgcc_s, libstdc++ for RocksDB, the dynamic loader).
ldd "$binary" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u | while read -r lib; do
  install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
done

install -d -m 0755 "$rootfs/etc" "$rootfs/tmp"
install -d -m 0750 -o 65532 -g 65532 "$rootfs/data" 2>/dev/null || install -d -m 0750 "$rootfs/data"
echo 'callgrid:x:65532:65532:callgrid:/data:/sbin/nologin' > "$rootfs/etc/passwd"
echo 'callgrid:x:65532:' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

cp deploy/image/Dockerfile "$rootfs/Dockerfile"
printf "Dockerfile\n.dockerignore\n" > "$rootfs/.dockerignore"
docker build -q -t "callgrid:$tag" "$rootfs"
echo "built callgrid:$tag ($(docker image inspect -f '{{.Size}}' "callgrid:$tag") bytes)"
