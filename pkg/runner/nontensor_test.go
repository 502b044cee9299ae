package runner

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/onnxgraph"
	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/internal/classifiertest"
	"github.com/infer-serving/infer/pkg/tensor"
)

func readVariant(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundled, "..", "variants", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A converted scikit-learn classifier (LinearClassifier, then ZipMap)
// loads, in a model host and in process: its labels serve as a tensor, and
// its probabilities, a sequence of maps, as a BYTES tensor of one JSON
// object a row; its metadata says so. Requests of 1, 2 and 3 rows that
// the batcher runs as one batch of 6 each get their own rows.
func TestClassifierServesItsZipMapAsJSON(t *testing.T) {
	data := readVariant(t, "classifier.onnx")
	for _, isolation := range []string{IsolationProcess, IsolationNone} {
		t.Run(isolation, func(t *testing.T) {
			// The batch leaves when full (6 rows), never on the delay.
			m, err := LoadModel("classifier", 1, data, Config{Isolation: isolation, MaxBatchSize: intp(6),
				DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(time.Hour)}}, LoadOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			t.Cleanup(m.Close)
			meta := m.Metadata()
			want := []TensorSpec{
				{Name: "output_label", DataType: tensor.Int64, Shape: []int64{-1}},
				{Name: "output_probability", DataType: tensor.Bytes, Shape: []int64{-1}, Content: ContentJSON, ONNXType: "seq(map(int64,tensor(float)))"},
			}
			if !reflect.DeepEqual(meta.Outputs, want) || len(meta.Unserved) != 0 {
				t.Fatalf("outputs %+v unserved %+v, want %+v", meta.Outputs, meta.Unserved, want)
			}

			var wg sync.WaitGroup
			for rows := 1; rows <= 3; rows++ {
				wg.Go(func() {
					x := classifiertest.Features(10*rows, rows)
					resp, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{classifiertest.Request(x)}})
					if err != nil {
						t.Errorf("%d rows: %v", rows, err)
						return
					}
					if resp.Timing.BatchSize != 6 {
						t.Errorf("%d rows ran in a batch of %d, want all three requests in one of 6", rows, resp.Timing.BatchSize)
					}
					if err := classifiertest.Check(x, resp.Outputs); err != nil {
						t.Errorf("%d rows: %v", rows, err)
					}
				})
			}
			wg.Wait()

			// Alone, and asking for the probabilities only.
			x := classifiertest.Features(-4, 6)
			resp, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{classifiertest.Request(x)}})
			if err != nil {
				t.Fatal(err)
			}
			if err := classifiertest.Check(x, resp.Outputs); err != nil {
				t.Fatal(err)
			}
			resp, err = m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{classifiertest.Request(x)}, Outputs: []string{classifiertest.Probabilities}})
			if err != nil || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "output_probability" || !slices.Equal(resp.Outputs[0].Shape, []int64{6}) {
				t.Fatalf("probabilities alone: %+v %v", resp, err)
			}
		})
	}
}

