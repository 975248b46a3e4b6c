#!/usr/bin/env bash
# Stops the server tests/pg/start.sh started in FOLDER and deletes FOLDER; with --keep, only
# stops it (start.sh FOLDER starts it again, with its data).
#
#   tests/pg/stop.sh FOLDER [--keep]
set -euo pipefail
dir=${1:?usage: tests/pg/stop.sh FOLDER [--keep]}
keep=${2:-}
[ -f "$dir/port" ] || [ -d "$dir/data" ] || { echo "tests/pg/stop.sh: $dir holds no test server" >&2; exit 1; }

bindir=
for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r) \
  "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"; do
  [ -x "$d/pg_ctl" ] && { bindir=$d; break; }
done
as_owner=()
[ "$(id -u)" -eq 0 ] && as_owner=(runuser -u postgres --)

status=0
if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || status=1
fi
if [ "$keep" != "--keep" ]; then
  rm -rf "$dir"
fi
exit "$status"
