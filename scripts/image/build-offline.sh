#!/usr/bin/env bash
# Builds Courier's container image with buildah, from `scratch`, without a registry and without a
# Docker engine: the Node.js runtime of this machine (or --node) with the shared libraries it links,
# the built package (dist/, proto/, dashboard/) and its production dependencies, nothing else (no
# shell, no package manager). The image is the same as the Dockerfile's for everything Courier does:
# entrypoint `node /app/dist/cli/main.js`, user 1000:1000, working directory /app.
#
# Usage: scripts/image/build-offline.sh [--tag NAME] [--node PATH] [--archive FILE] [--no-build]
#                                       [--root DIR --runroot DIR]
#   --tag NAME      the image's name (default localhost/courier:<version from package.json>)
#   --node PATH     the node binary to put in the image (default: the one on PATH); the native
#                   module (better-sqlite3) in node_modules must be built for it
#   --archive FILE  also write the image as an OCI archive (podman load, kind load image-archive,
#                   ctr images import, skopeo copy oci-archive:FILE docker://…)
#   --no-build      use dist/ as it is instead of running `npm run build` first
#   --root, --runroot  buildah's storage directories (default: buildah's own, /var/lib/containers)
#   --storage-driver D  buildah's storage driver (default vfs: works on any file system and inside
#                   containers; overlay is faster where the kernel allows it)
# Prints the image id on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=""
node_bin="$(command -v node || true)"
archive=""
build=1
driver=vfs
storage=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --node) node_bin="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --root|--runroot) storage+=("$1" "$2"); shift 2 ;;
    --storage-driver) driver="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-offline: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v buildah >/dev/null 2>&1 || { echo "build-offline: buildah is not installed (Debian package buildah)" >&2; exit 1; }
[ -n "$node_bin" ] && [ -x "$node_bin" ] || { echo "build-offline: no node binary (give --node PATH)" >&2; exit 1; }
node_bin="$(readlink -f "$node_bin")"
version="$("$node_bin" -p 'require("./package.json").version')"
[ -n "$tag" ] || tag="localhost/courier:$version"

if [ "$build" -eq 1 ]; then npm run build >&2; fi
[ -f dist/cli/main.js ] || { echo "build-offline: dist/cli/main.js is missing (run npm run build)" >&2; exit 1; }
# The native module must load in the runtime that goes into the image.
"$node_bin" -e 'new (require("better-sqlite3"))(":memory:").close()' ||
  { echo "build-offline: better-sqlite3 in node_modules is not built for $node_bin ($("$node_bin" --version)); run npm rebuild with it" >&2; exit 1; }

b=(buildah --storage-driver "$driver" "${storage[@]}")
stage="$(mktemp -d "${TMPDIR:-/tmp}/courier-image-XXXXXX")"
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then "${b[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$stage"
}
trap cleanup EXIT
root="$stage/rootfs"
mkdir -p "$root/usr/local/bin" "$root/app" "$root/etc" "$root/tmp" "$root/home/courier"
chmod 1777 "$root/tmp"

# The runtime and every shared library it and the native module link (with the dynamic loader).
cp "$node_bin" "$root/usr/local/bin/node"
native="node_modules/better-sqlite3/build/Release/better_sqlite3.node"
for lib in $( { ldd "$node_bin"; ldd "$native"; } | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# The package: what `npm ls --omit=dev` lists, copied from node_modules, minus sources, types and maps.
cp package.json "$root/app/"
cp -r dist proto dashboard "$root/app/"
# Courier's own native module (the scheduler slice), when npm install built it: a sidecar runs without it.
if [ -f build/Release/courier_native.node ]; then
  mkdir -p "$root/app/build/Release"
  cp build/Release/courier_native.node "$root/app/build/Release/"
fi
find "$root/app/dist" \( -name '*.test.js' -o -name '*.map' -o -name '*.d.ts' \) -delete
find "$root/app/dist" -path '*/testing/*' -delete 2>/dev/null || true
npm ls --omit=dev --all --parseable 2>/dev/null |
  tail -n +2 | sed "s|^$PWD/||" | sort | while read -r dir; do
    case "$dir" in node_modules/*) ;; *) continue ;; esac
    # A package inside one already copied came with it.
    parent="${dir%/node_modules/*}"
    [ "$parent" != "$dir" ] && [ -d "$root/app/$parent" ] && continue
    mkdir -p "$root/app/$(dirname "$dir")"
    cp -r "$dir" "$root/app/$dir"
  done
sqlite="$root/app/node_modules/better-sqlite3"
rm -rf "$sqlite/deps" "$sqlite/src"
find "$sqlite/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$sqlite/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
find "$root/app/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' -o -name '*.ts' \) -delete

# A user for uid 1000 (the numeric user lets Kubernetes check runAsNonRoot).
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ncourier:x:1000:1000:courier:/home/courier:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\ncourier:x:1000:\n' > "$root/etc/group"
chown 1000:1000 "$root/home/courier"

ctr="$("${b[@]}" from --pull-never scratch)"
"${b[@]}" copy "$ctr" "$root" / >/dev/null
"${b[@]}" config \
  --entrypoint '["/usr/local/bin/node", "/app/dist/cli/main.js"]' \
  --cmd '[]' \
  --user 1000:1000 \
  --workingdir /app \
  --env NODE_ENV=production \
  --env PATH=/usr/local/bin \
  --env HOME=/home/courier \
  --label org.opencontainers.image.title=courier \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.description=Courier: service invocation sidecar, Sentry and sidecar injector (Dapr-compatible)" \
  --label "io.courier.node-version=$("$node_bin" --version)" \
  "$ctr"
id="$("${b[@]}" commit --quiet --rm "$ctr" "$tag")"
ctr=""
if [ -n "$archive" ]; then
  rm -f "$archive"
  "${b[@]}" push --quiet "$tag" "oci-archive:$archive:$tag" >&2
fi
echo "$id"
