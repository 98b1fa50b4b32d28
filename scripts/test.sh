#!/usr/bin/env bash
# The test suite: every package, then the database packages again with a
# non-empty Mautic table prefix. Needs MYSQL_TEST_DSN (scripts/with-mariadb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
echo "== go test ./... (no table prefix)"
SIDECAR_TEST_PREFIX= go test -count=1 ./...
echo "== go test of the database packages with table prefix mtc_"
SIDECAR_TEST_PREFIX=mtc_ go test -count=1 ./mautic/... ./store/... ./bridge/...
