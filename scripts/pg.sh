#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite: `scripts/pg.sh start|stop|url`.
# Installs Debian's postgresql when the binaries are absent; runs as the unprivileged
# `postgres` user when invoked as root (initdb refuses root). Data lives in .pg/ (ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PGPORT=${PGPORT:-54329}
# Outside the checkout: the unprivileged server user must be able to reach it even when the
# checkout sits under a private home directory. One data dir per checkout path.
PGDATA_DIR=${PGDATA_DIR:-/tmp/clawdirector-pg-$(printf %s "$ROOT" | cksum | cut -d" " -f1)/data}
URL="postgres://clawdirector:clawdirector@127.0.0.1:$PGPORT/clawdirector"

find_bin() {
  for dir in /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

ensure_installed() {
  if ! find_bin >/dev/null; then
    echo "PostgreSQL not found: installing Debian's postgresql package" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq postgresql >/dev/null
    fi
  fi
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

start() {
  ensure_installed
  BIN=$(find_bin)
  mkdir -p "$(dirname "$PGDATA_DIR")"
  if [ "$(id -u)" = 0 ]; then id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres; chown -R postgres "$(dirname "$PGDATA_DIR")"; fi
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    as_pg "'$BIN/initdb' -D '$PGDATA_DIR' -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  if ! as_pg "'$BIN/pg_ctl' -D '$PGDATA_DIR' status" >/dev/null 2>&1; then
    # Tuned for a throwaway test server: durability off, it is deleted anyway.
    as_pg "'$BIN/pg_ctl' -D '$PGDATA_DIR' -l '$PGDATA_DIR/../server.log' -w -t 60 start \
      -o \"-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
      -c full_page_writes=off -c max_connections=300\"" >/dev/null
  fi
  as_pg "'$BIN/psql' -h 127.0.0.1 -p $PGPORT -U postgres -tAc \"SELECT 1 FROM pg_roles WHERE rolname='clawdirector'\"" | grep -q 1 \
    || as_pg "'$BIN/psql' -h 127.0.0.1 -p $PGPORT -U postgres -qc \"CREATE ROLE clawdirector LOGIN SUPERUSER PASSWORD 'clawdirector'\""
  as_pg "'$BIN/psql' -h 127.0.0.1 -p $PGPORT -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='clawdirector'\"" | grep -q 1 \
    || as_pg "'$BIN/psql' -h 127.0.0.1 -p $PGPORT -U postgres -qc \"CREATE DATABASE clawdirector OWNER clawdirector\""
  echo "$URL"
}

stop() {
  BIN=$(find_bin) || exit 0
  if [ -f "$PGDATA_DIR/PG_VERSION" ]; then
    as_pg "'$BIN/pg_ctl' -D '$PGDATA_DIR' -m fast -w stop" >/dev/null 2>&1 || true
  fi
}

# A scratch database, empty every time: what one benchmark leaves (bench_admin keeps its
# fleet for inspection) never skews the next run.
createdb_() {
  BIN=$(find_bin)
  as_pg "'$BIN/psql' -h 127.0.0.1 -p $PGPORT -U postgres -qc \"DROP DATABASE IF EXISTS $1 WITH (FORCE)\""
  as_pg "'$BIN/psql' -h 127.0.0.1 -p $PGPORT -U postgres -qc \"CREATE DATABASE $1 OWNER clawdirector\""
}

case "${1:-}" in
  start) start ;;
  createdb) createdb_ "$2" ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url|createdb NAME" >&2; exit 2 ;;
esac
