#!/usr/bin/env bash
# Static checks: formatting (clang-format), cppcheck, and a grep for functions the house style bans.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(find src tests -name '*.[ch]' -not -path 'tests/fuzz/corpus/*' | sort)

echo "== clang-format"
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files || status=1

echo "== banned functions"
# Unbounded or ambiguous C library calls; see STYLE.md. Comments mentioning them are fine.
banned='\b(sprintf|vsprintf|strcat|strncat|strcpy|strncpy|strtok|sscanf|gets|atoi|atol)\s*\('
# shellcheck disable=SC2086
if grep -nE "$banned" $files | grep -vE '^\S+:[0-9]+:\s*(/?\*|//)'; then
  echo "banned functions used (use snprintf / sb_buf / strtol instead)"
  status=1
fi

echo "== cppcheck"
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
  --suppress=missingIncludeSystem --inline-suppr -Isrc src || status=1

[ "$status" -eq 0 ] && echo "check: ok"
exit "$status"
