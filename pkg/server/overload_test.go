package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/internal/testrepo"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// statusWriter notes the status a handler answers with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// One model flooded at ten times what it can do sheds its own excess with
// fast 429s, while another model on the same server answers every request;
// nothing hangs, and the heap stays bounded. What the model can do is
// measured, before the flood and during it, so the judgement holds however
// loaded the machine is: a slower machine sends less and answers less.
func TestOverloadIsolation(t *testing.T) {
	const queueBound = 8
	repo := testrepo.Open(t, map[string][2]string{
		// 20 thousand iterations a request: about 20 ms on a quiet core.
		"flooded": {faultyFile, faultyWarmup + "max_batch_size: 0\ndynamic_batching: {max_queue_size: " + strconv.Itoa(queueBound) + "}\n"},
		"calm":    {mlpFile, ""},
	})
	s, _ := start(t, repo, Options{})
	// The server's own time for each flooded request, by status: what
	// shedding costs the server, apart from the clients' connections.
	var (
		mu     sync.Mutex
		served = map[int][]time.Duration{}
	)
	h := s.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		if strings.Contains(r.URL.Path, "/flooded/") {
			mu.Lock()
			served[sw.code] = append(served[sw.code], time.Since(began))
			mu.Unlock()
		}
	}))
	defer hs.Close()
	flooded, err := repo.Model("flooded", 1)
	if err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 300}}
	slow := faultyRequest(false, 20)
	var (
		status   = map[int]int64{} // code (-1: no answer) -> count
		stop     atomic.Bool
		wg       sync.WaitGroup
		calmBad  atomic.Int64
		calmSent atomic.Int64
		longest  atomic.Int64 // the longest queue seen
	)
	// Its capacity here: one request at a time, each this long.
	began := time.Now()
	for range 3 {
		if r := post(t, client, hs.URL+"/v2/models/flooded/infer", slow); r.status != 200 {
			t.Fatalf("flooded, alone: %d %s", r.status, r.body)
		}
	}
	each := time.Since(began) / 3
	// Ten times that capacity, for 3 s: a request every each/10, those a
	// late tick missed sent at once, so that as many are sent as the
	// schedule says.
	gap := max(each/10, time.Millisecond)
	stats0 := flooded.Stats()
	floodBegan := time.Now()
	deadline := floodBegan.Add(3 * time.Second)
	send := func() {
		code := -1
		if resp, err := client.Post(hs.URL+"/v2/models/flooded/infer", "application/json", bytes.NewReader(slow)); err == nil {
			resp.Body.Close()
			code = resp.StatusCode
		}
		mu.Lock()
		status[code]++
		mu.Unlock()
	}
	wg.Go(func() {
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for sent := int64(0); time.Now().Before(deadline); <-tick.C {
			for due := int64(time.Since(floodBegan)/gap) + 1; sent < due; sent++ {
				wg.Go(send)
			}
			if n := int64(flooded.Stats().QueueLength); n > longest.Load() {
				longest.Store(n)
			}
		}
		stop.Store(true)
	})
	// The calm model, 4 clients in a closed loop meanwhile.
	image, hl, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(true)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				req, _ := http.NewRequest("POST", hs.URL+"/v2/models/calm/infer", bytes.NewReader(image))
				req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
				resp, err := client.Do(req)
				calmSent.Add(1)
				if err != nil {
					calmBad.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					calmBad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	flood := time.Since(floodBegan)
	stats1 := flooded.Stats()

	if status[-1] > 0 {
		t.Fatalf("%d flooded requests got no answer", status[-1])
	}
	var sent int64
	for code, n := range status {
		sent += n
		if code != 200 && code != 429 {
			t.Errorf("flooded: %d answers of %d", n, code)
		}
	}
	// max_queue_size, and for an instant the next request to run, admitted
	// to the one instance's running place while its worker returns from
	// the last (runner's admission).
	if longest.Load() > queueBound+1 {
		t.Errorf("the flooded model's queue held %d requests, over its max_queue_size %d and the one about to run", longest.Load(), queueBound)
	}
	// What the model did during the flood: each run's time, measured, and
	// so the most it could have answered in the flood's time, its queue
	// full at the end included.
	runs := stats1.Executions - stats0.Executions
	if runs == 0 || runs != status[200] {
		t.Fatalf("the flooded model ran %d requests and %d were answered", runs, status[200])
	}
	service := (stats1.ExecutionTime - stats0.ExecutionTime) / time.Duration(runs)
	capacity := int64(flood/service) + queueBound + 1
	if status[200] > capacity {
		t.Errorf("flooded: %d answered in %v at %v a request: more than the %d it can", status[200], flood, service, capacity)
	}
	// It was sent ten times what it could do (at the rate measured before
	// the flood); whatever it could not answer, it shed.
	if status[429] < sent-capacity {
		t.Errorf("flooded with %d requests: %d answered, %d shed; want all but the %d it can answer shed", sent, status[200], status[429], capacity)
	}
	// A shed request waits for no model: the server answers it faster
	// than a run of the model, and an answered one, which waits its turn
	// in the queue, slower.
	p50 := func(code int) time.Duration {
		l := served[code]
		slices.Sort(l)
		return l[len(l)/2]
	}
	if shed, answered := p50(429), p50(200); shed > service || answered < service {
		t.Errorf("the server took %v over the median 429, %v over the median 200, and a run of the model %v: shedding should be fast", shed, answered, service)
	}
	if calmBad.Load() > 0 || calmSent.Load() < 20 {
		t.Errorf("calm: %d of %d requests failed; want every one answered", calmBad.Load(), calmSent.Load())
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("the heap grew by %d MiB under overload", grew>>20)
	}
	if !s.Ready() {
		t.Error("the server is not ready after the flood")
	}
	t.Logf("flooded (%v a request alone, %v in the flood; sent %d in %v): %d answered, %d shed (the server's median 429 %v, median 200 %v); calm: %d answered",
		each, service, sent, flood, status[200], status[429], p50(429), p50(200), calmSent.Load())
}
