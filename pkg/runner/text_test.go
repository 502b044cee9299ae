package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/tensor"
)

func texts(name string, s ...string) tensor.Tensor {
	var data []byte
	for _, x := range s {
		data = binary.LittleEndian.AppendUint32(data, uint32(len(x)))
		data = append(data, x...)
	}
	return tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: []int64{int64(len(s))}, Data: data}
}

func loadTextEncoder(t *testing.T, cfg Config) *Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundled, "text-encoder", "1", ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tokenizer = &TokenizerConfig{}
	m, err := LoadModel("text-encoder", 1, data, cfg, LoadOptions{ReadFile: func(f string) ([]byte, error) {
		return os.ReadFile(filepath.Join(bundled, "text-encoder", f))
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// Texts of different lengths share padded batches, and each still gets
// exactly the embedding it gets alone.
func TestTextBatchesPadToTheLongest(t *testing.T) {
	batched := loadTextEncoder(t, Config{MaxBatchSize: intp(32), DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(5 * time.Millisecond)}})
	alone := loadTextEncoder(t, Config{MaxBatchSize: intp(0)})
	if in := batched.Metadata().Inputs; len(in) != 1 || in[0].Name != "text" || in[0].DataType != tensor.Bytes {
		t.Fatalf("served inputs %+v, want one BYTES text input", in)
	}
	sentences := []string{
		"hello",
		"The quick brown fox jumps over the lazy dog.",
		"Inference servers batch requests to use the hardware well.",
		"a b",
		strings.Repeat("long sentence ", 20),
	}
	const callers = 40
	got := make([]*Response, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var err error
			got[i], err = batched.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{texts("text", sentences[i%len(sentences)])}})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	merged := false
	for i, resp := range got {
		if resp == nil {
			t.FailNow()
		}
		want, err := alone.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{texts("text", sentences[i%len(sentences)])}})
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, fmt.Sprintf("text %d", i), resp.Outputs, want.Outputs, 1e-5)
		merged = merged || resp.Timing.BatchSize > 1
		if resp.Timing.Get(profile.Preprocess) <= 0 {
			t.Fatalf("text %d: no tokenization time", i)
		}
	}
	if !merged {
		t.Fatal("no text shared a batch: padding per batch was not exercised")
	}

	// Several texts in one request, and the ids given directly, agree.
	multi, err := alone.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{texts("text", sentences[0], sentences[1])}})
	if err != nil || multi.Outputs[0].Shape[0] != 2 {
		t.Fatalf("two texts: %v %v", multi, err)
	}
	ids := alone.text.tok.Encode(nil, "hello", 0) // [CLS] hello [SEP]
	direct, err := alone.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{
		tensor.New("input_ids", []int64{1, 3}, ids),
		tensor.New("attention_mask", []int64{1, 3}, []int64{1, 1, 1})}})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := alone.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{texts("text", "hello")}})
	assertClose(t, "ids given directly", direct.Outputs, first.Outputs, 1e-6)

	for _, bad := range []tensor.Tensor{
		tensor.New("text", []int64{1}, []int64{5}),
		{Name: "text", DataType: tensor.Bytes, Shape: []int64{2}, Data: texts("", "one").Data},
		{Name: "text", DataType: tensor.Bytes, Shape: []int64{1, 2}, Data: texts("", "a", "b").Data},
	} {
		if _, err := alone.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{bad}}); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), `"text"`) {
			t.Errorf("bad text input %s %v: err %v", bad.DataType, bad.Shape, err)
		}
	}
}

func TestTokenizerConfigErrors(t *testing.T) {
	data, _ := os.ReadFile(filepath.Join(bundled, "mlp", "1", ModelFile))
	_, err := LoadModel("mlp", 1, data, Config{Tokenizer: &TokenizerConfig{}}, LoadOptions{ReadFile: os.ReadFile})
	if err == nil || !strings.Contains(err.Error(), `"input_ids"`) {
		t.Fatalf("tokenizer on a model without token inputs: %v", err)
	}
	data, _ = os.ReadFile(filepath.Join(bundled, "text-encoder", "1", ModelFile))
	_, err = LoadModel("t", 1, data, Config{Tokenizer: &TokenizerConfig{Vocab: "missing.txt"}}, LoadOptions{ReadFile: func(f string) ([]byte, error) {
		return os.ReadFile(filepath.Join(bundled, "text-encoder", f))
	}})
	if err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Fatalf("missing vocabulary: %v", err)
	}
}

// A text model's cache answers by string, from the cache alone too: the
// fallback's view of it.
func TestCachedByString(t *testing.T) {
	m := loadTextEncoder(t, Config{Cache: CacheConfig{Enabled: true}})
	ran, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{texts("text", "a cat", "a dog")}})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.Cached(&Request{Inputs: []tensor.Tensor{texts("text", "a dog", "a cat", "a dog")}})
	if !ok || !got.FromCache || got.Outputs[0].Shape[0] != 3 {
		t.Fatalf("cached answer for known strings: %v %+v", ok, got)
	}
	row := len(ran.Outputs[0].Data) / 2
	if !bytes.Equal(got.Outputs[0].Data[:row], ran.Outputs[0].Data[row:]) || !bytes.Equal(got.Outputs[0].Data[row:2*row], ran.Outputs[0].Data[:row]) {
		t.Fatal("the cached rows are not the strings' own")
	}
	if _, ok := m.Cached(&Request{Inputs: []tensor.Tensor{texts("text", "a cat", "a bird")}}); ok {
		t.Fatal("a string never seen was answered from the cache")
	}
}

// Token ids given straight to a text model's graph are checked against its
// vocabulary: an id past it, or a negative one, is the request's 400
// naming it, where the graph's Gather failed it with 500 (or, for -1,
// quietly read the vocabulary's last row).
func TestTokenIDsOutsideTheVocabularyAreRefused(t *testing.T) {
	m := loadTextEncoder(t, Config{MaxBatchSize: intp(8)})
	ids := func(v ...int64) *Request {
		mask := make([]int64, len(v))
		for i := range mask {
			mask[i] = 1
		}
		return &Request{Inputs: []tensor.Tensor{tensor.New("input_ids", []int64{1, int64(len(v))}, v), tensor.New("attention_mask", []int64{1, int64(len(v))}, mask)}}
	}
	if _, err := m.Infer(context.Background(), ids(101, 2000, 102)); err != nil {
		t.Fatalf("ids in the vocabulary: %v", err)
	}
	mismatched := ids(101, 2000, 102)
	mismatched.Inputs[1] = tensor.New("attention_mask", []int64{1, 5}, []int64{1, 1, 1, 1, 1})
	if _, err := m.Infer(context.Background(), mismatched); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), `input "attention_mask": shape [1 5], want "input_ids"'s, [1 3]`) {
		t.Errorf("a mask of another shape: %v, want ErrInvalidInput naming both", err)
	}
	odd := ids(101, 2000, 102)
	odd.Inputs[1] = tensor.New("attention_mask", []int64{1, 3}, []int64{1, 99999999999, 1})
	if _, err := m.Infer(context.Background(), odd); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "99999999999 (element 1), want 0 or 1") {
		t.Errorf("a mask of 99999999999: %v, want ErrInvalidInput naming it", err)
	}
	for _, bad := range []int64{1 << 40, -1} {
		_, err := m.Infer(context.Background(), ids(101, bad, 102))
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), fmt.Sprintf(`input "input_ids": token id %d (element 1) is outside the vocabulary of`, bad)) {
			t.Errorf("id %d: %v, want ErrInvalidInput naming it", bad, err)
		}
	}
}
