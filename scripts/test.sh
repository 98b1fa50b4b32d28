#!/usr/bin/env bash
# The test suite: vet, every package, then the database packages again with
# a non-empty Mautic table prefix, then the checks of docker/ in
# tools/dockercheck. Needs MYSQL_TEST_DSN, which
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
  # docker/ (compose file, Dockerfile, .dockerignore, bootstrap), validated
  # offline by a module of its own so that go.mod stays free of its tools.
  (cd tools/dockercheck && go test -count=1 -json ./...)
} | .tmp/testsum || status=$?
exit $status
