#!/usr/bin/env bash
# Idempotent machine set-up for `npm test`, `npm run demo` and `npm run bench`:
# Debian packages, then the real-Nix reference fixtures (the tests' oracle).
# Safe to run again: installs only what is missing, rebuilds fixtures only when absent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(bubblewrap libfuse2 fuse3 xz-utils zstd bzip2 nix-bin busybox-static jq nginx-light bindfs time openssl)
# test/vm guests: qemu, a kernel with 9p as modules (the cloud kernel has no 9p), cpio. Installed
# without Recommends, which would add qemu's GTK/SDL front ends, OVMF, firmware and apparmor.
vm_pkgs=(qemu-system-x86 linux-image-amd64 cpio)
need=()
need_vm=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
for p in "${vm_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_vm+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${need[*]} (run as root, or: apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "setup: apt-get install -y ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${need[@]}" >/dev/null
fi
if [ ${#need_vm[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${need_vm[*]} (run as root, or: apt-get install -y --no-install-recommends ${need_vm[*]})" >&2
    exit 1
  fi
  echo "setup: apt-get install -y --no-install-recommends ${need_vm[*]}"
  export DEBIAN_FRONTEND=noninteractive
  [ ${#need[@]} -gt 0 ] || apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${need_vm[@]}" >/dev/null
fi

# npm dependencies: after libfuse2, so fuse-native's prebuilt addon finds libfuse.so.2.
# Reinstalled when package-lock.json is newer than the installed tree.
if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci"
  log="${TMPDIR:-/tmp}/lazystore-npm-ci.log"
  # vite is held at 7 (package.json "overrides"): vite 8 declares an optional dependency the
  # registry does not serve, and npm ci then refuses the lock file.
  if ! (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts >"$log" 2>&1); then
    echo "setup: npm ci failed; its log ($log) ends:" >&2; tail -15 "$log" >&2; exit 1
  fi
fi
if ! (cd "$here" && node -e "require('fuse-native')") 2>/dev/null; then
  echo "setup: rebuilding fuse-native against libfuse2"
  (cd "$here" && npm rebuild fuse-native >/dev/null)
fi

# The addons in native/: fuse_backing.c (FUSE passthrough: two ioctls Node cannot make) and
# store_lock.c (store locks without the event loop). Without a C compiler everything still
# works: reads through the mount go through the daemon, locks through net.Server.
stale=""
for a in fuse_backing store_lock; do
  [ -f "$here/build/Release/$a.node" ] && ! [ "$here/native/$a.c" -nt "$here/build/Release/$a.node" ] || stale=1
done
if [ -n "$stale" ]; then
  echo "setup: building the native addons (node-gyp)"
  log="${TMPDIR:-/tmp}/lazystore-node-gyp.log"
  (cd "$here" && npm run --silent build:native >"$log" 2>&1) || \
    echo "setup: the native addons did not build (see $log); lazystore works without them, a little slower" >&2
fi

# Reference fixtures from real Nix 2.8 (~60 s once). Found beside the repo as ../shared.
export FIXTURES=${LAZYSTORE_FIXTURES:-/tmp/nix-reference}
script=""
for c in "$here/../shared/nix-reference/make-fixtures.sh" "$here/scripts/make-fixtures.sh"; do
  [ -f "$c" ] && { script=$c; break; }
done
if [ ! -f "$FIXTURES/manifest.json" ] || ! [ -e /nix/store ] || \
   ! [ -e "$(jq -r '.derivations[0].outputs.out.path' "$FIXTURES/manifest.json")" ]; then
  [ -n "$script" ] || {
    echo "setup: no reference fixtures at $FIXTURES (manifest.json with its outputs in /nix/store), and no script to make them:" >&2
    echo "setup:   looked for $here/../shared/nix-reference/make-fixtures.sh and $here/scripts/make-fixtures.sh" >&2
    echo "setup: put make-fixtures.sh in one of those places, or set LAZYSTORE_FIXTURES to existing fixtures" >&2
    exit 1; }
  echo "setup: making reference fixtures with real Nix into $FIXTURES (about a minute)"
  TIMING=${TIMING:-0} bash "$script" > "${TMPDIR:-/tmp}/lazystore-fixtures.log" 2>&1 || {
    echo "setup: make-fixtures.sh failed; log:" >&2; tail -30 "${TMPDIR:-/tmp}/lazystore-fixtures.log" >&2; exit 1; }
fi
