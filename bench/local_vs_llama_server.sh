#!/usr/bin/env bash
# Switchboard's local backend against llama.cpp's own llama-server: the same llama.cpp release, the
# same GGUF (a random-weight model in Llama-3.2-1B's shapes, Q4_0), the same threads, slots and
# per-slot context, served one after the other on loopback and driven by bench/client.mjs with the
# same streamed /v1/completions requests. Prints, side by side with ratios Switchboard /
# llama-server: single-stream generation tokens/s and time to first token for a ~500-token prompt;
# aggregate tokens/s and p50/p99 TTFT with 8 concurrent streams (~100-token prompts); and TTFT for
# a ~1,000-token prompt cold, then warm with its prefix cached (the same prefix back to back, and
# two prefixes in turn, as two tenants with their own system prompts). Targets: throughput ratio
# >= 0.95, TTFT ratio <= 1.05, and a clear warm-over-cold TTFT win.
#
#   bench/local_vs_llama_server.sh
#
# Both servers are loaded, but only one is ever busy: every measurement (a request, or a burst of
# 8) runs on one and then on the other, the order swapped each time, so the two never compete for
# cores while slow drift of a shared machine falls on both alike; the idle server's CPU time is
# printed to show it stays out of the way. Samples: 4 single-stream pairs, 2 bursts of 8, 2
# prefixes cold, 3 warm back to back, 4 mixed (BENCH_* in bench/client.mjs change them). It takes
# about 9 minutes on 2 cores (more where prefixes miss the cache), after the one-time builds
# (Switchboard in release; llama-server about 5 minutes, longer on a busy machine; the 0.7 GB
# model about 30 s).
#
# Environment: SWITCHBOARD_BIN (a release binary to use instead of building build/release),
# BENCH_MODEL (a GGUF to use instead of the synthetic one), SLOTS (default 4),
# THREADS (default cores - 1, Switchboard's default), CTX (per-slot context, default 2048),
# PORT_SB / PORT_LS (default 18431 / 18432), BENCH_* sizes (see bench/client.mjs),
# BENCH_TIMEOUT_S (the whole measurement, default 1200), SB_CACHE.
# Not a test: nothing here fails on a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
slots=${SLOTS:-4}
threads=${THREADS:-$(($(nproc) > 1 ? $(nproc) - 1 : 1))}
ctx=${CTX:-2048}
port_sb=${PORT_SB:-18431}
port_ls=${PORT_LS:-18432}
cache=${SB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard}
say() { printf 'bench: %s\n' "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
# What is measured: Switchboard in release, llama-server from the pinned release, one model.
# ---------------------------------------------------------------------------------------------
if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  sb_bin=$SWITCHBOARD_BIN
else
  say "building Switchboard (release)"
  make --no-print-directory MODE=release BUILD=build/release >&2
  sb_bin=build/release/switchboard
fi
say "ensuring llama-server (built once; about 5 minutes the first time)"
ls_bin=$(scripts/deps.sh llama-server)
llama_prefix=$(scripts/deps.sh prefix)

model_note=""
if [ -n "${BENCH_MODEL:-}" ]; then
  model=$BENCH_MODEL
  model_note="model: $model (BENCH_MODEL)"
else
  model="$cache/bench/llama-3.2-1b-q4_0.gguf"
  if [ ! -f "$model" ]; then
    mkdir -p "$cache/bench"
    vocab="$llama_prefix/src/models/ggml-vocab-llama-bpe.gguf"
    if "$sb_bin" models synth --shape llama-3.2-1b --type q4_0 --vocab "$vocab" \
      --out "$model.tmp" >&2; then
      mv "$model.tmp" "$model"
    else
      rm -f "$model.tmp"
      model=../shared/models/llama-2-tiny-random.gguf
      say "WARNING: models synth failed; falling back to the largest model here, $model"
    fi
  fi
  model_note="model: $(basename "$model") ($(du -h "$model" | cut -f1))"
  case $model in *tiny-random*) model_note="$model_note -- NOT a realistic size: synth was unavailable" ;; esac
fi
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")

# ---------------------------------------------------------------------------------------------
# Serving, one server at a time
# ---------------------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/sb-bench.XXXXXX")
pids=()
stop_servers() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_servers; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port_sb" "$port_ls"; do
  port_free "$p" || { say "port $p is in use; set PORT_SB / PORT_LS"; exit 1; }
done

cat >"$work/switchboard.yaml" <<EOF
listen:
  host: 127.0.0.1
  port: $port_sb
log_level: warn
models:
  - name: bench
    backend: local
    path: $model
    context: $ctx
    parallel: $slots
    threads: $threads
ledger:
  path: $work/ledger.db
EOF

# Starts one server (its pid in $pid) and waits (at most 180 s) until it answers `ready_path` with 200.
start_server() {
  local label=$1 port ready
  case $label in
    switchboard)
      port=$port_sb ready=/ready
      "$sb_bin" serve --config "$work/switchboard.yaml" >"$work/$label.log" 2>&1 &
      ;;
    llama-server)
      # -c is the whole cache: slots x per-slot context, with per-slot (not unified) cells as
      # Switchboard lays them out; -np given, so llama-server keeps kv_unified off too.
      port=$port_ls ready=/health
      "$ls_bin" -m "$model" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" \
        -c $((ctx * slots)) -np "$slots" --alias bench >"$work/$label.log" 2>&1 &
      ;;
  esac
  pid=$!
  pids+=("$pid")
  for _ in $(seq 900); do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$label exited while starting:"; tail -20 "$work/$label.log" >&2; exit 1
    fi
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$ready")" = 200 ] && return 0
    sleep 0.2
  done
  say "$label did not become ready in 180 s:"; tail -20 "$work/$label.log" >&2; exit 1
}

echo "Switchboard local backend vs llama-server, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load average at start $(loadavg)"
echo "llama.cpp $(grep -E '^LLAMA_CPP_(TAG|COMMIT)=' scripts/versions.env | cut -d= -f2 | paste -sd' ')," \
  "$model_note"
echo "servers: $sb_bin${SWITCHBOARD_BIN:+ (SWITCHBOARD_BIN)}, $ls_bin"
echo "both: threads $threads, slots $slots, context $ctx per slot, max_tokens ${BENCH_MAX_TOKENS:-128}," \
  "temperature 0, streamed /v1/completions; requests paired and alternated (A B, B A, ...)"
start_server switchboard
pid_sb=$pid
start_server llama-server
pid_ls=$pid
timeout "${BENCH_TIMEOUT_S:-1200}" node bench/client.mjs run --model bench --out "$work/result.json" \
  --server "switchboard=http://127.0.0.1:$port_sb@$pid_sb" \
  --server "llama-server=http://127.0.0.1:$port_ls@$pid_ls"
stop_servers
echo
node bench/client.mjs report "$work/result.json" --note "load average at end $(loadavg)"
