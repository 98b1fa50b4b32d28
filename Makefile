# The two commands a new user needs: `make demo` and `make test`.
GO       ?= go
BIN      := bin/sidecar
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build test demo vet fmt

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sidecar

# Runs the whole suite against a real MariaDB (see scripts/with-mariadb.sh).
test:
	scripts/with-mariadb.sh scripts/test.sh

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')
