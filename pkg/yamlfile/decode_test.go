package yamlfile

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type inner struct {
	MaxBatch int `yaml:"max_batch"`
}

type config struct {
	Port    int           `yaml:"port"`
	Timeout time.Duration `yaml:"timeout"`
	Ratio   float64       `yaml:"ratio"`
	On      bool          `yaml:"on"`
	Names   []string      `yaml:"names"`
	Inner   *inner        `yaml:"generation"`
}

// Each problem is named by its line, its key's path and the form wanted.
func TestDecodeNamesKeyAndForm(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"port: eight", "line 1: port: `eight` is not a whole number"},
		{"port: [1]", "line 1: port: a list is not a whole number"},
		{"timeout: 5", "line 1: timeout: `5` is not a duration such as 500ms, 5s or 1m30s"},
		{"ratio: half", "line 1: ratio: `half` is not a number"},
		{"on: maybe", "line 1: on: `maybe` is not true or false"},
		{"names: {a: 1}", "line 1: names: a mapping is not a list, each a string"},
		{"port: 1\ngeneration:\n  max_batch: lots", "line 3: generation.max_batch: `lots` is not a whole number"},
		{"generation: 3", "line 1: generation: `3` is not a mapping of keys (max_batch)"},
		{"prot: 1", "line 1: prot: no such key (the keys here are port, timeout, ratio, on, names, generation)"},
		{"generation:\n  max_bacth: 2", "line 2: generation.max_bacth: no such key (the keys here are max_batch)"},
	} {
		var v config
		err := Decode([]byte(c.yaml), &v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	// Every problem at once.
	var v config
	if err := Decode([]byte("port: x\non: perhaps\n"), &v); err == nil || strings.Count(err.Error(), "line ") != 2 {
		t.Errorf("two problems: %v", err)
	}
	// Good documents, the empty one included, decode as yaml.v3 does.
	if err := Decode([]byte("port: 8000\ntimeout: 2s\nnames: [a, b]\ngeneration: {max_batch: 4}\n"), &v); err != nil || v.Port != 8000 || v.Timeout != 2*time.Second || v.Inner.MaxBatch != 4 {
		t.Errorf("%v: %+v", err, v)
	}
	if err := Decode(nil, &v); err != nil || v.Port != 8000 {
		t.Errorf("an empty document: %v, %+v", err, v)
	}
	if err := Decode([]byte("port: [1"), &v); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("not YAML: %v", err)
	}
}

// Whatever the bytes, Decode returns an error or nothing; it never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("port: eight\ngeneration: {max_batch: x, y: 1}\nnames: [1, {a: b}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v config
		_ = Decode(data, &v)
	})
}

// A block decoded apart from its file (a pipeline under its key) reports
// every problem by its key's path, on the file's line for a block in
// block style, never in Go's type names.
func TestDecodeNodeSpeaksOfTheFile(t *testing.T) {
	file := "kind: chain\npipeline:\n  name: p\n  steps:\n    - model: a\n      inputs: {x: y}\n      colour: blue\n      count: many\n"
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(file), &root); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Name  string `yaml:"name"`
		Steps []struct {
			Model  string            `yaml:"model"`
			Inputs map[string]string `yaml:"inputs"`
			Count  int               `yaml:"count"`
		} `yaml:"steps"`
	}
	err := DecodeNode(root.Content[0].Content[3], &v) // the pipeline's block, from line 3
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 7: steps[0].colour: no such key (the keys here are model, inputs, count)", "line 8: steps[0].count: `many` is not a whole number"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors %q lack %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "struct") || strings.Contains(err.Error(), "not found in type") {
		t.Errorf("errors in Go's words: %v", err)
	}
}
