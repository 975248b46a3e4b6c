#!/usr/bin/env bash
# Routing decision time, one core: builds bench/route_decision.c with the route module (and what it
# links: config, privacy, resil, core) optimized as a release is, then times sb_route_decide
# without the PII scan next to an empty call and a memcpy of a 2 KiB body in the same process.
# Target: a decision in <= 5 us.
#
#   bench/route_decision.sh [calls per run (default 1000000)] [runs (default 5)]
#
# Environment: BUILD (default build/bench), CC (default cc), CPU (the core to pin to, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build/bench}
cc=${CC:-cc}
cpu=${CPU:-1}
mkdir -p "$build/gen"

# The driver and just what it needs; the embedded default config comes from config/default.yaml.
scripts/embed.sh sb__default_config_text config/default.yaml > "$build/gen/default_config.c"
srcs=(bench/route_decision.c src/route/route.c src/route/input.c src/config/*.c src/privacy/*.c
      src/resil/*.c src/metrics/*.c src/core/*.c "$build/gen/default_config.c")
pkgs="libhs yaml-0.1 libevent"
bin="$build/route_decision"
# shellcheck disable=SC2046,SC2086
"$cc" -std=c11 -O2 -g -DNDEBUG -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc \
  $(pkg-config --cflags $pkgs) -o "$bin" "${srcs[@]}" $(pkg-config --libs $pkgs) -lstdc++ -lm \
  -pthread

# What the numbers depend on.
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
pin=()
if command -v taskset >/dev/null 2>&1 && [ "$cpu" -lt "$(nproc)" ]; then
  pin=(taskset -c "$cpu")
  echo "pinned to cpu $cpu"
fi
"${pin[@]}" "$bin" "${1:-1000000}" "${2:-5}"
