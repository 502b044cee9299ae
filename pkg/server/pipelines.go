package server

// Pipelines and routers declared in config.yaml are served by every
// server: package pipeline registers itself with the runner.
import _ "github.com/infer-serving/infer/pkg/pipeline"
