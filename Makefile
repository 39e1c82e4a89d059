# fhirgw — the README's two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go
BIN := bin/fhirgw
# The public message fixtures beside the project; tests that read them log a
# reason and skip when they are absent.
FHIRGW_PUBLIC_FIXTURES ?= $(abspath ../shared/fixtures/public)
export FHIRGW_PUBLIC_FIXTURES
FUZZTIME ?= 10m
BENCHCOUNT ?= 3
# The ingest benchmark runs this many messages through the broker baseline
# and through the fhirgw binary.
INGESTN ?= 10000
# The round-trip benchmark offers this many messages at 500 per second.
ROUNDTRIPN ?= 7500

.PHONY: build test bench lint run fuzz clean

build: ## build bin/fhirgw
	$(GO) build -o $(BIN) ./cmd/fhirgw

test: lint ## the whole suite, race detector on, against a real RabbitMQ broker (fails without one)
	REQUIRE_BROKER=1 $(GO) test -race -count=1 ./...

bench: ## benchmarks, with each result's ratio to its baseline from the same run
	{ $(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./envelope/ && \
	  REQUIRE_BROKER=1 $(GO) test -run '^$$' -bench Ingest -benchtime $(INGESTN)x -count $(BENCHCOUNT) ./testing/e2e/ && \
	  REQUIRE_BROKER=1 $(GO) test -run '^$$' -bench RoundTrip -benchtime $(ROUNDTRIPN)x -count $(BENCHCOUNT) ./testing/e2e/ && \
	  $(GO) test -run '^$$' -bench PushHealthyPlacer -count $(BENCHCOUNT) ./ack/; } \
	  | $(GO) run ./testing/benchreport

lint: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

run: build ## a broker, the gateway with the demo config and a sample lab filler, until Ctrl-C
	$(GO) run ./testing/devstack --gateway $(BIN) --config testing/demo/fhirgw.yaml

fuzz: ## fuzz the envelope parser for FUZZTIME (default 10m)
	# Minimizing an interesting 100 KB seed takes up to a minute by default,
	# during which no new inputs run; 2s keeps the fuzzer exploring.
	$(GO) test -run '^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s ./envelope/

clean:
	rm -rf bin
