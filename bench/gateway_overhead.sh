#!/usr/bin/env bash
# Gateway overhead: Switchboard (release, no local model) proxying POST /v1/chat/completions to a
# loopback OpenAI-compatible upstream (bench/loopback_upstream.c: one thread, epoll, a fixed
# chat.completion as JSON or as a stream), against the same upstream hit directly, in the same run.
# Load comes from wrk with bench/gateway_overhead.lua (a ~600-byte chat request, no PII).
#
# Measured for the upstream alone and then through three Switchboard configs, one after the other:
#   proxy       policy {default: none}, ledger off        (the bare proxy path)
#   ledger      policy {default: none}, SQLite ledger on  (the ledger is on in production)
#   production  the default hybrid routing (PII scan on), SQLite ledger on
# each with: one connection, sequential, JSON and streamed -> latency p50/p99, and what Switchboard
# adds to the direct figure (JSON once more with everything on one core, which leaves out the
# wake-ups across cores that a virtual machine makes dear); 32 connections (JSON; streamed too for proxy) -> req/s and the ratio to
# direct and to the Portkey anchor; Switchboard's CPU time per request under load; and its RSS at
# idle, after one request, at peak under load and after the load (VmRSS, VmHWM, and RssAnon: what
# is its own rather than shared-library pages).
#
# Targets (docs/benchmarks.md): added p50 well under 100 us; throughput many times the 2,200 req/s
# that Portkey's Node gateway served here at 32 connections (+0.47 ms p50 at one connection,
# ~200 MB RSS); RSS a few MB, flat under load.
#
#   bench/gateway_overhead.sh
#
# About 2.5 minutes. Processes are pinned on a machine with 2 or more cores: Switchboard (all its
# threads) to the last core, the upstream and wrk to the others, so the gateway has one core to
# itself and the baseline never competes with it (PIN=0 leaves placement to the scheduler).
# Environment: SWITCHBOARD_BIN (a release binary to use instead of building build/release),
# BUILD (for the upstream, default build/bench), CC, PORT_UP / PORT_SB (default 18451 / 18452),
# SECONDS_1 (one-connection runs, default 5), SECONDS_N (32-connection runs, default 10),
# CONNS (default 32), PIN (default 1).
# Not a test: nothing here fails on a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build/bench}
cc=${CC:-cc}
port_up=${PORT_UP:-18451}
port_sb=${PORT_SB:-18452}
secs1=${SECONDS_1:-5}
secsn=${SECONDS_N:-10}
conns=${CONNS:-32}
anchor_rps=2200
anchor_p50_us=470
say() { printf 'bench: %s\n' "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

command -v wrk >/dev/null 2>&1 || { say "wrk is missing: scripts/deps.sh packages installs it"; exit 1; }

# ---------------------------------------------------------------------------------------------
# What is measured: Switchboard in release; the upstream, optimized
# ---------------------------------------------------------------------------------------------
if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  sb_bin=$SWITCHBOARD_BIN
else
  say "building Switchboard (release)"
  make --no-print-directory MODE=release BUILD=build/release >&2
  sb_bin=build/release/switchboard
fi
mkdir -p "$build"
up_bin="$build/loopback_upstream"
"$cc" -std=c11 -O2 -Wall -Wextra -Werror -o "$up_bin" bench/loopback_upstream.c

# Placement: Switchboard alone on the last core; the upstream and the load generator elsewhere.
ncpu=$(nproc)
pin_sb=() pin_rest=() pin_note="not pinned" last=$((ncpu - 1)) rest=0
if [ "${PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  [ "$ncpu" -gt 2 ] && rest="0-$((ncpu - 2))"
  pin_sb=(taskset -c "$last")
  pin_rest=(taskset -c "$rest")
  pin_note="switchboard (all its threads) on cpu $last; upstream and wrk on cpu $rest;"
  pin_note="$pin_note 'one core' rows: all three on cpu $last"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sb-gw-bench.XXXXXX")
pids=()
stop() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
trap 'stop "${pids[@]}"; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port_up" "$port_sb"; do
  port_free "$p" || { say "port $p is in use; set PORT_UP / PORT_SB"; exit 1; }
done

# Waits (at most 20 s) until a chat request on `port` answers 200 with a completion.
wait_ready() {
  local port=$1 pid=$2 label=$3
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { say "$label exited while starting:"; cat "$work/$label.log" >&2; exit 1; }
    if curl -s -m 2 -H 'Content-Type: application/json' \
      -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' \
      "http://127.0.0.1:$port/v1/chat/completions" 2>/dev/null | grep -q '"chat.completion"'; then
      return 0
    fi
    sleep 0.1
  done
  say "$label did not answer in 20 s:"; cat "$work/$label.log" >&2; exit 1
}

# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------
# run PORT CONNS SECONDS STREAM -> the Lua script's "result ..." line
run_wrk() {
  BENCH_STREAM=$4 "${pin_rest[@]}" wrk -t1 -c"$2" -d"$3"s -s bench/gateway_overhead.lua \
    "http://127.0.0.1:$1" | grep '^result ' || echo "result requests=0 seconds=0 rps=0 p50_us=0 p90_us=0 p99_us=0 max_us=0 errors=-1 non2xx=-1"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
tck=$(getconf CLK_TCK)

# Results, keyed "target/case/figure".
declare -A R
# measure TARGET PORT [PID]: the one-connection and many-connection runs, with RSS and CPU of PID.
measure() {
  local target=$1 port=$2 pid=${3:-} line mode s peak rss c0 c1 sampler
  run_wrk "$port" "$conns" 1 0 >/dev/null # warm-up: connections opened, caches warm
  for mode in json stream; do
    s=0; [ $mode = stream ] && s=1
    line=$(run_wrk "$port" 1 "$secs1" "$s")
    R[$target/c1_$mode/p50]=$(field "$line" p50_us)
    R[$target/c1_$mode/p99]=$(field "$line" p99_us)
    R[$target/c1_$mode/rps]=$(field "$line" rps)
    R[$target/c1_$mode/err]=$(( $(field "$line" errors) + $(field "$line" non2xx) ))
  done
  # One connection again with the upstream and wrk on Switchboard's core: no wake-ups across
  # cores, so what is left is the work itself.
  if [ ${#pin_sb[@]} -gt 0 ]; then
    taskset -pc "$last" "$up_pid" >/dev/null
    line=$(BENCH_STREAM=0 taskset -c "$last" wrk -t1 -c1 -d"$secs1"s -s bench/gateway_overhead.lua \
      "http://127.0.0.1:$port" | grep '^result ' || echo "result p50_us=0 p99_us=0 errors=-1 non2xx=0")
    taskset -pc "$rest" "$up_pid" >/dev/null
    R[$target/c1_one/p50]=$(field "$line" p50_us)
    R[$target/c1_one/p99]=$(field "$line" p99_us)
    R[$target/c1_one/err]=$(( $(field "$line" errors) + $(field "$line" non2xx) ))
  fi
  for mode in json stream; do
    # Streamed at many connections only for the bare proxy and the direct baseline.
    [ $mode = stream ] && [ "$target" != direct ] && [ "$target" != proxy ] && continue
    s=0; [ $mode = stream ] && s=1
    if [ -n "$pid" ]; then
      c0=$(cpu_ticks "$pid")
      ( peak=0; while sleep 0.25; do
          rss=$(kb "$pid" VmRSS); [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" >"$work/peak"
        done ) & sampler=$!
    fi
    line=$(run_wrk "$port" "$conns" "$secsn" "$s")
    R[$target/cn_$mode/rps]=$(field "$line" rps)
    R[$target/cn_$mode/p50]=$(field "$line" p50_us)
    R[$target/cn_$mode/p99]=$(field "$line" p99_us)
    R[$target/cn_$mode/err]=$(( $(field "$line" errors) + $(field "$line" non2xx) ))
    if [ -n "$pid" ]; then
      c1=$(cpu_ticks "$pid")
      kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
      R[$target/cn_$mode/cpu_us]=$(awk -v t=$((c1 - c0)) -v hz="$tck" -v n="$(field "$line" requests)" \
        'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
      peak=$(cat "$work/peak" 2>/dev/null || echo 0)
      [ "$peak" -gt "${R[$target/rss_peak]:-0}" ] && R[$target/rss_peak]=$peak
    fi
    say "$target $mode x$conns: $(field "$line" rps) req/s (load $(loadavg))"
  done
}

echo "Switchboard gateway overhead, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $ncpu cores," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load average at start $(loadavg)"
echo "switchboard: $sb_bin${SWITCHBOARD_BIN:+ (SWITCHBOARD_BIN)}; upstream: $up_bin (1 thread, epoll);" \
  "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), 1 thread"
echo "placement: $pin_note"
echo "load: POST /v1/chat/completions, a ~600-byte chat request (bench/gateway_overhead.lua);" \
  "1 connection ${secs1} s per mode, $conns connections ${secsn} s; each after a 1 s warm-up"

"${pin_rest[@]}" "$up_bin" "$port_up" >"$work/upstream.log" 2>&1 &
up_pid=$!
pids+=("$up_pid")
wait_ready "$port_up" "$up_pid" upstream
say "direct to the upstream"
measure direct "$port_up"

configs=(proxy ledger production)
declare -A NOTE=(
  [proxy]="policy {default: none}, ledger off"
  [ledger]="policy {default: none}, SQLite ledger on"
  [production]="default hybrid routing (PII scan), SQLite ledger on"
)
for cfg in "${configs[@]}"; do
  {
    printf 'listen: {host: 127.0.0.1, port: %s}\nlog_level: warn\n' "$port_sb"
    printf 'models:\n  - name: bench\n    backend: openai\n'
    printf '    base_url: http://127.0.0.1:%s/v1\n    upstream_model: bench-upstream\n' "$port_up"
    case $cfg in
      proxy) printf 'ledger: {path: ""}\npolicy: {default: none}\n' ;;
      ledger) printf 'ledger: {path: %s/ledger-%s.db}\npolicy: {default: none}\n' "$work" "$cfg" ;;
      production) printf 'ledger: {path: %s/ledger-%s.db}\n' "$work" "$cfg" ;;
    esac
  } >"$work/$cfg.yaml"
  say "through switchboard: $cfg (${NOTE[$cfg]})"
  "${pin_sb[@]}" "$sb_bin" serve --config "$work/$cfg.yaml" >"$work/$cfg.log" 2>&1 &
  sb_pid=$!
  pids+=("$sb_pid")
  for _ in $(seq 100); do port_free "$port_sb" || break; sleep 0.05; done
  sleep 0.2
  R[$cfg/rss_idle]=$(kb "$sb_pid" VmRSS)
  R[$cfg/anon_idle]=$(kb "$sb_pid" RssAnon)
  wait_ready "$port_sb" "$sb_pid" "$cfg"
  R[$cfg/rss_first]=$(kb "$sb_pid" VmRSS)
  rm -f "$work/peak"
  measure "$cfg" "$port_sb" "$sb_pid"
  sleep 0.5
  R[$cfg/rss_after]=$(kb "$sb_pid" VmRSS)
  R[$cfg/anon_after]=$(kb "$sb_pid" RssAnon)
  R[$cfg/hwm]=$(kb "$sb_pid" VmHWM)
  R[$cfg/threads]=$(kb "$sb_pid" Threads)
  stop "$sb_pid"
  pids=("$up_pid")
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
echo
printf '%-34s %9s' "latency, 1 connection (us)" direct
for cfg in "${configs[@]}"; do printf ' %12s' "$cfg"; done
printf '   %s\n' "target"
for mode in json stream one; do
  [ -n "${R[direct/c1_$mode/p50]:-}" ] || continue
  for q in p50 p99; do
    label="$mode $q"; [ $mode = one ] && label="json $q, one core"
    printf '%-34s %9s' "$label" "${R[direct/c1_$mode/$q]}"
    for cfg in "${configs[@]}"; do printf ' %12s' "${R[$cfg/c1_$mode/$q]}"; done
    echo
    printf '%-34s %9s' "  added by switchboard" ""
    for cfg in "${configs[@]}"; do
      a=${R[$cfg/c1_$mode/$q]} b=${R[direct/c1_$mode/$q]}
      printf ' %12s' "$(printf '%+d' $((a - b)))"
    done
    [ $q = p50 ] && printf '   %s' "< +100 (Portkey: +$anchor_p50_us)"
    echo
  done
done
echo
printf '%-34s %9s' "throughput, $conns connections (req/s)" direct
for cfg in "${configs[@]}"; do printf ' %12s' "$cfg"; done
echo
for mode in json stream; do
  [ -n "${R[direct/cn_$mode/rps]:-}" ] || continue
  printf '%-34s %9.0f' "$mode" "${R[direct/cn_$mode/rps]}"
  for cfg in "${configs[@]}"; do
    [ -n "${R[$cfg/cn_$mode/rps]:-}" ] && printf ' %12.0f' "${R[$cfg/cn_$mode/rps]}" || printf ' %12s' -
  done
  echo
  printf '%-34s %9s' "  / direct" ""
  for cfg in "${configs[@]}"; do
    [ -n "${R[$cfg/cn_$mode/rps]:-}" ] || { printf ' %12s' -; continue; }
    printf ' %12s' "$(awk -v a="${R[$cfg/cn_$mode/rps]:-0}" -v b="${R[direct/cn_$mode/rps]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
  done
  echo
  printf '%-34s %9s' "  / Portkey anchor ($anchor_rps)" ""
  for cfg in "${configs[@]}"; do
    [ -n "${R[$cfg/cn_$mode/rps]:-}" ] || { printf ' %12s' -; continue; }
    printf ' %12s' "$(awk -v a="${R[$cfg/cn_$mode/rps]:-0}" -v b=$anchor_rps 'BEGIN { printf "%.1fx", a / b }')"
  done
  printf '   %s\n' "many times"
  printf '%-34s %9s' "  p50 / p99 latency (us)" "${R[direct/cn_$mode/p50]}/${R[direct/cn_$mode/p99]}"
  for cfg in "${configs[@]}"; do
    [ -n "${R[$cfg/cn_$mode/p50]:-}" ] && printf ' %12s' "${R[$cfg/cn_$mode/p50]}/${R[$cfg/cn_$mode/p99]}" || printf ' %12s' -
  done
  echo
  printf '%-34s %9s' "  switchboard CPU per request (us)" ""
  for cfg in "${configs[@]}"; do printf ' %12s' "${R[$cfg/cn_$mode/cpu_us]:--}"; done
  echo
done
echo
printf '%-34s %9s' "switchboard memory (MB)" ""
for cfg in "${configs[@]}"; do printf ' %12s' "$cfg"; done
echo
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
for row in "rss_idle:VmRSS at idle (started)" "rss_first:VmRSS after one request" \
  "rss_peak:VmRSS peak under load" "rss_after:VmRSS after the load" "hwm:VmHWM (high-water mark)" \
  "anon_idle:RssAnon at idle (own pages)" "anon_after:RssAnon after the load"; do
  printf '%-34s %9s' "${row#*:}" ""
  for cfg in "${configs[@]}"; do printf ' %12s' "$(mb "${R[$cfg/${row%%:*}]:-0}")"; done
  case ${row%%:*} in
    hwm) printf '   %s' "a few MB, flat (Portkey: ~200 MB)" ;;
  esac
  echo
done
printf '%-34s %9s' "threads" ""
for cfg in "${configs[@]}"; do printf ' %12s' "${R[$cfg/threads]}"; done
echo
errs=0
for k in "${!R[@]}"; do case $k in */err) errs=$((errs + R[$k])) ;; esac; done
echo
echo "failed requests (socket errors + non-2xx), all runs: $errs"
echo "added = switchboard - direct at the same percentile; a JSON client makes switchboard ask the" \
  "upstream for a stream (it always does) and assemble the JSON, so 'json' includes that work"
echo "load average at end $(loadavg)"