// An output no protocol tensor carries (a sequence of tensors) leaves the
// model loadable, in a model host and in process: its other outputs
// serve, the metadata names it with its type and reason, and a request
// that names it is refused with both.
func TestUnservedOutputIsLeftOutAndRefusedByName(t *testing.T) {
	data := readVariant(t, "sequence-out.onnx")
	for _, isolation := range []string{IsolationProcess, IsolationNone} {
		t.Run(isolation, func(t *testing.T) {
			m, err := LoadModel("sequence-out", 1, data, Config{Isolation: isolation}, LoadOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			t.Cleanup(m.Close)
			meta := m.Metadata()
			if len(meta.Outputs) != 1 || meta.Outputs[0].Name != "doubled" || len(meta.Unserved) != 1 ||
				meta.Unserved[0].Name != "rows" || meta.Unserved[0].ONNXType != "seq(tensor(float))" || meta.Unserved[0].Reason == "" {
				t.Fatalf("outputs %+v unserved %+v", meta.Outputs, meta.Unserved)
			}
			x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
			in := []tensor.Tensor{tensor.New("x", []int64{2, 4}, x)}
			resp, err := m.Infer(context.Background(), &Request{Inputs: in})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := tensor.Values[float32](resp.Outputs[0])
			if len(resp.Outputs) != 1 || !slices.Equal(got, []float32{2, 4, 6, 8, 10, 12, 14, 16}) {
				t.Fatalf("outputs %+v", resp.Outputs)
			}
			_, err = m.Infer(context.Background(), &Request{Inputs: in, Outputs: []string{"doubled", "rows"}})
			if err == nil || !strings.Contains(err.Error(), `"rows"`) || !strings.Contains(err.Error(), "seq(tensor(float))") || !strings.Contains(err.Error(), "not served") {
				t.Fatalf("asking for rows: %v, want an error naming it, its type and why", err)
			}
		})
	}
}

// Maps convert to JSON whatever their key and value types, in the
// runtime's order of keys: integer keys become strings, strings are
// escaped as JSON strings, non-finite numbers are null.
func TestMapsConvertToJSON(t *testing.T) {
	spec := TensorSpec{Name: "m", DataType: tensor.Bytes, Content: ContentJSON}
	for _, tc := range []struct {
		name string
		make func() (*ort.Map, error)
		want string
	}{
		{"int64 to float", func() (*ort.Map, error) {
			return mapOf([]int64{2, -1}, []float32{0.25, float32(math.Inf(1))})
		}, `{"-1":null,"2":0.25}`},
		{"string to double", func() (*ort.Map, error) {
			keys, err := ort.NewStringTensor(ort.NewShape(2))
			if err != nil {
				return nil, err
			}
			defer keys.Destroy()
			if err := keys.SetContents([]string{"cat", `"quoted"` + "\n"}); err != nil {
				return nil, err
			}
			values, err := ort.NewTensor(ort.NewShape(2), []float64{1e-7, 3})
			if err != nil {
				return nil, err
			}
			defer values.Destroy()
			return ort.NewMap(keys, values)
		}, `{"\"quoted\"\n":3,"cat":1e-07}`},
		{"int64 to int64", func() (*ort.Map, error) {
			return mapOf([]int64{7}, []int64{-9})
		}, `{"7":-9}`},
	} {
		m, err := tc.make()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		data, shape, err := jsonOutput(m, spec)
		m.Destroy()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := tensor.BytesValues(tensor.Tensor{Name: "m", DataType: tensor.Bytes, Data: data})
		if err != nil || len(got) != 1 || string(got[0]) != tc.want || len(shape) != 0 {
			t.Errorf("%s: %q shape %v (%v), want %s as a scalar", tc.name, got, shape, err, tc.want)
		}
	}
}

func mapOf[K, V ort.TensorData](keys []K, values []V) (*ort.Map, error) {
	k, err := ort.NewTensor(ort.NewShape(int64(len(keys))), keys)
	if err != nil {
		return nil, err
	}
	defer k.Destroy()
	v, err := ort.NewTensor(ort.NewShape(int64(len(values))), values)
	if err != nil {
		return nil, err
	}
	defer v.Destroy()
	return ort.NewMap(k, v)
}

// A graph whose output is one of its inputs, or that lists an output
// twice, is refused at load with the reason: the runtime never writes
// such an output into the buffer bound for it, and the answer held zeros.
func TestOutputsTheRuntimeWouldNotWriteAreRefused(t *testing.T) {
	B, F := onnxgraph.Symbolic("batch"), onnxgraph.Fixed
	pass := onnxgraph.NewBuilder("pass")
	pass.Input("x", onnxgraph.Float, B, F(4))
	pass.Output("x", onnxgraph.Float, B, F(4))
	twice := onnxgraph.NewBuilder("twice")
	x := twice.Input("x", onnxgraph.Float, B, F(4))
	twice.OpNamed("y", "Identity", []string{x})
	twice.Output("y", onnxgraph.Float, B, F(4))
	twice.Output("y", onnxgraph.Float, B, F(4))
	for _, c := range []struct {
		b    *onnxgraph.Builder
		want string
	}{
		{pass, `output "x" is also an input of the graph`},
		{twice, `output "y": the graph lists it twice`},
	} {
		_, err := LoadModel(c.b.Graph.Name, 1, (&onnxgraph.Model{Graph: c.b.Graph}).Encode(), Config{}, LoadOptions{Isolation: IsolationNone})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want the load refused: %s", c.b.Graph.Name, err, c.want)
		}
	}
}
