#!/usr/bin/env bash
# The test suite: vet, every package, then the database packages again with
# a non-empty Mautic table prefix. Needs MYSQL_TEST_DSN, which
# scripts/with-mariadb.sh provides. Prints go test's per-package lines and a
# closing "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go build -o .tmp/testsum ./internal/cmd/testsum
status=0
{
  SIDECAR_TEST_PREFIX= go test -count=1 -json ./...
  SIDECAR_TEST_PREFIX=mtc_ go test -count=1 -json ./mautic/... ./store/... ./bridge/... ./migrations/...
} | .tmp/testsum || status=$?
exit $status
