package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Calls on the HTTP inference port reuse their state from one call to
// the next: the decoder and its memory, the body and answer buffers, the
// core's call and result. Under concurrent calls in JSON and binary, of
// one to three rows, naming outputs or not, some timing out in the
// server and some abandoned by their clients mid-call, every answer is
// its own request's: multi-io doubles the ids each request sent.
func TestPooledCallsAnswerTheirOwnRequests(t *testing.T) {
	_, hs := start(t, nil, Options{})
	url := hs.URL + "/v2/models/multi-io/infer"
	const clients, calls = 8, 60
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		answered int
	)
	errs := make(chan error, clients*calls)
	for g := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range calls {
				ok, err := pooledCall(url, r, i)
				if err != nil {
					errs <- fmt.Errorf("client %d call %d: %w", g, i, err)
					return
				}
				if ok {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if answered < clients*calls/2 {
		t.Errorf("%d of %d calls answered: the test checked too few", answered, clients*calls)
	}
}

// pooledCall sends one multi-io request made from r, the i-th of its
// client, and checks its answer: ok when it was answered 200 (and
// right), an error when the answer is another request's or malformed.
// Every fifth call asks the server for a 1 µs timeout and every sixth is
// abandoned by its client within 200 µs: they may fail, but an answer
// they get must be theirs.
func pooledCall(url string, r *rand.Rand, i int) (ok bool, err error) {
	rows := int64(1 + r.IntN(3))
	ids := make([]int64, rows*4)
	for j := range ids {
		ids[j] = r.Int64N(1 << 40)
	}
	req := &protocol.InferRequest{Inputs: []tensor.Tensor{
		tensor.New("ids", []int64{rows, 4}, ids),
		tensor.NewBool("flags", []int64{rows, 4}, make([]bool, rows*4)),
		{Name: "halfs", DataType: tensor.FP16, Shape: []int64{rows, 4}, Data: make([]byte, rows*8)},
		tensor.New("wide", []int64{rows, 4}, make([]float64, rows*4)),
		tensor.New("bytes", []int64{rows, 4}, make([]uint8, rows*4)),
	}}
	binary := r.IntN(2) == 0
	req.BinaryOutput = r.IntN(2) == 0
	if r.IntN(2) == 0 {
		req.Outputs = []protocol.RequestedOutput{{Name: "wide_sum"}, {Name: "ids_doubled", Binary: r.IntN(2) == 0}}
	}
	if i%5 == 4 {
		req.Parameters = protocol.Parameters{protocol.ParamTimeout: 1}
	}
	body, hl, err := req.Encode(binary)
	if err != nil {
		return false, err
	}
	ctx := context.Background()
	if i%6 == 5 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.IntN(200))*time.Microsecond)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	if binary {
		hr.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil // abandoned, as meant
		}
		return false, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		if i%5 == 4 || i%6 == 5 {
			return false, nil // timed out, or cut: not an answer
		}
		return false, fmt.Errorf("%d %s", resp.StatusCode, answer)
	}
	rhl := int64(-1)
	if v := resp.Header.Get(protocol.HeaderContentLength); v != "" {
		if rhl, err = strconv.ParseInt(v, 10, 64); err != nil {
			return false, err
		}
	}
	decoded, err := protocol.DecodeResponse(answer, rhl)
	if err != nil {
		return false, fmt.Errorf("decoding the answer: %w", err)
	}
	for _, out := range decoded.Outputs {
		if out.Name != "ids_doubled" {
			continue
		}
		got, err := tensor.Values[int64](out)
		if err != nil {
			return false, err
		}
		want := make([]int64, len(ids))
		for j, v := range ids {
			want[j] = 2 * v
		}
		if !slices.Equal(got, want) || !slices.Equal(out.Shape, []int64{rows, 4}) {
			return false, fmt.Errorf("ids_doubled %v %v, want %v %v: another request's answer", out.Shape, got, []int64{rows, 4}, want)
		}
		return true, nil
	}
	return false, fmt.Errorf("no ids_doubled in the answer: %+v", decoded)
}
