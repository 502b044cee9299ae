#!/usr/bin/env bash
# Regenerates pkg/inferencepb's Go code from its .proto files. Needs protoc
# (Debian: protobuf-compiler) and the Go plugins at the versions go.mod pins:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
set -euo pipefail
cd "$(dirname "$0")/../pkg/inferencepb"
PATH=$(go env GOPATH)/bin:$PATH
protoc -I . --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  grpc_service.proto model_config.proto
