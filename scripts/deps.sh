#!/usr/bin/env bash
# Installs what Switchboard needs to build and test: Debian packages, and llama.cpp at the pinned
# release, built once as static libraries into a cache outside the work tree.
#
#   scripts/deps.sh            everything (packages + llama.cpp)
#   scripts/deps.sh packages   Debian packages only
#   scripts/deps.sh llama      llama.cpp only; prints nothing else
#   scripts/deps.sh prefix     prints the llama.cpp install prefix (building it if missing)
#   scripts/deps.sh llama-server   builds llama.cpp's own server from the same pinned release and
#                              flags into PREFIX/bin (once), for bench/; prints its path
#
# Environment: SB_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchboard), LLAMA_CUDA=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${SB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard}
# The build uses -march=native, so the key includes the CPU's feature flags: a cache carried to a
# different processor is rebuilt instead of dying on an illegal instruction.
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-8)
variant=cpu
[ "${LLAMA_CUDA:-0}" = 1 ] && variant=cuda
prefix="$cache/llama.cpp-$LLAMA_CPP_TAG-$variant-$cpu_key"

log() { printf 'deps: %s\n' "$*" >&2; }

# Debian packages: the -dev package is what a build needs, the tool is what tests use.
packages=(
  build-essential pkg-config cmake git ca-certificates
  libevent-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libsqlite3-dev libssl-dev
  libcriterion-dev zlib1g-dev libvectorscan-dev
  prometheus
  chromium
  libpq-dev postgresql
  wrk
)
# Tools wanted as commands: any install that provides the command will do (Node.js may come from
# elsewhere than Debian, with its own npm; openssl makes the TLS tests' certificates).
tools=(node:nodejs npm:npm openssl:openssl)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  for t in "${tools[@]}"; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A system llama.cpp is used when pkg-config finds the pinned release laid out as the build below
# lays it out: static libraries (common's included) in PREFIX/lib, headers in PREFIX/include, and
# common's sources in PREFIX/src/common for the chat shim. Prints its prefix.
system_llama() {
  pkg-config --exists llama 2>/dev/null || return 1
  [ "$(pkg-config --variable=version llama 2>/dev/null)" = "$LLAMA_CPP_SYSTEM_VERSION" ] || return 1
  local p
  p=$(pkg-config --variable=prefix llama)
  [ -f "$p/lib/libllama-common.a" ] && [ -f "$p/src/common/chat.h" ] || return 1
  echo "$p"
}

build_llama() {
  [ -f "$prefix/.complete" ] && return 0
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/sb-llama.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  log "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION for llama.cpp $LLAMA_CPP_TAG"
  (cd "$work" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null)
  tar -xzf "$work"/node-llama-cpp-*.tgz -C "$work" package/llama/gitRelease.bundle
  git clone -q "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null
  local head
  head=$(git -C "$work/src" rev-parse --short=7 HEAD)
  if [ "$head" != "$LLAMA_CPP_COMMIT" ]; then
    log "bundle is at $head, expected $LLAMA_CPP_COMMIT: update scripts/versions.env"
    return 1
  fi
  local cuda=OFF
  [ "$variant" = cuda ] && cuda=ON
  log "building llama.cpp $LLAMA_CPP_TAG ($variant) into $prefix"
  cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=ON \
    -DGGML_NATIVE=ON -DGGML_CUDA="$cuda" -DGGML_CUDA_NCCL=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$work/cmake.log" 2>&1 ||
    { tail -30 "$work/cmake.log" >&2; return 1; }
  cmake --build "$work/build" -j "$(nproc)" --target llama llama-common >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log" >&2; return 1; }
  rm -rf "$prefix.tmp" && mkdir -p "$prefix.tmp/lib" "$prefix.tmp/include" "$prefix.tmp/src"
  find "$work/build" -name '*.a' -exec cp {} "$prefix.tmp/lib/" \;
  cp "$work/src"/include/*.h "$work/src"/ggml/include/*.h "$prefix.tmp/include/"
  # The chat shim compiles against common's headers and the vendored JSON library they include.
  cp -r "$work/src/common" "$work/src/vendor" "$prefix.tmp/src/"
  cp -r "$work/src/models" "$prefix.tmp/src/" 2>/dev/null || true
  echo "$LLAMA_CPP_TAG $LLAMA_CPP_COMMIT $variant" >"$prefix.tmp/.complete"
  rm -rf "$prefix" && mv "$prefix.tmp" "$prefix"
}

# llama.cpp's own server, for the benchmark that compares Switchboard's local backend against it:
# the same bundle and the same CPU flags as the libraries above, so the two serve with the same
# kernels. Built once into PREFIX/bin; nothing in the build or the tests needs it.
build_llama_server() {
  build_llama || return 1
  local bin="$prefix/bin/llama-server"
  if [ ! -x "$bin" ]; then
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/sb-llama-server.XXXXXX")
    trap 'rm -rf "$work"' RETURN
    log "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION for llama-server $LLAMA_CPP_TAG"
    (cd "$work" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null)
    tar -xzf "$work"/node-llama-cpp-*.tgz -C "$work" package/llama/gitRelease.bundle
    git clone -q "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null
    local head
    head=$(git -C "$work/src" rev-parse --short=7 HEAD)
    if [ "$head" != "$LLAMA_CPP_COMMIT" ]; then
      log "bundle is at $head, expected $LLAMA_CPP_COMMIT: update scripts/versions.env"
      return 1
    fi
    local cuda=OFF
    [ "$variant" = cuda ] && cuda=ON
    log "building llama-server $LLAMA_CPP_TAG ($variant) into $prefix/bin (a few minutes)"
    cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=ON \
      -DGGML_NATIVE=ON -DGGML_CUDA="$cuda" -DGGML_CUDA_NCCL=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$work/cmake.log" 2>&1 ||
      { tail -30 "$work/cmake.log" >&2; return 1; }
    cmake --build "$work/build" -j "$(nproc)" --target llama-server >"$work/build.log" 2>&1 ||
      { tail -40 "$work/build.log" >&2; return 1; }
    mkdir -p "$prefix/bin"
    cp "$work/build/bin/llama-server" "$bin.tmp" && mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

case "${1:-all}" in
  packages) install_packages ;;
  llama) build_llama ;;
  prefix) system_llama || { build_llama && echo "$prefix"; } ;;
  llama-server) build_llama_server ;;
  all) install_packages && build_llama ;;
  *) echo "usage: scripts/deps.sh [all|packages|llama|prefix|llama-server]" >&2; exit 2 ;;
esac
