#!/usr/bin/env bash
# The test suite: vet, every package (the process-level fault suite in
# faults/ included), then the database packages again with a non-empty
# Mautic table prefix, then the checks of docker/ in tools/dockercheck,
# then each fuzz target of hostile input for a bounded number of runs
# (about 12 s each on 2 cores; SIDECAR_FUZZTIME overrides, e.g. 2000000x).
# Needs MYSQL_TEST_DSN, which
# scripts/with-mariadb.sh provides. Prints go test's per-package lines and a
# closing "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go build -o .tmp/testsum ./internal/cmd/testsum
# package:target:runs. Counts, not durations: Go 1.26's fuzzing
# coordinator can fail a target with "context deadline exceeded" when a
# duration ends while a worker is busy (go.dev/issue/75804, fixed in 1.27).
fuzz=(
  bridge:FuzzRequestParsing:25000x
  channels/render:FuzzRender:200000x
  channels/render:FuzzReplaceMatchesReference:30000x
  mautic:FuzzUnserialize:150000x
  mautic:FuzzSerializeRoundTrip:150000x
  mautic:FuzzDecrypt:150000x
)
status=0
{
  SIDECAR_TEST_PREFIX= go test -count=1 -json ./...
  SIDECAR_TEST_PREFIX=mtc_ go test -count=1 -json ./mautic/... ./store/... ./bridge/... ./migrations/...
  # docker/ (compose file, Dockerfile, .dockerignore, bootstrap), validated
  # offline by a module of its own so that go.mod stays free of its tools.
  (cd tools/dockercheck && go test -count=1 -json ./...)
  # A failing input is written to the package's testdata/fuzz/<target>.
  for f in "${fuzz[@]}"; do
    IFS=: read -r pkg target runs <<<"$f"
    go test -count=1 -json -run '^$' -fuzz "^$target\$" -fuzztime "${SIDECAR_FUZZTIME:-$runs}" -fuzzminimizetime 1000x "./$pkg"
  done
} | .tmp/testsum || status=$?
exit $status
