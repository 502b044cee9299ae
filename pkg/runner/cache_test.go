package runner

import (
	"context"
	"testing"
)

// An unloaded version's cache lets its memory go at once.
func TestCloseEmptiesTheCache(t *testing.T) {
	m := loadBundled(t, "mlp", Config{Cache: CacheConfig{Enabled: true}})
	req := &Request{Inputs: SyntheticInputs(m.Metadata().Inputs, 1, true)}
	if _, err := m.Infer(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if c := m.Stats().Cache; c.Entries != 1 || c.Bytes == 0 {
		t.Fatalf("cache before close: %+v", c)
	}
	m.Close()
	if c := m.Stats().Cache; c.Entries != 0 {
		t.Fatalf("cache after close: %+v", c)
	}
}

// The cache stays within its bytes, evicting, and counts what it evicts.
func TestCacheEvictsWithinItsBytes(t *testing.T) {
	m := loadBundled(t, "mlp", Config{Cache: CacheConfig{Enabled: true, MaxBytes: 4096}})
	for i := range 40 {
		in := SyntheticInputs(m.Metadata().Inputs, 1, true)
		in[0].Data[0] = byte(i) // forty different requests
		if _, err := m.Infer(context.Background(), &Request{Inputs: in}); err != nil {
			t.Fatal(err)
		}
	}
	c := m.Stats().Cache
	if c.Bytes > 4096 || c.Evictions == 0 || c.Entries >= 40 {
		t.Fatalf("a 4 KiB cache after 40 answers of about 300 bytes: %+v", c)
	}
}
