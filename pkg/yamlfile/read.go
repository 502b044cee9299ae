package yamlfile

import (
	"fmt"
	"io"
)

// MaxBytes bounds a configuration file. A model's config.yaml or the
// server's --config is a few kilobytes; the YAML parser holds a document
// as nodes of several times its size, so one of hundreds of megabytes (a
// hostile or mistaken file) would take gigabytes to refuse.
const MaxBytes = 1 << 20

// ReadAll reads r to its end, failing without reading on once it holds
// more than MaxBytes.
func ReadAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("over %d MiB, more than a configuration file holds (a setting may have been given a file's contents)", MaxBytes>>20)
	}
	return data, nil
}
