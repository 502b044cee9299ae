package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig: any config.yaml either fails to parse or validate, or
// gives a configuration that survives its own Marshal unchanged, whose
// static fallbacks are tensors that hold exactly their shapes; nothing
// panics or hangs.
func FuzzParseConfig(f *testing.F) {
	configs, _ := filepath.Glob(filepath.Join(bundled, "*", "config.yaml"))
	for _, p := range configs {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, true)
		}
	}
	for _, s := range []string{
		"max_batch_size: 32\ndynamic_batching:\n  max_queue_delay: 250us\n  preferred_batch_sizes: [16, 8]\n  default_timeout: 1500\ninstances: 2\ndevice: cuda:1\n",
		"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: FP32, shape: [1, 2], data: [1, 2]}]}}]\n",
		"cache: {enabled: true, max_bytes: 1048576, ttl: 1m}\nmax_request_bytes: 4096\n",
		"tokenizer: {max_length: 16}\ngeneration: {max_batch: 4, max_positions: 64, default_max_tokens: 8}\n",
		// Hostile: shapes that overflow or lie about their data, huge and
		// negative numbers, aliases.
		"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: FP32, shape: [4294967296, 4294967296], data: [1]}]}}]\n",
		"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: FP64, shape: [2147483648], data: [1]}]}}]\n",
		"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: INT8, shape: [-1], data: []}]}}]\n",
		"max_batch_size: 9223372036854775807\ninstances: -1\nwarmup: {runs: 99999999999}\n",
		"a: &a [1, 2]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, yaml []byte, batchable bool) {
		cfg, err := ParseConfig(bytes.NewReader(yaml))
		if err != nil {
			return
		}
		cfg = cfg.withDefaults(batchable)
		if cfg.validate(batchable) != nil {
			return
		}
		for i, fb := range cfg.Fallback {
			if fb.Static == nil {
				continue
			}
			outs, err := fb.Static.Tensors()
			if err != nil {
				t.Fatalf("fallback[%d]: validated, then %v", i, err)
			}
			for _, o := range outs {
				if err := o.Validate(); err != nil {
					t.Fatalf("fallback[%d]: %v", i, err)
				}
			}
		}
		out := cfg.Marshal()
		again, err := ParseConfig(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("its own YAML does not parse: %v\n%s", err, out)
		}
		again = again.withDefaults(batchable)
		if err := again.validate(batchable); err != nil {
			t.Fatalf("its own YAML does not validate: %v\n%s", err, out)
		}
		if back := again.Marshal(); !bytes.Equal(back, out) {
			t.Fatalf("marshal is not stable:\n%s\n---\n%s", out, strings.TrimSpace(string(back)))
		}
	})
}
