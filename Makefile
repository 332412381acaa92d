# The two commands of the project: `make run` builds Caddy with this plugin
# and starts the example; `make test` runs the whole test suite.

CADDY_VERSION  ?= v2.11.9
XCADDY_VERSION ?= v0.4.5
GOBIN          ?= $(shell go env GOPATH)/bin
XCADDY         := $(GOBIN)/xcaddy
GO_SOURCES     := $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum

.PHONY: run build test bench load example-assets

## run: build Caddy with the plugin and start the example on localhost:8080
run: bin/caddy example-assets
	cd example && ../bin/caddy run --config Caddyfile --adapter caddyfile

## build: build bin/caddy with xcaddy (installed at a pinned version if missing)
build: bin/caddy

bin/caddy: $(GO_SOURCES)
	@test -x $(XCADDY) || go install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)
	$(XCADDY) build $(CADDY_VERSION) --with github.com/caddy-edge/edge@v0.0.0=. --output bin/caddy

## example-assets: files the example needs besides the Caddyfile
example-assets:

## test: the whole test suite
test:
	go test -race -short -count=1 ./...

## bench: the Go benchmarks
bench:
	go test -run '^$$' -bench . -benchmem ./...

## load: the loopback load script (hit vs respond, geofilter overhead, collapsing)
load:
	bench/load.sh
