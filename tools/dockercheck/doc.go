// Package dockercheck validates the repository's container files offline,
// where no Docker engine runs: docker/compose.yaml through compose-spec's
// compose-go (the loader docker compose itself uses), docker/Dockerfile
// through BuildKit's Dockerfile parser and linter, .dockerignore against the
// files the build needs, and docker/bootstrap/bootstrap.sh with `sh -n` and
// against a fake Mautic REST API.
//
// It is a module of its own so that the product's go.mod never depends on
// compose-go or BuildKit. Run it with `go test ./...` in this directory;
// scripts/test.sh runs it after the main suite.
package dockercheck
