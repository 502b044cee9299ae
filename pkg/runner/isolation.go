package runner

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/yamlfile"
)

// Resources bounds what one model host may take.
type Resources struct {
	// Memory bounds what each of the model's hosts may allocate, in bytes
	// of private memory beyond the bare process it starts as: the
	// runtime's library, session and arena, and the host's heap, not the
	// tensors it shares with the server. An allocation past it fails, the
	// batch that asked gets an error naming the limit, and the host is
	// restarted so its memory goes back to the system. 0 is no bound. It
	// takes effect with isolation: process (an rlimit, RLIMIT_DATA).
	Memory ByteSize `yaml:"memory"`
	// ExecutionTimeout bounds one batch in a host (DefaultExecutionTimeout
	// when 0). A host that has not answered by then is taken for hung: it
	// is killed, the batch gets an error naming the timeout, and the host
	// is restarted.
	ExecutionTimeout Duration `yaml:"execution_timeout"`
}

// DefaultExecutionTimeout bounds one batch in a model host unless
// resources.execution_timeout says otherwise.
const DefaultExecutionTimeout = time.Minute

// closeGrace is how long closing a version waits for the batches in its
// hosts before it kills them: an unload or a shutdown never waits on a
// hung host. A variable for tests.
var closeGrace = 10 * time.Second

func (r Resources) executionTimeout() time.Duration {
	if r.ExecutionTimeout > 0 {
		return time.Duration(r.ExecutionTimeout)
	}
	return DefaultExecutionTimeout
}

// ByteSize is a number of bytes that reads from YAML as a plain number or
// with a Kubernetes quantity suffix: "512Mi", "2Gi", "500M".
type ByteSize int64

var byteSuffixes = []struct {
	suffix string
	scale  int64
}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlfile.ValueError(n, "want a size such as 512Mi or 2Gi")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return yamlfile.ValueError(n, "%v", err)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler: the largest binary suffix that
// divides the size.
func (b ByteSize) MarshalYAML() (any, error) {
	for i := 3; i >= 0 && b != 0; i-- {
		if s := byteSuffixes[i]; int64(b)%s.scale == 0 {
			return strconv.FormatInt(int64(b)/s.scale, 10) + s.suffix, nil
		}
	}
	return int64(b), nil
}

// ParseByteSize reads "1048576", "512Mi", "2Gi", "8GiB", "500M" or "1GB"
// as bytes: the binary suffixes (Ki, Mi, Gi, Ti, with or without B) count
// in 1024s, the decimal ones (k, M, G, T, or KB, MB, GB, TB) in 1000s, as
// Kubernetes' quantities and disk makers count.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	scale := int64(1)
	for _, suf := range byteSuffixes {
		if strings.HasSuffix(s, suf.suffix) {
			s, scale = strings.TrimSuffix(s, suf.suffix), suf.scale
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/scale {
		return 0, fmt.Errorf("%q is not a size (want e.g. 536870912, 512Mi, 2Gi)", s)
	}
	return ByteSize(n * scale), nil
}

// validIsolation checks an isolation mode's name.
func validIsolation(s string) error {
	switch s {
	case IsolationProcess, IsolationNone:
		return nil
	}
	return fmt.Errorf("isolation %q: want %s or %s", s, IsolationProcess, IsolationNone)
}
