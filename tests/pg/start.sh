#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the ledger's tests and prints how to reach it, one
# key=value a line:
#   dir=FOLDER        the server's folder (data, socket, log); give it to stop.sh
#   port=PORT         on 127.0.0.1, and the Unix socket in FOLDER
#   password=SECRET   of the role "switchboard", which owns the database "switchboard"
#   url=postgres://switchboard:SECRET@127.0.0.1:PORT/switchboard
#   psql=PATH         the psql that goes with the server
#
#   tests/pg/start.sh            a new server in a new folder under $TMPDIR
#   tests/pg/start.sh FOLDER     starts the server of FOLDER again (after stop.sh FOLDER --keep),
#                                on the same port
#
# TCP connections need the password (scram-sha-256); the socket trusts the local superuser. The
# server runs with fsync off: it is for tests. PostgreSQL refuses to run as root, so as root the
# server runs as the user postgres (Debian's package makes it), which then owns FOLDER.
# Exits non-zero with a message on stderr when no server can be started: tests fail, not skip.
set -euo pipefail

die() {
  printf 'tests/pg/start.sh: %s\n' "$*" >&2
  exit 1
}

# The server's programs: Debian keeps them out of PATH, under /usr/lib/postgresql/VERSION/bin
# (the newest is taken); elsewhere they are on PATH.
find_bindir() {
  local d
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r) \
    "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && [ -x "$d/psql" ]; then
      echo "$d"
      return
    fi
  done
  return 1
}

bindir=$(find_bindir) ||
  die "no PostgreSQL server found (initdb, pg_ctl, postgres, psql): install Debian's postgresql package (scripts/deps.sh installs it)"

# Runs a command as the user the server runs as.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 ||
    die "running as root, and there is no user postgres to run the server as (PostgreSQL refuses root)"
  as_owner=(runuser -u postgres --)
fi

start_server() {
  local dir=$1 port=$2
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40 -c shared_buffers=16MB" \
    >/dev/null 2>&1
}

print_env() {
  local dir=$1 port password
  port=$(cat "$dir/port")
  password=$(cat "$dir/password")
  printf 'dir=%s\nport=%s\npassword=%s\nurl=postgres://switchboard:%s@127.0.0.1:%s/switchboard\npsql=%s\n' \
    "$dir" "$port" "$password" "$password" "$port" "$bindir/psql"
}

if [ $# -ge 1 ]; then
  dir=$1
  [ -f "$dir/port" ] || die "$dir holds no server made by this script"
  start_server "$dir" "$(cat "$dir/port")" ||
    die "the server in $dir did not start again: $(tail -n 5 "$dir/server.log" 2>/dev/null)"
  print_env "$dir"
  exit 0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/sb-pg.XXXXXX") || die "cannot make a folder under ${TMPDIR:-/tmp}"
# On any failure from here on, the half-made server goes.
cleanup() {
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
chmod 700 "$dir"
[ ${#as_owner[@]} -gt 0 ] && chown postgres: "$dir"
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$password" >"$dir/password"

"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U sbadmin -E UTF8 --no-locale \
  --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
  die "initdb failed in $dir: $(tail -n 5 "$dir/initdb.log")"

# A free port: try random ones until the server binds one (another test may take any we probe).
started=
for _ in $(seq 1 30); do
  port=$((20000 + RANDOM % 40000))
  if start_server "$dir" "$port"; then
    started=1
    break
  fi
done
[ -n "$started" ] || die "the server did not start in $dir: $(tail -n 5 "$dir/server.log" 2>/dev/null)"
printf '%s\n' "$port" >"$dir/port"

"${as_owner[@]}" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U sbadmin -d postgres \
  -c "CREATE ROLE switchboard LOGIN PASSWORD '$password'" \
  -c "CREATE DATABASE switchboard OWNER switchboard" >"$dir/setup.log" 2>&1 ||
  die "cannot create the test role and database: $(tail -n 5 "$dir/setup.log")"

trap - EXIT
print_env "$dir"
