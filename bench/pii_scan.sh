#!/usr/bin/env bash
# PII scan throughput, one core: builds bench/pii_scan.c with the privacy module optimized, then
# scans seeded text without PII, with PII about every 2 KiB and about every 400 B, next to a byte
# loop and memchr over the same buffer in the same process. Target: >= 500 MB/s per core.
#
#   bench/pii_scan.sh [MiB per text (default 32)] [repetitions (default 5)]
#
# Environment: BUILD (default build/bench), CC (default cc), CPU (the core to pin to, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build/bench}
cc=${CC:-cc}
cpu=${CPU:-1}
mkdir -p "$build"

# The driver and just what it needs: the privacy module and core, optimized as a release is.
srcs=(bench/pii_scan.c src/privacy/*.c src/core/*.c)
bin="$build/pii_scan"
# shellcheck disable=SC2046
"$cc" -std=c11 -O2 -g -DNDEBUG -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc \
  $(pkg-config --cflags libhs) -o "$bin" "${srcs[@]}" $(pkg-config --libs libhs) -lstdc++ -lm \
  -pthread

# What the numbers depend on.
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg); vectorscan $(pkg-config --modversion libhs)"
pin=()
if command -v taskset >/dev/null 2>&1 && [ "$cpu" -lt "$(nproc)" ]; then
  pin=(taskset -c "$cpu")
  echo "pinned to cpu $cpu"
fi
"${pin[@]}" "$bin" "${1:-32}" "${2:-5}"
