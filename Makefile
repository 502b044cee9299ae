# The README's quick start is `make demo` and `make test`; both install the
# ONNX Runtime library first (scripts/setup-onnxruntime.sh, idempotent).
GO ?= go
GORELEASER ?= $(GO) run github.com/goreleaser/goreleaser/v2@v2.15.1

.PHONY: all onnxruntime ocr-model redis build install demo test check-models bench release-check release-libs clean

all: build

onnxruntime:
	@scripts/setup-onnxruntime.sh >/dev/null

# The OCR pipeline's recogniser and key list (pinned SHA-256), for its
# tests; never fetched at run time.
ocr-model:
	@scripts/setup-ocr-model.sh >/dev/null

# redis-server, which the queue tests start (Debian's package).
redis:
	@scripts/setup-redis.sh >/dev/null

build:
	$(GO) build -buildvcs=auto -o bin/infer ./cmd/infer

# infer into $(go env GOPATH)/bin, with ONNX Runtime in the cache folder
# where it finds it.
install: onnxruntime
	$(GO) install -buildvcs=auto ./cmd/infer

# Load the bundled models and run inference on each through the batcher.
demo: onnxruntime build
	bin/infer models run

# The whole suite: formatting, vet, the bundled models bit for bit, and
# every test under the race detector.
test: onnxruntime ocr-model redis check-models
	@unformatted=$$(gofmt -l .); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./... ./testdata/gen
	$(GO) test -race -count=1 ./...

check-models:
	$(GO) run ./testdata/gen -check

# Runtime-alone and batcher throughput on mlp, in one run.
bench: onnxruntime
	$(GO) test ./pkg/runner -run '^$$' -bench . -benchtime 2s

# Stage libonnxruntime.so.1 for each release architecture (goreleaser's
# before-hook), then validate the release configuration.
release-libs:
	scripts/stage-onnxruntime.sh build/onnxruntime

release-check:
	$(GORELEASER) check

clean:
	rm -rf bin dist build
