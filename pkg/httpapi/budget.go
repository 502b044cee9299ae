package httpapi

import (
	"fmt"
	"sync/atomic"

	"github.com/infer-serving/infer/pkg/core"
)

// bodiesInFlight is how many bodies at --max-body-bytes the HTTP API holds
// in memory at once, over every request: its bound on the bytes of request
// bodies, read or being read. A request waiting for its model's place
// holds its body: the bound keeps large bodies from growing the process
// whatever the connections and queues allow. The process grows to about
// four times what the budget holds: each buffer's growth leaves the
// smaller one as garbage, a refused body's buffer is garbage too, and the
// collector's goal is twice the live heap. Measured with bodies announced
// at 64 MiB, 34 MiB of each sent and then stalled: with 16 bodies allowed,
// 17 took the process to 1.7 GiB and 24 to 2.6 GiB; with 4, 12 took it to
// 1.0 GiB and 48 (two waves of 24) no further.
const bodiesInFlight = 4

// bodyBudget bounds the bytes of request bodies the API holds at once.
// Buffers are charged as they grow (readBody), so a body announced large
// and sent slowly holds what has arrived, not what it announced.
type bodyBudget struct {
	max  int64
	held atomic.Int64
}

// take charges n more bytes, or refuses them with core.ErrBodyBudget.
func (b *bodyBudget) take(n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	if v := b.held.Add(n); v > b.max {
		b.held.Add(-n)
		return fmt.Errorf("%w: %d bytes held with this body's next %d, the limit is %d (%d bodies at max_body_bytes)", core.ErrBodyBudget, v-n, n, b.max, bodiesInFlight)
	}
	return nil
}

// give returns n bytes taken.
func (b *bodyBudget) give(n int64) {
	if b != nil && n > 0 {
		b.held.Add(-n)
	}
}
