#!/usr/bin/env bash
# Runs a command with a MariaDB/MySQL server for it, exported as
# MYSQL_TEST_DSN (a go-sql-driver DSN without a database name).
#
#   1. MYSQL_TEST_DSN already set: used as is.
#   2. else a server answering on 127.0.0.1:3306 as root without password.
#   3. else (or when SIDECAR_PRIVATE_MARIADB=1) a private mariadbd on a temporary data directory and a free port,
#      installing Debian's mariadb-server first when it is missing (as root).
#      What this script started it stops when the command ends.
#
# Usage: scripts/with-mariadb.sh COMMAND [ARGS...]
set -euo pipefail

log() { echo "with-mariadb: $*" >&2; }

answers() { # host port
  command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1 || return 1
  local cli; cli=$(command -v mariadb || command -v mysql)
  "$cli" --protocol=TCP -h "$1" -P "$2" -uroot --connect-timeout=3 -e 'SELECT 1' >/dev/null 2>&1
}

install_server() {
  if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    log "mariadbd is not installed and this is not root: install mariadb-server, or set MYSQL_TEST_DSN"
    exit 1
  fi
  log "installing Debian's mariadb-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # Do not let the package start a system-wide server: we start a private one.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq mariadb-server mariadb-client >&2 || { rm -f /usr/sbin/policy-rc.d; exit 1; }
  rm -f /usr/sbin/policy-rc.d
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

started_pid=""
datadir=""
cleanup() {
  if [ -n "$started_pid" ]; then
    kill "$started_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$started_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$started_pid" 2>/dev/null || true
  fi
  if [ -n "$datadir" ]; then rm -rf "$datadir"; fi
}

start_private() {
  install_server
  local mariadbd; mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
  local installdb; installdb=$(command -v mariadb-install-db || command -v mysql_install_db)
  datadir=$(mktemp -d /tmp/sidecar-mariadb.XXXXXX)
  local port; port=$(free_port)
  trap cleanup EXIT
  log "starting a private mariadbd on 127.0.0.1:$port (data in $datadir)"
  "$installdb" --no-defaults --datadir="$datadir/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$datadir/install.log" 2>&1 || {
      cat "$datadir/install.log" >&2; exit 1; }
  "$mariadbd" --no-defaults --datadir="$datadir/data" --socket="$datadir/sock" \
    --port="$port" --bind-address=127.0.0.1 --skip-log-bin --user="$(id -un)" \
    --pid-file="$datadir/pid" --innodb-buffer-pool-size=256M --max-connections=500 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --log-error="$datadir/error.log" &
  started_pid=$!
  for _ in $(seq 1 300); do
    if answers 127.0.0.1 "$port"; then break; fi
    if ! kill -0 "$started_pid" 2>/dev/null; then cat "$datadir/error.log" >&2; log "mariadbd exited"; exit 1; fi
    sleep 0.1
  done
  answers 127.0.0.1 "$port" || { cat "$datadir/error.log" >&2; log "mariadbd did not answer"; exit 1; }
  export MYSQL_TEST_DSN="root@tcp(127.0.0.1:$port)/"
  export SIDECAR_PRIVATE_MARIADB_SOCKET="$datadir/sock"
  export SIDECAR_PRIVATE_MARIADB_PID="$started_pid"
}

if [ "${SIDECAR_PRIVATE_MARIADB:-}" = 1 ]; then
  start_private
elif [ -n "${MYSQL_TEST_DSN:-}" ]; then
  log "using MYSQL_TEST_DSN"
elif answers 127.0.0.1 3306; then
  log "using the server on 127.0.0.1:3306"
  export MYSQL_TEST_DSN="root@tcp(127.0.0.1:3306)/"
else
  start_private
fi

set +e
"$@"
rc=$?
set -e
exit $rc
