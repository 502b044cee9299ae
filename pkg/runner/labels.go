package runner

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Labels returns the class labels of output name, line i+1 of its labels
// file labelling class i, or nil when config.yaml gives it none.
func (m *Model) Labels(output string) []string { return m.labels[output] }

// ParseLabels splits a labels file into its lines, one label a line;
// a final newline and carriage returns are dropped.
func ParseLabels(data []byte) []string {
	labels := strings.Split(string(bytes.TrimRight(data, "\r\n")), "\n")
	for i := range labels {
		labels[i] = strings.TrimRight(labels[i], "\r")
	}
	return labels
}

// readLabels reads the labels files cfg names, checking that each names
// one of outputs.
func (r *Repository) readLabels(name string, cfg Config, outputs []TensorSpec) (map[string][]string, error) {
	if len(cfg.Labels) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(cfg.Labels))
	for output, file := range cfg.Labels {
		if !slices.ContainsFunc(outputs, func(s TensorSpec) bool { return s.Name == output }) {
			return nil, fmt.Errorf("config: labels: the model has no output %q", output)
		}
		data, err := r.ReadFile(name, file)
		if err != nil {
			return nil, fmt.Errorf("config: labels of output %q: %w", output, err)
		}
		out[output] = ParseLabels(data)
	}
	return out, nil
}
