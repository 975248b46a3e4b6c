#!/bin/sh
# Writes a C file that defines `const char NAME[]` holding FILE's bytes, NUL-terminated.
#   scripts/embed.sh NAME FILE > out.c
set -eu
name=$1
file=$2
printf '/* Generated from %s by scripts/embed.sh; do not edit. */\n' "$file"
printf 'const char %s[] = {\n' "$name"
od -An -v -tx1 "$file" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/    /'
printf '    0x00};\n'
