// Package infer holds what the infer binary carries inside it: the bundled
// demo models, served when no model path is given.
package infer

import (
	"embed"
	"io/fs"
)

//go:embed testdata/models/*/config.yaml testdata/models/*/*/model.onnx testdata/models/*/vocab.txt
var bundled embed.FS

// BundledModels returns the demo model repository (mlp, text-encoder,
// multi-io, fixed-shape, all-types, and the text generator tiny-gpt),
// laid out as <name>/<version>/model.onnx beside each config.yaml and
// vocabulary.
func BundledModels() fs.FS {
	sub, err := fs.Sub(bundled, "testdata/models")
	if err != nil {
		panic(err) // the path is a constant the embed directive guarantees
	}
	return sub
}

// BundledModelsName is how the bundled repository is named in messages.
const BundledModelsName = "bundled models"
