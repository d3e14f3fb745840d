# wattpool: the two commands a fresh machine needs are `make demo` and
# `make test`. Everything they depend on is installed by .ci/ensure-postgres
# and by the Go toolchain (btcd is pinned as a Go tool in go.mod).

GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: demo demo-notice test test-noalloc test-short vet fmt-check bench loadtest fuzz build tools clean

## demo: run the pool with a throw-away PostgreSQL and a btcd regtest node, with simulated miners.
## The built binary runs (not `go run`, which turns Ctrl-C into "make: *** Error 1").
demo: demo-notice tools
	@$(GO) build -o bin/wattpool ./cmd/wattpool
	@bin/wattpool demo $(DEMO_ARGS)

demo-notice:
	@echo "demo: building wattpool and the pinned btcd node (the first run compiles btcd: a minute or two of silence; later runs start at once)..."

## test: the whole suite under the race detector (unit, fuzz seeds, integration against real PostgreSQL and btcd),
## then the allocation guards, which skip under -race (its sync.Pool drops items on purpose)
test: tools fmt-check vet
	$(GO) test -count=1 -race -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory test-noalloc

## test-noalloc: the "0 allocations" guards BENCHMARKS.md relies on (TestSubmitPathNoAlloc, TestCallCtxNoAlloc, ...), without -race
test-noalloc:
	$(GO) test -count=1 -run 'Alloc' ./stratum/... ./shares/...

## tools: PostgreSQL server binaries and haproxy (installed when missing and root) and the pinned btcd.
## Without haproxy (not root) only the several-instances test skips; .ci/run requires it.
tools:
	@./.ci/ensure-postgres
	@./.ci/ensure-haproxy || echo "tools: haproxy missing; TestSeveralInstancesBehindHAProxy will skip" >&2
	@$(GO) tool -n btcd >/dev/null

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: the Go benchmarks recorded in BENCHMARKS.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./stratum/... ./shares/... ./allocator/...

## loadtest: wattpool serve and minersim as separate processes on 127.0.0.1 (18,000
## connections, ledger on a throw-away PostgreSQL); numbers in BENCHMARKS.md.
## LOADTEST_RUN picks tests, WATTPOOL_LOADTEST_* tune them (see .ci/loadtest)
loadtest: tools
	@./.ci/loadtest

## fuzz: a short run of every fuzz target (FUZZTIME per target)
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

build:
	$(GO) build -o bin/ ./cmd/...

clean:
	rm -rf bin .devstack
