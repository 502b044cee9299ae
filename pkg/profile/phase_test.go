package profile

import "testing"

// The phase names are a wire contract (Server-Timing, metrics labels).
func TestPhaseNames(t *testing.T) {
	want := []string{"connect", "network", "queue", "preprocess", "infer", "postprocess", "total"}
	for i, name := range want {
		if got := Phase(i).String(); got != name {
			t.Errorf("Phase(%d) = %q, want %q", i, got, name)
		}
		if p, ok := ParsePhase(name); !ok || p != Phase(i) {
			t.Errorf("ParsePhase(%q) = %v, %v", name, p, ok)
		}
	}
	if len(want) != NumPhases {
		t.Fatalf("%d phases, the test names %d", NumPhases, len(want))
	}
	if _, ok := ParsePhase("compute"); ok {
		t.Error(`"compute" is not a phase`)
	}
}
