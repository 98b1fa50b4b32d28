# The two commands a new user needs: `make demo` and `make test`.
GO       ?= go
BIN      := bin/sidecar
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build test soak demo vet fmt bench bench-full

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sidecar

# Runs the whole suite against a real MariaDB (see scripts/with-mariadb.sh).
test:
	scripts/with-mariadb.sh scripts/test.sh

# The fault suite (faults/, issue #7) in its long variants: ten times the
# load, nine kills, five SIGTERMs, a 60 s database outage. About 10 minutes
# on 2 cores. SOAK_RUN picks tests (a go test -run pattern); the measured
# rows are appended to SOAK_REPORT; the whole log of every process of a
# failing test is kept in SOAK_LOGS.
SOAK_RUN ?= .
SOAK_REPORT ?= .tmp/soak-report.md
SOAK_LOGS ?= .tmp/soak-logs

soak:
	mkdir -p .tmp $(SOAK_LOGS)
	SIDECAR_SOAK=1 SIDECAR_FAULTS_REPORT=$(abspath $(SOAK_REPORT)) SIDECAR_FAULTS_LOGS=$(abspath $(SOAK_LOGS)) \
		scripts/with-mariadb.sh go test -count=1 -v -timeout 60m -run '$(SOAK_RUN)' ./faults/

# The embedded default: a throwaway database, seeded contacts, the real
# server with stand-in providers; serves until Ctrl-C. DEMO_ARGS=--once exits
# after the report.
DEMO_ARGS ?=

demo: build
	scripts/demo.sh $(DEMO_ARGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# Load test (issue #6, cmd/loadgen): a throwaway database `sidecar_bench`
# with a generated dataset of 100,000 contacts, bin/sidecar against
# loopback providers, and a table of value, floor, ratio and target per
# figure. About 3 minutes on a 2-core machine; bench-full seeds 1,000,000
# contacts and routes 100,000 dispatches (about 8 minutes). Extra loadgen
# flags go in BENCH_FLAGS, e.g. make bench BENCH_FLAGS="--json bench.json".
BENCH_FLAGS ?=

bench: build
	$(GO) build -o bin/loadgen ./cmd/loadgen
	scripts/with-mariadb.sh bin/loadgen --contacts 100000 --intake 20000 --e2e 20000 --queue-rows 20000 --memory-backlog 100000 $(BENCH_FLAGS)

bench-full: build
	$(GO) build -o bin/loadgen ./cmd/loadgen
	scripts/with-mariadb.sh bin/loadgen --contacts 1000000 --intake 100000 --e2e 100000 --queue-rows 100000 --memory-backlog 100000 $(BENCH_FLAGS)
