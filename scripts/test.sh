#!/usr/bin/env bash
# Runs every test suite against the build in folder $1 and prints, as its last line,
# "N passed, N failed" over all of them. Exits non-zero if anything failed.
set -uo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=$(mktemp -d "${TMPDIR:-/tmp}/sb-test.XXXXXX")
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0

# Each suite: a name, a command, and a parser that prints "PASSED FAILED" from its log.
criterion_counts() {
  # "[====] Synthesis: Tested: 40 | Passing: 39 | Failing: 1 | Crashing: 0". A test that passes
  # but leaks still fails: each LeakSanitizer report a worker prints counts as one failure
  # (tests/unit/lsan_runner.c keeps the runner's own leaks out of the log).
  awk '/Synthesis:/ { for (i = 1; i <= NF; i++) { if ($i == "Passing:") p = $(i+1); if ($i == "Failing:") f = $(i+1); if ($i == "Crashing:") c = $(i+1) } }
       /ERROR: LeakSanitizer/ { leaks++ }
       END { if (p == "") { print "0 1" } else { print p - leaks, f + c + leaks } }' "$1"
}
node_counts() {
  # node --test's TAP summary: "# pass 12" / "# fail 0"
  awk '/^# pass / { p = $3 } /^# fail / { f = $3 } END { if (p == "") { print "0 1" } else { print p, f } }' "$1"
}

run_suite() {
  local name=$1 parser=$2
  shift 2
  local log="$logs/$name.log"
  printf '== %s\n' "$name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  read -r p f < <("$parser" "$log")
  # A runner that crashed without reporting a failure still counts as one.
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  printf '== %s: %d passed, %d failed\n\n' "$name" "$p" "$f"
  passed=$((passed + p))
  failed=$((failed + f))
}

export SWITCHBOARD_BIN="$root/$build/switchboard"
run_suite unit criterion_counts "$build/unit-tests" --jobs 2
# One test file at a time (each starts its own servers); Node 18, Debian 12's, lacks the flag and
# runs files one per spare core, which on two cores is one at a time as well.
serial=()
node --help 2>/dev/null | grep -q -- '--test-concurrency' && serial=(--test-concurrency=1)
run_suite integration node_counts node --test --test-reporter=tap "${serial[@]}" tests/integration/

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
