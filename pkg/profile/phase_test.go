package profile

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The phase names are a wire contract (Server-Timing, metrics labels).
func TestPhaseNames(t *testing.T) {
	want := []string{"delay", "connect", "write", "broker", "admission", "queue", "cache", "preprocess", "infer", "postprocess", "network", "total"}
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

// The broker phase travels in Server-Timing only for a request that came
// through a broker, ahead of the server's phases.
func TestServerTimingBroker(t *testing.T) {
	var tm Timing
	tm.Set(Infer, time.Millisecond)
	if got := string(tm.AppendServerTiming(nil)); strings.Contains(got, "broker") {
		t.Fatalf("no broker time, yet %q", got)
	}
	tm.Set(Broker, 2500*time.Microsecond)
	got := string(tm.AppendServerTiming(nil))
	if !strings.HasPrefix(got, "broker;dur=2.5, ") {
		t.Fatalf("Server-Timing %q, want the broker phase first", got)
	}
	if back, _ := ParseServerTiming(got); back.Get(Broker) != 2500*time.Microsecond {
		t.Fatalf("parsed broker %v from %q", back.Get(Broker), got)
	}
}

func TestServerTimingRoundTrip(t *testing.T) {
	var tm Timing
	tm.Set(Queue, 12*time.Microsecond)
	tm.Set(Preprocess, 4*time.Microsecond)
	tm.Set(Infer, 153500*time.Nanosecond)
	tm.Set(Postprocess, 8*time.Microsecond)
	tm.Set(Total, 181*time.Microsecond)
	got := string(tm.AppendServerTiming(nil))
	want := "queue;dur=0.012, preprocess;dur=0.004, infer;dur=0.1535, postprocess;dur=0.008, total;dur=0.181"
	if got != want {
		t.Fatalf("Server-Timing %q, want %q", got, want)
	}
	back, ok := ParseServerTiming(got + `, db;desc="miss", db;dur=3`)
	if !ok {
		t.Fatal("nothing parsed")
	}
	for _, p := range []Phase{Queue, Preprocess, Infer, Postprocess, Total} {
		if d := back.Get(p) - tm.Get(p); d < -time.Nanosecond || d > time.Nanosecond {
			t.Errorf("%s: %v, want %v", p, back.Get(p), tm.Get(p))
		}
	}
	tm.Set(Cache, 2*time.Microsecond)
	if got := string(tm.AppendServerTiming(nil)); !strings.Contains(got, "queue;dur=0.012, cache;dur=0.002, preprocess") {
		t.Fatalf("a response cache's part is not in %q", got)
	}
	if _, ok := ParseServerTiming("db;dur=3, cpu"); ok {
		t.Error("a header without our phases parsed as ours")
	}
}

func TestPricePerRequest(t *testing.T) {
	p := Price{USDPerHour: 3.6} // $0.001 a second
	if got := p.Of(2 * time.Second); got < 0.002-1e-12 || got > 0.002+1e-12 {
		t.Fatalf("two seconds cost %v, want 0.002", got)
	}
	if got := p.PerRequest(10*time.Second, 1000); got < 1e-5-1e-15 || got > 1e-5+1e-15 {
		t.Fatalf("per request %v, want 1e-5", got)
	}
	if got := p.PerRequest(time.Second, 0); got != 0 {
		t.Fatalf("no requests: %v", got)
	}
}

func TestPriceAtARateAndShared(t *testing.T) {
	near := func(got, want float64) bool { return got > want-1e-12 && got < want+1e-12 }
	p := Price{USDPerHour: 3.6}
	// $3.60 an hour at 100 requests a second: $0.001 a second over 100.
	if got := p.PerRequestAt(100); !near(got, 1e-5) {
		t.Fatalf("per request at 100/s: %v, want 1e-5", got)
	}
	if got := p.PerRequestAt(0); got != 0 {
		t.Fatalf("no rate: %v", got)
	}
	// Ten seconds of a $3.60/h server is $0.01; a model that used 3 of the
	// 4 busy seconds pays $0.0075 over its 750 requests.
	if got := p.Share(10*time.Second, 3*time.Second, 4*time.Second, 750); !near(got, 1e-5) {
		t.Fatalf("share: %v, want 1e-5", got)
	}
	if got := p.Share(10*time.Second, 0, 0, 10); got != 0 {
		t.Fatalf("no busy time: %v", got)
	}
}

// AppendMillis writes what strconv.AppendFloat writes for the duration in
// milliseconds, for durations of every magnitude and sign.
func TestAppendMillisIsAppendFloat(t *testing.T) {
	durations := []time.Duration{0, 1, 9, 10, 999, 1000, 19990, 999999, time.Millisecond, time.Millisecond + 1,
		1234567890, time.Hour, 1e15 - 1, 1e15, 1<<53 - 1, 1 << 53, 1<<62 + 12345, math.MaxInt64, -1, -19990, -time.Hour, math.MinInt64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		durations = append(durations, time.Duration(r.Int64N(int64(1)<<r.IntN(63))))
	}
	for _, d := range durations {
		want := strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
		if got := string(AppendMillis(nil, d)); got != want {
			t.Fatalf("AppendMillis(%d) = %s, want %s", int64(d), got, want)
		}
	}
}
