#!/bin/sh
# A throwaway PostgreSQL cluster for trying the key server or benchmarking it:
#   scripts/pg-dev-cluster.sh start DIR   -> prints a URL for --server-db
#   scripts/pg-dev-cluster.sh stop DIR
# Unix socket in DIR/sock, no TCP.  As root the cluster runs as the postgres user.
# (The test suite needs none of this: tests/server/conftest.py starts its own cluster.)
set -eu
cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || bindir=$(dirname "$(command -v initdb)")
as=""
if [ "$(id -u)" = 0 ]; then as="runuser -u postgres --"; fi
case "$cmd" in
start)
  mkdir -p "$dir/sock"
  [ -z "$as" ] || chown -R postgres "$dir"
  [ -d "$dir/data" ] || $as "$bindir/initdb" -D "$dir/data" -A trust -U bluezone -E UTF8 >/dev/null
  # already running (a second start to see the URL again): say the URL, as the first start did
  if ! $as "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    $as "$bindir/pg_ctl" -D "$dir/data" -w -l "$dir/log" -o "-k $dir/sock -c listen_addresses=" start >/dev/null
  fi
  echo "postgresql://bluezone@/postgres?host=$dir/sock"
  ;;
stop)
  $as "$bindir/pg_ctl" -D "$dir/data" -m fast stop
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
