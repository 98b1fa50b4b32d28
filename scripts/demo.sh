#!/usr/bin/env bash
# `make demo`: makes sure a MySQL/MariaDB server is reachable (MAUTIC_DB_DSN
# when set, else 127.0.0.1:3306, else a private mariadbd, see
# with-mariadb.sh) and runs `sidecar demo`, which creates its own throwaway
# database sidecar_demo there. Extra arguments go to `sidecar demo`
# (e.g. DEMO_ARGS=--once).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${MAUTIC_DB_DSN:-}" ]; then
  exec bin/sidecar demo "$@"
fi
export SIDECAR_DEMO_ARGS="$*"
exec scripts/with-mariadb.sh bash -c 'MAUTIC_DB_DSN="$MYSQL_TEST_DSN" bin/sidecar demo $SIDECAR_DEMO_ARGS'
